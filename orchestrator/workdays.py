"""The working-day calendar of mainland China, in Asia/Shanghai, for the SLA clocks.

Sources, in order of precedence:

1. The project file ``orchestrator/data/workdays.yml`` (``OPSCTL_WORKDAYS``
   overrides the path): operators add a year's official schedule (the State
   Council's 国务院办公厅关于YYYY年部分节假日安排的通知) there when the package
   does not know it yet. A year in this file replaces the package's data for
   that year entirely.
2. The ``chinesecalendar`` package (import name ``chinese_calendar``), which
   knows the official holidays *and* the make-up working days (调休上班) for
   the years it covers (1.11.0: 2004-2026).
3. Neither knows the year: Monday-Friday are working days, and every answer
   that relied on this carries a :class:`CalendarWarning`. An unknown year is
   never silently treated as known.

The SLA rules (issue 7):

* **Clock hours** (response deadlines): :func:`add_hours` adds elapsed time.
* **N working days after a report** (recovery and resolution deadlines): the
  same time of day on the Nth working day after the day of the report.
  A report made on a non-working day counts from the start (00:00) of the
  next working day, and that day is the first of the N: the deadline is the
  end (24:00, written as 00:00 of the next calendar day) of the Nth working
  day counted from it, so a whole working day counts as one and the rest
  days after the last one are not added. A report at exactly 00:00 of a
  working day is treated the same way (that whole day is the first). Examples (2025, National Day and Mid-Autumn
  1-8 Oct off, Sun 28 Sep and Sat 11 Oct make-up working days):

  - general fault reported Fri 2025-09-26 19:30, 5 working days:
    Sun 28 Sep (1), Mon 29 (2), Tue 30 (3), Thu 9 Oct (4), Fri 10 Oct (5)
    -> 2025-10-10T19:30+08:00.
  - reported Sat 2025-09-27 10:00 (a rest day), 5 working days: counts from
    Sun 28 Sep 00:00 (a make-up working day): 28, 29, 30, 9, 10 Oct
    -> the end of 10 Oct, 2025-10-11T00:00+08:00.
  - general fault reported on Sun 2026-02-22 (Spring Festival), 5 working
    days: Tue 24, 25, 26, 27, Sat 28 Feb (make-up) -> the end of 28 Feb,
    2026-03-01T00:00+08:00 (not 00:00 of Mon 2 Mar: Sun 1 Mar is a rest day).

  This rule is continuous: a report at 23:59 on a rest day and a report at
  00:00 on the following working day get the same deadline.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from .errors import BadInput, OpsError

TZ = ZoneInfo("Asia/Shanghai")
DATA_FILE = Path(__file__).resolve().parent / "data" / "workdays.yml"
#: Searching for the next working day gives up after this many days (a malformed calendar).
_MAX_SCAN_DAYS = 400


class CalendarError(OpsError):
    """The project calendar file is malformed."""

    exit_code = 2


@dataclass(frozen=True)
class CalendarWarning:
    """An answer relied on the Monday-Friday fallback for a year no source knows."""

    year: int

    @property
    def message(self) -> str:
        return (
            f"the official holiday schedule of {self.year} is not known (neither orchestrator/data/workdays.yml "
            f"nor the chinesecalendar package has it): Monday-Friday taken as the working days of {self.year}; "
            "add the year's schedule to orchestrator/data/workdays.yml"
        )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class DayInfo:
    day: dt.date
    workday: bool
    known: bool
    source: str  # "project", "package" or "weekdays"
    name: str | None = None  # the holiday or make-up day's name when the source gives one


@dataclass(frozen=True)
class Deadline:
    at: dt.datetime
    warnings: tuple[CalendarWarning, ...] = ()


@dataclass
class YearSchedule:
    """One year's official schedule from the project file."""

    year: int
    holidays: dict[dt.date, str | None] = field(default_factory=dict)
    workdays: dict[dt.date, str | None] = field(default_factory=dict)
    source: str | None = None


# -- times -------------------------------------------------------------------------------


def now() -> dt.datetime:
    """The current time in Asia/Shanghai."""
    return dt.datetime.now(TZ)


