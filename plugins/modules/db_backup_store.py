#!/usr/bin/python
"""Ansible module: the backup store on the controller (or a backup host).

Layout: <store>/<host>/<backup id>/ holding the dump files, manifest.json (written
on the database host) and status.json (written here). A copy in progress is
<backup id>.partial and is never listed. orchestrator/backups.py reads the same layout
for `opsctl backups list`.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: db_backup_store
short_description: Verify, commit, resolve, mark and prune backups in the envcredit backup store
description:
  - C(verify) checks the sha256 and size of every file of a backup directory against its manifest.
  - C(commit) verifies a copied C(<id>.partial) directory, writes status.json and renames it to C(<id>);
    the host's directory is set to mode 0700.
  - C(resolve) finds a backup by id, C(latest) or C(latest-verified) and checks its files.
  - C(mark) records the result of a restore test (backup-verify) in status.json.
  - C(state) writes C(<store>/<host>/<name>) (a JSON object, mode 0600, replaced atomically), what a
    physical backup saw of its repository or archive, read by C(opsctl backups list).
  - C(retention) removes backups beyond keep_last + daily/weekly/monthly, never the newest
    verified backup nor the protected ones. Supports check mode (reports only).
options:
  action: {type: str, required: true, choices: [verify, commit, resolve, mark, state, retention], description: What to do (see above).}
  store: {type: path, required: true, description: Root of the store.}
  host: {type: str, required: true, description: Database host the backups belong to.}
  backup_id: {type: str, description: Backup id, or latest / latest-verified for resolve.}
  record_id: {type: str, default: "", description: Change record id stamped into status.json.}
  verified: {type: bool, default: true, description: For mark, whether the restore test passed.}
  detail: {type: dict, default: {}, description: For mark, what the restore test found.}
  keep_last: {type: int, default: 7, description: For retention, the newest backups always kept.}
  keep_daily: {type: int, default: 7, description: For retention, days of which the newest backup is kept.}
  keep_weekly: {type: int, default: 4, description: For retention, weeks of which the newest backup is kept.}
  keep_monthly: {type: int, default: 6, description: For retention, months of which the newest backup is kept.}
  protect: {type: list, elements: str, default: [], description: Backup ids never removed.}
  name: {type: str, description: "For state, the file's name: pgbackrest.json or mariadb-archive.json."}
  data: {type: dict, default: {}, description: For state, the object written.}
author: envcredit-ops contractor team
"""

import datetime as dt
import hashlib
import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.envcredit.ops.plugins.module_utils.backup_store import (
    PARTIAL,
    is_verified,
    list_backups,
    read_json,
)


# the state files a physical backup writes beside the host's backups (action state)
STATE_FILES = ("pgbackrest.json", "mariadb-archive.json")


def _now():
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path, data):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def verify_dir(path):
    """Problems of the backup at ``path`` (empty list: every file matches its manifest)."""
    mpath = os.path.join(path, "manifest.json")
    if not os.path.isfile(mpath):
        return None, ["manifest.json: missing"]
    try:
        manifest = read_json(mpath)
    except ValueError as exc:
        return None, ["manifest.json: unreadable (%s)" % exc]
    bad = []
    for f in manifest.get("files", []):
        p = os.path.join(path, f["path"])
        if not os.path.isfile(p):
            bad.append("%s: missing" % f["path"])
        elif os.path.getsize(p) != f["bytes"]:
            bad.append("%s: size %d, manifest says %d" % (f["path"], os.path.getsize(p), f["bytes"]))
        elif _sha256(p) != f["sha256"]:
            bad.append("%s: sha256 mismatch" % f["path"])
    return manifest, bad


