"""The working-day calendar: official holidays and make-up days, the SLA rule, unknown years."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator import workdays
from orchestrator.cli import cli
from orchestrator.incidents import compute_deadlines
from orchestrator.workdays import TZ, Calendar, CalendarError, CalendarWarning, add_hours, isoformat, parse_time

D = dt.date

# The State Council's official schedules (国务院办公厅关于2025年/2026年部分节假日安排的通知,
# 2024-11-12 and 2025-11-04): rest days and make-up working days.
OFFICIAL = {
    2025: {
        "rest": [
            ("01-01", "01-01"),
            ("01-28", "02-04"),
            ("04-04", "04-06"),
            ("05-01", "05-05"),
            ("05-31", "06-02"),
            ("10-01", "10-08"),
        ],
        "makeup": ["01-26", "02-08", "04-27", "09-28", "10-11"],
    },
    2026: {
        "rest": [
            ("01-01", "01-03"),
            ("02-15", "02-23"),
            ("04-04", "04-06"),
            ("05-01", "05-05"),
            ("06-19", "06-21"),
            ("09-25", "09-27"),
            ("10-01", "10-07"),
        ],
        "makeup": ["01-04", "02-14", "02-28", "05-09", "09-20", "10-10"],
    },
}


def _days(year: int, first: str, last: str) -> list[dt.date]:
    start, end = D.fromisoformat(f"{year}-{first}"), D.fromisoformat(f"{year}-{last}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


@pytest.fixture
def cal(tmp_path: Path) -> Calendar:
    """The package's calendar with an empty project file."""
    empty = tmp_path / "workdays.yml"
    empty.write_text("years: {}\n", encoding="utf-8")
    return Calendar(empty)


def at(text: str) -> dt.datetime:
    return parse_time(text)


@pytest.mark.parametrize("year", sorted(OFFICIAL))
def test_package_knows_the_official_schedule(cal: Calendar, year: int) -> None:
    assert cal.source_of(year) == "package" and cal.known(year)
    rest = {d for first, last in OFFICIAL[year]["rest"] for d in _days(year, first, last)}
    makeup = {D.fromisoformat(f"{year}-{m}") for m in OFFICIAL[year]["makeup"]}
    for day in _days(year, "01-01", "12-31"):
        expected = day in makeup or (day.weekday() < 5 and day not in rest)
        assert cal.is_workday(day) == (expected, True), day
    assert all(d.weekday() >= 5 for d in makeup)


def test_the_shipped_project_file_loads(cal: Calendar) -> None:
    """The shipped file parses to exactly the years it lists, each a whole, plausible schedule
    (it holds comments only until a year the package does not know is added), and with it the
    default calendar still gives the official schedule of the years the package knows."""
    raw = yaml.safe_load(workdays.DATA_FILE.read_text(encoding="utf-8"))
    assert isinstance(raw, dict) and "years" in raw, "the file must keep its 'years' mapping"
    listed = {int(y) for y in (raw["years"] or {})}
    shipped = Calendar(workdays.DATA_FILE)
    assert shipped.project_file == workdays.DATA_FILE
    assert set(shipped.project) == listed
    for year, sched in shipped.project.items():
        assert shipped.source_of(year) == "project"
        assert 20 <= len(sched.holidays) <= 40, (year, len(sched.holidays))  # the official 7 holidays
        assert all(d.year == year and d.weekday() >= 5 for d in sched.workdays), year  # make-up days: weekends
    for year in sorted(OFFICIAL):
        expected = "project" if year in listed else "package"
        assert shipped.source_of(year) == expected and shipped.known(year)
        for day in _days(year, "01-01", "12-31"):
            assert shipped.is_workday(day) == cal.is_workday(day), day


