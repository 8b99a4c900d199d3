"""``opsctl awx import``: an AWX job's event stream becomes a change record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from ..awx import fetch_job, import_job, read_json_file
from ..errors import BadInput
from .context import context_of, handle_errors



@click.group("awx")
def awx() -> None:
    """Runs launched from AWX / Automation Platform: import them as change records."""


@awx.command("import")
@click.option("--job-events", "events_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Job events as exported from /api/v2/jobs/N/job_events/ (a page, a list of pages, "
                   "a list of events or JSON lines).")
@click.option("--job", "job_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The job as exported from /api/v2/jobs/N/ (status, times, template, extra vars).")
@click.option("--from-api", "job_id", type=int, metavar="JOB_ID",
              help="Fetch job JOB_ID and its events from $AWX_HOST with $AWX_TOKEN instead of files.")
@click.option("--operation", help="Catalog operation (default: the job template's name, else its playbook).")
@click.option("--env", help="Environment (default: the AWX inventory's name).")
@click.option("--ticket", help="Change ticket (default: the job's extra var opsctl_ticket).")
@click.option("--reason", help="Why the job ran.")
@click.option("--launch", "launch_type", type=click.Choice(("awx", "ci")), default="awx", show_default=True,
              help="Launch type of the record (ci: a pipeline launched the AWX job).")
@click.option("--instance", default=lambda: os.environ.get("AWX_HOST"),
              help="Name or URL of the AWX instance (default: $AWX_HOST).")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_context
@handle_errors
def import_cmd(ctx: click.Context, events_file: Path | None, job_file: Path | None, job_id: int | None,
               operation: str | None, env: str | None, ticket: str | None, reason: str | None,
               launch_type: str, instance: str | None, as_json: bool) -> None:
    """Build the change record of one AWX job from its events and commit it to the archive."""
    job_data: dict[str, Any] | None = None
    events: object
    if job_id is not None:
        host = os.environ.get("AWX_HOST")
        if not host:
            raise BadInput("--from-api needs AWX_HOST (and AWX_TOKEN)")
        job_data, events_data = fetch_job(host, job_id, os.environ.get("AWX_TOKEN"))
        events = events_data
    elif events_file is not None:
        events = read_json_file(events_file)
        if job_file is not None:
            try:
                loaded = json.loads(str(read_json_file(job_file)))
            except ValueError as exc:
                raise BadInput(f"{job_file}: not JSON ({exc})") from exc
            job_data = loaded if isinstance(loaded, dict) else None
    else:
        raise BadInput("give --job-events FILE (and optionally --job FILE), or --from-api JOB_ID")
    record = import_job(context_of(ctx).archive, events, job_data, operation=operation, env=env, ticket=ticket,
                        reason=reason, launch_type=launch_type, instance=instance)
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    awx_info = record.get("awx") or {}
    click.echo(f"imported AWX job {awx_info.get('job_id')} ({awx_info.get('events')} events): "
               f"{record['operation']} on {record['environment']}: {record['status']}")
    click.echo(f"  record: {record['id']}   (opsctl records show {record['id']})")
