"""``opsctl report ...``: the reports for the client and the auditors (sla, inspect,
monthly, patches, baseline), each built by its domain module and rendered with
:mod:`orchestrator.reports.render`.

The format rule is the same for every report that infers it (:meth:`.context.Context.format_for`):
``--format``, else the ``--out`` file's suffix, else the report's default (sla: md; patches,
baseline: html). ``inspect`` and ``monthly`` take ``--format`` only (default html).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .. import availability as site_availability
from ..baseline import build_baseline, latest_check
from ..errors import OpsError
from ..incidents import IncidentRegister
from ..inspection import Thresholds
from ..operations import get_environment
from ..patches import build_patches, latest_scan
from ..reports import inspect as inspect_report
from ..reports.baseline import FORMATS as BASELINE_FORMATS
from ..reports.baseline import render_baseline
from ..reports.monthly import build_monthly
from ..reports.monthly import charts as monthly_charts
from ..reports.patches import FORMATS as PATCH_FORMATS
from ..reports.patches import render_patches
from ..reports.export import report_provenance
from ..reports.pdf import html_to_pdf
from ..reports.render import FORMATS, LANGS, render_report, strings, write_bytes
from ..reports.sla import build_sla, month_bounds
from ..workdays import now, parse_time
from .context import Context, context_of, handle_errors


@click.group("report")
def report() -> None:
    """Reports for the client and the auditors (zh-CN and English; HTML, Markdown, JSON)."""


@report.command("sla")
@click.option("--month", required=True, help="The month, YYYY-MM (incidents reported in it, Asia/Shanghai).")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language.")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: from --out's suffix, else md)."
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--as-of", "as_of", help="Evaluate the clocks as of this time (default now).")
@click.pass_context
@handle_errors
def sla_cmd(ctx: click.Context, month: str, lang: str, fmt: str | None, out: Path | None, as_of: str | None) -> None:
    """Monthly SLA report: incidents by severity, times against the targets, compliance, breaches."""
    data = build_sla(IncidentRegister(context_of(ctx).archive), month, parse_time(as_of) if as_of else None)
    for warning in data["calendar_warnings"]:
        click.echo(f"warning: {warning}", err=True)
    data["provenance"] = report_provenance(context_of(ctx).archive, data)
    text = render_report("sla", Context.format_for(out, fmt, FORMATS, "md"), lang, data)
    Context.emit(text, out, f"the SLA report for {month} ({lang})")


@report.command("inspect")
@click.option("--record", "record_id", help="The inspection record to report (default: the newest).")
@click.option("--latest", is_flag=True, help="Report the newest inspection (the default).")
@click.option("--env", help="Only inspections of this environment.")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True, help="Output format.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option(
    "--history",
    type=click.IntRange(min=2, max=365),
    default=14,
    show_default=True,
    help="Earlier inspections fitted for trends and forecasts.",
)
@click.option(
    "--disk-warn-days",
    type=click.FloatRange(min=0),
    default=14.0,
    show_default=True,
    help="A filesystem forecast to be full within this many days is a warning.",
)
@click.option(
    "--disk-crit-days",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="... and within this many days critical.",
)
@click.pass_context
@handle_errors
def inspect_cmd(
    ctx: click.Context,
    record_id: str | None,
    latest: bool,
    env: str | None,
    lang: str,
    fmt: str,
    out: Path | None,
    history: int,
    disk_warn_days: float,
    disk_crit_days: float,
) -> None:
    """Inspection report (巡检报告): overall status, hosts, findings with actions, trends and forecasts."""
    if record_id and latest:
        raise click.UsageError("--record and --latest exclude each other")
    th = Thresholds(history=history, disk_warn_days=disk_warn_days, disk_crit_days=disk_crit_days)
    data = inspect_report.build_inspect(context_of(ctx).archive, record_id, env, th)
    payload: dict[str, Any] = inspect_report.public(data)
    if fmt == "html":
        payload["charts"] = inspect_report.charts(data, strings("inspect", lang))
    payload["provenance"] = report_provenance(context_of(ctx).archive, data)
    text = render_report("inspect", fmt, lang, payload)
    Context.emit(text, out, f"the inspection report of {data['record']['id']} ({lang})")


@report.command("monthly")
@click.option("--month", required=True, help="The month, YYYY-MM (Asia/Shanghai).")
@click.option("--env", default=None, help="Only this environment (default: every environment).")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice((*FORMATS, "pdf")),
    default="html",
    show_default=True,
    help="Output format (pdf: A4 with page numbers, printed by headless Chromium; needs --out).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option(
    "--inspect-env",
    default="production",
    show_default=True,
    help="Environment whose daily inspections are checked for missed days (and whose site is measured).",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    default=None,
    help="Prometheus to measure the site's availability (default: the environment policy's "
    "availability.prometheus_url, or OPSCTL_PROMETHEUS_URL).",
)
@click.pass_context
@handle_errors
def monthly_cmd(
    ctx: click.Context,
    month: str,
    env: str | None,
    lang: str,
    fmt: str,
    out: Path | None,
    inspect_env: str,
    prometheus_url: str | None,
) -> None:
    """Monthly service report (运维月报) as filed: header, summary, availability, incidents and SLA,
    changes with record ids, backups, patches, baseline, inspections (calendar), consulting
    requests, risks and forecasts, next month's plan, signature block."""
    if fmt == "pdf" and out is None:
        raise click.UsageError("--format pdf needs --out FILE")
    month_bounds(month)  # a bad month is bad input before Prometheus is asked
    measured = _availability(month, env or inspect_env, prometheus_url)
    data = build_monthly(context_of(ctx).archive, month, env=env, inspect_env=env or inspect_env, availability=measured)
    payload: dict[str, Any] = dict(data)
    if fmt in ("html", "pdf"):
        payload["charts"] = monthly_charts(data, strings("monthly", lang), lang)
    payload["provenance"] = report_provenance(context_of(ctx).archive, data)
    text = render_report("monthly", "html" if fmt == "pdf" else fmt, lang, payload)
    if fmt == "pdf" and out is not None:
        write_bytes(html_to_pdf(text), out)
        click.echo(f"wrote the monthly report of {month} ({lang}, PDF) to {out}")
        return
    Context.emit(text, out, f"the monthly report of {month} ({lang})")


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
        return {
            "source": "none",
            "code": "not_configured",
            "reason": "no Prometheus configured (availability.prometheus_url)",
        }
    start, end = month_bounds(month)
    end = min(end, now())
    if end <= start:
        return {"source": "none", "reason": "the month has not begun"}
    try:
        return site_availability.measure(
            str(url), start, end, query=str(settings.get("query") or site_availability.DEFAULT_QUERY)
        )
    except site_availability.AvailabilityError as exc:
        return {"source": "none", "code": exc.code, "url": str(url), "reason": str(exc)}


