"""``opsctl releases ...`` and ``opsctl logs analyze``: the application's releases and its logs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import paths
from .archive import Archive
from .clicommon import handle_errors
from .errors import BadInput
from .loganalysis import analyze, parse_time, render_html, render_text
from .releases import available, build_release, running_versions


@click.group("releases", invoke_without_command=True)
@click.option("--env", "env", help="Environment: which version runs on which host (from the change records).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@handle_errors
def releases(ctx: click.Context, env: str | None, as_json: bool) -> None:
    """Which release runs on which host (--env ENV), or build an artifact (releases build)."""
    if ctx.invoked_subcommand is not None:
        return
    if not env:
        raise BadInput("give --env ENV (which version runs where) or a subcommand (build, artifacts)")
    archive = getattr(ctx.find_root().obj, "archive", None)
    rows = running_versions(env, archive if isinstance(archive, Archive) else None)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no deploy, rollback or site-app record for environment {env!r}")
        return
    click.echo(f"{'HOST':<16} {'RUNNING':<14} {'PREVIOUS':<14} {'STATE':<17} {'RECORD':<28} OPERATION")
    for host, r in rows.items():
        click.echo(f"{host:<16} {str(r['running']):<14} {str(r['previous'] or '-'):<14} {str(r['state']):<17} "
                   f"{str(r['record']):<28} {r['operation']} ({r['status']})")


@releases.command("build")
@click.option("--version", "version", required=True, help="Release version, e.g. 1.2.0.")
@click.option("--src", type=click.Path(file_okay=False, path_type=Path), help="Application source (default app/).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory (default var/releases/).")
@handle_errors
def build_cmd(version: str, src: Path | None, out: Path | None) -> None:
    """Build envcredit-VERSION.tar.gz and its .sha256 from the application source."""
    built = build_release(version, src, out)
    click.echo(f"{built.tarball}\nsha256 {built.sha256}")


@releases.command("artifacts")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def artifacts_cmd(as_json: bool) -> None:
    """The release artifacts on this controller, checked against their .sha256."""
    rows = available()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['version']:<14} {'ok     ' if r['verified'] else 'CORRUPT'} {r['sha256']}  {r['tarball']}")


@click.group("logs")
def logs() -> None:
    """Analyse the logs collected by the `logs` operation (var/logs/<record id>/)."""


@logs.command("analyze")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--record", "record_id", help="The logs run whose collection to analyse (default: the latest).")
@click.option("--since", help="Only lines from this time on (ISO 8601; local time without an offset).")
@click.option("--until", help="Only lines before this time.")
@click.option("--window", "window", type=click.IntRange(min=1), default=5, show_default=True,
              help="Time window in minutes for rates and slow requests.")
@click.option("--slow-ms", type=click.FloatRange(min=0), default=500.0, show_default=True,
              help="A request at least this slow counts as slow.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Rows in the top lists.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML page.")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@handle_errors
def analyze_cmd(directory: Path | None, record_id: str | None, since: str | None, until: str | None,
                window: int, slow_ms: float, top: int, lang: str, html_out: Path | None, as_json: bool) -> None:
    """Requests, 4xx/5xx rates per window, slowest endpoints, errors by signature, database errors."""
    if directory is None:
        base = paths.data_dir() / "logs"
        if record_id:
            directory = base / record_id
        else:
            runs = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            if not runs:
                raise BadInput(f"no collected logs under {base}: run `opsctl run logs --env ENV` first")
            directory = runs[-1]
    res = analyze(directory, parse_time(since) if since else None, parse_time(until) if until else None,
                  window, slow_ms, top)
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
