"""Filters of the os_patch role (run on the controller)."""

from __future__ import annotations

import datetime
import fnmatch
import json
import os

DOCUMENTATION = ""

_TIME_KEYS = ("ended", "finished_at", "finished", "completed_at", "created_at", "time")


def _parse_time(value):
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def _read_status(path):
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def os_patch_backup_status(paths, host, max_age_h):
    """The newest verified backup of ``host`` among the JSON manifests ``paths``.

    A manifest counts when it names the host (``host``, or ``hosts`` containing it) and says
    ``verified: true`` (or ``verify: {ok: true}``), or the db_backup store's ``status.json`` beside
    it says ``verified: {ok: true}``; its time is the first of ended/finished_at/finished/
    completed_at/created_at/time. Returns {ok, newest, age_h, manifest, checked}.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    best = None
    for path in paths or []:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if os.path.basename(path) == "status.json":
            continue  # read beside its manifest below
        hosts = data.get("hosts") if isinstance(data.get("hosts"), list) else [data.get("host")]
        # The db_backup store keeps <env>/<host>/<backup id>/manifest.json: the folder names the host.
        hosts = hosts + [os.path.basename(os.path.dirname(os.path.dirname(path)))]
        if host not in hosts:
            continue
        verify = data.get("verify")
        verified = data.get("verified") is True or (isinstance(verify, dict) and verify.get("ok") is True)
        status = _read_status(os.path.join(os.path.dirname(path), "status.json"))
        verified = verified or (isinstance(status.get("verified"), dict) and status["verified"].get("ok") is True)
        if not verified:
            continue
        moment = next((m for m in (_parse_time(data.get(k)) for k in _TIME_KEYS) if m), None)
        if moment is None:
            continue
        if best is None or moment > best[0]:
            best = (moment, path)
    if best is None:
        return {"ok": False, "newest": None, "age_h": None, "manifest": None, "checked": len(paths or [])}
    age_h = round((now - best[0]).total_seconds() / 3600, 2)
    return {
        "ok": age_h <= float(max_age_h),
        "newest": best[0].isoformat(),
        "age_h": age_h,
        "manifest": os.path.basename(best[1]),
        "checked": len(paths or []),
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
