"""The on-call roster: rotation, overrides, escalation order, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.oncall import Roster, RosterError, week_bounds
from orchestrator.workdays import parse_time

REPO = Path(__file__).resolve().parent.parent

ROSTER = """\
hotline: "0751-555-0199"
people:
  a: {name: Alpha Test, phone: "555-0001", role: engineer}
  b: {name: Bravo Test, phone: "555-0002", role: engineer}
  c: {name: Charlie Test, phone: "555-0003", role: engineer}
  lead: {name: Lead Test, phone: "555-0009", role: team lead}
rotation:
  start: 2026-01-05T09:00
  length_days: 7
  order: [a, b, c]
overrides:
  - {from: 2026-02-14T18:00, to: 2026-02-16T09:00, primary: lead, backup: a, note: Spring Festival eve}
escalation: [lead, c]
"""


@pytest.fixture
def roster_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "roster.yml"
    path.write_text(ROSTER, encoding="utf-8")
    monkeypatch.setenv("OPSCTL_ROSTER", str(path))
    return path


def test_the_repository_roster_is_valid() -> None:
    roster = Roster.load(REPO / "oncall" / "roster.yml")
    assert roster.hotline and roster.rotation_order and roster.escalation
    info = roster.on_call(parse_time("2026-12-01T10:00"))
    assert info.shift is not None and info.escalation[0] == info.shift.primary
    assert all("555" in p.phone for p in roster.people.values())  # fictitious numbers only


def test_rotation_backup_and_escalation(roster_file: Path) -> None:
    roster = Roster.load()
    first = roster.on_call(parse_time("2026-01-05T09:00"))
    assert first.shift is not None
    assert (first.shift.primary.key, first.shift.backup and first.shift.backup.key) == ("a", "b")
    assert [p.key for p in first.escalation] == ["a", "b", "lead", "c"]
    # one second before the hand-over: still a; at 09:00 a week later: b, backed by c
    assert roster.on_call(parse_time("2026-01-12T08:59:59")).shift.primary.key == "a"  # type: ignore[union-attr]
    second = roster.on_call(parse_time("2026-01-12T09:00"))
    assert second.shift is not None and (second.shift.primary.key, second.shift.backup.key) == ("b", "c")  # type: ignore[union-attr]
    # the rotation wraps around
    assert roster.on_call(parse_time("2026-01-26T10:00")).shift.primary.key == "a"  # type: ignore[union-attr]
    # escalation lists nobody twice
    assert [p.key for p in roster.on_call(parse_time("2026-01-19T10:00")).escalation] == ["c", "a", "lead"]
    # before the rotation starts nobody is rostered: the escalation list still is
    before = roster.on_call(parse_time("2025-12-31T10:00"))
    assert before.shift is None and [p.key for p in before.escalation] == ["lead", "c"]


def test_override_wins_and_cuts_the_rotation(roster_file: Path) -> None:
    roster = Roster.load()
    eve = roster.on_call(parse_time("2026-02-15T12:00"))
    assert eve.shift is not None and eve.shift.primary.key == "lead" and eve.shift.override
    assert [p.key for p in eve.escalation] == ["lead", "a", "c"]
    before = roster.shift_at(parse_time("2026-02-14T10:00"))
    assert before is not None and before.end == parse_time("2026-02-14T18:00")
    after = roster.shift_at(parse_time("2026-02-16T10:00"))
    assert after is not None and after.start == parse_time("2026-02-16T09:00")
    start, end = week_bounds(parse_time("2026-02-15T12:00"))
    shifts = roster.shifts(start, end)
    assert [s.primary.key for s in shifts] == ["b", "c", "lead"]
    assert all(a.end == b.start for a, b in zip(shifts, shifts[1:], strict=False))


def test_cli_now_and_week(roster_file: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["oncall", "now", "--at", "2026-02-15T12:00"])
    assert result.exit_code == 0, result.output
    assert "Lead Test" in result.stdout and "0751-555-0199" in result.stdout and "Spring Festival eve" in result.stdout
    result = runner.invoke(cli, ["oncall", "now", "--at", "2026-01-05T10:00", "--json"])
    data = json.loads(result.stdout)
    assert data["primary"]["key"] == "a" and data["hotline"] == "0751-555-0199"
    assert data["shift_to"] == "2026-01-12T09:00:00+08:00"
    assert [e["key"] for e in data["escalation"]] == ["a", "b", "lead", "c"]
    result = runner.invoke(cli, ["oncall", "list", "--week", "--at", "2026-02-15T12:00"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Test") >= 6 and "2026-02-09 Mon 00:00 -> 2026-02-16 Mon 00:00" in result.stdout
    result = runner.invoke(cli, ["oncall", "list", "--week", "--at", "2026-02-15", "--json"])
    assert [s["primary"]["key"] for s in json.loads(result.stdout)["shifts"]] == ["b", "c", "lead"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("people: {a: {name: A, phone: '1'}}\nrotation: {start: 2026-01-01, order: [a]}\n", "hotline"),
        ("hotline: '1'\npeople: {a: {name: A, phone: '1'}}\nrotation: {start: 2026-01-01, order: [z]}\n", "'z'"),
        (
            "hotline: '1'\npeople: {a: {name: A}}\nrotation: {start: 2026-01-01, order: [a]}\n",
            "needs a name and a phone",
        ),
        ("hotline: '1'\npeople: {a: {name: A, phone: '1'}}\n", "neither a rotation"),
        (
            "hotline: '1'\npeople: {a: {name: A, phone: '1'}}\noverrides: [{from: 2026-01-02, to: 2026-01-01, primary: a}]\n",
            "ends before it starts",
        ),
    ],
)
def test_bad_roster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str) -> None:
    path = tmp_path / "roster.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RosterError, match=message):
        Roster.load(path)
    monkeypatch.setenv("OPSCTL_ROSTER", str(path))
    result = CliRunner().invoke(cli, ["oncall", "now"])
    assert result.exit_code == 2 and message.strip("'") in result.stderr


def test_missing_roster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_ROSTER", str(tmp_path / "nope.yml"))
    result = CliRunner().invoke(cli, ["oncall", "now"])
    assert result.exit_code == 2 and "no on-call roster" in result.stderr
