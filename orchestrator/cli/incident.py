"""``opsctl incident ...``: the incident register with its SLA clocks.

Every action is a record in the change-record archive (see
:mod:`orchestrator.incidents`). Bad input (unknown id, resolving twice, ack of a
resolved incident, ``recovered`` on a general fault, a bad time) exits 2 and
writes nothing. Calendar warnings (a year whose official schedule is unknown)
go to stderr.

Size (over 400 lines): one command group with nine subcommands (open, ack, note, recovered,
resolve, list, show, check, calendar) and their text output.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import click

from .. import notify
from ..errors import OpsError
from ..incidents import SEVERITIES, ClockState, Incident, IncidentRegister, default_margin
from ..oncall import OnCall, Roster
from ..workdays import CalendarWarning, default_calendar, isoformat, local, parse_time
from .context import context_of, handle_errors, table
from .oncall import on_call_lines


def _register(ctx: click.Context) -> IncidentRegister:
    return IncidentRegister(context_of(ctx).archive)


def _fmt(moment: dt.datetime | None) -> str:
    return local(moment).strftime("%Y-%m-%d %a %H:%M %z") if moment is not None else "-"


def _warn(warnings: Iterable[CalendarWarning | str]) -> None:
    seen: set[str] = set()
    for w in warnings:
        text = str(w)
        if text not in seen:
            seen.add(text)
            click.echo(f"warning: {text}", err=True)


def _time_opt(value: str | None) -> dt.datetime | None:
    return parse_time(value) if value else None


def _margin(value: float | None) -> float:
    return default_margin() if value is None else value


def _late(c: ClockState) -> str:
    late = c.late_by
    if late is None:
        return ""
    hours = late.total_seconds() / 3600
    return f" ({hours:.1f} h late)"


def _clock_lines(inc: Incident, margin: float) -> list[str]:
    lines = []
    for c in inc.clocks(None, margin):
        done = f"done {_fmt(c.done_at)}" if c.done_at else ""
        lines.append(
            f"  {c.clock:<8} within {c.target.describe():<16} due {_fmt(c.due)}  "
            f"{c.status.upper()}{_late(c)}  {done}".rstrip()
        )
    return lines


def _on_call_now() -> tuple[OnCall | None, str | None]:
    try:
        return Roster.load().on_call(), None
    except OpsError as err:
        return None, str(err)


@click.group("incident")
def incident() -> None:
    """Incidents and their SLA clocks (general: respond 24 h, resolve 5 working days;
    outage: respond 4 h, recover 1 working day, resolve 3 working days)."""


@incident.command("open")
@click.option(
    "--severity",
    type=click.Choice(SEVERITIES),
    required=True,
    help="general: a general fault; outage: the system cannot run.",
)
@click.option("--summary", required=True, help="What is wrong, in one line.")
@click.option(
    "--reported-at",
    "reported_at",
    help="When it was reported (ISO 8601; Asia/Shanghai without an offset; default now).",
)
@click.option("--reporter", help="Who reported it (person, unit, hotline call).")
@click.option("--env", "env", default="production", show_default=True, help="The environment affected.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (times ISO 8601 with offset).")
@click.option("--no-notify", is_flag=True, help="Send no notification (the environment's notify channels).")
@click.pass_context
@handle_errors
def open_cmd(
    ctx: click.Context,
    severity: str,
    summary: str,
    reported_at: str | None,
    reporter: str | None,
    env: str,
    as_json: bool,
    no_notify: bool,
) -> None:
    """Open an incident: prints its id, every deadline and who is on call; notifies the on-call person."""
    on_call, roster_problem = _on_call_now()
    register = _register(ctx)
    inc, record = register.open(
        severity,
        summary,
        _time_opt(reported_at),
        reporter,
        env,
        on_call.as_dict() if on_call is not None else None,
    )
    _warn(inc.calendar_warnings)
    if roster_problem:
        click.echo(f"warning: {roster_problem}", err=True)
    if not no_notify:
        title, body = notify.opened_message(
            inc,
            record["id"],
            on_call.as_dict() if on_call else None,
            roster_problem,
            source=f"人工登记（{reporter}）" if reporter else "人工登记",
        )
        _notify(register, _notify_config(env, {}), inc, title, body, "opened")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "id": inc.id,
                    "severity": inc.severity,
                    "summary": inc.summary,
                    "environment": inc.environment,
                    "reported_at": isoformat(inc.reported_at),
                    "opened_at": isoformat(inc.opened_at),
                    "deadlines": {k: isoformat(v) for k, v in inc.deadlines.items()},
                    "on_call": on_call.as_dict() if on_call is not None else None,
                    "hotline": on_call.hotline if on_call is not None else None,
                    "record_id": record["id"],
                    "calendar_warnings": [str(w) for w in inc.calendar_warnings],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    click.echo(f"opened {inc.id} ({inc.severity}) on {inc.environment}: {inc.summary}")
    click.echo(f"  reported {_fmt(inc.reported_at)}" + (f" by {inc.reporter}" if inc.reporter else ""))
    click.echo("deadlines (Asia/Shanghai):")
    click.echo("\n".join(_clock_lines(inc, 0)))
    if on_call is not None:
        for line in on_call_lines(on_call):
            click.echo(line)
    click.echo(f"record: {record['id']}")


def _notify_config(env: str, cache: dict[str, notify.NotifyConfig]) -> notify.NotifyConfig:
    if env not in cache:
        cache[env] = notify.load_config(env)
        for problem in cache[env].problems:
            click.echo(f"warning: notify ({env}): {problem}", err=True)
    return cache[env]


def _notify(
    register: IncidentRegister, cfg: notify.NotifyConfig, inc: Incident, title: str, body: str, kind: str, **extra: Any
) -> notify.Delivery | None:
    """Send and record the outcome as a note on the incident (the record first, then the message)."""
    if not cfg.configured:
        return None
    delivery = notify.send(cfg, title, body)
    if not delivery.ok:
        click.echo(f"warning: notification of {inc.id} ({kind}): {delivery.summary()}", err=True)
    text = (
        f"通知已发送（{kind}）：{notify.channels_text(delivery.channels)}"
        if delivery.ok
        else f"通知发送失败（{kind}）：{'; '.join(delivery.errors)}"
    )
    try:
        register.note(inc.id, text, by="opsctl-notify", notice=delivery.as_notice(kind, **extra))
    except OpsError as err:
        click.echo(f"warning: could not record the notification of {inc.id}: {err}", err=True)
    return delivery


#: SLA warnings: at these percentages of a running clock, and 100 = breached.
WARN_LEVELS = (50, 80, 100)


def _level(inc: Incident, c: ClockState, at: dt.datetime) -> int | None:
    """The highest warning level a running clock has reached at ``at`` (None: below 50 %)."""
    if c.done_at is not None:
        return None
    if at > c.due:
        return 100
    span = (c.due - inc.reported_at).total_seconds()
    used = 100.0 if span <= 0 else (at - inc.reported_at).total_seconds() / span * 100
    reached = [lvl for lvl in WARN_LEVELS[:-1] if used >= lvl]
    return max(reached) if reached else None


def _sla_notifications(register: IncidentRegister, incidents: Iterable[Incident]) -> list[dict[str, Any]]:
    """Send each incident's newly reached SLA warning once (remembered as a note record)."""
    sent: list[dict[str, Any]] = []
    configs: dict[str, notify.NotifyConfig] = {}
    on_call: OnCall | None = None
    problem: str | None = None
    loaded = False
    moment = local(dt.datetime.now(dt.timezone.utc))
    for inc in incidents:
        if not inc.is_open:
            continue
        for c in inc.clocks(moment, 0):
            level = _level(inc, c, moment)
            if level is None or inc.notified("sla", c.clock, level):
                continue
            cfg = _notify_config(inc.environment, configs)
            if not cfg.configured:
                break
            if not loaded:
                on_call, problem = _on_call_now()
                loaded = True
            title, body = notify.clock_message(inc, c, level, on_call.as_dict() if on_call else None, problem)
            delivery = _notify(register, cfg, inc, title, body, "sla", clock=c.clock, level=level)
            if delivery is not None:
                sent.append(
                    {"id": inc.id, "clock": c.clock, "level": level, "ok": delivery.ok, "channels": delivery.channels}
                )
    return sent