def test_ordinary_weekends_are_rest_days_in_a_project_year(tmp_path: Path) -> None:
    """A year from the project file: listed days as listed, every other Saturday and Sunday
    a rest day, every other Monday-Friday a working day, for the whole year."""
    path = tmp_path / "workdays.yml"
    path.write_text(PROJECT_2027, encoding="utf-8")
    project = Calendar(path, use_package=False)
    holidays = set(_days(2027, "02-06", "02-12")) | {D(2027, 4, 5)}
    makeup = {D(2027, 2, 13)}
    for day in _days(2027, "01-01", "12-31"):
        expected = day in makeup or (day.weekday() < 5 and day not in holidays)
        info = project.day(day)
        assert (info.workday, info.known, info.source) == (expected, True, "project"), day
    assert project.is_workday(D(2027, 1, 2)) == (False, True)  # an ordinary Saturday
    # a general fault reported on Fri 1 Jan 2027 18:00: Mon 4 .. Thu 7 Jan, the weekend not counted
    assert project.add_working_days(at("2027-01-01T18:00"), 4).at == dt.datetime(2027, 1, 7, 18, 0, tzinfo=TZ)


def test_the_documented_example_is_the_official_schedule(tmp_path: Path, cal: Calendar) -> None:
    """The file's commented example (what an operator copies for a new year) is valid and says
    exactly what the package says of 2026: copying it for 2027 gives a working calendar."""
    text = workdays.DATA_FILE.read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("#   2026:")
    example = [line[2:] for line in lines[start:] if line.startswith("#   ")]
    path = tmp_path / "workdays.yml"
    path.write_text("years:\n" + "\n".join(example) + "\n", encoding="utf-8")
    documented = Calendar(path, use_package=False)
    assert documented.source_of(2026) == "project"
    for day in _days(2026, "01-01", "12-31"):
        assert documented.is_workday(day) == cal.is_workday(day), day


def test_general_fault_friday_evening_before_national_day_2025(cal: Calendar) -> None:
    # Fri 26 Sep 2025, 19:30. Sun 28 Sep is a make-up working day; 1-8 Oct off; Sat 11 Oct works.
    reported = at("2025-09-26T19:30")
    deadlines, warnings = compute_deadlines("general", reported, cal)
    assert not warnings
    assert isoformat(deadlines["respond"]) == "2025-09-27T19:30:00+08:00"  # 24 clock hours, Saturday
    # 28 Sep (1), 29 (2), 30 (3), 9 Oct (4), 10 Oct (5)
    assert isoformat(deadlines["resolve"]) == "2025-10-10T19:30:00+08:00"


def test_general_fault_before_national_day_2026(cal: Calendar) -> None:
    # Fri 25 Sep 2026 is already Mid-Autumn (25-27 Sep off), so that Friday evening is a rest
    # day: it counts from 00:00 Mon 28 Sep; 29, 30, 8 Oct, 9 Oct, Sat 10 Oct (make-up) -> 10 Oct 00:00.
    assert cal.add_working_days(at("2026-09-25T19:00"), 5).at == dt.datetime(2026, 10, 10, 0, 0, tzinfo=TZ)
    # Thu 24 Sep 19:00, the last working evening before the break: 28, 29, 30, 8, 9 Oct.
    assert cal.add_working_days(at("2026-09-24T19:00"), 5).at == dt.datetime(2026, 10, 9, 19, 0, tzinfo=TZ)


def test_outage_during_spring_festival_with_makeup_saturday(cal: Calendar) -> None:
    # Thu 30 Jan 2025, Spring Festival (28 Jan - 4 Feb off, Sat 8 Feb a make-up working day).
    reported = at("2025-01-30T10:00")
    deadlines, _ = compute_deadlines("outage", reported, cal)
    assert isoformat(deadlines["respond"]) == "2025-01-30T14:00:00+08:00"  # clock hours, holiday or not
    # counts from Wed 5 Feb 00:00: recovery 1 working day -> 6 Feb 00:00 (all of 5 Feb)
    assert isoformat(deadlines["recover"]) == "2025-02-06T00:00:00+08:00"
    # resolution: 6 Feb (1), 7 Feb (2), Sat 8 Feb make-up day (3)
    assert isoformat(deadlines["resolve"]) == "2025-02-08T00:00:00+08:00"


