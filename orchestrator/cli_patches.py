"""``opsctl report patches``: the patch compliance report of an environment."""

from __future__ import annotations

from pathlib import Path

import click

from .clicommon import archive_of, handle_errors
from .patches import build_patches, latest_scan
from .reports.patches import FORMATS, render_patches
from .reports.render import LANGS, format_for, write_output


@click.command("patches")
@click.option("--env", "env", required=True, help="Environment whose newest patch-scan record is reported.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format (default: from --out's suffix, else html).")
@click.option("--lang", type=click.Choice(LANGS), default="zh", show_default=True, help="Language (html, md).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.pass_context
@handle_errors
def patches_report(ctx: click.Context, env: str, fmt: str | None, lang: str, out: Path | None) -> None:
    """Patch compliance per host from the newest patch-scan record: pending and security
    updates with versions, held packages, pending reboot, last patch date."""
    data = build_patches(latest_scan(archive_of(ctx), env))
    text = render_patches(format_for(out, fmt, FORMATS, default="html"), lang, data)
    if out is None:
        click.echo(text, nl=False)
        return
    write_output(text, out)
    click.echo(f"wrote the patch report of {env} (record {data['record']['id']}) to {out}")
