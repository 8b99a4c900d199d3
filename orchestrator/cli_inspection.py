"""``opsctl report inspect`` and ``opsctl report monthly``: the inspection and the monthly service reports."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from . import availability as site_availability
from .clicommon import archive_of, handle_errors
from .operations import get_environment
from .errors import OpsError
from .reports.sla import month_bounds
from .workdays import now
from .inspection import Thresholds
from .reports import inspect as inspect_report
from .reports.monthly import build_monthly
from .reports.monthly import charts as monthly_charts
from .reports.render import FORMATS, LANGS, render_report, strings, write_output



def _emit(text: str, out: Path | None, what: str) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    write_output(text, out)
    click.echo(f"wrote {what} to {out}")


@click.command("inspect")
@click.option("--record", "record_id", help="The inspection record to report (default: the newest).")
@click.option("--latest", is_flag=True, help="Report the newest inspection (the default).")
@click.option("--env", help="Only inspections of this environment.")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True, help="Output format.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--history", type=click.IntRange(min=2, max=365), default=14, show_default=True,
              help="Earlier inspections fitted for trends and forecasts.")
@click.option("--disk-warn-days", type=click.FloatRange(min=0), default=14.0, show_default=True,
              help="A filesystem forecast to be full within this many days is a warning.")
@click.option("--disk-crit-days", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="... and within this many days critical.")
@click.pass_context
@handle_errors
def inspect_cmd(ctx: click.Context, record_id: str | None, latest: bool, env: str | None, lang: str, fmt: str,
                out: Path | None, history: int, disk_warn_days: float, disk_crit_days: float) -> None:
    """Inspection report (巡检报告): overall status, hosts, findings with actions, trends and forecasts."""
    if record_id and latest:
        raise click.UsageError("--record and --latest exclude each other")
    th = Thresholds(history=history, disk_warn_days=disk_warn_days, disk_crit_days=disk_crit_days)
    data = inspect_report.build_inspect(archive_of(ctx), record_id, env, th)
    payload: dict[str, Any] = inspect_report.public(data)
    if fmt == "html":
        payload["charts"] = inspect_report.charts(data, strings("inspect", lang))
    text = render_report("inspect", fmt, lang, payload)
    _emit(text, out, f"the inspection report of {data['record']['id']} ({lang})")


@click.command("monthly")
@click.option("--month", required=True, help="The month, YYYY-MM (Asia/Shanghai).")
@click.option("--env", default=None, help="Only this environment (default: every environment).")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True, help="Output format.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--inspect-env", default="production", show_default=True,
              help="Environment whose daily inspections are checked for missed days (and whose site is measured).")
@click.option("--prometheus", "prometheus_url", default=None,
              help="Prometheus to measure the site's availability (default: the environment policy's "
                   "availability.prometheus_url, or OPSCTL_PROMETHEUS_URL).")
@click.pass_context
@handle_errors
def monthly_cmd(ctx: click.Context, month: str, env: str | None, lang: str, fmt: str, out: Path | None,
                inspect_env: str, prometheus_url: str | None) -> None:
    """Monthly service report: runs, backups, patches, deploys, inspections on schedule, incidents, SLA, availability."""
    measured = _availability(month, env or inspect_env, prometheus_url)
    data = build_monthly(archive_of(ctx), month, env=env, inspect_env=env or inspect_env, availability=measured)
    payload: dict[str, Any] = dict(data)
    if fmt == "html":
        payload["charts"] = monthly_charts(data, strings("monthly", lang))
    text = render_report("monthly", fmt, lang, payload)
    _emit(text, out, f"the monthly report of {month} ({lang})")


def _availability(month: str, env: str, url: str | None) -> dict[str, Any]:
    """The site's availability in the month (up to now), or why it was not measured.

    Not measuring is never an error: the report says so instead of a figure."""
    settings: dict[str, Any] = {}
    try:
        settings = dict(get_environment(env).settings.get("availability") or {})
    except OpsError:
        pass  # an environment without a policy file: only --prometheus or the variable
    url = url or os.environ.get("OPSCTL_PROMETHEUS_URL") or settings.get("prometheus_url")
    if not url:
        return {"source": "none", "reason": "no Prometheus configured (availability.prometheus_url)"}
    start, end = month_bounds(month)
    end = min(end, now())
    if end <= start:
        return {"source": "none", "reason": "the month has not begun"}
    try:
        return site_availability.measure(str(url), start, end, query=str(settings.get("query") or
                                                                           site_availability.DEFAULT_QUERY))
    except site_availability.AvailabilityError as exc:
        return {"source": "none", "reason": str(exc)}