def test_outage_on_a_makeup_saturday_2026(cal: Calendar) -> None:
    # Sat 14 Feb 2026 is a working day; 15-23 Feb off; Sat 28 Feb works again.
    deadlines, _ = compute_deadlines("outage", at("2026-02-14T09:00"), cal)
    assert deadlines["recover"] == dt.datetime(2026, 2, 24, 9, 0, tzinfo=TZ)
    assert deadlines["resolve"] == dt.datetime(2026, 2, 26, 9, 0, tzinfo=TZ)
    deadlines, _ = compute_deadlines("outage", at("2026-02-27T16:00"), cal)
    assert deadlines["recover"] == dt.datetime(2026, 2, 28, 16, 0, tzinfo=TZ)  # the make-up Saturday
    assert deadlines["resolve"] == dt.datetime(2026, 3, 3, 16, 0, tzinfo=TZ)  # 28 Feb, 2 Mar, 3 Mar


def test_rest_day_report_ends_with_the_last_of_its_working_days(cal: Calendar) -> None:
    """A report on a rest day gets N whole working days, the first working day after it being
    the first: the deadline is the end of the Nth, not 00:00 of the working day after the rest
    days that follow it."""
    # Sun 22 Feb 2026, Spring Festival (15-23 Feb off): general fault, 5 working days =
    # Tue 24, 25, 26, 27, Sat 28 Feb (make-up): the end of 28 Feb, not Mon 2 Mar 00:00.
    deadlines, warnings = compute_deadlines("general", at("2026-02-22T10:00"), cal)
    assert not warnings
    assert isoformat(deadlines["resolve"]) == "2026-03-01T00:00:00+08:00"
    # National Day 2026 (1-7 Oct off, Sat 10 Oct make-up): an outage on Sun 4 Oct, fixed in
    # 3 working days = Thu 8, Fri 9, Sat 10 Oct: the end of 10 Oct (Sun 11 is a rest day).
    deadlines, _ = compute_deadlines("outage", at("2026-10-04T10:00"), cal)
    assert isoformat(deadlines["recover"]) == "2026-10-09T00:00:00+08:00"  # all of Thu 8 Oct
    assert isoformat(deadlines["resolve"]) == "2026-10-11T00:00:00+08:00"
    # the report's own time of day is kept when it falls on a working day
    assert isoformat(cal.add_working_days(at("2026-10-09T10:00"), 1).at) == "2026-10-10T10:00:00+08:00"


def test_midnight_of_a_working_day_is_the_same_as_the_rest_day_before(cal: Calendar) -> None:
    # Sat 7 Mar 2026, 23:59 and Mon 9 Mar, 00:00: 5 whole working days, 9-13 Mar, in both cases
    saturday = cal.add_working_days(at("2026-03-07T23:59"), 5).at
    monday = cal.add_working_days(at("2026-03-09T00:00"), 5).at
    assert saturday == monday == dt.datetime(2026, 3, 14, 0, 0, tzinfo=TZ)
    assert cal.add_working_days(at("2026-03-08T12:00"), 0).at == dt.datetime(2026, 3, 9, 0, 0, tzinfo=TZ)


def test_rest_day_rule_is_continuous(cal: Calendar) -> None:
    late_sunday = cal.add_working_days(at("2026-03-08T23:59"), 1).at
    monday_midnight = cal.add_working_days(at("2026-03-09T00:00"), 1).at
    assert late_sunday == monday_midnight == dt.datetime(2026, 3, 10, 0, 0, tzinfo=TZ)
    assert cal.add_working_days(at("2026-03-09T10:15"), 0).at == at("2026-03-09T10:15")


