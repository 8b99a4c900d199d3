"""The monthly SLA report's data: incidents reported in a month, their clocks against the targets.

Compliance of a clock = met / (met + late + breached): clocks still running and
not yet due at the report's ``as_of`` time are counted as pending, not as met.
"""

from __future__ import annotations

import datetime as dt
import re
from statistics import mean
from typing import Any

from ..errors import BadInput
from ..incidents import CLOCKS, SEVERITIES, TARGETS, Incident, IncidentRegister
from ..workdays import TZ, isoformat, local, now

EVALUATED = ("met", "late", "breached")


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """``YYYY-MM`` -> [first day 00:00, first day of the next month 00:00) in Asia/Shanghai."""
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})", month or "")
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise BadInput(f"--month must be YYYY-MM, not {month!r}")
    year, mon = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, mon, 1, tzinfo=TZ)
    end = dt.datetime(year + (mon == 12), 1 if mon == 12 else mon + 1, 1, tzinfo=TZ)
    return start, end


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def _hours(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def build_sla(register: IncidentRegister, month: str, as_of: dt.datetime | None = None) -> dict[str, Any]:
    """The report's data, JSON-ready (times ISO 8601 with offset)."""
    start, end = month_bounds(month)
    moment = local(as_of) if as_of is not None else now()
    incidents = sorted(
        (i for i in register.load().values() if start <= i.reported_at < end and i.reported_at <= moment),
        key=lambda i: (i.reported_at, i.id),
    )
    rows: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    stats: dict[str, dict[str, Any]] = {}
    warnings: set[str] = set()
    totals = {"met": 0, "evaluated": 0}
    for sev in SEVERITIES:
        stats[sev] = {
            "count": 0,
            "open": 0,
            "clocks": {
                t.clock: {"target": t.describe(), "met": 0, "late": 0, "breached": 0, "pending": 0, "elapsed": []}
                for t in TARGETS[sev]
            },
        }
    for inc in incidents:
        warnings.update(str(w) for w in inc.calendar_warnings)
        st = stats[inc.severity]
        st["count"] += 1
        if inc.resolved_at is None or inc.resolved_at > moment:
            st["open"] += 1
        clocks = _clocks_as_of(inc, moment)
        row_clocks: dict[str, dict[str, Any]] = {}
        row: dict[str, Any] = {
            "id": inc.id,
            "severity": inc.severity,
            "summary": inc.summary,
            "state": inc.state,
            "reported_at": isoformat(inc.reported_at),
            "cause": inc.cause,
            "clocks": row_clocks,
        }
        for c in clocks:
            cs = st["clocks"][c["clock"]]
            if c["status"] in EVALUATED:
                cs[c["status"]] += 1
                totals["evaluated"] += 1
                totals["met"] += c["status"] == "met"
            else:
                cs["pending"] += 1
            if c["elapsed_hours"] is not None:
                cs["elapsed"].append(c["elapsed_hours"])
            row_clocks[c["clock"]] = c
            if c["status"] in ("late", "breached"):
                notes = [e.text for e in inc.events if e.kind == "note"]
                breaches.append(
                    {
                        "id": inc.id,
                        "severity": inc.severity,
                        "summary": inc.summary,
                        "clock": c["clock"],
                        "target": c["target"],
                        "due": c["due"],
                        "done_at": c["done_at"],
                        "status": c["status"],
                        "late_hours": c["late_hours"],
                        "cause": inc.cause,
                        "last_note": notes[-1] if notes else None,
                    }
                )
        rows.append(row)
    for sev in SEVERITIES:
        for cs in stats[sev]["clocks"].values():
            evaluated = cs["met"] + cs["late"] + cs["breached"]
            elapsed = cs.pop("elapsed")
            cs["evaluated"] = evaluated
            cs["compliance_pct"] = _pct(cs["met"], evaluated)
            cs["mean_hours"] = round(mean(elapsed), 2) if elapsed else None
            cs["max_hours"] = max(elapsed) if elapsed else None
    return {
        "month": month,
        "period": {"from": isoformat(start), "to": isoformat(end)},
        "as_of": isoformat(moment),
        "generated": isoformat(now()),
        "timezone": "Asia/Shanghai",
        "targets": {sev: [t.as_dict() | {"text": t.describe()} for t in TARGETS[sev]] for sev in SEVERITIES},
        "clock_names": list(CLOCKS),
        "severities": list(SEVERITIES),
        "by_severity": stats,
        "compliance_pct": _pct(totals["met"], totals["evaluated"]),
        "clocks_met": totals["met"],
        "clocks_evaluated": totals["evaluated"],
        "incidents": rows,
        "breaches": breaches,
        "calendar_warnings": sorted(warnings),
    }


def _clocks_as_of(inc: Incident, moment: dt.datetime) -> list[dict[str, Any]]:
    """The incident's clocks as they stood at ``moment`` (milestones after it not yet reached)."""
    out = []
    for target in TARGETS[inc.severity]:
        due = inc.deadlines[target.clock]
        done = inc.milestone(target.clock)
        if done is not None and done > moment:
            done = None
        if done is not None:
            status = "met" if done <= due else "late"
            late = _hours(done - due) if done > due else None
            elapsed: float | None = _hours(done - inc.reported_at)
        elif moment > due:
            status, late, elapsed = "breached", _hours(moment - due), None
        else:
            status, late, elapsed = "running", None, None
        out.append(
            {
                "clock": target.clock,
                "target": target.describe(),
                "due": isoformat(due),
                "done_at": isoformat(done) if done else None,
                "status": status,
                "late_hours": late,
                "elapsed_hours": elapsed,
            }
        )
    return out
