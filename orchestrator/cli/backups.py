"""``opsctl backups``: the backup store (list, show)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..backups import Backup, get_backup, human_age, human_size, list_backups, list_repositories
from ..reports.render import when_marked
from .context import handle_errors


@click.group("backups")
def backups() -> None:
    """The database backups in the store (var/backups/<env>/<host>/<id>, or $OPSCTL_BACKUPS)."""


@backups.command("list")
@click.option("--env", help="Only this environment.")
@click.option("--host", help="Only this database host.")
@click.option("--db", help="Only backups holding this database.")
@click.option("--store", type=click.Path(path_type=Path), help="Store root (default var/backups).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handle_errors
def list_cmd(env: str | None, host: str | None, db: str | None, store: Path | None, as_json: bool) -> None:
    """List backups, newest first, with verification status and age; then, per database host
    with physical backups on the backup host (PostgreSQL: pgBackRest; MariaDB: mariadb-backup and
    binary logs), its backups of each kind and the recovery window."""
    items = list_backups(store, env=env, host=host, db=db)
    repos = list_repositories(store, env=env, host=host)
    if as_json:
        click.echo(json.dumps([b.to_dict() for b in items], indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("no backups")
    else:
        _table(items)
    if repos:
        click.echo("")
        click.echo("point-in-time recovery (physical backups on the backup host, as the newest backup run read them):")
        for r in repos:
            d = r.to_dict()
            kinds = ", ".join(f"{n} {k}" for k, n in d["backups"].items() if n) or "no backup"
            click.echo(
                f"  {r.env}/{r.host}: {d['tool']} on {d['repo_host']} ({d['cipher'] or 'unencrypted'}), {kinds}; "
                f"restorable from {when_marked(d['earliest_restorable'], 'en', '%Y-%m-%d %H:%M:%S')} "
                f"to at least {when_marked(d['latest_restorable'], 'en', '%Y-%m-%d %H:%M:%S')}"
            )


def _table(items: list[Backup]) -> None:
    click.echo(
        f"{'BACKUP ID':<34} {'ENV':<6} {'HOST':<10} {'ENGINE':<10} {'DATABASES':<16} "
        f"{'SIZE':>8} {'AGE':>6}  VERIFICATION"
    )
    for b in items:
        d = b.to_dict()
        click.echo(
            f"{b.backup_id:<34} {b.env:<6} {b.host:<10} {str(d['engine']):<10} "
            f"{','.join(b.databases):<16} {human_size(d['total_bytes']):>8} {human_age(d['age_s']):>6}  "
            f"{b.verification}{' ' + when_marked(d['verified_at'], 'en') if d['verified_at'] else ''}"
        )


@backups.command("show")
@click.argument("backup_id")
@click.option("--store", type=click.Path(path_type=Path), help="Store root (default var/backups).")
@handle_errors
def show_cmd(backup_id: str, store: Path | None) -> None:
    """Print one backup's manifest and status as JSON."""
    b = get_backup(backup_id, store)
    click.echo(json.dumps({"manifest": b.manifest, "status": b.status}, indent=2, ensure_ascii=False))
