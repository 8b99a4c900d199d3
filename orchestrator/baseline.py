"""Security baseline evidence: the newest ``baseline-check`` record of an environment as
report data (``opsctl report baseline``, :mod:`orchestrator.cli.report`, renders it).

Each host of the record carries one result per control (id, zh/en description, the
GB/T 22239-2019 clause, status ``pass`` / ``fail`` / ``waived`` / ``not_applicable``, the
reason, the evidence and the waiver). A host is *compliant* when no control fails:
waived and not applicable controls do not count against it, but stay visible.
"""

from __future__ import annotations

from typing import Any

from .archive import Archive
from .errors import BadInput, NotFound
from .operations import tagged_one
from .records import operator_name
from .workdays import isoformat, now

STATUSES = ("pass", "fail", "waived", "not_applicable")


def latest_check(archive: Archive, env: str) -> dict[str, Any]:
    """The newest successful baseline-check record of ``env`` that carries results."""
    if not env:
        raise BadInput("--env is required")
    check_op = tagged_one("baseline-check")
    for row in archive.list(env=env, op=check_op):
        record = archive.get(str(row["id"]))
        if record.get("status") == "successful" and (record.get("outputs") or {}).get("baseline"):
            return record
    raise NotFound(
        f"no successful {check_op} record for environment {env!r} in {archive.root}; "
        f"run `opsctl run {check_op} --env {env}` first"
    )


def _control(c: dict[str, Any]) -> dict[str, Any]:
    status = str(c.get("status"))
    return {
        "id": str(c.get("id")),
        "zh": c.get("zh") or "",
        "en": c.get("en") or "",
        "ref": c.get("ref") or "",
        "status": status if status in STATUSES else "fail",
        "reason": c.get("reason") or "",
        "evidence": c.get("evidence") if isinstance(c.get("evidence"), (dict, list)) else {},
        "waiver": c.get("waiver") if isinstance(c.get("waiver"), dict) else None,
    }


def _host_row(host: str, result: dict[str, Any]) -> dict[str, Any]:
    controls = [_control(c) for c in result.get("controls") or [] if isinstance(c, dict)]
    counts = {s: sum(1 for c in controls if c["status"] == s) for s in STATUSES}
    raw = result.get("lynis")
    lynis: dict[str, Any] = raw if isinstance(raw, dict) else {}
    last = lynis.get("current") or lynis.get("after")
    index = last.get("hardening_index") if isinstance(last, dict) else None
    before = lynis.get("before")
    index_before = before.get("hardening_index") if isinstance(before, dict) else None
    return {
        "host": host,
        "os": result.get("os"),
        "container": bool(result.get("container")),
        "virtualization": result.get("virtualization"),
        "evaluated_at": result.get("evaluated_at"),
        "counts": counts,
        "compliant": counts["fail"] == 0 and bool(controls),
        "controls": controls,
        "lynis": {
            "installed": bool(lynis.get("installed")),
            "message": lynis.get("message") or "",
            "hardening_index": index,
            "hardening_index_before": index_before,
        },
    }


def build_baseline(record: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready report data from one baseline-check (or baseline) record."""
    results = (record.get("outputs") or {}).get("baseline") or {}
    hosts = [_host_row(h, r) for h, r in sorted(results.items()) if isinstance(r, dict)]
    unreached = sorted(set(record.get("targets") or []) - set(results))
    compliant = sum(1 for h in hosts if h["compliant"])
    ids: list[str] = []
    for h in hosts:
        for c in h["controls"]:
            if c["id"] not in ids:
                ids.append(c["id"])
    matrix = [
        {
            "id": cid,
            "control": next(c for h in hosts for c in h["controls"] if c["id"] == cid),
            "by_host": {h["host"]: next((c["status"] for c in h["controls"] if c["id"] == cid), None) for h in hosts},
        }
        for cid in ids
    ]
    return {
        "environment": record.get("environment"),
        "record": {
            "id": record.get("id"),
            "operation": record.get("operation"),
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
            **{s: sum(h["counts"][s] for h in hosts) for s in STATUSES},
            "not_checked": unreached,
        },
        "matrix": matrix,
        "hosts": hosts,
    }
