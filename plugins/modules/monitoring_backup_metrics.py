#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Backup times per host from the controller's backup store, as a Prometheus textfile (monitoring role)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: monitoring_backup_metrics
short_description: Newest backup and newest verified backup time per host, as a Prometheus textfile
description:
  - Reads the C(manifest.json) files under C(<store>/<host>/<id>/) (the layout of
    the database backup roles, read with the same rules as the inspect role's
    C(inspect_backups)) and returns the text of a node exporter textfile with,
    per host, the time of the newest backup and of the newest verified backup
    (C(status.json) C(verified.ok), or a manifest that says it is verified).
  - Times, not ages, so the age (C(time() - metric)) keeps growing between runs.
    A host of C(hosts) without any backup gets C(0).
  - Without a store there is nothing to publish but C(envcredit_backup_store_present 0).
  - "Meant to run on the controller (C(delegate_to: localhost)). Read-only."
options:
  store: {type: path, required: true, description: The environment's backup store (var/backups/<env>).}
  hosts: {type: list, elements: str, required: true, description: Inventory names of the hosts that have backups.}
author: envcredit-ops
"""

EXAMPLES = r"""
- name: Read the backup store
  monitoring_backup_metrics:
    store: "{{ playbook_dir }}/../var/backups/lab"
    hosts: "{{ groups['db'] }}"
  delegate_to: localhost
"""

RETURN = r"""
content:
  description: The textfile (Prometheus exposition format), the same for the same store.
  returned: always
  type: str
backups:
  description: Per host {count, verified_count, newest, newest_verified} (times in seconds since the epoch, 0 = none).
  returned: always
  type: dict
"""

import datetime
import json
import os

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

METRICS = (
    (
        "envcredit_backup_newest_timestamp_seconds",
        "newest",
        "Time of the newest backup of the host in the controller's backup store (0: none).",
    ),
    (
        "envcredit_backup_verified_newest_timestamp_seconds",
        "newest_verified",
        "Time of the newest backup of the host verified by a restore (0: none).",
    ),
    ("envcredit_backup_count", "count", "Backups of the host in the controller's backup store."),
    ("envcredit_backup_verified_count", "verified_count", "Verified backups of the host in the store."),
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


def _ok(value):
    if value is True:
        return True
    if isinstance(value, dict):
        return value.get("ok") is True or str(value.get("status", "")).lower() in OK_STATES
    return isinstance(value, str) and value.lower() in OK_STATES


def _verified(manifest, folder):
    if _ok(manifest.get("verified")) or _ok(manifest.get("verification")) or _ok(manifest.get("verify")):
        return True
    for name in ("status.json", "verification.json", "verify.json"):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and (_ok(data.get("verified")) or str(data.get("status", "")).lower() in OK_STATES):
            return True
    return False


def host_backups(store, host):
    folder = os.path.join(store, host)
    result = {"count": 0, "verified_count": 0, "newest": 0, "newest_verified": 0}
    if not os.path.isdir(folder):
        return result
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name, "manifest.json")
        try:
            with open(path, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (OSError, ValueError):
            continue
        if not isinstance(manifest, dict):
            continue
        stamp = int(_stamp(manifest, path))
        result["count"] += 1
        result["newest"] = max(result["newest"], stamp)
        if _verified(manifest, os.path.dirname(path)):
            result["verified_count"] += 1
            result["newest_verified"] = max(result["newest_verified"], stamp)
    return result


def _label(value):
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(store_present, backups):
    lines = [
        "# Written by the role monitoring from the controller's backup store; do not edit.",
        "# HELP envcredit_backup_store_present 1 when the controller's backup store exists.",
        "# TYPE envcredit_backup_store_present gauge",
        "envcredit_backup_store_present %d" % (1 if store_present else 0),
    ]
    if store_present:
        for metric, key, text in METRICS:
            lines += ["# HELP %s %s" % (metric, text), "# TYPE %s gauge" % metric]
            lines += ['%s{host="%s"} %d' % (metric, _label(host), backups[host][key]) for host in sorted(backups)]
    return "\n".join(lines) + "\n"


def main():
    module = AnsibleModule(
        argument_spec={
            "store": {"type": "path", "required": True},
            "hosts": {"type": "list", "elements": "str", "required": True},
        },
        supports_check_mode=True,
    )
    store = module.params["store"]
    present = os.path.isdir(store)
    backups = {host: host_backups(store, host) for host in module.params["hosts"]} if present else {}
    module.exit_json(changed=False, content=render(present, backups), backups=backups, store_present=present)


if __name__ == "__main__":
    main()
