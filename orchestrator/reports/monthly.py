"""The monthly service report (运维服务月报) from the change-record archive.

Runs and changes by operation, backups taken and verified, patches applied
and pending, deploys and rollbacks, daily inspections on schedule (missed
days listed), incidents and SLA compliance (from :mod:`orchestrator.reports.sla`)
when incident data exists, the site's availability from the monitoring's
probes (:mod:`orchestrator.availability`) when Prometheus is configured, and the
consulting requests (:func:`orchestrator.requests.requests_in_period`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from ..archive import Archive
from ..errors import OpsError
from ..incidents import OPERATIONS, IncidentRegister
from ..operations import load_catalog, tagged, title
from ..records import parse_iso
from ..requests import OPERATIONS as REQUEST_OPS
from ..requests import requests_in_period
from ..workdays import TZ, isoformat, now
from . import monthly_filing as filing
from .inspect import bar_chart, build_inspect, local_iso
from .sla import build_sla, month_bounds

#: Register entries (incidents: incident-open, incident-ack ...), not runs.
EVENT_OPS = tuple(OPERATIONS.values()) + tuple(REQUEST_OPS.values())


def _count_items(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple, dict)):
        return len(value)
    return 0


def _per_host(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    out = (record.get("outputs") or {}).get(key)
    return {str(h): v for h, v in out.items()} if isinstance(out, Mapping) else {}


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


def build_monthly(
    archive: Archive,
    month: str,
    env: str | None = None,
    inspect_env: str = "production",
    as_of: dt.datetime | None = None,
    availability: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The month's figures; ``availability`` is the site's, measured by the caller
    (:func:`orchestrator.availability.measure`), or None: not measured."""
    start, end = month_bounds(month)
    moment = as_of or now()
    rows = archive.list(
        env=env, since=start.astimezone(dt.timezone.utc).isoformat(), until=end.astimezone(dt.timezone.utc).isoformat()
    )
    rows = [r for r in rows if start <= parse_iso(str(r["started"])).astimezone(TZ) < end]
    rows.reverse()  # oldest first
    rows = [r for r in rows if str(r.get("operation")) not in EVENT_OPS]
    by_op: dict[str, dict[str, Any]] = {}
    backups: list[dict[str, Any]] = []
    verifications: list[dict[str, Any]] = []
    patches: list[dict[str, Any]] = []
    deploys: list[dict[str, Any]] = []
    pending: dict[str, Any] = {}
    inspect_days: dict[str, dict[str, Any]] = {}
    catalog = load_catalog()
    backup_ops, verify_ops, patch_ops, scan_ops, deploy_ops, rollback_ops, inspect_ops = (
        tagged(tag, catalog)
        for tag in ("backup", "backup-verify", "patch", "patch-scan", "deploy", "rollback", "inspection")
    )
    for row in rows:
        op = str(row.get("operation"))
        if op in EVENT_OPS or op in REQUEST_OPS.values():  # register entries, not runs
            continue
        st = by_op.setdefault(
            op,
            {
                "operation": op,
                "runs": 0,
                "successful": 0,
                "failed": 0,
                "other": 0,
                "changed_tasks": 0,
                "check_runs": 0,
                "scheduled": 0,
            },
        )
        st["runs"] += 1
        status = str(row.get("status"))
        st["successful" if status == "successful" else "failed" if status == "failed" else "other"] += 1
        st["changed_tasks"] += int(row.get("changed") or 0)
        st["check_runs"] += bool(row.get("check_mode"))
        needs_record = op in backup_ops + verify_ops + patch_ops + scan_ops + deploy_ops + rollback_ops + inspect_ops
        rec = archive.get(str(row["id"])) if needs_record else {}
        launch = (rec.get("launch") or {}).get("type") if rec else None
        st["scheduled"] += launch == "scheduled"
        base = {
            "id": row["id"],
            "started": local_iso(str(row["started"])),
            "environment": row.get("environment"),
            "status": status,
        }
        if op in backup_ops and not row.get("check_mode"):
            hosts = _per_host(rec, "backup")
            backups.append(base | {"hosts": sorted(hosts), "count": len(hosts)})
        elif op in verify_ops:
            verifications.append(base | {"hosts": sorted(rec.get("hosts") or {})})
        elif op in patch_ops and not row.get("check_mode"):
            applied = 0
            for res in _per_host(rec, "patch").values():
                if isinstance(res, Mapping):
                    items = _first(res, "packages", "upgraded", "applied", "updated")
                    if isinstance(items, list):  # os_patch: one entry per target, upgraded or not
                        items = [p for p in items if not isinstance(p, Mapping) or p.get("upgraded", True)]
                    applied += _count_items(items)
            patches.append(base | {"hosts": sorted(rec.get("hosts") or {}), "packages": applied})
        elif op in scan_ops and status == "successful":
            for host, res in _per_host(rec, "patch_scan").items():
                if isinstance(res, Mapping):
                    pending[host] = {
                        "pending": _count_items(_first(res, "pending", "upgradable", "updates")),
                        "security": _count_items(_first(res, "security", "security_pending")),
                        "scanned": local_iso(str(row["started"])),
                    }
        elif op in deploy_ops + rollback_ops:
            versions = sorted(
                {
                    str((v or {}).get("running"))
                    for v in _per_host(rec, "deploy").values()
                    if isinstance(v, Mapping) and v.get("running")
                }
            )
            deploys.append(base | {"kind": "rollback" if op in rollback_ops else "deploy", "versions": versions})
        elif (
            op in inspect_ops
            and row.get("environment") == inspect_env
            and status == "successful"
            and not row.get("check_mode")
        ):
            day = parse_iso(str(row["started"])).astimezone(TZ).date().isoformat()
            entry = inspect_days.setdefault(day, {"day": day, "runs": 0, "scheduled": 0})
            entry["runs"] += 1
            entry["scheduled"] += launch == "scheduled"
    last_day = min(
        end, max(start, moment.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1))
    )
    days = [(start + dt.timedelta(days=i)).date().isoformat() for i in range((last_day - start).days)]
    missed = [d for d in days if d not in inspect_days]
    register = IncidentRegister(archive)
    sla = build_sla(register, month, moment) if register.load() else None
    today = moment.astimezone(TZ).date()
    inspected = set(inspect_days)
    baseline = filing.baseline_over_month(archive, rows, inspect_env)
    risks = _risks(archive, rows, inspect_env, pending, baseline, sla, missed)
    totals = {
        "runs": sum(s["runs"] for s in by_op.values()),
        "successful": sum(s["successful"] for s in by_op.values()),
        "failed": sum(s["failed"] for s in by_op.values()),
        "changed_tasks": sum(s["changed_tasks"] for s in by_op.values()),
    }
    return {
        "month": month,
        "environment": env,
        "period": {"from": isoformat(start), "to": isoformat(end)},
        "generated": isoformat(now()),
        "totals": totals,
        "availability": dict(availability) if availability is not None else {"source": "none"},
        "by_operation": sorted(by_op.values(), key=lambda s: (-s["runs"], s["operation"])),
        "backups": {
            "runs": backups,
            "taken": sum(b["count"] for b in backups if b["status"] == "successful"),
            "failed_runs": sum(1 for b in backups if b["status"] != "successful"),
            "verifications": verifications,
            "verified": sum(1 for v in verifications if v["status"] == "successful"),
            "by_host": filing.backups_by_host(backups, verifications),
        },
        "patches": {
            "runs": patches,
            "applied_packages": sum(p["packages"] for p in patches),
            "pending": [{"host": h, **v} for h, v in sorted(pending.items())],
        },
        "deploys": {
            "runs": deploys,
            "deploys": sum(1 for d in deploys if d["kind"] == "deploy"),
            "rollbacks": sum(1 for d in deploys if d["kind"] == "rollback"),
        },
        "inspections": {
            "environment": inspect_env,
            "days_expected": len(days),
            "days_done": len(days) - len(missed),
            "scheduled_days": sum(1 for d in inspect_days.values() if d["scheduled"]),
            "missed": missed,
            "by_day": [inspect_days[d] for d in sorted(inspect_days)],
        },
        "header": filing.header(env or inspect_env, month, start, end),
        "availability_inspection": filing.inspection_availability(archive, rows, inspect_env),
        "changes": filing.changes_by_kind(rows),
        "baseline": baseline,
        "requests": requests_in_period(archive, start, end, moment),
        "risks": risks,
        "plan": filing.next_month_plan(end),
        "calendar": filing.calendar_strip(start, end, inspected, today),
        "incidents": [] if sla is None else sla["incidents"],
        "sla": None
        if sla is None
        else {
            "compliance_pct": sla["compliance_pct"],
            "incidents": len(sla["incidents"]),
            "clocks_met": sla["clocks_met"],
            "clocks_evaluated": sla["clocks_evaluated"],
            "breaches": sla["breaches"],
            "by_severity": {s: {"count": v["count"], "open": v["open"]} for s, v in sla["by_severity"].items()},
        },
    }


