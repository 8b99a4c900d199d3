"""Patch compliance: the newest ``patch-scan`` record of an environment, as report data.

A host is *compliant* when it has no pending security update (held or excluded ones
count: a hold does not make a vulnerable version safe) and no pending reboot.
"""

from __future__ import annotations

from typing import Any

from .archive import Archive
from .errors import BadInput, NotFound
from .operations import tagged_one
from .records import operator_name
from .workdays import isoformat, now


def latest_scan(archive: Archive, env: str) -> dict[str, Any]:
    """The newest successful patch-scan record of ``env`` that carries scan outputs."""
    if not env:
        raise BadInput("--env is required")
    scan_op = tagged_one("patch-scan")
    for row in archive.list(env=env, op=scan_op):
        record = archive.get(str(row["id"]))
        if record.get("status") == "successful" and (record.get("outputs") or {}).get("patch_scan"):
            return record
    raise NotFound(
        f"no successful {scan_op} record for environment {env!r} in {archive.root}; "
        f"run `opsctl run {scan_op} --env {env}` first"
    )


def _host_row(host: str, scan: dict[str, Any]) -> dict[str, Any]:
    updates = [u for u in scan.get("updates") or [] if isinstance(u, dict)]
    security = [u for u in updates if u.get("security")]
    reboot = scan.get("reboot_required")
    problems: list[str] = []
    if security:
        problems.append("security_pending")
    if reboot is True:
        problems.append("reboot_pending")
    return {
        "host": host,
        "os": scan.get("os"),
        "backend": scan.get("backend"),
        "scanned_at": scan.get("scanned_at"),
        "last_patch": scan.get("last_patch"),
        "pending": len([u for u in updates if not u.get("held") and not u.get("excluded")]),
        "security": len(security),
        "held": [h for h in scan.get("held") or [] if isinstance(h, dict)],
        "excluded": list(scan.get("excluded") or []),
        "reboot_required": reboot,
        "compliant": not problems,
        "problems": problems,
        "updates": [
            {
                "name": u.get("name"),
                "current": u.get("current"),
                "candidate": u.get("candidate"),
                "security": bool(u.get("security")),
                "held": bool(u.get("held")),
                "excluded": bool(u.get("excluded")),
                "source": u.get("source"),
            }
            for u in updates
        ],
    }


def build_patches(record: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready report data from one patch-scan record."""
    scans = (record.get("outputs") or {}).get("patch_scan") or {}
    hosts = [_host_row(h, s) for h, s in sorted(scans.items()) if isinstance(s, dict)]
    unreached = sorted(set(record.get("targets") or []) - set(scans))
    compliant = sum(1 for h in hosts if h["compliant"])
    return {
        "environment": record.get("environment"),
        "record": {
            "id": record.get("id"),
            "started": record.get("started"),
            "status": record.get("status"),
            "operator": operator_name(record.get("operator")),
            "hash": record.get("hash"),
        },
        "generated": isoformat(now()),
        "summary": {
            "hosts": len(hosts),
            "compliant": compliant,
            "compliance_pct": round(100.0 * compliant / len(hosts), 1) if hosts else None,
            "pending": sum(h["pending"] for h in hosts),
            "security": sum(h["security"] for h in hosts),
            "held": sum(len(h["held"]) for h in hosts),
            "reboot_pending": sum(1 for h in hosts if h["reboot_required"] is True),
            "not_scanned": unreached,
        },
        "hosts": hosts,
    }
