#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Age of the newest backup and of the newest verified backup of a host, from the controller's
backup store (inspect role)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inspect_backups
short_description: Age of the newest backup and newest verified backup of a host in the backup store
description:
  - Reads the committed backups under C(<store>/<host>/<id>/) (the layout role db_backup
    writes; the rules are module_utils C(backup_store), shared with db_backup_store and
    monitoring_backup_metrics) and returns the newest backup and the newest verified one,
    with their age in hours.
  - A backup is a folder with C(manifest.json) and C(status.json) (the copy passed its
    checksums and was committed); C(<id>.partial) folders (a copy in progress or one that
    failed its checksums) are not. It is verified when C(status.json) says C(verified.ok)
    (backup-verify restored it). Its time is the manifest's C(ended) (else C(started)), else the
    manifest file's modification time.
  - "Meant to run on the controller (C(delegate_to: localhost)). Read-only."
  - Without a store there is nothing to judge (not applicable); a host without
    a folder in an existing store has no backup, a finding when C(expected).
  - The two ages are judged separately, each against its own schedule. The
    newest backup (nightly) against C(max_age_h)/C(crit_age_h) (finding
    C(backup)), the newest verified backup (verification runs less often)
    against C(verify_max_age_h)/C(verify_crit_age_h) (finding C(backup_verify)).
    So a healthy system never has a finding only because verification runs on its own schedule.
  - Every host of a play in one call (the inspect role runs it C(run_once)), so the controller runs
    one module for the play instead of one per host.
options:
  hosts:
    type: list
    elements: dict
    required: true
    description: One entry per host, each with its own options (below); each host once.
    suboptions:
      store: {type: path, required: true, description: The environment's backup store (var/backups/<env>).}
      host: {type: str, required: true, description: Inventory name of the host.}
      expected: {type: bool, default: false, description: The host must have backups (a database host).}
      max_age_h: {type: float, default: 26, description: Age (hours) of the newest backup for a warning.}
      crit_age_h: {type: float, default: 50, description: Age (hours) of the newest backup for a critical finding.}
      verify_max_age_h:
        type: float
        default: 50
        description: Age (hours) of the newest verified backup for a warning (the verification period plus a margin).
      verify_crit_age_h:
        type: float
        default: 170
        description: Age (hours) of the newest verified backup for a critical finding.
author: envcredit-ops
"""

EXAMPLES = r"""
- name: Read the backup store once for every host of the play
  inspect_backups:
    hosts:
      - {store: /srv/ops/var/backups/lab, host: lab-db1, expected: true}
      - {store: /srv/ops/var/backups/lab, host: lab-web1}
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
hosts:
  description:
    - Per host name, C(backup) (status ok, none or not_applicable; count, verified_count, newest,
      newest_verified as {id, time, age_h}) and C(findings) (a list of {check, severity, target,
      value, threshold, message, action}).
  returned: always
  type: dict
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.envcredit.ops.plugins.module_utils.backup_store import summary

ACTION = "Run the backup now (opsctl run backup), then verify it; find why the scheduled backup did not run."
VERIFY_ACTION = (
    "Verify the newest backup by a restore (opsctl run backup-verify); find why the scheduled verification did not run."
)


def _entry(backup, now):
    if backup is None:
        return None
    return {
        "id": backup["id"],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(backup["stamp"])),
        "age_h": round((now - backup["stamp"]) / 3600.0, 1),
    }


def _age_finding(check, sev, host, age, threshold, action, message):
    return {
        "check": check,
        "severity": sev,
        "target": host,
        "value": age,
        "threshold": threshold,
        "action": action,
        "message": message,
    }


def _judge_newest(p, result):
    """The newest backup, verified or not, against the nightly schedule."""
    if result["status"] == "not_applicable":
        return []
    if result["count"] == 0:
        if not p["expected"]:
            return []
        return [
            _age_finding(
                "backup",
                "critical",
                p["host"],
                None,
                p["max_age_h"],
                ACTION,
                "no backup of %s in %s" % (p["host"], p["store"]),
            )
        ]
    age = result["newest"]["age_h"]
    sev = "critical" if age >= p["crit_age_h"] else "warning" if age >= p["max_age_h"] else None
    if not sev:
        return []
    return [
        _age_finding(
            "backup",
            sev,
            p["host"],
            age,
            p["crit_age_h"] if sev == "critical" else p["max_age_h"],
            ACTION,
            "the newest backup (%s) is %.1f h old (allowed %s h)" % (result["newest"]["id"], age, p["max_age_h"]),
        )
    ]


def _judge_verified(p, result):
    """The newest backup proven by a restore, against the verification schedule."""
    if result["count"] == 0:
        return []  # nothing to verify: the finding above says so
    if result["newest_verified"] is None:
        # Backups that were never verified are better than none, but not proof of a restore.
        return [
            _age_finding(
                "backup_verify",
                "warning",
                p["host"],
                None,
                p["verify_max_age_h"],
                VERIFY_ACTION,
                "no verified backup of %s in %s (%d unverified)" % (p["host"], p["store"], result["count"]),
            )
        ]
    age = result["newest_verified"]["age_h"]
    sev = "critical" if age >= p["verify_crit_age_h"] else "warning" if age >= p["verify_max_age_h"] else None
    if not sev:
        return []
    return [
        _age_finding(
            "backup_verify",
            sev,
            p["host"],
            age,
            p["verify_crit_age_h"] if sev == "critical" else p["verify_max_age_h"],
            VERIFY_ACTION,
            "the newest verified backup (%s) is %.1f h old (allowed %s h)"
            % (result["newest_verified"]["id"], age, p["verify_max_age_h"]),
        )
    ]


def judge(p, now):
    """The backup and findings of one host (p: the options of one host)."""
    found = summary(p["store"], p["host"])
    if found is None:
        result = {
            "status": "not_applicable",
            "store": p["store"],
            "count": 0,
            "verified_count": 0,
            "newest": None,
            "newest_verified": None,
            "expected": p["expected"],
        }
        # A store that does not exist yet means backups are not set up here: nothing to judge.
        if p["expected"] and os.path.isdir(p["store"]):
            result["status"] = "none"
    else:
        result = {
            "status": "ok" if found["newest_verified"] else "none",
            "store": p["store"],
            "count": found["count"],
            "verified_count": found["verified_count"],
            "newest": _entry(found["newest"], now),
            "newest_verified": _entry(found["newest_verified"], now),
            "expected": p["expected"],
        }
    return {"backup": result, "findings": _judge_newest(p, result) + _judge_verified(p, result)}


HOST_OPTIONS = {
    "store": {"type": "path", "required": True},
    "host": {"type": "str", "required": True},
    "expected": {"type": "bool", "default": False},
    "max_age_h": {"type": "float", "default": 26},
    "crit_age_h": {"type": "float", "default": 50},
    "verify_max_age_h": {"type": "float", "default": 50},
    "verify_crit_age_h": {"type": "float", "default": 170},
}


def main():
    module = AnsibleModule(
        argument_spec={"hosts": {"type": "list", "elements": "dict", "required": True, "options": HOST_OPTIONS}},
        supports_check_mode=True,
    )
    entries = module.params["hosts"]
    names = [h["host"] for h in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        module.fail_json(msg="hosts: each host once; named more than once: %s" % ", ".join(twice))
    now = time.time()
    module.exit_json(changed=False, hosts={h["host"]: judge(h, now) for h in entries})


if __name__ == "__main__":
    main()
