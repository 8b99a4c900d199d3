"""The parts of the monthly service report (运维月报) that make it a document the bureau files:
the header (report number, contract, client, operating unit, service period), the
inspection-based availability, changes by kind with their record ids, the security baseline
and its change over the month, the consulting requests, risks and forecasts, next month's
plan from the schedules, and the calendar strip of inspection days.

:func:`orchestrator.reports.monthly.build_monthly` calls these; each reads the archive
through :class:`~orchestrator.archive.Archive` and returns JSON-ready data.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from .. import paths
from ..archive import Archive
from ..errors import OpsError
from ..inspection import results
from ..operations import get_environment, load_catalog, tagged
from ..records import parse_iso
from ..workdays import TZ

#: Findings that mean the site was not serving when the inspection looked.
DOWN_CHECKS = ("health", "db_down", "service")


def header(env: str | None, month: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """The report's header from the environment policy's ``monthly_report`` section
    (``inventories/<env>/.opsctl.yml``); what it does not say is left blank for the preparer."""
    settings: dict[str, Any] = {}
    if env:
        try:
            raw = get_environment(env).settings.get("monthly_report")
            settings = dict(raw) if isinstance(raw, Mapping) else {}
        except OpsError:
            settings = {}
    year, mon = month.split("-")
    template = str(settings.get("number_format") or "YW-{year}-{month}")
    try:
        number = template.format(year=year, month=mon, env=env or "all")
    except (KeyError, IndexError, ValueError):
        number = f"YW-{year}-{mon}"
    last_day = (end - dt.timedelta(days=1)).date()
    return {
        "number": number,
        "contract": str(settings.get("contract") or ""),
        "client": str(settings.get("client") or ""),
        "operating_unit": str(settings.get("operating_unit") or ""),
        "contract_term": str(settings.get("contract_term") or ""),
        "period_from": start.date().isoformat(),
        "period_to": last_day.isoformat(),
    }


def inspection_availability(archive: Archive, rows: Sequence[Mapping[str, Any]], env: str) -> dict[str, Any]:
    """Availability as the daily inspections saw it: the share of the month's successful
    inspections of ``env`` at which every host answered and no health, service or database
    check failed. A sample at inspection times, not continuous monitoring: labelled so."""
    ops = tagged("inspection", load_catalog())
    seen = healthy = 0
    down: list[dict[str, Any]] = []
    for row in rows:
        if row.get("operation") not in ops or row.get("environment") != env or row.get("check_mode"):
            continue
        if row.get("status") not in ("successful", "failed"):
            continue
        rec = archive.get(str(row["id"]))
        latest = results(rec)
        if not latest:
            continue
        seen += 1
        unreachable = [h for h, c in (rec.get("hosts") or {}).items() if c.get("unreachable")]
        failed = sorted(
            {
                str(f.get("check"))
                for r in latest.values()
                for f in r.get("findings") or []
                if f.get("check") in DOWN_CHECKS
            }
        )
        if unreachable or failed:
            down.append({"id": row["id"], "started": row["started"], "checks": failed, "unreachable": unreachable})
        else:
            healthy += 1
    return {
        "source": "inspection",
        "inspections": seen,
        "healthy": healthy,
        "availability_pct": round(100.0 * healthy / seen, 2) if seen else None,
        "down": down,
    }


#: The kinds of change, in the order the report lists them.
CHANGE_KINDS = ("emergency", "normal", "standard", "unticketed")
STANDARD_CHANGE_PREFIX = "STD-"


def change_kind(row: Mapping[str, Any]) -> str:
    """emergency (run for an incident), standard (a pre-approved standard change id, the
    timers' routine work), normal (a change ticket), or unticketed (lab and test runs)."""
    ticket = str(row.get("ticket") or "")
    if row.get("incident"):
        return "emergency"
    if ticket.startswith(STANDARD_CHANGE_PREFIX):
        return "standard"
    return "normal" if ticket else "unticketed"


def changes_by_kind(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs that may change something (not read-only, not check mode) by kind of change and
    operation, with the ids of their change records (and tickets); read-only runs
    (inspections, scans, checks) are not changes."""
    catalog = load_catalog()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        op = str(row.get("operation"))
        entry = catalog.get(op)
        if row.get("check_mode") or (entry is not None and entry.read_only):
            continue
        kind = change_kind(row)
        item = out.setdefault(
            (kind, op),
            {"kind": kind, "operation": op, "runs": 0, "successful": 0, "failed": 0, "records": [], "tickets": []},
        )
        item["runs"] += 1
        item["successful" if row.get("status") == "successful" else "failed"] += 1
        item["records"].append(str(row["id"]))
        if row.get("ticket") and row["ticket"] not in item["tickets"]:
            item["tickets"].append(str(row["ticket"]))
    return sorted(out.values(), key=lambda c: (CHANGE_KINDS.index(c["kind"]), -c["runs"], c["operation"]))


def backups_by_host(
    backups: Sequence[Mapping[str, Any]], verifications: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per database host: backups taken and failed, verifications, the newest of each (time and record)."""
    out: dict[str, dict[str, Any]] = {}

    def host_row(host: str) -> dict[str, Any]:
        return out.setdefault(
            host,
            {
                "host": host,
                "taken": 0,
                "failed": 0,
                "verified": 0,
                "verify_failed": 0,
                "last": None,
                "last_verified": None,
            },
        )

    for b in backups:
        for host in b.get("hosts") or ["-"]:
            row = host_row(str(host))
            ok = b.get("status") == "successful"
            row["taken" if ok else "failed"] += 1
            if ok:
                row["last"] = {"id": b["id"], "started": b["started"]}
    for v in verifications:
        for host in v.get("hosts") or ["-"]:
            row = host_row(str(host))
            ok = v.get("status") == "successful"
            row["verified" if ok else "verify_failed"] += 1
            if ok:
                row["last_verified"] = {"id": v["id"], "started": v["started"]}
    return [out[h] for h in sorted(out)]


def baseline_over_month(archive: Archive, rows: Sequence[Mapping[str, Any]], env: str) -> dict[str, Any] | None:
    """The security baseline at the month's first and last successful check of ``env`` (or the
    last check before the month when there was one): compliant hosts and failing controls."""
    from ..baseline import build_baseline

    ops = tagged("baseline-check", load_catalog())
    checks = [
        r
        for r in rows
        if r.get("operation") in ops
        and r.get("environment") == env
        and r.get("status") == "successful"
        and not r.get("check_mode")
    ]
    if not checks:
        return None

    def summary(row: Mapping[str, Any]) -> dict[str, Any]:
        data = build_baseline(archive.get(str(row["id"])))
        failing = sorted({c["id"] for h in data["hosts"] for c in h["controls"] if c["status"] == "fail"})
        return {
            "id": row["id"],
            "started": row["started"],
            "hosts": data["summary"]["hosts"],
            "compliant": data["summary"]["compliant"],
            "compliance_pct": data["summary"]["compliance_pct"],
            "fail": data["summary"]["fail"],
            "waived": data["summary"]["waived"],
            "failing_controls": failing,
        }

    first, last = summary(checks[0]), summary(checks[-1])
    return {
        "first": first,
        "last": last,
        "checks": len(checks),
        "fixed": sorted(set(first["failing_controls"]) - set(last["failing_controls"])),
        "new_failures": sorted(set(last["failing_controls"]) - set(first["failing_controls"])),
    }


WEEKDAYS = {"Mon": 0, "Tue": 1, "Wed": 2, "Thu": 3, "Fri": 4, "Sat": 5, "Sun": 6}


def _cadence(on_calendar: str) -> dict[str, Any] | None:
    """A systemd OnCalendar expression of the forms the schedules use, as a cadence:
    daily at HH:MM, weekly on a weekday at HH:MM, or every N minutes."""
    parts = on_calendar.split()
    if len(parts) not in (2, 3):
        return None
    weekday = WEEKDAYS.get(parts[0]) if len(parts) == 3 else None
    date, time = parts[-2], parts[-1]
    if date != "*-*-*" or (len(parts) == 3 and weekday is None) or time.count(":") != 2:
        return None
    if "/" in time:
        step = time.split("/")[1].split(":")[0]
        return {"kind": "minutes", "every": int(step)} if step.isdigit() else None
    hh, mm = time.split(":")[:2]
    if not (hh.isdigit() and mm.isdigit()):
        return None
    if weekday is not None:
        return {"kind": "weekly", "weekday": weekday, "time": f"{int(hh):02d}:{mm}"}
    return {"kind": "daily", "time": f"{int(hh):02d}:{mm}"}


def next_month_plan(end: dt.datetime) -> dict[str, Any]:
    """Next month's planned work from ``schedules/schedules.yml``: each timer, its cadence and
    how many times it runs in the month."""
    path = paths.repo_root() / "schedules" / "schedules.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        data = {}
    timers = data.get("timers") if isinstance(data, Mapping) else None
    first = end.date()
    days = calendar.monthrange(first.year, first.month)[1]
    items: list[dict[str, Any]] = []
    for name, timer in (timers or {}).items():
        if not isinstance(timer, Mapping):
            continue
        cadence = _cadence(str(timer.get("on_calendar") or ""))
        if cadence is None:
            continue
        if cadence["kind"] == "daily":
            count = days
        elif cadence["kind"] == "weekly":
            count = sum(1 for d in range(days) if (first + dt.timedelta(days=d)).weekday() == cadence["weekday"])
        else:
            count = days * 24 * 60 // cadence["every"]
        items.append(
            {
                "timer": str(name),
                "operation": timer.get("operation"),
                "command": " ".join(str(c) for c in timer.get("command") or []),
                "cadence": cadence,
                "count": count,
            }
        )
    return {"month": f"{first.year}-{first.month:02d}", "items": items}


def calendar_strip(start: dt.datetime, end: dt.datetime, done: set[str], today: dt.date) -> list[dict[str, Any]]:
    """One cell per day of the month: inspected, missed, or still to come."""
    out = []
    for i in range((end - start).days):
        day = (start + dt.timedelta(days=i)).date()
        iso = day.isoformat()
        state = "done" if iso in done else ("future" if day > today else "missed")
        out.append({"day": iso, "dom": day.day, "weekday": day.weekday(), "state": state})
    return out


def local_day(text: str) -> str:
    return parse_iso(text).astimezone(TZ).date().isoformat()
