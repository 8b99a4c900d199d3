# -*- coding: utf-8 -*-
"""The controller's backup store as role db_backup writes it, read by one set of rules for every
module that reads it: db_backup_store (retention, resolve), inspect_backups (the inspection's
backup findings) and monitoring_backup_metrics (the backup-age alerts).

Layout: ``<store>/<host>/<backup id>/`` holds ``manifest.json`` (written by the database tool on
the host: ``started``, ``ended``, the files and their checksums) and ``status.json`` (written by
db_backup_store when the copy passed its checksums and was committed; ``verified`` is None until
backup-verify marks it ``{"ok": bool, "at": ..., "record_id": ...}``).

A directory ``<id>.partial`` is a copy in progress, or one that failed its checksums (removed by
the next committed copy); a directory without ``status.json`` was never committed. Neither is a
backup: counting one would make a failed night look like a fresh backup.

``orchestrator/backups.py`` (``opsctl backups list``) reads the same layout in the controller's
own package; tests/test_backup_store_rules.py holds the two to the same answers.
"""

import datetime as dt
import json
import os

PARTIAL = ".partial"


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def list_backups(hostdir):
    """The committed backups in a host's folder, newest first: (id, manifest, status) triples."""
    out = []
    if not os.path.isdir(hostdir):
        return out
    for name in os.listdir(hostdir):
        path = os.path.join(hostdir, name)
        if name.endswith(PARTIAL) or not os.path.isdir(path):
            continue
        try:
            manifest = read_json(os.path.join(path, "manifest.json"))
            status = read_json(os.path.join(path, "status.json"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and isinstance(status, dict):
            out.append((name, manifest, status))
    out.sort(key=lambda b: (str(b[1].get("started", "")), b[0]), reverse=True)
    return out


def is_verified(status):
    """True when backup-verify restored the backup and marked it passed."""
    verified = status.get("verified")
    return isinstance(verified, dict) and verified.get("ok") is True


def ended_at(manifest, hostdir, backup_id):
    """When the backup ended (else started), in seconds since the epoch; the manifest file's
    modification time when it says neither in a form that parses."""
    for key in ("ended", "started"):
        value = manifest.get(key)
        if isinstance(value, str) and value:
            try:
                moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.astimezone()
            return moment.timestamp()
    return os.path.getmtime(os.path.join(hostdir, backup_id, "manifest.json"))


def summary(store, host):
    """What the inspection and the metrics report of a host's backups: None when the host has no
    folder in the store, else {count, verified_count, newest, newest_verified}, the last two
    {id, stamp} of the newest backup by its end (and of the newest verified one) or None."""
    hostdir = os.path.join(store, host)
    if not os.path.isdir(hostdir):
        return None
    backups = [
        {"id": bid, "stamp": ended_at(manifest, hostdir, bid), "verified": is_verified(status)}
        for bid, manifest, status in list_backups(hostdir)
    ]
    verified = [b for b in backups if b["verified"]]

    def newest(items):
        best = max(items, key=lambda b: b["stamp"], default=None)
        return None if best is None else {"id": best["id"], "stamp": best["stamp"]}

    return {
        "count": len(backups),
        "verified_count": len(verified),
        "newest": newest(backups),
        "newest_verified": newest(verified),
    }