def local(moment: dt.datetime) -> dt.datetime:
    """``moment`` in Asia/Shanghai (naive times are taken as Asia/Shanghai already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=TZ)
    return moment.astimezone(TZ)


def parse_time(text: str) -> dt.datetime:
    """Parse an operator's time: ISO 8601 with or without offset (no offset = Asia/Shanghai).

    Accepts ``2026-10-09 19:30``, ``2026-10-09T19:30:00+08:00``, ``2026-10-09T11:30Z``,
    a bare date ``2026-10-09`` (00:00) and ``now``.
    """
    raw = text.strip() if isinstance(text, str) else ""
    if raw.lower() == "now":
        return now()
    try:
        moment = dt.datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise BadInput(
            f"not a time: {text!r} (use ISO 8601, e.g. 2026-10-09T19:30 or 2026-10-09T19:30+08:00; "
            "without an offset the time is Asia/Shanghai)"
        ) from None
    return local(moment)


def isoformat(moment: dt.datetime) -> str:
    """ISO 8601 in Asia/Shanghai with its offset, to the second: ``2026-10-10T19:30:00+08:00``."""
    return local(moment).replace(microsecond=0).isoformat()


def add_hours(start: dt.datetime, hours: float) -> dt.datetime:
    """``start`` plus elapsed clock hours (response deadlines), in Asia/Shanghai."""
    return local(local(start) + dt.timedelta(hours=hours))


# -- the project file --------------------------------------------------------------------


def _as_date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CalendarError(f"{where}: {value!r} is not a date (YYYY-MM-DD)")


def _expand(items: Any, where: str) -> dict[dt.date, str | None]:
    """A list of dates, ``{date, name}``, or ``{from, to, name}`` ranges (inclusive)."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise CalendarError(f"{where} must be a list of dates or {{from, to, name}} ranges")
    out: dict[dt.date, str | None] = {}
    for item in items:
        if isinstance(item, Mapping):
            name = item.get("name")
            name = str(name) if name is not None else None
            if "date" in item:
                out[_as_date(item["date"], where)] = name
                continue
            if "from" not in item:
                raise CalendarError(f"{where}: {dict(item)!r} needs 'date' or 'from' (and 'to')")
            first = _as_date(item["from"], where)
            last = _as_date(item.get("to", item["from"]), where)
            if last < first:
                raise CalendarError(f"{where}: range {first} .. {last} ends before it starts")
            day = first
            while day <= last:
                out[day] = name
                day += dt.timedelta(days=1)
        else:
            out[_as_date(item, where)] = None
    return out


