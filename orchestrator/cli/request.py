"""``opsctl request ...``: the consulting register (咨询服务).

Consultations, questions from the bureau and liaison with the government-cloud operator; every
action is a record in the change-record archive (see :mod:`orchestrator.requests`). Output in
zh-CN (default) or English (``--lang en``); every time shown is Beijing time with the zone
marked. Bad input (unknown id or kind, closing twice, a time in the future or before the
request) exits 2 and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from ..incidents import ClockState
from ..requests import KINDS, Request, RequestRegister
from ..workdays import local, parse_time
from .context import context_of, handle_errors, table

LANGS = ("zh", "en")

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "consultation": "咨询",
        "bureau-question": "生态环境局问询",
        "cloud-liaison": "政务云运营方联络",
        "open": "待答复",
        "answered": "已答复",
        "closed": "已办结",
        "respond": "响应",
        "close": "办结",
        "met": "按时",
        "late": "超时完成",
        "breached": "已超时",
        "due-soon": "即将到期",
        "running": "计时中",
        "reported": "提出",
        "opened": "登记",
        "note": "备注",
        "reply": "答复",
        "zone": "北京时间（+08:00）",
        "hours": "{n:g} 小时内",
        "days": "{n} 个工作日内",
        "no_clock": "无时限（由政务云运营方处理）",
        "opened_msg": "已登记 {id}（{kind}）：{subject}",
        "noted_msg": "{id}：已添加{what}；记录 {record}",
        "closed_msg": "{id} 已办结；记录 {record}",
        "requester": "提出人",
        "deadlines": "时限（北京时间）",
        "record": "记录",
        "none": "没有咨询服务登记",
        "clocks": "时限",
        "timeline": "经过（北京时间，+08:00）",
        "sep": "：",
        "env": "环境：{env}",
        "answer": "答复/结果",
        "headers": "编号|类别|状态|提出时间（北京时间）|下一时限|时限情况|事项",
        "ok": "正常",
        "due": "截止",
        "done": "完成于",
    },
    "en": {
        "consultation": "consultation",
        "bureau-question": "question from the bureau",
        "cloud-liaison": "liaison with the cloud operator",
        "open": "open",
        "answered": "answered",
        "closed": "closed",
        "respond": "respond",
        "close": "close",
        "met": "met",
        "late": "late",
        "breached": "breached",
        "due-soon": "due soon",
        "running": "running",
        "reported": "reported",
        "opened": "registered",
        "note": "note",
        "reply": "reply",
        "zone": "Beijing time (+08:00)",
        "hours": "within {n:g} h",
        "days": "within {n} working day(s)",
        "no_clock": "no deadline (the cloud operator's work)",
        "opened_msg": "registered {id} ({kind}): {subject}",
        "noted_msg": "{id}: {what} added; record {record}",
        "closed_msg": "{id} closed; record {record}",
        "requester": "requester",
        "deadlines": "deadlines (Beijing time)",
        "record": "record",
        "none": "no requests",
        "clocks": "clocks",
        "timeline": "timeline (Beijing time, +08:00)",
        "sep": ": ",
        "env": "({env})",
        "answer": "answer/outcome",
        "headers": "ID|KIND|STATE|MADE (Beijing time)|NEXT DEADLINE|CLOCKS|SUBJECT",
        "ok": "ok",
        "due": "due",
        "done": "done",
    },
}

_lang_opt = click.option(
    "--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language of the output."
)
_json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON (times ISO 8601 with offset).")


def _register(ctx: click.Context) -> RequestRegister:
    return RequestRegister(context_of(ctx).archive)


def _time_opt(value: str | None) -> dt.datetime | None:
    return parse_time(value) if value else None


def when(moment: dt.datetime | None, lang: str, zone: bool = True) -> str:
    """``2026-11-29 16:35 北京时间（+08:00）`` (zh) or ``... Beijing time (+08:00)`` (en)."""
    if moment is None:
        return "-"
    text = f"{local(moment):%Y-%m-%d %H:%M}"
    return f"{text} {TEXT[lang]['zone']}" if zone else text


def _clock_lines(req: Request, lang: str) -> list[str]:
    t = TEXT[lang]
    clocks = req.clocks()
    if not clocks:
        return [f"  {t['no_clock']}"]
    lines = []
    for c in clocks:
        within = (
            t["hours"].format(n=c.target.hours)
            if c.target.hours is not None
            else t["days"].format(n=c.target.working_days)
        )
        done = f"  {t['done']} {when(c.done_at, lang, False)}" if c.done_at else ""
        lines.append(f"  {t[c.clock]}  {within}  {t['due']} {when(c.due, lang, False)}  {t[c.status]}{done}")
    return lines


def _warn(req: Request) -> None:
    for w in req.calendar_warnings:
        click.echo(f"warning: {w}", err=True)


def _json(req: Request, record: dict[str, Any] | None = None) -> str:
    data = req.as_dict()
    if record is not None:
        data["record_id"] = record["id"]
    return json.dumps(data, ensure_ascii=False, indent=2)


@click.group("request")
def request() -> None:
    """The consulting register: consultations, questions from the bureau, liaison with the
    government-cloud operator (respond 24 h, close 5 working days; liaison has no clock)."""


@request.command("open")
@click.option("--kind", type=click.Choice(KINDS), required=True, help="What kind of request.")
@click.option("--subject", required=True, help="What is asked, in one line.")
@click.option("--requester", help="Who asked (person, unit), or whom the liaison is with.")
@click.option("--reported-at", "reported_at", help="When it was made (ISO 8601; Beijing time without an offset).")
@click.option("--env", "env", default="production", show_default=True, help="The environment it concerns.")
@_lang_opt
@_json_opt
@click.pass_context
@handle_errors
def open_cmd(
    ctx: click.Context,
    kind: str,
    subject: str,
    requester: str | None,
    reported_at: str | None,
    env: str,
    lang: str,
    as_json: bool,
) -> None:
    """Register a request: prints its id and its deadlines."""
    req, record = _register(ctx).open(kind, subject, _time_opt(reported_at), requester, env)
    _warn(req)
    if as_json:
        click.echo(_json(req, record))
        return
    t = TEXT[lang]
    click.echo(t["opened_msg"].format(id=req.id, kind=t[req.kind], subject=req.subject))
    click.echo(
        f"  {t['reported']} {when(req.reported_at, lang)}"
        + (f"  {t['requester']}{t['sep']}{req.requester}" if req.requester else "")
    )
    click.echo(t["deadlines"])
    click.echo("\n".join(_clock_lines(req, lang)))
    click.echo(f"{t['record']}{t['sep']}{record['id']}")


@request.command("note")
@click.argument("request_id", metavar="ID")
@click.argument("text")
@click.option("--reply", is_flag=True, help="The note is the answer given to the requester (stops the response clock).")
@click.option("--at", "at", help="When (default now).")
@click.option("--by", "by", help="Who.")
@_lang_opt
@_json_opt
@click.pass_context
@handle_errors
def note_cmd(
    ctx: click.Context,
    request_id: str,
    text: str,
    reply: bool,
    at: str | None,
    by: str | None,
    lang: str,
    as_json: bool,
) -> None:
    """Add a note (or, with --reply, the reply given) to a request's timeline."""
    req, record = _register(ctx).note(request_id, text, _time_opt(at), by, reply)
    if as_json:
        click.echo(_json(req, record))
        return
    t = TEXT[lang]
    click.echo(t["noted_msg"].format(id=req.id, what=t["reply" if reply else "note"], record=record["id"]))