@report.command("patches")
@click.option("--env", "env", required=True, help="Environment whose newest patch-scan record is reported.")
@click.option(
    "--format", "fmt", type=click.Choice(PATCH_FORMATS), help="Output format (default: from --out's suffix, else html)."
)
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language (html, md).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.pass_context
@handle_errors
def patches_report(ctx: click.Context, env: str, fmt: str | None, lang: str, out: Path | None) -> None:
    """Patch compliance per host from the newest patch-scan record: pending and security
    updates with versions, held packages, pending reboot, last patch date."""
    data = build_patches(latest_scan(context_of(ctx).archive, env))
    data["provenance"] = report_provenance(context_of(ctx).archive, data)
    text = render_patches(Context.format_for(out, fmt, PATCH_FORMATS, "html"), lang, data)
    Context.emit(text, out, f"the patch report of {env} (record {data['record']['id']})")


@report.command("baseline")
@click.option("--env", "env", required=True, help="Environment whose newest baseline-check record is reported.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(BASELINE_FORMATS),
    help="Output format (default: from --out's suffix, else html).",
)
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.pass_context
@handle_errors
def baseline_report(ctx: click.Context, env: str, fmt: str | None, lang: str, out: Path | None) -> None:
    """Security baseline evidence per host and control (pass, fail, waived, not applicable,
    with the reason, the 等保 clause and the waiver) from the newest baseline-check record."""
    data = build_baseline(latest_check(context_of(ctx).archive, env))
    data["provenance"] = report_provenance(context_of(ctx).archive, data)
    text = render_baseline(Context.format_for(out, fmt, BASELINE_FORMATS, "html"), lang, data)
    Context.emit(text, out, f"the baseline report of {env} (record {data['record']['id']})")