def load_project_file(path: Path) -> dict[int, YearSchedule]:
    """Read the project calendar file; a missing file means no project years."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CalendarError(f"cannot read the calendar file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CalendarError(f"the calendar file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise CalendarError(f"the calendar file {path} must be a mapping with a 'years' key")
    years = data.get("years") or {}
    if not isinstance(years, Mapping):
        raise CalendarError(f"{path}: 'years' must map a year to its schedule")
    out: dict[int, YearSchedule] = {}
    for key, body in years.items():
        try:
            year = int(key)
        except (TypeError, ValueError):
            raise CalendarError(f"{path}: {key!r} is not a year") from None
        where = f"{path}: {year}"
        if not isinstance(body, Mapping):
            raise CalendarError(f"{where}: expected 'holidays' and 'workdays' lists")
        unknown = set(body) - {"holidays", "workdays", "source"}
        if unknown:
            raise CalendarError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        sched = YearSchedule(
            year=year,
            holidays=_expand(body.get("holidays"), f"{where} holidays"),
            workdays=_expand(body.get("workdays"), f"{where} workdays"),
            source=str(body["source"]) if body.get("source") is not None else None,
        )
        for day in [*sched.holidays, *sched.workdays]:
            if day.year != year:
                raise CalendarError(f"{where}: {day} is not in {year}")
        both = sorted(set(sched.holidays) & set(sched.workdays))
        if both:
            raise CalendarError(f"{where}: {both[0]} is listed both as a holiday and as a make-up working day")
        weekday_makeups = sorted(d for d in sched.workdays if d.weekday() < 5)
        if weekday_makeups:
            raise CalendarError(
                f"{where}: make-up working day {weekday_makeups[0]} is a weekday (make-up days are Saturdays or Sundays)"
            )
        out[year] = sched
    return out


# -- the calendar ------------------------------------------------------------------------


def _package_range() -> tuple[int, int] | None:
    try:
        import chinese_calendar
    except ImportError:
        return None
    days = list(chinese_calendar.holidays.keys())
    if not days:
        return None
    return int(min(days).year), int(max(days).year)


class Calendar:
    """Working days: project file, then the chinesecalendar package, then weekdays with a warning."""

    def __init__(self, project_file: Path | str | None = None, *, use_package: bool = True) -> None:
        if project_file is None:
            env = os.environ.get("OPSCTL_WORKDAYS")
            project_file = Path(env) if env else DATA_FILE
        self.project_file = Path(project_file)
        self.project = load_project_file(self.project_file)
        self.package_years = _package_range() if use_package else None

    # -- single days -------------------------------------------------------------

    def source_of(self, year: int) -> str:
        """Where ``year``'s schedule comes from: ``project``, ``package`` or ``weekdays`` (unknown)."""
        if year in self.project:
            return "project"
        if self.package_years and self.package_years[0] <= year <= self.package_years[1]:
            return "package"
        return "weekdays"

    def known(self, year: int) -> bool:
        return self.source_of(year) != "weekdays"

    def day(self, day: dt.date) -> DayInfo:
        if isinstance(day, dt.datetime):
            day = local(day).date()
        source = self.source_of(day.year)
        if source == "project":
            sched = self.project[day.year]
            if day in sched.workdays:
                return DayInfo(day, True, True, source, sched.workdays[day])
            if day in sched.holidays:
                return DayInfo(day, False, True, source, sched.holidays[day])
            return DayInfo(day, day.weekday() < 5, True, source)
        if source == "package":
            import chinese_calendar

            try:
                workday = bool(chinese_calendar.is_workday(day))
                on, name = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:  # the package's range check disagrees with ours
                return DayInfo(day, day.weekday() < 5, False, "weekdays")
            label = str(name) if name is not None else None
            return DayInfo(day, workday, True, source, label)
        return DayInfo(day, day.weekday() < 5, False, "weekdays")

    def is_workday(self, day: dt.date) -> tuple[bool, bool]:
        """``(is a working day, the year's schedule is known)``."""
        info = self.day(day)
        return info.workday, info.known

    def warnings_for(self, years: Iterable[int]) -> tuple[CalendarWarning, ...]:
        return tuple(CalendarWarning(y) for y in sorted(set(years)) if not self.known(y))

    def next_workday(self, day: dt.date, years: set[int] | None = None) -> dt.date:
        """The first working day strictly after ``day``."""
        probe = day
        for _ in range(_MAX_SCAN_DAYS):
            probe += dt.timedelta(days=1)
            if years is not None:
                years.add(probe.year)
            if self.day(probe).workday:
                return probe
        raise CalendarError(f"no working day within {_MAX_SCAN_DAYS} days after {day}: the calendar is malformed")

    # -- the SLA rule ------------------------------------------------------------

    def add_working_days(self, report_time: dt.datetime, n: int) -> Deadline:
        """The deadline N working days after a report (see the module docstring for the rule)."""
        if n < 0:
            raise BadInput("the number of working days must not be negative")
        start = local(report_time)
        years = {start.year}
        workday = self.day(start.date()).workday
        if workday and start.time() != dt.time(0, 0):
            # Same time of day on the Nth working day after the day of the report.
            day = start.date()
            for _ in range(n):
                day = self.next_workday(day, years)
            due = dt.datetime.combine(day, start.timetz().replace(tzinfo=None), tzinfo=TZ)
            return Deadline(at=due, warnings=self.warnings_for(years))
        # A report on a rest day counts from 00:00 of the next working day (a report at 00:00
        # of a working day, from that day): N whole working days, so the deadline is the end
        # (24:00) of the Nth of them, counting that day as the first; the rest days after it
        # are not part of the time allowed.
        first = start.date() if workday else self.next_workday(start.date(), years)
        if n == 0:
            return Deadline(at=dt.datetime.combine(first, dt.time(0, 0), tzinfo=TZ), warnings=self.warnings_for(years))
        day = first
        for _ in range(n - 1):
            day = self.next_workday(day, years)
        due = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=TZ)
        return Deadline(at=due, warnings=self.warnings_for(years))

    def working_days_between(self, first: dt.date, last: dt.date) -> list[DayInfo]:
        """Every day from ``first`` to ``last`` inclusive, with whether it is a working day."""
        out: list[DayInfo] = []
        day = first
        while day <= last:
            out.append(self.day(day))
            day += dt.timedelta(days=1)
        return out


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> Calendar:
    return Calendar(Path(path))


def default_calendar() -> Calendar:
    """The calendar from the project file (re-read when the file changes)."""
    env = os.environ.get("OPSCTL_WORKDAYS")
    path = Path(env) if env else DATA_FILE
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return _cached(str(path), mtime)


def is_workday(day: dt.date, calendar: Calendar | None = None) -> tuple[bool, bool]:
    """``(is a working day, the year is known)`` on the default (or given) calendar."""
    return (calendar or default_calendar()).is_workday(day)


def add_working_days(report_time: dt.datetime, n: int, calendar: Calendar | None = None) -> Deadline:
    """N working days after ``report_time`` on the default (or given) calendar."""
    return (calendar or default_calendar()).add_working_days(report_time, n)