def test_asia_shanghai_decides_the_day(cal: Calendar) -> None:
    # 11:30 UTC = 19:30 in Shaoguan: the same report as the Friday-evening case.
    assert isoformat(cal.add_working_days(at("2025-09-26T11:30Z"), 5).at) == "2025-10-10T19:30:00+08:00"
    # 17:00 UTC on Friday is 01:00 on Saturday in Shaoguan: a rest day, counted from Sun 28 Sep
    # (make-up working day) 00:00 -> 29, 30, 9, 10, Sat 11 Oct (make-up) 00:00.
    due = cal.add_working_days(at("2025-09-26T17:00+00:00"), 5).at
    assert isoformat(due) == "2025-10-11T00:00:00+08:00"
    assert due.tzinfo is not None and due.utcoffset() == dt.timedelta(hours=8)
    assert isoformat(add_hours(at("2025-09-26T23:00Z"), 4)) == "2025-09-27T11:00:00+08:00"
    assert parse_time("2025-09-26 19:30").utcoffset() == dt.timedelta(hours=8)


def test_unknown_year_warns_and_falls_back_to_weekdays(cal: Calendar) -> None:
    assert cal.source_of(2031) == "weekdays"
    assert cal.is_workday(D(2031, 1, 1)) == (True, False)  # a Wednesday: weekday fallback, not known
    assert cal.is_workday(D(2031, 1, 4)) == (False, False)  # a Saturday
    deadline = cal.add_working_days(at("2031-01-03T10:00"), 5)  # Fri -> 6, 7, 8, 9, 10 Jan
    assert deadline.at == dt.datetime(2031, 1, 10, 10, 0, tzinfo=TZ)
    assert deadline.warnings == (CalendarWarning(2031),)
    assert "2031" in str(deadline.warnings[0]) and "workdays.yml" in str(deadline.warnings[0])
    # a known year whose deadline crosses into an unknown one warns too
    crossing = cal.add_working_days(at("2026-12-30T10:00"), 3)
    assert crossing.warnings == (CalendarWarning(2027),)
    # a deadline inside a known year does not
    assert not cal.add_working_days(at("2026-06-01T10:00"), 3).warnings


def test_unknown_year_warning_on_the_cli() -> None:
    result = CliRunner().invoke(cli, ["incident", "calendar", "2031"])
    assert result.exit_code == 0, result.output
    assert "NOT KNOWN" in result.stdout
    assert "warning: the official holiday schedule of 2031 is not known" in result.stderr
    result = CliRunner().invoke(cli, ["incident", "calendar", "2026", "--json"])
    assert result.exit_code == 0 and result.stderr == ""
    assert '"source": "package"' in result.stdout and '"2026-02-14"' in result.stdout


PROJECT_2027 = """\
years:
  2027:
    source: test schedule
    holidays:
      - {from: 2027-02-06, to: 2027-02-12, name: 春节}
      - 2027-04-05
    workdays:
      - {date: 2027-02-13, name: 春节调休}
  2026:
    holidays:
      - 2026-03-02
"""


def test_project_file_adds_a_year_and_wins_over_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(PROJECT_2027, encoding="utf-8")
    cal = Calendar(path)
    assert cal.source_of(2027) == "project" and cal.known(2027)
    assert cal.is_workday(D(2027, 2, 8)) == (False, True)  # a Monday in the holiday
    assert cal.is_workday(D(2027, 2, 13)) == (True, True)  # the make-up Saturday
    assert cal.day(D(2027, 2, 13)).name == "春节调休"
    assert cal.is_workday(D(2027, 2, 14)) == (False, True)  # an ordinary Sunday
    deadline = cal.add_working_days(at("2027-02-05T18:00"), 1)  # Fri -> next working day is Sat 13 Feb
    assert deadline.at == dt.datetime(2027, 2, 13, 18, 0, tzinfo=TZ) and not deadline.warnings
    # 2026 in the project file replaces the package's 2026 entirely (its holidays are gone here)
    assert cal.source_of(2026) == "project"
    assert cal.is_workday(D(2026, 3, 2)) == (False, True)
    assert cal.is_workday(D(2026, 2, 16)) == (True, True)
    # the default calendar follows OPSCTL_WORKDAYS
    monkeypatch.setenv("OPSCTL_WORKDAYS", str(path))
    assert workdays.is_workday(D(2027, 4, 5)) == (False, True)
    assert workdays.add_working_days(at("2027-02-05T18:00"), 1).at.day == 13