def charts(data: Mapping[str, Any], t: Mapping[str, str], lang: str = "zh") -> dict[str, Markup]:
    """The HTML charts: runs per operation (counts: whole-number ticks). Inspection days are a
    calendar strip in the template, not a chart."""
    ops = data["by_operation"][:14]
    return {
        "runs": bar_chart(
            [(title(o["operation"], lang), [o["successful"], o["failed"] + o["other"]]) for o in ops],
            [t["successful"], t["failed"]],
            integer=True,
        ),
    }


def _risks(
    archive: Archive,
    rows: list[dict[str, Any]],
    env: str,
    pending: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    sla: Mapping[str, Any] | None,
    missed: list[str],
) -> list[dict[str, Any]]:
    """Risks and forecasts for the month ahead, most pressing first: the newest inspection's
    warnings and critical findings (forecasts included), pending security updates, failing
    baseline controls, SLA breaches, backups not verified, missed inspections."""
    out: list[dict[str, Any]] = []
    newest = next(
        (r for r in reversed(rows) if r.get("operation") in tagged("inspection") and r.get("environment") == env),
        None,
    )
    if newest is not None:
        try:
            inspection = build_inspect(archive, str(newest["id"]))
        except OpsError:
            inspection = None
        for f in (inspection or {}).get("findings") or []:
            if f.get("severity") in ("critical", "warning"):
                keep = {k: f.get(k) for k in ("check", "severity", "host", "target", "value", "threshold", "message")}
                out.append({"kind": "finding", "record": newest["id"], "forecast": bool(f.get("forecast")), **keep})
    for host, p in sorted(pending.items()):
        if p.get("security"):
            out.append({"kind": "security_updates", "severity": "warning", "host": host, "value": p["security"]})
    if baseline and baseline["last"]["failing_controls"]:
        out.append({"kind": "baseline_fail", "severity": "warning", "controls": baseline["last"]["failing_controls"]})
    for b in (sla or {}).get("breaches") or []:
        out.append({"kind": "sla_breach", "severity": "critical", "id": b["id"], "clock": b["clock"]})
    if missed:
        out.append({"kind": "missed_inspections", "severity": "warning", "value": len(missed)})
    rank = {"critical": 0, "warning": 1}
    return sorted(out, key=lambda r: rank.get(str(r.get("severity")), 2))


def _days(data: Mapping[str, Any]) -> list[str]:
    start = dt.date.fromisoformat(data["period"]["from"][:10])
    n = data["inspections"]["days_expected"]
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]
