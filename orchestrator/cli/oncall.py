"""``opsctl oncall ...``: who answers the repair hotline now, and the shifts of a week."""

from __future__ import annotations

import datetime as dt
import json

import click

from ..oncall import OnCall, Roster, Shift, week_bounds
from ..workdays import isoformat, local, now, parse_time
from .context import handle_errors


def _fmt(moment: dt.datetime) -> str:
    return local(moment).strftime("%Y-%m-%d %a %H:%M")


def on_call_lines(info: OnCall) -> list[str]:
    """The on-call block printed by ``oncall now`` and ``incident open``."""
    lines: list[str] = []
    if info.shift is None:
        lines.append("on call: NOBODY is rostered at this time: call the escalation list")
    else:
        s = info.shift
        lines.append(
            f"on call: {s.primary.name}  {s.primary.phone}  (until {_fmt(s.end)})" + (f"  [{s.note}]" if s.note else "")
        )
        if s.backup is not None:
            lines.append(f"backup:  {s.backup.name}  {s.backup.phone}")
    if info.escalation:
        lines.append(
            "escalation: " + " -> ".join(f"{i + 1}. {p.name} {p.phone}" for i, p in enumerate(info.escalation))
        )
    lines.append(f"hotline: {info.hotline}")
    return lines


def _shift_row(shift: Shift) -> str:
    backup = f"{shift.backup.name} {shift.backup.phone}" if shift.backup else "-"
    note = f"  [{shift.note}]" if shift.note else ""
    return (
        f"{_fmt(shift.start)} -> {_fmt(shift.end)}  {shift.primary.name} {shift.primary.phone}  backup {backup}{note}"
    )


@click.group("oncall")
def oncall() -> None:
    """The on-call roster of the repair hotline (oncall/roster.yml)."""


@oncall.command("now")
@click.option("--at", "at", help="Another moment (ISO 8601; Asia/Shanghai without an offset).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def now_cmd(at: str | None, as_json: bool) -> None:
    """Who is on call now, the escalation order and the hotline."""
    moment = parse_time(at) if at else now()
    info = Roster.load().on_call(moment)
    if as_json:
        click.echo(json.dumps(info.as_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(f"at {_fmt(moment)} (Asia/Shanghai)")
    for line in on_call_lines(info):
        click.echo(line)


@oncall.command("list")
@click.option("--week", "week", is_flag=True, help="Only the week (Monday to Sunday) holding --at or now.")
@click.option("--at", "at", help="Reference moment (default now).")
@click.option(
    "--days",
    type=click.IntRange(min=1, max=366),
    default=28,
    show_default=True,
    help="Without --week: how many days ahead.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_cmd(week: bool, at: str | None, days: int, as_json: bool) -> None:
    """The shifts of the week (--week) or of the coming days."""
    roster = Roster.load()
    moment = parse_time(at) if at else now()
    if week:
        start, end = week_bounds(moment)
    else:
        start, end = moment, moment + dt.timedelta(days=days)
    shifts = roster.shifts(start, end)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "from": isoformat(start),
                    "to": isoformat(end),
                    "hotline": roster.hotline,
                    "shifts": [
                        {
                            "from": isoformat(s.start),
                            "to": isoformat(s.end),
                            "primary": s.primary.as_dict(),
                            "backup": s.backup.as_dict() if s.backup else None,
                            "note": s.note,
                            "override": s.override,
                        }
                        for s in shifts
                    ],
                    "escalation": [roster.people[k].as_dict() for k in roster.escalation],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    click.echo(f"shifts {_fmt(start)} -> {_fmt(end)} (Asia/Shanghai); hotline {roster.hotline}")
    if not shifts:
        click.echo("  (nobody rostered)")
    for s in shifts:
        click.echo("  " + _shift_row(s))
    if roster.escalation:
        click.echo(
            "escalation after primary and backup: "
            + " -> ".join(f"{roster.people[k].name} {roster.people[k].phone}" for k in roster.escalation)
        )