@pytest.mark.parametrize(
    "body, message",
    [
        ("years:\n  2027:\n    workdays: [2027-02-10]\n", "is a weekday"),
        ("years:\n  2027:\n    holidays: [2027-02-13]\n    workdays: [2027-02-13]\n", "both as a holiday"),
        ("years:\n  2027:\n    holidays: [2028-01-01]\n", "is not in 2027"),
        ("years:\n  2027:\n    holidays: [not-a-date]\n", "is not a date"),
        ("years:\n  2027:\n    holiday: []\n", "unknown key"),
        ("years: [\n", "not valid YAML"),
    ],
)
def test_malformed_project_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(CalendarError, match=message):
        Calendar(path)


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "years:\n  2027:\n    holidays: 2027-02-10\n",
            "{F}: 2027 holidays must be a list of dates or {from, to, name} ranges",
        ),
        (
            "years:\n  2027:\n    holidays: [{name: x}]\n",
            "{F}: 2027 holidays: {'name': 'x'} needs 'date' or 'from' (and 'to')",
        ),
        ("years:\n  2027:\n    holidays: [{date: nope}]\n", "{F}: 2027 holidays: 'nope' is not a date (YYYY-MM-DD)"),
        ("years:\n  2027:\n    workdays: [{from: nope}]\n", "{F}: 2027 workdays: 'nope' is not a date (YYYY-MM-DD)"),
        (
            "years:\n  2027:\n    holidays: [{from: 2027-02-01, to: nope}]\n",
            "{F}: 2027 holidays: 'nope' is not a date (YYYY-MM-DD)",
        ),
        (
            "years:\n  2027:\n    holidays: [{from: 2027-02-05, to: 2027-02-04}]\n",
            "{F}: 2027 holidays: range 2027-02-05 .. 2027-02-04 ends before it starts",
        ),
        ("years:\n  2027:\n    holidays: [20270210]\n", "{F}: 2027 holidays: 20270210 is not a date (YYYY-MM-DD)"),
        ("- a list\n", "the calendar file {F} must be a mapping with a 'years' key"),
        ("years: [2027]\n", "{F}: 'years' must map a year to its schedule"),
        ("years:\n  next: {}\n", "{F}: 'next' is not a year"),
        ("years:\n  2027: [2027-02-10]\n", "{F}: 2027: expected 'holidays' and 'workdays' lists"),
        ("years:\n  2027:\n    holiday: []\n    extra: 1\n", "{F}: 2027: unknown key(s) extra, holiday"),
    ],
)
def test_malformed_project_file_messages_name_the_file_year_and_entry(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(CalendarError) as err:
        Calendar(path)
    assert str(err.value) == message.replace("{F}", str(path))
    assert err.value.exit_code == 2


def test_project_file_entries_names_ranges_and_source(tmp_path: Path) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(
        "years:\n  2027:\n    source: 国务院办公厅通知\n    holidays:\n"
        "      - {from: 2027-10-01, to: 2027-10-02, name: 国庆节}\n"
        "      - {from: 2027-05-03}\n"
        "      - {date: 2027-04-05}\n"
        "      - 2027-01-01\n"
        "    workdays:\n      - {date: 2027-09-26, name: 国庆节调休}\n  2028: {}\n",
        encoding="utf-8",
    )
    cal = Calendar(path, use_package=False)
    sched = cal.project[2027]
    assert (sched.year, sched.source) == (2027, "国务院办公厅通知")
    assert sched.holidays == {
        D(2027, 10, 1): "国庆节",
        D(2027, 10, 2): "国庆节",
        D(2027, 5, 3): None,  # a range without 'to' is one day
        D(2027, 4, 5): None,
        D(2027, 1, 1): None,
    }
    assert sched.workdays == {D(2027, 9, 26): "国庆节调休"}
    assert cal.project[2028].source is None and cal.project[2028].holidays == {} and cal.project[2028].year == 2028
    assert cal.day(D(2027, 10, 1)) == workdays.DayInfo(D(2027, 10, 1), False, True, "project", "国庆节")
    assert cal.day(D(2027, 1, 1)).name is None
    one_day = tmp_path / "one.yml"
    one_day.write_text(
        "years:\n  2027:\n    holidays: [{from: 2027-02-10, to: 2027-02-10, name: x}]\n", encoding="utf-8"
    )
    assert Calendar(one_day, use_package=False).project[2027].holidays == {D(2027, 2, 10): "x"}
    assert workdays.load_project_file(tmp_path / "missing.yml") == {}
    unreadable = tmp_path / "dir.yml"
    unreadable.mkdir()
    with pytest.raises(CalendarError, match=f"^cannot read the calendar file {unreadable}: "):
        Calendar(unreadable)


def test_parse_time_words_and_bad_values() -> None:
    before = workdays.now()
    for word in ("now", " NOW ", "Now"):
        moment = parse_time(word)
        assert moment.tzinfo is not None and moment >= before
    assert parse_time(" 2026-10-09T11:30Z ") == dt.datetime(2026, 10, 9, 19, 30, tzinfo=TZ)
    for bad in ("", "tomorrow", "XXXX", None):
        with pytest.raises(workdays.BadInput) as err:
            parse_time(bad)  # type: ignore[arg-type]
        assert str(err.value).startswith(f"not a time: {bad!r} (use ISO 8601")


def test_calendar_follows_opsctl_workdays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(PROJECT_2027, encoding="utf-8")
    monkeypatch.setenv("OPSCTL_WORKDAYS", str(path))
    assert Calendar().project_file == path and Calendar().source_of(2027) == "project"
    monkeypatch.delenv("OPSCTL_WORKDAYS")
    assert Calendar().project_file == workdays.DATA_FILE


def test_without_the_package_a_year_it_knows_is_unknown(tmp_path: Path) -> None:
    empty = tmp_path / "workdays.yml"
    empty.write_text("years: {}\n", encoding="utf-8")
    bare = Calendar(empty, use_package=False)
    assert bare.package_years is None and bare.source_of(2026) == "weekdays" and not bare.known(2026)
    assert bare.day(D(2026, 2, 16)) == workdays.DayInfo(D(2026, 2, 16), True, False, "weekdays")


def test_working_days_between_lists_every_day_inclusive(cal: Calendar) -> None:
    days = cal.working_days_between(D(2026, 2, 13), D(2026, 2, 16))
    assert [(d.day, d.workday) for d in days] == [
        (D(2026, 2, 13), True),
        (D(2026, 2, 14), True),  # make-up Saturday
        (D(2026, 2, 15), False),
        (D(2026, 2, 16), False),  # Spring Festival
    ]
    assert cal.working_days_between(D(2026, 2, 16), D(2026, 2, 15)) == []


def test_a_calendar_without_working_days_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(
        "years:\n  2027:\n    holidays: [{from: 2027-01-01, to: 2027-12-31}]\n"
        "  2028:\n    holidays: [{from: 2028-01-01, to: 2028-12-31}]\n",
        encoding="utf-8",
    )
    cal = Calendar(path, use_package=False)
    with pytest.raises(CalendarError) as err:
        cal.next_workday(D(2027, 1, 1))
    assert str(err.value) == "no working day within 400 days after 2027-01-01: the calendar is malformed"


def test_day_info_from_the_package_and_for_a_moment(cal: Calendar) -> None:
    info = workdays.DayInfo
    assert cal.day(D(2026, 2, 14)) == info(D(2026, 2, 14), True, True, "package", "Spring Festival")  # make-up day
    assert cal.day(D(2026, 2, 16)) == info(D(2026, 2, 16), False, True, "package", "Spring Festival")
    assert cal.day(D(2026, 3, 3)) == info(D(2026, 3, 3), True, True, "package", None)
    # a moment is taken on its Asia/Shanghai date: 20:00 UTC on 15 Feb is 04:00 on 16 Feb
    moment = dt.datetime(2026, 2, 15, 20, 0, tzinfo=dt.timezone.utc)
    assert cal.day(moment) == info(D(2026, 2, 16), False, True, "package", "Spring Festival")
    first, last = cal.package_years or (0, 0)
    assert cal.source_of(first) == "package" == cal.source_of(last)
    assert cal.source_of(first - 1) == "weekdays" == cal.source_of(last + 1)


def test_deadlines_carry_the_warnings_of_every_year_they_crossed(tmp_path: Path) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(PROJECT_2027, encoding="utf-8")
    cal = Calendar(path, use_package=False)
    # Fri 31 Dec 2027 10:00 (a known year) + 1 working day: Mon 3 Jan 2028, a year nobody knows
    assert cal.add_working_days(at("2027-12-31T10:00"), 1).warnings == (CalendarWarning(2028),)
    # from a rest day (Sun 26 Dec 2027), six working days: 27-31 Dec and Mon 3 Jan 2028
    deadline = cal.add_working_days(at("2027-12-26T10:00"), 6)
    assert deadline == workdays.Deadline(dt.datetime(2028, 1, 4, 0, 0, tzinfo=TZ), (CalendarWarning(2028),))
    assert cal.add_working_days(at("2028-01-01T10:00"), 0) == workdays.Deadline(
        dt.datetime(2028, 1, 3, 0, 0, tzinfo=TZ), (CalendarWarning(2028),)
    )
    assert cal.add_working_days(at("2027-12-30T10:00"), 1).warnings == ()
    with pytest.raises(workdays.BadInput) as err:
        cal.add_working_days(at("2027-12-30T10:00"), -1)
    assert str(err.value) == "the number of working days must not be negative"


def test_the_default_calendar_is_read_again_when_its_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text("years: {}\n", encoding="utf-8")
    monkeypatch.setenv("OPSCTL_WORKDAYS", str(path))
    assert workdays.default_calendar().source_of(2027) == "weekdays"
    path.write_text(PROJECT_2027, encoding="utf-8")
    os.utime(path, (1_900_000_000, 1_900_000_000))
    assert workdays.default_calendar().source_of(2027) == "project"
    monkeypatch.setenv("OPSCTL_WORKDAYS", str(tmp_path / "missing.yml"))
    assert workdays.default_calendar().project == {}


def test_project_days_and_lowercase_z_and_a_rest_day_before_an_unknown_year(tmp_path: Path) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(
        PROJECT_2027.replace("      - 2027-04-05\n", "      - 2027-04-05\n      - 2027-12-31\n"), encoding="utf-8"
    )
    cal = Calendar(path, use_package=False)
    info = workdays.DayInfo
    assert cal.day(D(2027, 2, 13)) == info(D(2027, 2, 13), True, True, "project", "春节调休")
    assert cal.day(D(2027, 3, 1)) == info(D(2027, 3, 1), True, True, "project")
    assert parse_time("2026-10-09T11:30z") == dt.datetime(2026, 10, 9, 19, 30, tzinfo=TZ)
    # reported on the rest day Fri 31 Dec 2027: the first working day is Mon 3 Jan 2028, unknown
    deadline = cal.add_working_days(at("2027-12-31T10:00"), 1)
    assert deadline == workdays.Deadline(dt.datetime(2028, 1, 4, 0, 0, tzinfo=TZ), (CalendarWarning(2028),))
