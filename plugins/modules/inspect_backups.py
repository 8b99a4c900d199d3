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
  - Reads the C(manifest.json) files under C(<store>/<host>/<id>/) (the layout
    of the database backup roles) and returns the newest backup and the newest
    verified one, with their age in hours.
  - A manifest counts as verified when it says C(verified=true) or carries a
    C(verification) (or C(verify)) object whose C(status) is C(ok),
    C(verified) or C(passed), or when a C(status.json) with C(verified.ok) (the db_backup
    store), a C(verification.json) (or
    C(verify.json)) beside it says so. Its time is the first of C(finished),
    C(finished_at), C(completed), C(created), C(created_at), C(timestamp),
    C(started) found (C(ended) first), else the manifest file's modification time.
  - "Meant to run on the controller (C(delegate_to: localhost)). Read-only."
  - Without a store there is nothing to judge (not applicable); a host without
    a folder in an existing store has no backup, a finding when C(expected).
  - The two ages are judged separately, each against its own schedule. The
    newest backup (nightly) against C(max_age_h)/C(crit_age_h) (finding
    C(backup)), the newest verified backup (verification runs less often)
    against C(verify_max_age_h)/C(verify_crit_age_h) (finding C(backup_verify)).
    So a healthy system never has a finding only because verification runs on its own schedule.
options:
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
- name: Read the backup store
  inspect_backups:
    store: "{{ playbook_dir }}/../var/backups/lab"
    host: "{{ inventory_hostname }}"
  delegate_to: localhost
"""

RETURN = r"""
backup:
  description: status (ok, none, not_applicable), count, verified_count, newest, newest_verified ({id, time, age_h}).
  returned: always
  type: dict
findings:
  description: List of {check, severity, target, value, threshold, message, action}.
  returned: always
  type: list
"""

import datetime
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

TIME_KEYS = (
    "ended",
    "ended_at",
    "finished",
    "finished_at",
    "completed",
    "completed_at",
    "created",
    "created_at",
    "timestamp",
    "started",
    "started_at",
)
OK_STATES = ("ok", "verified", "passed", "successful", "success")
ACTION = "Run the backup now (opsctl run backup), then verify it; find why the scheduled backup did not run."
VERIFY_ACTION = (
    "Verify the newest backup by a restore (opsctl run backup-verify); find why the scheduled verification did not run."
)


def _stamp(manifest, path):
    for key in TIME_KEYS:
        value = manifest.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and value:
            try:
                moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.astimezone()
            return moment.timestamp()
    return os.path.getmtime(path)


def _verified(manifest):
    if manifest.get("verified") is True:
        return True
    for key in ("verification", "verify"):
        value = manifest.get(key)
        if isinstance(value, dict) and str(value.get("status", "")).lower() in OK_STATES:
            return True
        if isinstance(value, str) and value.lower() in OK_STATES:
            return True
    return False


def _verified_beside(folder):
    """A verification result written next to the manifest: status.json (db_backup's store:
    ``{"verified": {"ok": true, "at": ..., "record_id": ...}}``), or verification.json/verify.json."""
    for name in ("status.json", "verification.json", "verify.json"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        verified = data.get("verified")
        if verified is True or (isinstance(verified, dict) and verified.get("ok") is True):
            return True
        if str(data.get("status", "")).lower() in OK_STATES:
            return True
    return False


def scan(store, host):
    folder = os.path.join(store, host)
    if not os.path.isdir(folder):
        return None
    backups = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name, "manifest.json")
        try:
            with open(path, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict):
            backups.append(
                {
                    "id": str(manifest.get("backup_id") or manifest.get("id") or name),
                    "stamp": _stamp(manifest, path),
                    "verified": _verified(manifest) or _verified_beside(os.path.join(folder, name)),
                }
            )
    return backups


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


def main():
    module = AnsibleModule(
        argument_spec={
            "store": {"type": "path", "required": True},
            "host": {"type": "str", "required": True},
            "expected": {"type": "bool", "default": False},
            "max_age_h": {"type": "float", "default": 26},
            "crit_age_h": {"type": "float", "default": 50},
            "verify_max_age_h": {"type": "float", "default": 50},
            "verify_crit_age_h": {"type": "float", "default": 170},
        },
        supports_check_mode=True,
    )
    p = module.params
    now = time.time()
    backups = scan(p["store"], p["host"])
    findings = []
    if backups is None:
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
        verified = [b for b in backups if b["verified"]]
        newest = max(backups, key=lambda b: b["stamp"], default=None)
        newest_verified = max(verified, key=lambda b: b["stamp"], default=None)
        result = {
            "status": "ok" if newest_verified else "none",
            "store": p["store"],
            "count": len(backups),
            "verified_count": len(verified),
            "newest": _entry(newest, now),
            "newest_verified": _entry(newest_verified, now),
            "expected": p["expected"],
        }
    findings += _judge_newest(p, result)
    findings += _judge_verified(p, result)
    module.exit_json(changed=False, backup=result, findings=findings)


if __name__ == "__main__":
    main()
