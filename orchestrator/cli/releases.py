"""``opsctl releases ...``: which release runs where, building and listing the artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import BadInput
from ..releases import available, build_release, running_versions
from .context import context_of, handle_errors


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
    rows = running_versions(env, context_of(ctx).archive)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no deploy, rollback or site-app record for environment {env!r}")
        return
    click.echo(f"{'HOST':<16} {'RUNNING':<14} {'PREVIOUS':<14} {'STATE':<17} {'RECORD':<28} OPERATION")
    for host, r in rows.items():
        click.echo(
            f"{host:<16} {str(r['running']):<14} {str(r['previous'] or '-'):<14} {str(r['state']):<17} "
            f"{str(r['record']):<28} {r['operation']} ({r['status']})"
        )


@releases.command("build")
@click.option("--version", "version", required=True, help="Release version, e.g. 1.2.0.")
@click.option("--src", type=click.Path(file_okay=False, path_type=Path), help="Application source (default app/).")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory (default var/releases/)."
)
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
