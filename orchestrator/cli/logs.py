"""``opsctl logs analyze``: the application's logs collected by the ``logs`` operation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import BadInput
from ..loganalysis import analyze, parse_time, render_html, render_text
from .context import context_of, handle_errors


@click.group("logs")
def logs() -> None:
    """Analyse the logs collected by the `logs` operation (var/logs/<record id>/)."""


@logs.command("analyze")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--record", "record_id", help="The logs run whose collection to analyse (default: the latest).")
@click.option("--since", help="Only lines from this time on (ISO 8601; local time without an offset).")
@click.option("--until", help="Only lines before this time.")
@click.option(
    "--window",
    "window",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Time window in minutes for rates and slow requests.",
)
@click.option(
    "--slow-ms",
    type=click.FloatRange(min=0),
    default=500.0,
    show_default=True,
    help="A request at least this slow counts as slow.",
)
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Rows in the top lists.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML page.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.pass_context
@handle_errors
def analyze_cmd(
    ctx: click.Context,
    directory: Path | None,
    record_id: str | None,
    since: str | None,
    until: str | None,
    window: int,
    slow_ms: float,
    top: int,
    lang: str,
    html_out: Path | None,
    as_json: bool,
) -> None:
    """Requests, 4xx/5xx rates per window, slowest endpoints, errors by signature, database errors."""
    if directory is None:
        base = context_of(ctx).data_dir() / "logs"
        if record_id:
            directory = base / record_id
        else:
            runs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            if not runs:
                raise BadInput(f"no collected logs under {base}: run `opsctl run logs --env ENV` first")
            directory = runs[-1]
    res = analyze(
        directory, parse_time(since) if since else None, parse_time(until) if until else None, window, slow_ms, top
    )
    res["dir"] = str(directory)
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(render_html(res, lang), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(res, indent=2, ensure_ascii=False))
    else:
        click.echo(f"{directory}")
        click.echo(render_text(res, lang), nl=False)
        if html_out is not None:
            click.echo(f"HTML: {html_out}")
