"""Properties of the SLA working-day arithmetic (orchestrator/workdays.py), over 2025-2026.

The rule (the module docstring): a report at a time other than 00:00 of a working day is due at
the same time of day on the Nth working day after; a report on a rest day, or at exactly 00:00
of a working day, gets N whole working days, the first being that working day (or the next one),
and is due at the end of the Nth (00:00 of the calendar day after it).

The calendar is the chinesecalendar package's, with an empty project file (as the ``cal``
fixture of tests/test_workdays.py); reports are drawn so that every deadline stays in 2026.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.workdays import TZ, Calendar

FIRST_DAY = dt.date(2025, 1, 1)
LAST_REPORT_DAY = dt.date(2026, 11, 30)  # + at most MAX_N working days stays inside 2026
MAX_N = 15
MIDNIGHT = dt.time(0, 0)
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def cal(tmp_path_factory: pytest.TempPathFactory) -> Calendar:
    """The package's calendar with an empty project file (module-scoped: Hypothesis reuses it)."""
    empty = tmp_path_factory.mktemp("workdays") / "workdays.yml"
    empty.write_text("years: {}\n", encoding="utf-8")
    calendar = Calendar(empty)
    assert calendar.source_of(2025) == calendar.source_of(2026) == "package"
    return calendar


days = st.dates(min_value=FIRST_DAY, max_value=LAST_REPORT_DAY)
# Any second of the day, with 00:00 and 23:59 drawn often: they are where the two rules meet.
times_of_day = st.one_of(st.just(MIDNIGHT), st.just(dt.time(23, 59)), st.times())
counts = st.integers(min_value=0, max_value=MAX_N)


def moment(day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=TZ)


def workday(cal: Calendar, day: dt.date) -> bool:
    is_work, known = cal.is_workday(day)
    assert known, day
    return is_work


def working_days_in(cal: Calendar, first: dt.date, last: dt.date) -> int:
    """How many working days from ``first`` to ``last``, both included (0 when last < first)."""
    count, day = 0, first
    while day <= last:
        count += workday(cal, day)
        day += DAY
    return count


@settings(max_examples=300)
@given(day=days, time=times_of_day, n=counts)
def test_deadline_follows_the_rule(cal: Calendar, day: dt.date, time: dt.time, n: int) -> None:
    """Each deadline is a working day at the report's time of day, or the end of a working day
    (00:00 after one), and exactly N working days are allowed, counted as the rule says."""
    report = moment(day, time)
    deadline = cal.add_working_days(report, n)
    due = deadline.at
    assert deadline.warnings == ()
    assert due.tzinfo is not None and due.utcoffset() == dt.timedelta(hours=8)
    assert due >= report
    if workday(cal, day) and time != MIDNIGHT:
        # same time of day on a working day, N working days after the day of the report
        assert due.timetz().replace(tzinfo=None) == time
        assert workday(cal, due.date())
        assert working_days_in(cal, day + DAY, due.date()) == n
        assert (due > report) == (n > 0)
    elif n == 0:
        # no time at all: the start (00:00) of the first working day from the report's day
        assert due.time() == MIDNIGHT and workday(cal, due.date())
        assert working_days_in(cal, day, due.date() - DAY) == 0
    else:
        # the end of a working day: 00:00 of the calendar day after the Nth working day,
        # counting from the report's day (a rest day counts nothing)
        assert due.time() == MIDNIGHT
        last = due.date() - DAY
        assert workday(cal, last)
        assert working_days_in(cal, day, last) == n


@settings(max_examples=200)
@given(first=st.tuples(days, times_of_day), second=st.tuples(days, times_of_day), n=counts)
def test_monotonic_in_the_report_time(
    cal: Calendar, first: tuple[dt.date, dt.time], second: tuple[dt.date, dt.time], n: int
) -> None:
    """A later report is never due earlier."""
    early, late = sorted([moment(*first), moment(*second)])
    assert cal.add_working_days(early, n).at <= cal.add_working_days(late, n).at


@settings(max_examples=200)
@given(day=days, time=times_of_day, n=st.integers(min_value=0, max_value=MAX_N - 1))
def test_monotonic_in_n(cal: Calendar, day: dt.date, time: dt.time, n: int) -> None:
    """One more working day allowed is a strictly later deadline."""
    report = moment(day, time)
    assert cal.add_working_days(report, n).at < cal.add_working_days(report, n + 1).at


@settings(max_examples=200)
@given(day=days, time=times_of_day, n=counts)
def test_continuous_across_rest_days(cal: Calendar, day: dt.date, time: dt.time, n: int) -> None:
    """A report at any time of a rest day (23:59 included) is due when a report at 00:00 of the
    next working day is; and a working day's 00:00 and the last minute before it agree when
    that minute is on a rest day."""
    rest = day
    while workday(cal, rest):  # the first rest day on or after the drawn day
        rest += DAY
    if rest > LAST_REPORT_DAY:
        rest = day - DAY
        while workday(cal, rest):
            rest -= DAY
    assert not workday(cal, rest)
    following = cal.next_workday(rest)
    assert workday(cal, following) and following > rest
    at_next_start = cal.add_working_days(moment(following, MIDNIGHT), n).at
    assert cal.add_working_days(moment(rest, time), n).at == at_next_start
    assert cal.add_working_days(moment(rest, dt.time(23, 59)), n).at == at_next_start
    if following - rest == DAY:  # 23:59 of the rest day is one minute before
        assert cal.add_working_days(moment(following, MIDNIGHT) - dt.timedelta(minutes=1), n).at == at_next_start


@settings(max_examples=200)
@given(day=st.dates(min_value=FIRST_DAY, max_value=dt.date(2026, 12, 1)))
def test_next_workday_is_the_first_working_day_after(cal: Calendar, day: dt.date) -> None:
    """next_workday skips exactly the rest days in between, and is_workday agrees with it."""
    following = cal.next_workday(day)
    assert following > day
    assert workday(cal, following)
    probe = day + DAY
    while probe < following:
        assert not workday(cal, probe), probe
        probe += DAY
