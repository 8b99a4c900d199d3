"""``opsctl store ...``: push the local change records to the shared archive store, verify it."""

from __future__ import annotations

import json
import os

import click

from ..errors import BadInput
from ..leases import describe
from ..store import divergence, open_store, pending_count
from .context import context_of, handle_errors


_STORE_OPTION = click.option(
    "--store",
    "spec",
    metavar="SPEC",
    help="Git URL or path of the store repository, or dir:/path for a shared folder (default: $OPSCTL_STORE).",
)


@click.group("store")
def store() -> None:
    """The shared archive store: one hash chain for every engineer and CI job."""


@store.command("push")
@_STORE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@handle_errors
def push_cmd(ctx: click.Context, spec: str | None, as_json: bool) -> None:
    """Append the local records the store lacks to the store's chain (idempotent)."""
    target = open_store(spec)
    result = target.push(context_of(ctx).archive)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    head = result.head or {}
    click.echo(
        f"pushed {len(result.pushed)} record(s) to {result.store} "
        f"({result.skipped} already there, {result.attempts} attempt(s)); "
        f"store HEAD seq {head.get('seq', 0)}"
    )
    for rid in result.pushed:
        click.echo(f"  {rid}")


@store.command("verify")
@_STORE_OPTION
@click.pass_context
@handle_errors
def verify_cmd(ctx: click.Context, spec: str | None) -> None:
    """Fetch the store and verify its chain; also say how many local records it lacks."""
    from ..signing import Verifier
    from .records import signature_policy, signatures_line

    target = open_store(spec)
    with Verifier() as verifier:
        archive, report = target.verify_store(signature_policy(verifier))
    local = context_of(ctx).archive
    missing = pending_count(archive, local)
    if not report.ok:
        where = f"record {report.first_bad_id}" if report.first_bad_id else "store"
        click.echo(f"BROKEN: {where}: {report.problem}", err=True)
        ctx.exit(1)
    diverged = divergence(local, archive)
    if diverged:
        for problem in diverged:
            click.echo(f"DIVERGED: {problem}", err=True)
        click.echo(
            f"the store's chain is intact ({report.count} records); the local archive {local.root} "
            "no longer matches what it pushed",
            err=True,
        )
        ctx.exit(1)
    click.echo(
        f"OK: {report.count} records in {target.description}, chain intact; the local archive "
        f"matches what it pushed; {missing} local record(s) not pushed yet"
    )
    signed = signatures_line(report)
    if signed:
        click.echo(signed)


@store.command("leases")
@_STORE_OPTION
@click.option("--env", "env_name", required=True, help="Environment whose host leases to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the leases as JSON.")
@handle_errors
def leases_cmd(spec: str | None, env_name: str, as_json: bool) -> None:
    """The host leases held in the store now: which run holds which host, and whether it is live."""
    from datetime import UTC, datetime

    from ..leases import Leases, holder_gone, machine_identity

    chosen = spec or os.environ.get("OPSCTL_STORE") or ""
    if not chosen.strip():
        raise BadInput("no store: give --store or set OPSCTL_STORE")
    held = Leases(spec=chosen.strip(), env=env_name, run_id="-", holder={}).list()
    now, me = datetime.now(UTC), machine_identity()
    rows = {h: {**lease, "stale": holder_gone(lease, now, me)} for h, lease in held.items()}
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo(f"no host leases in environment {env_name!r}")
    for host, lease in rows.items():
        state = f"stale: {lease['stale']}" if lease["stale"] else "live"
        click.echo(f"{describe(host, lease)} [{state}]")
