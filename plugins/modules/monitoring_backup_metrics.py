#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Backup times per host from the controller's backup store, as a Prometheus textfile (monitoring role)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: monitoring_backup_metrics
short_description: Newest backup and newest verified backup time per host, as a Prometheus textfile
description:
  - Reads the committed backups under C(<store>/<host>/<id>/) (the layout role db_backup
    writes, by the rules of module_utils C(backup_store) that C(inspect_backups) and
    C(db_backup_store) share; C(<id>.partial) copies and folders without C(status.json) are
    not backups) and returns the text of a node exporter textfile with, per host, the time of
    the newest backup and of the newest verified backup (C(status.json) C(verified.ok)).
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

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.envcredit.ops.plugins.module_utils.backup_store import summary

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


def host_backups(store, host):
    found = summary(store, host)
    if found is None:
        return {"count": 0, "verified_count": 0, "newest": 0, "newest_verified": 0}
    return {
        "count": found["count"],
        "verified_count": found["verified_count"],
        "newest": int(found["newest"]["stamp"]) if found["newest"] else 0,
        "newest_verified": int(found["newest_verified"]["stamp"]) if found["newest_verified"] else 0,
    }


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