def retention_plan(backups, keep_last, keep_daily, keep_weekly, keep_monthly, protect):
    """(keep, remove) id lists. ``backups`` newest first."""
    keep = set(protect)
    keep.update(b[0] for b in backups[:keep_last])
    for count, key in ((keep_daily, "%Y-%m-%d"), (keep_weekly, "%G-W%V"), (keep_monthly, "%Y-%m")):
        seen = []
        for bid, manifest, _ in backups:
            try:
                when = dt.datetime.fromisoformat(manifest["started"])
            except (KeyError, ValueError):
                continue
            bucket = when.strftime(key)
            if bucket in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(bucket)
            keep.add(bid)
    verified = [b[0] for b in backups if is_verified(b[2])]
    if verified:
        keep.add(verified[0])  # never remove the newest verified backup
    elif backups:
        keep.add(backups[0][0])
    remove = [b[0] for b in backups if b[0] not in keep]
    return sorted(keep), remove


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(
                type="str", required=True, choices=["verify", "commit", "resolve", "mark", "state", "retention"]
            ),
            store=dict(type="path", required=True),
            host=dict(type="str", required=True),
            backup_id=dict(type="str"),
            record_id=dict(type="str", default=""),
            verified=dict(type="bool", default=True),
            detail=dict(type="dict", default={}),
            keep_last=dict(type="int", default=7),
            keep_daily=dict(type="int", default=7),
            keep_weekly=dict(type="int", default=4),
            keep_monthly=dict(type="int", default=6),
            protect=dict(type="list", elements="str", default=[]),
            name=dict(type="str", choices=list(STATE_FILES)),
            data=dict(type="dict", default={}),
        ),
        required_if=[
            ("action", "verify", ["backup_id"]),
            ("action", "commit", ["backup_id"]),
            ("action", "resolve", ["backup_id"]),
            ("action", "mark", ["backup_id"]),
            ("action", "state", ["name"]),
        ],
        supports_check_mode=True,
    )
    p = module.params
    hostdir = os.path.join(p["store"], p["host"])
    action = p["action"]
    bid = p["backup_id"]
    if bid is not None and (not bid or "/" in bid or bid.startswith(".")):
        module.fail_json(msg="invalid backup id %r" % bid)

    if action == "verify":
        path = os.path.join(hostdir, bid)
        manifest, bad = verify_dir(path)
        if bad:
            module.fail_json(
                msg="backup %s of %s is corrupt or incomplete: %s" % (bid, p["host"], "; ".join(bad)), problems=bad
            )
        module.exit_json(changed=False, backup_id=bid, path=path, files=len(manifest["files"]))

    if action == "commit":
        if os.path.isdir(hostdir) and not module.check_mode:
            os.chmod(hostdir, 0o700)  # made by the copy (rsync --mkpath, fetch) with the umask's mode
        partial = os.path.join(hostdir, bid + PARTIAL)
        final = os.path.join(hostdir, bid)
        if os.path.isdir(final) and not os.path.isdir(partial):
            manifest, bad = verify_dir(final)
            if bad:
                module.fail_json(msg="backup %s: %s" % (bid, "; ".join(bad)))
            module.exit_json(changed=False, backup_id=bid, path=final, manifest=manifest)
        manifest, bad = verify_dir(partial)
        if bad:
            module.fail_json(
                msg="copy of backup %s is not intact after transfer: %s" % (bid, "; ".join(bad)), problems=bad
            )
        if module.check_mode:
            module.exit_json(changed=True, backup_id=bid, path=final, manifest=manifest)
        _write_json(
            os.path.join(partial, "status.json"),
            {
                "backup_id": bid,
                "state": "copied",
                "checksums_verified_at": _now(),
                "record_id": p["record_id"],
                "verified": None,
            },
        )
        os.rename(partial, final)
        for name in os.listdir(hostdir):  # copies left by failed runs
            if name.endswith(PARTIAL):
                shutil.rmtree(os.path.join(hostdir, name), ignore_errors=True)
        module.exit_json(changed=True, backup_id=bid, path=final, manifest=manifest)

    if action == "state":
        path = os.path.join(hostdir, p["name"])
        if not module.check_mode:
            if not os.path.isdir(hostdir):
                os.makedirs(hostdir, mode=0o700)
            _write_json(path, p["data"])
        module.exit_json(changed=True, path=path)

    if action == "resolve":
        backups = list_backups(hostdir)
        if bid in ("latest", "latest-verified"):
            pool = backups if bid == "latest" else [b for b in backups if is_verified(b[2])]
            if not pool:
                module.fail_json(
                    msg="no %s backup of %s in %s"
                    % ("verified" if bid == "latest-verified" else "complete", p["host"], p["store"])
                )
            bid = pool[0][0]
        path = os.path.join(hostdir, bid)
        if not os.path.isfile(os.path.join(path, "status.json")):
            module.fail_json(msg="backup %s of %s not found in %s" % (bid, p["host"], p["store"]))
        manifest, bad = verify_dir(path)
        if bad:
            module.fail_json(
                msg="backup %s of %s is corrupt, refused: %s" % (bid, p["host"], "; ".join(bad)), problems=bad
            )
        module.exit_json(
            changed=False,
            backup_id=bid,
            path=path,
            manifest=manifest,
            status=read_json(os.path.join(path, "status.json")),
        )

    if action == "mark":
        spath = os.path.join(hostdir, bid, "status.json")
        if not os.path.isfile(spath):
            module.fail_json(msg="backup %s of %s not found in %s" % (bid, p["host"], p["store"]))
        status = read_json(spath)
        status["verified"] = {"ok": p["verified"], "at": _now(), "record_id": p["record_id"], "detail": p["detail"]}
        if not module.check_mode:
            _write_json(spath, status)
        module.exit_json(changed=True, backup_id=bid, status=status)

    backups = list_backups(hostdir)
    keep, remove = retention_plan(
        backups, p["keep_last"], p["keep_daily"], p["keep_weekly"], p["keep_monthly"], p["protect"]
    )
    if not module.check_mode:
        for name in remove:
            shutil.rmtree(os.path.join(hostdir, name))
    module.exit_json(changed=bool(remove), kept=keep, removed=remove)


if __name__ == "__main__":
    main()
