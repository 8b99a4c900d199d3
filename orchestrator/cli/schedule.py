"""``opsctl schedule install|list|remove``: the systemd timers of the scheduled operations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .. import schedules
from .context import handle_errors

_TARGET = click.option(
    "--target",
    default="local",
    show_default=True,
    help="'local' (this control host) or one inventory host standing in for it.",
)
_INV_ENV = click.option(
    "--inventory-env", default="lab", show_default=True, help="Inventory that holds --target when it is a host."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    for unit in result.get("installed", []):
        click.echo(f"installed {unit}")
    for unit in result.get("removed", []):
        click.echo(f"removed {unit}")
    rows = result.get("timers", [])
    if not rows:
        click.echo("no envcredit-ops timers")
        return
    click.echo(f"{'TIMER':<34} {'STATE':<9} {'ENABLED':<9} {'ON CALENDAR':<22} NEXT")
    for r in rows:
        click.echo(f"{r['timer']:<34} {r['active']:<9} {r['enabled']:<9} {r['on_calendar']:<22} {r['next'] or '-'}")


@click.group("schedule")
def schedule() -> None:
    """Timers of the scheduled operations (daily inspection, nightly backup, ...), from schedules/schedules.yml."""


@schedule.command("install")
@_TARGET
@_INV_ENV
@click.option("--env", "timer_env", help="Environment the timers run against (default: from the file).")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Another schedules file (default: schedules/schedules.yml).",
)
@_JSON
@handle_errors
def install_cmd(target: str, inventory_env: str, timer_env: str | None, config: Path | None, as_json: bool) -> None:
    """Write and start the timers; timers no longer configured are removed."""
    _print(schedules.install(target, inventory_env, timer_env, config), as_json)


@schedule.command("list")
@_TARGET
@_INV_ENV
@_JSON
@handle_errors
def list_cmd(target: str, inventory_env: str, as_json: bool) -> None:
    """The installed timers with their next run."""
    _print(schedules.list_timers(target, inventory_env), as_json)


@schedule.command("remove")
@_TARGET
@_INV_ENV
@_JSON
@handle_errors
def remove_cmd(target: str, inventory_env: str, as_json: bool) -> None:
    """Stop and delete every timer and service opsctl installed."""
    _print(schedules.remove(target, inventory_env), as_json)
