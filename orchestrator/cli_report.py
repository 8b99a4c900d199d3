"""``opsctl report ...``: the reports. A plain Click group: each area adds its subcommand
(``report.command("inspection")`` ...) in its own module, rendering with
:mod:`orchestrator.reports.render`."""

from __future__ import annotations

from pathlib import Path

import click

from .clicommon import archive_of, handle_errors
from .incidents import IncidentRegister
from .reports.render import FORMATS, LANGS, format_for, render_report, write_output
from .reports.sla import build_sla
from .workdays import parse_time



@click.group("report")
def report() -> None:
    """Reports for the client and the auditors (zh-CN and English; HTML, Markdown, JSON)."""


@report.command("sla")
@click.option("--month", required=True, help="The month, YYYY-MM (incidents reported in it, Asia/Shanghai).")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: from --out's suffix, else md).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--as-of", "as_of", help="Evaluate the clocks as of this time (default now).")
@click.pass_context
@handle_errors
def sla_cmd(ctx: click.Context, month: str, lang: str, fmt: str | None, out: Path | None, as_of: str | None) -> None:
    """Monthly SLA report: incidents by severity, times against the targets, compliance, breaches."""
    data = build_sla(IncidentRegister(archive_of(ctx)), month, parse_time(as_of) if as_of else None)
    for warning in data["calendar_warnings"]:
        click.echo(f"warning: {warning}", err=True)
    text = render_report("sla", format_for(out, fmt, FORMATS, default="md"), lang, data)
    if out is None:
        click.echo(text, nl=False)
        return
    write_output(text, out)
    click.echo(f"wrote the SLA report for {month} ({lang}) to {out}")
