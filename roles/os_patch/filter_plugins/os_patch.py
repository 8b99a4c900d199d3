"""Filters of the os_patch role (run on the controller)."""

from __future__ import annotations

import datetime
import fnmatch
import os

from ansible_collections.envcredit.ops.plugins.module_utils.backup_store import summary

DOCUMENTATION = ""


def os_patch_backup_status(store, host, max_age_h):
    """The newest verified backup of ``host`` in the controller's backup store ``store``.

    The store is role db_backup's: ``<store>/<env>/<host>/<backup id>/`` (every environment's
    folder is read: the host's name picks its own), or ``<store>/<host>/<backup id>/`` when
    ``store`` is one environment's. Backups are read by the rules the inspection and the
    monitoring share (the collection's module_utils/backup_store.py): committed copies only,
    verified when backup-verify restored them; a backup's time is its end.
    Returns {ok, newest, age_h, backup_id, checked} (checked: the backups of the host read).
    """
    now = datetime.datetime.now(datetime.timezone.utc).timestamp()
    folders = []
    if os.path.isdir(store):
        folders = [store] + [os.path.join(store, name) for name in sorted(os.listdir(store))]
    best = None
    checked = 0
    for folder in folders:
        found = summary(folder, host) if os.path.isdir(folder) else None
        if found is None:
            continue
        checked += found["count"]
        verified = found["newest_verified"]
        if verified is not None and (best is None or verified["stamp"] > best["stamp"]):
            best = verified
    if best is None:
        return {"ok": False, "newest": None, "age_h": None, "backup_id": None, "checked": checked}
    age_h = round((now - best["stamp"]) / 3600, 2)
    return {
        "ok": age_h <= float(max_age_h),
        "newest": datetime.datetime.fromtimestamp(best["stamp"], datetime.timezone.utc).isoformat(),
        "age_h": age_h,
        "backup_id": best["id"],
        "checked": checked,
    }


def os_patch_targets(updates, scope, only=()):
    """Names ``patch`` installs: pending updates, not held, not excluded, security ones only if asked.

    ``only`` (names or shell patterns) narrows the choice to those packages (update-stack);
    empty means every package.
    """
    return [
        u["name"]
        for u in updates or []
        if not u.get("held")
        and not u.get("excluded")
        and (scope != "security" or u.get("security"))
        and (not only or any(fnmatch.fnmatchcase(u["name"], pattern) for pattern in only))
    ]


def os_patch_changes(updates, targets, installed):
    """Per target package: before (installed at scan), candidate, after (installed now), security."""
    return [
        {
            "name": u["name"],
            "before": u.get("current"),
            "candidate": u.get("candidate"),
            "after": (installed or {}).get(u["name"]),
            "security": bool(u.get("security")),
            "upgraded": (installed or {}).get(u["name"]) != u.get("current"),
        }
        for u in updates or []
        if u["name"] in (targets or [])
    ]


def os_patch_kept(updates, held, installed):
    """Held and excluded packages with their versions before and after: they must be unchanged."""
    before = {h["name"]: h.get("version") for h in held or []}
    for u in updates or []:
        if u.get("held") or u.get("excluded"):
            before.setdefault(u["name"], u.get("current"))
    out = []
    for name, version in sorted(before.items()):
        after = (installed or {}).get(name)
        out.append({"name": name, "before": version, "after": after, "unchanged": after == version})
    return out


def os_patch_kept_names(scan):
    """Names of the held and excluded packages of a scan result."""
    names = {h["name"] for h in scan.get("held") or []}
    names.update(u["name"] for u in scan.get("updates") or [] if u.get("held") or u.get("excluded"))
    return sorted(names)


def os_patch_free_mb(df_stdout):
    """``df -BM --output=target,avail PATH...`` -> {mount: free MiB}."""
    out = {}
    for line in (df_stdout or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1].rstrip("M"))
    return out


class FilterModule:
    def filters(self):
        return {
            "os_patch_backup_status": os_patch_backup_status,
            "os_patch_targets": os_patch_targets,
            "os_patch_changes": os_patch_changes,
            "os_patch_kept": os_patch_kept,
            "os_patch_kept_names": os_patch_kept_names,
            "os_patch_free_mb": os_patch_free_mb,
        }