@request.command("close")
@click.argument("request_id", metavar="ID")
@click.option("--answer", required=True, help="The answer given or the outcome.")
@click.option("--at", "at", help="When (default now).")
@click.option("--by", "by", help="Who.")
@_lang_opt
@_json_opt
@click.pass_context
@handle_errors
def close_cmd(
    ctx: click.Context, request_id: str, answer: str, at: str | None, by: str | None, lang: str, as_json: bool
) -> None:
    """Close a request with its answer or outcome (stops every clock)."""
    req, record = _register(ctx).close(request_id, answer, _time_opt(at), by)
    if as_json:
        click.echo(_json(req, record))
        return
    t = TEXT[lang]
    click.echo(t["closed_msg"].format(id=req.id, record=record["id"]))
    click.echo("\n".join(_clock_lines(req, lang)))


@request.command("show")
@click.argument("request_id", metavar="ID")
@_lang_opt
@_json_opt
@click.pass_context
@handle_errors
def show_cmd(ctx: click.Context, request_id: str, lang: str, as_json: bool) -> None:
    """A request: its clocks and its timeline."""
    req = _register(ctx).get(request_id)
    _warn(req)
    if as_json:
        data = req.as_dict()
        data["timeline"] = [e.as_dict() for e in req.events]
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    t = TEXT[lang]
    click.echo(f"{req.id}  {t[req.kind]}  {t[req.state]}  {t['env'].format(env=req.environment)}")
    click.echo(f"  {req.subject}")
    if req.requester:
        click.echo(f"  {t['requester']}{t['sep']}{req.requester}")
    if req.answer:
        click.echo(f"  {t['answer']}{t['sep']}{req.answer}")
    click.echo("")
    click.echo(t["deadlines"])
    click.echo("\n".join(_clock_lines(req, lang)))
    click.echo("")
    click.echo(t["timeline"])
    for e in sorted(req.events, key=lambda e: e.at):
        label = t[e.kind] if e.kind in t else e.kind
        text = t[e.text] if e.kind == "opened" else e.text
        ref = f"  [{e.record_id}]" if e.record_id else ""
        click.echo(f"  {when(e.at, lang, False)}  {label}  {text}{ref}")


def _row(req: Request, lang: str) -> tuple[str, ...]:
    t = TEXT[lang]
    clocks = req.clocks()
    bad = [f"{t[c.clock]}:{t[c.status]}" for c in clocks if c.status in ("breached", "due-soon", "late")]
    running: list[ClockState] = [c for c in clocks if c.done_at is None]
    nxt = min(running, key=lambda c: c.due) if running else None
    return (
        req.id,
        t[req.kind],
        t[req.state],
        when(req.reported_at, lang, False),
        f"{t[nxt.clock]} {when(nxt.due, lang, False)}" if nxt else "-",
        " ".join(bad) or t["ok"],
        req.subject[:40],
    )


@request.command("list")
@click.option("--open", "only_open", is_flag=True, help="Only requests not yet closed.")
@click.option("--kind", type=click.Choice(KINDS))
@_lang_opt
@_json_opt
@click.pass_context
@handle_errors
def list_cmd(ctx: click.Context, only_open: bool, kind: str | None, lang: str, as_json: bool) -> None:
    """List requests, newest first."""
    found = sorted(_register(ctx).load().values(), key=lambda r: (r.opened_at, r.id), reverse=True)
    if only_open:
        found = [r for r in found if r.is_open]
    if kind:
        found = [r for r in found if r.kind == kind]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], ensure_ascii=False, indent=2))
        return
    t = TEXT[lang]
    if not found:
        click.echo(t["none"])
        return
    click.echo(table(tuple(t["headers"].split("|")), [_row(r, lang) for r in found]))
