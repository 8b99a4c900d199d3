"""``opsctl run`` and ``opsctl ops``: run an operation of the catalog (live progress, summary,
change record) and list the catalog."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click

from ..errors import OpsError
from ..operations import get_environment, get_operation, list_environments, load_catalog
from ..runner import Executor, RunRequest, needs_confirmation
from ..textclean import clean_lines
from .context import context_of, fail


@click.command("ops")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
def ops_cmd(as_json: bool) -> None:
    """List the operations of the catalog."""
    try:
        catalog = load_catalog()
    except OpsError as err:
        fail(err)
    rows: list[dict[str, Any]] = [
        {
            "name": op.name,
            "playbook": f"playbooks/{op.playbook}",
            "risk": op.risk,
            "high_risk_in": list(op.high_risk_in),
            "read_only": op.read_only,
            "requires": op.requirements(),
            "inputs": op.accepted(),
            "description": op.description,
        }
        for op in catalog.values()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    click.echo(f"{'OPERATION':<{width}}  {'RISK':<6}  {'PLAYBOOK':<24}  DESCRIPTION / REQUIRES")
    for r in rows:
        risk = r["risk"] + ("*" if r["high_risk_in"] else "")
        click.echo(f"{r['name']:<{width}}  {risk:<6}  {r['playbook']:<24}  {r['description']}")
        click.echo(f"{'':<{width}}  {'':<6}  {'':<24}  requires: {'; '.join(r['requires'])}")
    click.echo(f"\nenvironments: {', '.join(list_environments())}   (* high risk in: production)")


class Progress:
    """Live progress: one rewritten status line on a terminal, one line per task otherwise."""

    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self._last_task: str | None = None

    def __call__(self, p: dict[str, Any]) -> None:
        event = p.get("event")
        task = p.get("task")
        if self.tty:
            line = (
                f"\r\x1b[K[{p.get('play') or '-'}] {task or '...'}  "
                f"hosts done {p.get('task_hosts_done', 0)}/{p.get('hosts_seen', 0)}  "
                f"failed {len(p.get('hosts_failed') or [])}  changes {p.get('changes', 0)}"
            )
            self.stream.write(line[:200])
            if event in ("runner_on_failed", "runner_on_unreachable") and p.get("stdout"):
                self.stream.write("\r\x1b[K" + clean_lines(str(p["stdout"]).strip()) + "\n")
        else:
            if task and task != self._last_task and event in ("playbook_on_task_start",):
                self.stream.write(f"TASK {task}\n")
            if event in ("runner_on_failed", "runner_on_unreachable") and p.get("stdout"):
                self.stream.write(clean_lines(str(p["stdout"]).strip()) + "\n")
        self._last_task = task
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def summary(record: dict[str, Any]) -> str:
    lines = [
        f"{record.get('operation')} on {record.get('environment')}: {str(record.get('status')).upper()}"
        f" (rc {record.get('rc')}, {record.get('duration_s', 0):.1f} s)",
    ]
    if record.get("ticket"):
        kind = " (standard change)" if record.get("change_type") == "standard" else ""
        lines.append(f"  ticket: {record['ticket']}{kind}")
    if record.get("error"):
        lines.append(f"  reason: {record['error']}")
    hosts = record.get("hosts") or {}
    if hosts:
        lines.append(f"  {'HOST':<20} {'ok':>4} {'chg':>4} {'fail':>4} {'unrch':>5} {'skip':>4}")
        for name, h in sorted(hosts.items()):
            lines.append(
                f"  {name:<20} {h.get('ok', 0):>4} {h.get('changed', 0):>4} "
                f"{h.get('failed', 0):>4} {h.get('unreachable', 0):>5} {h.get('skipped', 0):>4}"
            )
    for f in (record.get("failures") or [])[:10]:
        if not f.get("ignored"):
            msg_lines = str(f.get("msg") or "").splitlines()
            if len(msg_lines) > 8:  # the head says what failed, the tail of stderr why
                msg_lines = [msg_lines[0], "...", *msg_lines[-6:]]
            msg = "\n      ".join(msg_lines)
            lines.append(f"  FAILED {f.get('host')}: {f.get('task')}: {msg}")
    changes = record.get("changes") or []
    lines.append(f"  changed tasks: {len(changes)}")
    lines.append(f"  record: {record.get('id')}   (opsctl records show {record.get('id')})")
    return clean_lines("\n".join(lines))  # task output may carry escape sequences


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.argument("operation")
@click.option("--env", "env", required=True, help="Environment: a directory under inventories/.")
@click.option("--limit", help="Ansible host pattern to restrict the run.")
@click.option("--tags", multiple=True, help="Only tasks with these tags (repeatable or comma list).")
@click.option("--skip-tags", multiple=True, help="Skip tasks with these tags.")
@click.option("--check", is_flag=True, help="Dry run: report what would change.")
@click.option("--diff", is_flag=True, help="Show and record the differences of changed files.")
@click.option(
    "--ticket", help="Change ticket id (required in production; must match the environment's ticket_pattern)."
)
@click.option(
    "--standard-change",
    "standard_change",
    is_flag=True,
    help="Run as the pre-approved standard change the environment's policy lists for "
    "OPERATION (standard_changes in inventories/ENV/.opsctl.yml); its id is the ticket.",
)
@click.option("--reason", help="Why this run (enough for read-only operations in production).")
@click.option("--incident", help="Incident id this run belongs to.")
@click.option("-e", "--extra-vars", "extra", multiple=True, help="key=value or @file.yml (repeatable).")
@click.option("--timeout", type=click.IntRange(min=1), help="Cancel the run after this many seconds.")
@click.option("--yes", is_flag=True, help="Confirm a high-risk operation without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the change record as JSON instead of the summary.")
@click.pass_context
def run_cmd(
    ctx: click.Context,
    operation: str,
    env: str,
    limit: str | None,
    tags: tuple[str, ...],
    skip_tags: tuple[str, ...],
    check: bool,
    diff: bool,
    ticket: str | None,
    standard_change: bool,
    reason: str | None,
    incident: str | None,
    extra: tuple[str, ...],
    timeout: int | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Run OPERATION against an environment and save the change record."""
    confirmed = yes
    # High-risk operations are confirmed at a terminal; without one (CI, cron) only --yes confirms.
    # An unconfirmed request still goes to the executor, which records the refusal.
    try:
        high = needs_confirmation(get_operation(operation, load_catalog()), env)
        get_environment(env)
    except OpsError:
        high = False  # the executor records the refusal with the precise reason
    if high and not yes and sys.stdin.isatty():
        confirmed = click.confirm(f"{operation} is HIGH RISK in {env}. Proceed?", default=False)
    req = RunRequest(
        operation=operation,
        env=env,
        limit=limit,
        tags=[t for group in tags for t in group.split(",") if t],
        skip_tags=[t for group in skip_tags for t in group.split(",") if t],
        check=check,
        diff=diff,
        ticket=ticket,
        reason=reason,
        incident=incident,
        extra_args=list(extra),
        confirmed=confirmed,
        timeout=timeout,
        standard_change=standard_change,
    )
    progress = None if as_json else Progress(sys.stderr, sys.stderr.isatty())
    try:
        shared = context_of(ctx)
        result = Executor(archive=shared.archive, recovered=shared.recovered).run(req, progress)
    except OpsError as err:
        fail(err)
    if progress is not None:
        progress.done()
    if as_json:
        click.echo(json.dumps(result.record, indent=2, ensure_ascii=False))
    else:
        if result.record.get("status") == "refused":
            click.echo(f"opsctl: error: {result.record.get('error')}", err=True)
        click.echo(summary(result.record))
    sys.exit(result.exit_code)