def _update_output(inc: Incident, record: dict[str, Any], verb: str, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps({**inc.as_dict(None, default_margin()), "record_id": record["id"]}, ensure_ascii=False, indent=2)
        )
        return
    click.echo(f"{inc.id} {verb} (state {inc.state}); record {record['id']}")
    click.echo("\n".join(_clock_lines(inc, default_margin())))


@incident.command("ack")
@click.argument("incident_id", metavar="ID")
@click.option("--at", "at", help="When it was acknowledged (default now).")
@click.option("--by", "by", help="Who acknowledged it.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def ack_cmd(ctx: click.Context, incident_id: str, at: str | None, by: str | None, as_json: bool) -> None:
    """Acknowledge (respond to) an incident: stops the response clock."""
    inc, record = _register(ctx).ack(incident_id, _time_opt(at), by)
    _warn(inc.calendar_warnings)
    _update_output(inc, record, "acknowledged", as_json)


@incident.command("recovered")
@click.argument("incident_id", metavar="ID")
@click.option("--at", "at", help="When service was restored (default now).")
@click.option("--note", "text", help="What restored it.")
@click.option("--by", "by", help="Who.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def recovered_cmd(
    ctx: click.Context, incident_id: str, at: str | None, text: str | None, by: str | None, as_json: bool
) -> None:
    """Outage only: emergency recovery achieved (stops the recovery clock)."""
    inc, record = _register(ctx).recovered(incident_id, _time_opt(at), text, by)
    _warn(inc.calendar_warnings)
    _update_output(inc, record, "recovered", as_json)


@incident.command("resolve")
@click.argument("incident_id", metavar="ID")
@click.option("--cause", required=True, help="The root cause and the fix.")
@click.option("--at", "at", help="When it was resolved (default now).")
@click.option("--by", "by", help="Who.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def resolve_cmd(
    ctx: click.Context, incident_id: str, cause: str, at: str | None, by: str | None, as_json: bool
) -> None:
    """Resolve an incident (stops every clock)."""
    inc, record = _register(ctx).resolve(incident_id, cause, _time_opt(at), by)
    _warn(inc.calendar_warnings)
    _update_output(inc, record, "resolved", as_json)


@incident.command("note")
@click.argument("incident_id", metavar="ID")
@click.argument("text")
@click.option("--at", "at", help="When (default now).")
@click.option("--by", "by", help="Who.")
@click.pass_context
@handle_errors
def note_cmd(ctx: click.Context, incident_id: str, text: str, at: str | None, by: str | None) -> None:
    """Add a note to an incident's timeline."""
    inc, record = _register(ctx).note(incident_id, text, _time_opt(at), by)
    click.echo(f"{inc.id}: note added; record {record['id']}")


@incident.command("show")
@click.argument("incident_id", metavar="ID")
@click.option(
    "--margin", type=click.FloatRange(min=0), help="Warning margin in hours (OPSCTL_SLA_MARGIN_HOURS, default 2)."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def show_cmd(ctx: click.Context, incident_id: str, margin: float | None, as_json: bool) -> None:
    """An incident: its clocks and its timeline (opened, acknowledged, runs, recovered, resolved)."""
    register = _register(ctx)
    inc = register.get(incident_id)
    timeline = register.timeline(inc)
    m = _margin(margin)
    _warn(inc.calendar_warnings)
    if as_json:
        click.echo(
            json.dumps(
                {**inc.as_dict(None, m), "timeline": [e.as_dict() for e in timeline]}, ensure_ascii=False, indent=2
            )
        )
        return
    click.echo(f"Incident {inc.id}  {inc.severity}  {inc.state.upper()}  ({inc.environment})")
    click.echo(f"  {inc.summary}")
    if inc.cause:
        click.echo(f"  cause: {inc.cause}")
    click.echo("")
    click.echo("SLA clocks (Asia/Shanghai)")
    click.echo("\n".join(_clock_lines(inc, m)))
    click.echo("")
    click.echo("Timeline")
    for e in timeline:
        ref = f"  [{e.record_id}]" if e.record_id else ""
        click.echo(f"  {_fmt(e.at)}  {e.kind:<12} {e.text}{ref}")


def _row(inc: Incident, margin: float) -> tuple[str, ...]:
    worst = ""
    for c in inc.clocks(None, margin):
        if c.status in ("breached", "due-soon", "late"):
            worst += f"{c.clock}:{c.status}{_late(c).replace(' late', '')} "
    running = [c for c in inc.clocks(None, margin) if c.done_at is None]
    nxt = min(running, key=lambda c: c.due) if running else None
    return (
        inc.id,
        inc.severity,
        inc.state,
        _fmt(inc.reported_at)[:20],
        f"{nxt.clock} {_fmt(nxt.due)[:20]}" if nxt else "-",
        worst.strip() or "ok",
        inc.summary[:40],
    )


@incident.command("list")
@click.option("--open", "only_open", is_flag=True, help="Only incidents not yet resolved.")
@click.option(
    "--breaching", is_flag=True, help="Only incidents with a running clock past or within the margin of its deadline."
)
@click.option("--severity", type=click.Choice(SEVERITIES))
@click.option(
    "--margin", type=click.FloatRange(min=0), help="Warning margin in hours (OPSCTL_SLA_MARGIN_HOURS, default 2)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (times ISO 8601 with offset).")
@click.pass_context
@handle_errors
def list_cmd(
    ctx: click.Context, only_open: bool, breaching: bool, severity: str | None, margin: float | None, as_json: bool
) -> None:
    """List incidents, newest first."""
    m = _margin(margin)
    incidents = sorted(_register(ctx).load().values(), key=lambda i: (i.opened_at, i.id), reverse=True)
    if only_open:
        incidents = [i for i in incidents if i.is_open]
    if severity:
        incidents = [i for i in incidents if i.severity == severity]
    if breaching:
        incidents = [i for i in incidents if i.breaching(None, m)]
    _warn(w for i in incidents for w in i.calendar_warnings)
    if as_json:
        click.echo(json.dumps([i.as_dict(None, m) for i in incidents], ensure_ascii=False, indent=2))
        return
    if not incidents:
        click.echo("no incidents")
        return
    click.echo(
        table(
            ("ID", "SEVERITY", "STATE", "REPORTED", "NEXT DEADLINE", "SLA", "SUMMARY"), [_row(i, m) for i in incidents]
        )
    )


@incident.command("check")
@click.option(
    "--margin", type=click.FloatRange(min=0), help="Warning margin in hours (OPSCTL_SLA_MARGIN_HOURS, default 2)."
)
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-notify", is_flag=True, help="Send no SLA warning (50 %, 80 %, breach) to the on-call person.")
@click.pass_context
@handle_errors
def check_cmd(ctx: click.Context, margin: float | None, as_json: bool, no_notify: bool) -> None:
    """For a timer: exit 1 when a running SLA clock is past its deadline; warn of those due soon.

    Notifies (each once, remembered as a note record) when a running clock reaches 50 % and 80 %
    of its time and when it is breached."""
    m = _margin(margin)
    breached: list[dict[str, Any]] = []
    soon: list[dict[str, Any]] = []
    register = _register(ctx)
    incidents = register.load()
    sent = [] if no_notify else _sla_notifications(register, incidents.values())
    for inc in incidents.values():
        for c in inc.clocks(None, m):
            item = {"id": inc.id, "severity": inc.severity, "summary": inc.summary, **c.as_dict()}
            if c.status == "breached":
                breached.append(item)
            elif c.status == "due-soon":
                soon.append(item)
    if as_json:
        click.echo(
            json.dumps(
                {"ok": not breached, "breached": breached, "due_soon": soon, "notified": sent},
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for b in breached:
            click.echo(
                f"BREACHED {b['id']} ({b['severity']}) {b['clock']} due {b['due']} "
                f"({b['late_hours']:.1f} h ago): {b['summary']}"
            )
        for s in soon:
            click.echo(f"due soon {s['id']} ({s['severity']}) {s['clock']} due {s['due']}: {s['summary']}")
        if not breached and not soon:
            click.echo("OK: no SLA clock breached or due within the margin")
        for n in sent:
            click.echo(
                f"notified {n['id']} {n['clock']} {n['level']}%: "
                f"{'sent' if n['ok'] else 'FAILED'} ({notify.channels_text(n['channels'])})"
            )
    if breached:
        ctx.exit(1)


@incident.command("calendar")
@click.argument("year", type=click.IntRange(min=1900, max=2200))
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def calendar_cmd(year: int, as_json: bool) -> None:
    """The working-day calendar of YEAR: its source, the weekday rest days and the make-up working days."""
    cal = default_calendar()
    days = cal.working_days_between(dt.date(year, 1, 1), dt.date(year, 12, 31))
    rest = [d for d in days if not d.workday and d.day.weekday() < 5]
    makeup = [d for d in days if d.workday and d.day.weekday() >= 5]
    source = cal.source_of(year)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "year": year,
                    "source": source,
                    "known": cal.known(year),
                    "working_days": sum(1 for d in days if d.workday),
                    "weekday_rest_days": [{"date": d.day.isoformat(), "name": d.name} for d in rest],
                    "makeup_working_days": [{"date": d.day.isoformat(), "name": d.name} for d in makeup],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        where = {
            "project": str(cal.project_file),
            "package": "the chinesecalendar package",
            "weekdays": "NOT KNOWN: Monday-Friday fallback",
        }[source]
        click.echo(f"{year}: {sum(1 for d in days if d.workday)} working days; source: {where}")
        click.echo("rest days on weekdays: " + (", ".join(f"{d.day:%m-%d %a}" for d in rest) or "-"))
        click.echo("make-up working days:  " + (", ".join(f"{d.day:%m-%d %a}" for d in makeup) or "-"))
    _warn(cal.warnings_for([year]))
