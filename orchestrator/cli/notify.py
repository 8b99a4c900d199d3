"""``opsctl notify ...``: notifications outside the incident flow (failed timers, a test message)."""

from __future__ import annotations

import click

from .. import notify
from ..errors import OpsError
from ..workdays import now
from .context import context_of, handle_errors


@click.group("notify")
def notify_group() -> None:
    """Notifications through Apprise (WeCom, DingTalk, e-mail, webhooks), configured per environment."""


def _config(env: str) -> notify.NotifyConfig:
    cfg = notify.load_config(env)
    for problem in cfg.problems:
        notify.log(f"{env}: {problem}")
    return cfg


@notify_group.command("scheduled-failure")
@click.option("--timer", "timer", required=True, help="The timer's name in schedules/schedules.yml (backup, ...).")
@click.option("--unit", "unit", required=True, help="The failed systemd unit (envcredit-ops-backup.service).")
@click.option("--env", "env", help="The environment (default: the timer's).")
@click.pass_context
@handle_errors
def scheduled_failure_cmd(ctx: click.Context, timer: str, unit: str, env: str | None) -> None:
    """For systemd OnFailure=: tell the team that a timer's run failed, naming its newest record.

    Exits 1 when no channel took the message (so the journal shows it)."""
    operation: str | None = None
    timer_env: str | None = None
    try:
        from ..schedules import load

        found = [t for t in load(check_policy=False) if t.name == timer]
        if found:
            operation, timer_env = found[0].operation, found[0].env
    except OpsError as err:
        notify.log(f"cannot read the timers' configuration: {err}")
    env = env or timer_env or "production"
    newest = None
    if operation:
        try:
            rows = context_of(ctx).archive.list(op=operation, env=env, limit=1)
            newest = rows[0] if rows else None
        except OpsError as err:
            notify.log(f"cannot read the archive: {err}")
    title, body = notify.scheduled_failure_message(timer, unit, operation, env, newest, now())
    delivery = notify.send(_config(env), title, body)
    line = f"scheduled-failure {timer} ({unit}): {delivery.summary()}"
    click.echo(line)
    if not delivery.ok:
        notify.log(line)
        ctx.exit(1)


@notify_group.command("test")
@click.option("--env", "env", required=True, help="The environment whose channels to try.")
@handle_errors
def test_cmd(env: str) -> None:
    """Send a test message to every channel of ENV; prints the channels (masked) and the outcome."""
    cfg = _config(env)
    click.echo(f"channels of {env}: {notify.channels_text(cfg.channels)}")
    title = "【测试】opsctl 通知渠道测试"
    body = f"这是一条测试消息，用于确认 {notify.env_zh(env)} 的通知渠道可用。\n发送时间：{notify.fmt_time(now())}"
    delivery = notify.send(cfg, title, body)
    click.echo(delivery.summary())
    if not delivery.ok:
        raise click.exceptions.Exit(1)
