"""The timers' runs as Prometheus metrics, read from the change records.

``opsctl alerts serve`` (the controller's receiver, which Prometheus can reach because
Alertmanager already does) answers ``GET /metrics`` with, per timer of
``schedules/schedules.yml`` and environment it has run in:

* ``envcredit_scheduled_run_last_timestamp_seconds``: end of its newest run, any status
  (``refused`` and ``failed`` included);
* ``envcredit_scheduled_run_last_success_timestamp_seconds``: end of its newest
  successful run (absent until it has succeeded once);
* ``envcredit_scheduled_run_interval_seconds``: the timer's period, from ``on_calendar``;
* ``envcredit_scheduled_run_last_status{status}``: 1 for the newest run's status.

A run belongs to a timer when its record says launch ``scheduled`` and
``operator.on_behalf_of`` = ``timer:<name>`` (what the timer's service sets), whatever
account ran it. The alert rules ``EnvcreditScheduledRunFailed`` (the newest run is
newer than the newest success) and ``EnvcreditScheduledRunMissed`` (no success for
1.5 periods plus an hour) judge them. Computed from the archive at every scrape, so a
run is visible at the next scrape; a timer that has never run is not published (it
starts being judged at its first run).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .archive import Archive
from .errors import OpsError
from .records import STATUSES, parse_iso
from .schedules import Timer

DAY = 86400
#: Records of an operation looked at per timer (newest first), so a scrape stays cheap.
SCAN = 400
_WEEKDAYS = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*(,(mon|tue|wed|thu|fri|sat|sun)[a-z]*)*\s", re.I)
_SHORTHAND = {
    "minutely": 60,
    "hourly": 3600,
    "daily": DAY,
    "weekly": 7 * DAY,
    "monthly": 31 * DAY,
    "quarterly": 92 * DAY,
    "semiannually": 184 * DAY,
    "yearly": 366 * DAY,
    "annually": 366 * DAY,
}


def interval_seconds(on_calendar: str) -> int:
    """The longest gap between two runs of a systemd calendar expression (the forms that
    schedules.yml uses: shorthands, ``[weekdays] *-*-* HH:MM:SS``, ``*-*-DD ...``, ``*-MM-DD ...``)."""
    expr = on_calendar.strip()
    if expr.lower() in _SHORTHAND:
        return _SHORTHAND[expr.lower()]
    weekdays = _WEEKDAYS.match(expr)
    rest = expr[weekdays.end() :] if weekdays else expr
    date, _, clock = rest.partition(" ")
    if not clock and ":" in date:  # only a time of day: every day
        date, clock = "*-*-*", date
    parts = date.split("-")
    if len(parts) == 3 and parts[0] == "*" and parts[1] == "*" and parts[2] == "*":
        if clock.split(":")[0] in ("*", "*/1") or clock.startswith("*:"):
            return 3600 if not clock.startswith("*:*") else 60
        if weekdays:
            days = weekdays.group(0).strip().split(",")
            return 7 * DAY if len(days) == 1 else DAY * 7 // len(days) + DAY  # uneven gaps: the longest
        return DAY
    if len(parts) == 3 and parts[0] == "*" and parts[1] == "*":
        return 31 * DAY
    if len(parts) == 3 and parts[0] == "*":
        return 366 * DAY
    return 366 * DAY  # a fixed date or something rarer: judged yearly


@dataclass
class TimerRuns:
    timer: Timer
    env: str
    last_end: float | None = None
    last_status: str | None = None
    last_id: str | None = None
    success_end: float | None = None


def _ts(value: Any) -> float | None:
    try:
        return parse_iso(str(value)).timestamp()
    except (OpsError, ValueError, TypeError):
        return None


def collect(archive: Archive, timers: Iterable[Timer], scan: int = SCAN) -> list[TimerRuns]:
    out: dict[tuple[str, str], TimerRuns] = {}
    for timer in timers:
        if not timer.operation:  # an opsctl command (incident check): no change record of its own
            continue
        who = f"timer:{timer.name}"
        for row in archive.list(op=timer.operation, limit=scan):
            try:
                record = archive.get(str(row["id"]))
            except OpsError:
                continue
            if (record.get("launch") or {}).get("type") != "scheduled":
                continue
            if (record.get("operator") or {}).get("on_behalf_of") != who:
                continue
            env = str(record.get("environment") or "")
            runs = out.setdefault((timer.name, env), TimerRuns(timer=timer, env=env))
            end = _ts(record.get("ended"))
            if end is None:
                continue
            if runs.last_end is None or end > runs.last_end:
                runs.last_end, runs.last_status, runs.last_id = end, str(record.get("status")), str(record["id"])
            if record.get("status") == "successful" and not record.get("check_mode"):
                runs.success_end = max(end, runs.success_end or end)
    return [out[k] for k in sorted(out)]


def _labels(**labels: str) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


def render(runs: list[TimerRuns]) -> str:
    """Prometheus' text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def family(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {value:.3f}" for labels, value in samples)

    def base(r: TimerRuns) -> dict[str, str]:
        return {"timer": r.timer.name, "operation": r.timer.operation, "env": r.env}

    family(
        "envcredit_scheduled_run_last_timestamp_seconds",
        "End of the newest run of the timer (any status), Unix seconds.",
        [(_labels(**base(r)), r.last_end) for r in runs if r.last_end is not None],
    )
    family(
        "envcredit_scheduled_run_last_success_timestamp_seconds",
        "End of the newest successful run of the timer, Unix seconds.",
        [(_labels(**base(r)), r.success_end) for r in runs if r.success_end is not None],
    )
    family(
        "envcredit_scheduled_run_interval_seconds",
        "The timer's period (the longest gap between two of its runs), seconds.",
        [(_labels(**base(r)), float(interval_seconds(r.timer.on_calendar))) for r in runs],
    )
    family(
        "envcredit_scheduled_run_last_status",
        "1 for the status of the timer's newest run.",
        [
            (_labels(**base(r), status=s), 1.0 if r.last_status == s else 0.0)
            for r in runs
            if r.last_status is not None
            for s in STATUSES
        ],
    )
    return "\n".join(lines) + "\n"
