"""``opsctl awx import``: an AWX job's event stream becomes a change record."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import click

from ..awx import fetch_job, import_job, read_json_file
from ..errors import BadInput
from .context import context_of, handle_errors


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@click.group("awx")
def awx() -> None:
    """Runs launched from AWX / Automation Platform: import them as change records."""


@awx.command("import")
@click.argument("job_arg", metavar="[JOB_ID]", type=int, required=False)
@click.option(
    "--from-api",
    "job_id",
    type=int,
    metavar="JOB_ID",
    help="The same as JOB_ID: fetch the job and its events from $AWX_HOST with $AWX_TOKEN.",
)
@click.option(
    "--from-file",
    "--job-events",
    "events_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Instead of the API: job events as exported from /api/v2/jobs/N/job_events/ (a page, a "
    "list of pages, a list of events or JSON lines). The record says it came from a file.",
)
@click.option(
    "--job",
    "job_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --from-file: the job as exported from /api/v2/jobs/N/ (status, times, template, extra vars).",
)
@click.option("--operation", help="Catalog operation (default: the job template's name, else its playbook).")
@click.option("--env", help="Environment (default: the AWX inventory's name).")
@click.option("--ticket", help="Change ticket (default: the job's extra var opsctl_ticket).")
@click.option("--reason", help="Why the job ran.")
@click.option(
    "--launch",
    "launch_type",
    type=click.Choice(("awx", "ci")),
    default="awx",
    show_default=True,
    help="Launch type of the record (ci: a pipeline launched the AWX job).",
)
@click.option(
    "--instance",
    default=lambda: os.environ.get("AWX_HOST"),
    help="Name or URL of the AWX instance (default: $AWX_HOST).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_context
@handle_errors
def import_cmd(
    ctx: click.Context,
    job_arg: int | None,
    events_file: Path | None,
    job_file: Path | None,
    job_id: int | None,
    operation: str | None,
    env: str | None,
    ticket: str | None,
    reason: str | None,
    launch_type: str,
    instance: str | None,
    as_json: bool,
) -> None:
    """Build the change record of one AWX job and commit it to the archive: fetched from the
    AWX API (JOB_ID; $AWX_HOST, $AWX_TOKEN), or from exported files (--from-file, recorded as such)."""
    job_data: dict[str, Any] | None = None
    events: object
    if job_arg is not None and job_id is not None and job_arg != job_id:
        raise BadInput(f"two job ids: {job_arg} and --from-api {job_id}")
    job_id = job_arg if job_arg is not None else job_id
    if job_id is not None and events_file is not None:
        raise BadInput("give a JOB_ID (from the AWX API) or --from-file FILE, not both")
    if job_file is not None and events_file is None:
        raise BadInput("--job FILE goes with --from-file FILE (the events); from the API, give the JOB_ID")
    if job_id is not None:
        host = os.environ.get("AWX_HOST")
        if not host:
            raise BadInput(
                "importing from the AWX API needs AWX_HOST (and AWX_TOKEN); or give exported files with --from-file"
            )
        job_data, events_data = fetch_job(host, job_id, os.environ.get("AWX_TOKEN"))
        events = events_data
        origin: dict[str, Any] = {
            "source": "api",
            "url": urllib.parse.urljoin(host.rstrip("/") + "/", f"api/v2/jobs/{job_id}/"),
        }
        instance = instance or host
    elif events_file is not None:
        events = read_json_file(events_file)
        files = [{"name": events_file.name, "sha256": _sha256(str(events))}]
        if job_file is not None:
            text = str(read_json_file(job_file))
            try:
                loaded = json.loads(text)
            except ValueError as exc:
                raise BadInput(f"{job_file}: not JSON ({exc})") from exc
            job_data = loaded if isinstance(loaded, dict) else None
            files.append({"name": job_file.name, "sha256": _sha256(text)})
        origin = {"source": "file", "files": files}
    else:
        raise BadInput("give the AWX JOB_ID (fetched from $AWX_HOST), or --from-file FILE (and optionally --job FILE)")
    record = import_job(
        context_of(ctx).archive,
        events,
        job_data,
        operation=operation,
        env=env,
        ticket=ticket,
        reason=reason,
        launch_type=launch_type,
        instance=instance,
        origin=origin,
    )
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    awx_info = record.get("awx") or {}
    click.echo(
        f"imported AWX job {awx_info.get('job_id')} ({awx_info.get('events')} events): "
        f"{record['operation']} on {record['environment']}: {record['status']}"
    )
    if awx_info.get("source") == "file":
        click.echo("  from files, not from the AWX API: the record says so (awx.source = file)")
    click.echo(f"  record: {record['id']}   (opsctl records show {record['id']})")
