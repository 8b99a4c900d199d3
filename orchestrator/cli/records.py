"""``opsctl records ...``: list, show, export, verify and reindex the change records.

The group is loaded by :data:`orchestrator.cli.COMMANDS` on first use; the archive is
the shared context's (:func:`.context.context_of`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ..reports.export import EXPORT_FORMATS
from ..reports.render import when
from ..errors import OpsError
from ..records import STATUSES, validate_record_id
from ..textclean import clean_lines
from .context import context_of, handle_errors, table

F = TypeVar("F", bound=Callable[..., Any])


def _filters(func: F) -> F:
    """The filter options shared by ``list`` and ``export``."""
    options = [
        click.option("--env", help="Environment (lab, staging, production ...)."),
        click.option("--op", help="Operation name (backup, patch ...)."),
        click.option("--host", help="Only runs that targeted this host."),
        click.option("--status", type=click.Choice(STATUSES), help="Run status."),
        click.option("--ticket", help="Change ticket."),
        click.option("--incident", help="Incident id (runs and incident actions)."),
        click.option("--since", help="Started at or after (ISO 8601 date or time, UTC if no zone)."),
        click.option("--until", help="Started before (a bare date includes that whole day)."),
        click.option("--limit", type=click.IntRange(min=0), help="At most N records (newest first)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _short_hosts(hosts: Sequence[str], width: int = 30) -> str:
    text = ",".join(hosts)
    return text if len(text) <= width else text[: width - 3] + "..."


@click.group("records")
def records() -> None:
    """The change records: list, show, export and verify the archive."""


@records.command("list")
@_filters
@click.option("--json", "as_json", is_flag=True, help="Print JSON (summary rows).")
@click.pass_context
@handle_errors
def list_cmd(ctx: click.Context, /, as_json: bool, **filters: Any) -> None:
    """List records, newest first."""
    rows = context_of(ctx).archive.list(**filters)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no records")
        return
    headers = ("ID", "OP", "ENV", "STATUS", "RC", "HOSTS", "TICKET", "STARTED (UTC+8)", "DURATION")
    cells = [
        (
            r["id"],
            r["operation"] + (" (check)" if r["check_mode"] else ""),
            r["environment"],
            r["status"],
            r["rc"],
            _short_hosts(r["hosts"]),
            r["ticket"] or "-",
            when(r["started"], "%Y-%m-%d %H:%M:%S"),  # Beijing time, like every report
            f"{r['duration_s']:.1f}s" if isinstance(r["duration_s"], (int, float)) else "-",
        )
        for r in rows
    ]
    click.echo(table(headers, cells))


def _show_text(rec: dict[str, Any], show_diff: bool) -> str:
    out: list[str] = []
    operator = rec.get("operator") or {}
    source = rec.get("source") or {}
    out.append(f"Record {rec.get('id')}  (seq {rec.get('seq')})")
    out.append(
        f"  {rec.get('operation')} on {rec.get('environment')}: {rec.get('status')} (rc {rec.get('rc')})"
        + ("  [check mode]" if rec.get("check_mode") else "")
    )
    out.append(f"  playbook   {rec.get('playbook')}   inventory {rec.get('inventory')}")
    if rec.get("limit") or rec.get("tags") or rec.get("skip_tags"):
        out.append(
            f"  limit {rec.get('limit') or '-'}   tags {','.join(rec.get('tags') or []) or '-'}"
            f"   skip-tags {','.join(rec.get('skip_tags') or []) or '-'}"
        )
    standard = " (standard change)" if rec.get("change_type") == "standard" else ""
    out.append(f"  ticket     {rec.get('ticket') or '-'}{standard}   incident {rec.get('incident') or '-'}")
    if rec.get("reason"):
        out.append(f"  reason     {rec.get('reason')}")
    out.append(
        f"  operator   {operator.get('user')}@{operator.get('host')}"
        + (f" ({operator.get('git_name')} <{operator.get('git_email')}>)" if operator.get("git_name") else "")
        + f"   launch {(rec.get('launch') or {}).get('type')}"
    )
    if operator.get("on_behalf_of"):
        via = f" (from {operator['on_behalf_of_source']})" if operator.get("on_behalf_of_source") else ""
        out.append(f"  for        {operator.get('on_behalf_of')}{via}")
    dirty = " (dirty)" if source.get("dirty") else ""
    out.append(f"  source     {source.get('commit') or '-'} on {source.get('branch') or '-'}{dirty}")
    out.append(
        f"  time       {when(rec.get('started'), '%Y-%m-%d %H:%M:%S')} -> "
        f"{when(rec.get('ended'), '%H:%M:%S')} Beijing time (UTC+8) ({rec.get('duration_s')} s; "
        f"UTC {rec.get('started')})"
    )
    if rec.get("error"):
        out.append(f"  error      {rec.get('error')}")
    hosts = rec.get("hosts") or {}
    out.append("")
    out.append("Recap")
    if hosts:
        fields = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
        recap = table(
            ("HOST", *(f.upper() for f in fields)), [(h, *(c.get(f, 0) for f in fields)) for h, c in hosts.items()]
        )
        out.extend("  " + line for line in recap.splitlines())
    else:
        out.append("  (no host results)")
    changes = rec.get("changes") or []
    out.append("")
    out.append(f"Changes ({len(changes)})")
    for c in changes:
        item = f" [{c.get('item')}]" if c.get("item") is not None else ""
        role = f"{c.get('role')} : " if c.get("role") else ""
        out.append(
            f"  {c.get('host')}: {role}{c.get('task')}{item} ({c.get('module')})" + (" +diff" if c.get("diff") else "")
        )
        if show_diff and c.get("diff"):
            diff = json.dumps(c.get("diff"), ensure_ascii=False, indent=2)
            out.extend("      " + line for line in diff.splitlines())
    failures = rec.get("failures") or []
    out.append("")
    out.append(f"Failures ({len(failures)})")
    for f in failures:
        kind = "UNREACHABLE" if f.get("unreachable") else ("ignored" if f.get("ignored") else "FAILED")
        msg = (f.get("msg") or "").strip().splitlines()
        first = msg[0] if msg else ""
        out.append(f"  {f.get('host')}: {f.get('task')} ({f.get('module')}) {kind}: {first}")
        out.extend("      " + line for line in msg[1:6])
    outputs = rec.get("outputs") or {}
    out.append("")
    out.append("Outputs: " + (", ".join(sorted(outputs)) if outputs else "(none)"))
    if rec.get("outputs_missing"):
        out.append("Outputs missing: " + ", ".join(rec.get("outputs_missing") or []))
    redaction = rec.get("redaction") or {}
    if redaction.get("keys") or redaction.get("values_masked"):
        out.append(
            f"Redacted: keys {', '.join(redaction.get('keys') or []) or '-'}; "
            f"{redaction.get('values_masked', 0)} value(s) masked in output"
        )
    out.append("")
    out.append("Hashes")
    for name, digest in sorted((rec.get("artifacts") or {}).items()):
        out.append(f"  {name:<13} {digest}")
    out.append(f"  {'prev_hash':<13} {rec.get('prev_hash')}")
    out.append(f"  {'hash':<13} {rec.get('hash')}")
    # Records made before free text was cleaned, imported ones and task output may hold
    # escape sequences: none reaches the terminal.
    return clean_lines("\n".join(out))


@records.command("show")
@click.argument("record_id", metavar="ID")
@click.option("--stdout", "show_stdout", is_flag=True, help="Print the run's captured stdout instead.")
@click.option("--diff", "show_diff", is_flag=True, help="Include the diffs of the changes.")
@click.option("--json", "as_json", is_flag=True, help="Print the full record as JSON.")
@click.pass_context
@handle_errors
def show_cmd(ctx: click.Context, record_id: str, show_stdout: bool, show_diff: bool, as_json: bool) -> None:
    """Show one record."""
    validate_record_id(record_id)
    archive = context_of(ctx).archive
    if show_stdout:
        click.echo(archive.stdout(record_id), nl=False)
        return
    rec = archive.get(record_id)
    if as_json:
        click.echo(json.dumps(rec, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        click.echo(_show_text(rec, show_diff))


@records.command("export")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True, help="Output format.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output file.")
@_filters
@click.pass_context
@handle_errors
def export_cmd(ctx: click.Context, /, fmt: str, out: Path, **filters: Any) -> None:
    """Export records as CSV, JSON or a static HTML page for auditors."""
    count = context_of(ctx).archive.export(fmt, out, **filters)
    click.echo(f"exported {count} record(s) to {out}")


def signed_environments() -> dict[str, str]:
    """Environment -> since when its runs must be signed (``signed_records: required`` and
    ``signed_records_since`` in its policy; without a time, every run)."""
    from ..operations import get_environment, list_environments

    out: dict[str, str] = {}
    for name in list_environments():
        try:
            settings = get_environment(name).settings
        except OpsError:
            continue
        if settings.get("signed_records") == "required":
            out[name] = str(settings.get("signed_records_since") or "1970-01-01T00:00:00Z")
    return out


def signature_policy(verifier: Any) -> Any:
    """What `records verify` and `store verify` check of the signatures (the environments'
    policies and the catalog's operations)."""
    from ..archive import SignaturePolicy

    return SignaturePolicy(verifier, signed_environments(), _catalog_operations())


def signatures_line(report: Any) -> str:
    """Who signed the verified records (empty when nobody did: a lab, history)."""
    parts = []
    if report.signers:
        who = ", ".join(f"{k} ({v})" for k, v in sorted(report.signers.items()))
        parts.append(
            f"signatures: {sum(report.signers.values())} good, signed by {who}; {report.unsigned} "
            "unsigned where none is required (refusals, register entries, other environments, history)"
        )
    if report.makers:
        who = ", ".join(f"{k} ({v})" for k, v in sorted(report.makers.items()))
        parts.append(f"makers' signatures carried from the archives they were pushed from: {who}")
    return "\n".join(parts)


def _catalog_operations() -> frozenset[str] | None:
    from ..operations import load_catalog

    try:
        return frozenset(load_catalog())
    except OpsError:
        return None


@records.command("verify")
@click.option(
    "--against",
    "store_spec",
    metavar="STORE",
    help="Also prove the archive is a prefix of (or equal to) what it pushed to this store "
    "(a git URL/path or dir:/path; $OPSCTL_STORE with --against-store).",
)
@click.option("--against-store", is_flag=True, help="--against $OPSCTL_STORE.")
@click.pass_context
@handle_errors
def verify_cmd(ctx: click.Context, store_spec: str | None, against_store: bool) -> None:
    """Verify the hash chain; exit 1 naming the first bad record.

    With --against: a record removed, rewritten or re-chained after it was pushed, or an
    archive emptied and started again, is caught by the copy in the store (the anchor an
    attacker with the archive folder cannot rewrite)."""
    from ..signing import Verifier

    archive = context_of(ctx).archive
    with Verifier() as verifier:
        report = archive.verify(signature_policy(verifier))
    if not report.ok:
        where = f"record {report.first_bad_id}" if report.first_bad_id else "archive"
        click.echo(f"BROKEN: {where}: {report.problem}", err=True)
        ctx.exit(1)
    signed = signatures_line(report)
    if store_spec or against_store:
        from ..store import divergence, open_store

        store = open_store(store_spec)
        copy, store_report = store.verify_store()
        if not store_report.ok:
            click.echo(
                f"BROKEN: the store {store.description}: {store_report.first_bad_id}: {store_report.problem}", err=True
            )
            ctx.exit(1)
        diverged = divergence(archive, copy)
        if diverged:
            for problem in diverged:
                click.echo(f"DIVERGED: {problem}", err=True)
            ctx.exit(1)
        click.echo(f"OK: {report.count} records, chain intact; matches what it pushed to {store.description}")
    else:
        click.echo(f"OK: {report.count} records, chain intact")
    if signed:
        click.echo(signed)


@records.command("verify-export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
@handle_errors
def verify_export_cmd(ctx: click.Context, file: Path) -> None:
    """Check an export (CSV, JSON or HTML of `records export`) against this archive: the HEAD it
    was made at is still in the chain, and every record it lists is here unchanged."""
    from ..reports.export import read_export_claims, verify_export

    claims = read_export_claims(file)
    problems = verify_export(context_of(ctx).archive, claims)
    if problems:
        for problem in problems:
            click.echo(f"MISMATCH: {problem}", err=True)
        ctx.exit(1)
    head = claims.get("head") or {}
    click.echo(
        f"OK: {len(claims.get('records') or [])} record(s) of {file} match the archive; "
        f"made at HEAD seq {head.get('seq')} hash {head.get('hash')}"
    )


@records.command("reindex")
@click.pass_context
@handle_errors
def reindex_cmd(ctx: click.Context) -> None:
    """Rebuild the SQLite index from the record folders."""
    count = context_of(ctx).archive.reindex()
    click.echo(f"indexed {count} record(s)")


@records.command("recover")
@click.pass_context
@handle_errors
def recover_cmd(ctx: click.Context) -> None:
    """Record runs whose process died (status interrupted)."""
    ids = context_of(ctx).archive.recover_interrupted()
    for rid in ids:
        click.echo(f"recovered {rid} (interrupted)")
    if not ids:
        click.echo("nothing to recover")
