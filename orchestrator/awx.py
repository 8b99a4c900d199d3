"""Runs launched from AWX / Ansible Automation Platform become change records too.

AWX runs the playbooks of this repository itself (no ``opsctl`` on its nodes), so
its jobs are imported afterwards: the job's event stream, as the AWX API returns
it (``GET /api/v2/jobs/N/job_events/``, pages of ``{"count", "next", "results": [...]}``),
and optionally the job itself (``GET /api/v2/jobs/N/``) are turned back into
ansible-runner events (AWX stores exactly what ansible-runner emitted, plus its own
bookkeeping fields), fed through the same :class:`RecordBuilder` as a local run,
redacted, and committed to the archive with launch type ``awx`` (or ``ci`` when a
pipeline drove AWX). The AWX job's identity is kept in the record's ``awx`` field,
and importing the same job twice is refused.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, paths
from .archive import Archive
from .errors import BadInput, OpsError
from .operations import Operation, get_environment, get_operation, load_catalog
from .records import RecordBuilder, RunMeta, collect_operator, iso, new_record_id, parse_iso
from .redact import Redactor
from .textclean import clean_optional, clean_text

#: AWX job status -> record status (AWX ``error`` means the job could not run properly).
_STATUS = {"successful": "successful", "failed": "failed", "error": "failed", "canceled": "canceled"}
#: Fields of an AWX job event that ansible-runner emitted (the rest is AWX bookkeeping).
_RUNNER_FIELDS = (
    "event",
    "uuid",
    "parent_uuid",
    "counter",
    "stdout",
    "start_line",
    "end_line",
    "created",
    "event_data",
    "verbosity",
    "pid",
)


@dataclass
class AwxJob:
    """What the import knows about the AWX job (from /api/v2/jobs/N/, when given)."""

    data: dict[str, Any]

    @property
    def id(self) -> int | None:
        value = self.data.get("id")
        return value if isinstance(value, int) else None

    def summary(self, key: str) -> dict[str, Any]:
        value = (self.data.get("summary_fields") or {}).get(key)
        return value if isinstance(value, dict) else {}

    def extra_vars(self) -> dict[str, Any]:
        raw = self.data.get("extra_vars")
        if isinstance(raw, dict):
            return raw
        if isinstance(raw, str) and raw.strip():
            try:
                loaded = json.loads(raw)
            except ValueError:
                import yaml

                try:
                    loaded = yaml.safe_load(raw)
                except yaml.YAMLError:
                    return {}
            return loaded if isinstance(loaded, dict) else {}
        return {}


# -- reading the API's JSON --------------------------------------------------------------


def load_events(data: Any) -> list[dict[str, Any]]:
    """AWX job events from an API page, a list of pages, a list of events or JSON lines text;
    sorted by ``counter``, duplicates (the same counter twice, e.g. overlapping pages) dropped."""
    if isinstance(data, str):
        stripped = data.strip()
        try:
            data = json.loads(stripped) if stripped else []
        except ValueError:
            try:
                data = [json.loads(line) for line in stripped.splitlines() if line.strip()]
            except ValueError as exc:
                raise BadInput(f"job events are neither JSON nor JSON lines: {exc}") from exc
    items: list[Any] = []
    pages = data if isinstance(data, list) else [data]
    for page in pages:
        if isinstance(page, Mapping) and isinstance(page.get("results"), list):
            items.extend(page["results"])
        else:
            items.append(page)
    events: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("event"), str):
            raise BadInput("not an AWX job event (no 'event' field): " + json.dumps(item, default=str)[:120])
        counter = item.get("counter")
        if not isinstance(counter, int):
            raise BadInput(f"AWX job event without an integer counter: {item.get('event')}")
        events[counter] = dict(item)
    if not events:
        raise BadInput("the job event stream is empty")
    return [events[c] for c in sorted(events)]


def to_runner_event(awx_event: Mapping[str, Any], job_id: int | None) -> dict[str, Any]:
    """One AWX job event back in ansible-runner's shape."""
    event = {k: awx_event[k] for k in _RUNNER_FIELDS if k in awx_event}
    data = dict(awx_event.get("event_data") or {})
    host = awx_event.get("host_name")
    if isinstance(host, str) and host and "host" not in data:
        data["host"] = host  # AWX's host_name is the inventory hostname
    for key in ("play", "task", "role", "playbook"):
        if awx_event.get(key) and key not in data:
            data[key] = awx_event[key]
    event["event_data"] = data
    event["runner_ident"] = f"awx-job-{job_id}" if job_id is not None else "awx"
    created = event.get("created")
    if isinstance(created, str):
        try:
            event["created"] = parse_iso(created).isoformat()
        except BadInput:
            pass
    return event


# -- deciding what the run was -----------------------------------------------------------


def _playbook_of(events: list[dict[str, Any]], job: AwxJob | None) -> str | None:
    if job is not None and isinstance(job.data.get("playbook"), str):
        return str(job.data["playbook"])
    for e in events:
        pb = (e.get("event_data") or {}).get("playbook") or e.get("playbook")
        if isinstance(pb, str) and pb:
            return pb
    return None


def resolve_operation(
    name: str | None, playbook: str | None, job: AwxJob | None, catalog: Mapping[str, Operation]
) -> Operation:
    """--operation, else the job template's name when it is an operation, else the playbook."""
    if name:
        return get_operation(name, dict(catalog))
    template = job.summary("job_template").get("name") if job is not None else None
    if isinstance(template, str) and template in catalog:
        return catalog[template]
    if playbook:
        base = Path(playbook).name
        matches = [op for op in catalog.values() if op.playbook == base or f"playbooks/{op.playbook}" == playbook]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise BadInput(
                f"playbook {playbook} belongs to several operations "
                f"({', '.join(m.name for m in matches)}): pass --operation"
            )
    raise BadInput(
        "cannot tell which operation the AWX job ran: name the job template after the operation, or pass --operation"
    )


def _status(events: list[dict[str, Any]], builder: RecordBuilder, job: AwxJob | None) -> tuple[str, int, str | None]:
    if job is not None and isinstance(job.data.get("status"), str) and job.data["status"] in _STATUS:
        status = _STATUS[job.data["status"]]
        explanation = job.data.get("job_explanation") or None
        error = (
            str(explanation) if explanation else (None if status == "successful" else f"AWX job {job.data['status']}")
        )
    elif not builder.has_stats:
        status, error = (
            "interrupted",
            "the AWX event stream has no playbook_on_stats event (job still running or cut off)",
        )
    elif any(h.get("failed") or h.get("unreachable") for h in builder.hosts.values()):
        status, error = "failed", None
    else:
        status, error = "successful", None
    rc = {"successful": 0, "failed": 2, "canceled": -1, "interrupted": -1}.get(status, -1)
    return status, rc, error


def _already_imported(
    archive: Archive, job_id: int, instance: str | None, started: str, operation: str, env: str
) -> str | None:
    for row in archive.list(env=env, op=operation, since=started):
        awx = archive.get(row["id"]).get("awx") or {}
        if awx.get("job_id") == job_id and awx.get("instance") == instance:
            return str(row["id"])
    return None


def import_job(
    archive: Archive,
    events_data: Any,
    job_data: Mapping[str, Any] | None = None,
    *,
    operation: str | None = None,
    env: str | None = None,
    ticket: str | None = None,
    reason: str | None = None,
    launch_type: str = "awx",
    instance: str | None = None,
    origin: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build and commit the change record of one AWX job; returns the committed record.

    ``origin`` says where the job came from, for the record's ``awx`` field: ``{"source":
    "api", "url": ...}`` (fetched from the configured AWX) or ``{"source": "file", "files":
    [{name, sha256}], ...}`` (files someone handed over: the record says so). The importing
    person (:func:`collect_operator`) is always recorded as ``awx.imported_by``."""
    if launch_type not in ("awx", "ci"):
        raise BadInput(f"launch type of an AWX import is awx or ci, not {launch_type!r}")
    job = AwxJob(dict(job_data)) if job_data else None
    job_id = job.id if job is not None else None
    raw_events = load_events(events_data)
    if job_id is None:
        ids = {e.get("job") for e in raw_events if isinstance(e.get("job"), int)}
        job_id = ids.pop() if len(ids) == 1 else None
    catalog = load_catalog()
    playbook = _playbook_of(raw_events, job)
    op = resolve_operation(operation, playbook, job, catalog)
    env_name = env or (job.summary("inventory").get("name") if job is not None else None)
    if not isinstance(env_name, str) or not env_name:
        raise BadInput(
            "cannot tell the environment: name the AWX inventory after it (lab, staging, production) or pass --env"
        )
    environment = get_environment(env_name)

    redactor = Redactor()
    try:  # vault values of the inventory, when this machine can decrypt them
        from .runner import _vault_secrets

        redactor.add_values(_vault_secrets(environment))
    except OpsError:
        pass
    raw_vars = job.extra_vars() if job is not None else {}
    safe_vars, _ = redactor.redact_vars(raw_vars)
    if ticket is None and isinstance(raw_vars.get("opsctl_ticket"), str):
        ticket = raw_vars["opsctl_ticket"]
    # A scheduled AWX job may carry its standard change id (the one the policy lists for the operation).
    ticket = None if ticket is None else clean_text(ticket)
    standard = ticket is not None and ticket == environment.standard_changes.get(op.name)
    if ticket is not None and not standard:
        ticket = environment.check_ticket(ticket)
    reason = clean_optional(reason) or None
    if environment.requires_ticket and not (ticket or reason):
        raise BadInput(
            f"environment {env_name!r} requires --ticket (or --reason for a read-only operation) "
            "for the imported record; AWX can pass it as the extra var opsctl_ticket"
        )

    events = [redactor.redact_obj(to_runner_event(e, job_id)) for e in raw_events]
    builder = RecordBuilder()
    for event in events:
        builder.feed(event)
    created = [e["created"] for e in events if isinstance(e.get("created"), str)]
    started = (job.data.get("started") if job is not None else None) or (created[0] if created else None)
    ended = (job.data.get("finished") if job is not None else None) or (created[-1] if created else None)
    if not isinstance(started, str):
        raise BadInput("cannot tell when the AWX job started (no job 'started', no event 'created')")
    started_iso = iso(parse_iso(started))
    if job_id is not None and _already_imported(archive, job_id, instance, started_iso, op.name, env_name):
        raise BadInput(f"AWX job {job_id} is already in the archive")
    status, rc, error = _status(events, builder, job)

    created_by = job.summary("created_by").get("username") if job is not None else None
    targets = sorted(builder.hosts) or sorted(
        {str((e.get("event_data") or {}).get("host")) for e in events if (e.get("event_data") or {}).get("host")}
    )
    meta = RunMeta(
        id=new_record_id(parse_iso(started_iso)),
        operation=op.name,
        playbook=str(Path("playbooks") / op.playbook),
        environment=env_name,
        inventory=str(Path("inventories") / env_name),
        started=started_iso,
        limit=(job.data.get("limit") or None) if job is not None else None,
        tags=[t for t in str((job.data.get("job_tags") if job else "") or "").split(",") if t],
        skip_tags=[t for t in str((job.data.get("skip_tags") if job else "") or "").split(",") if t],
        check_mode=bool(job is not None and job.data.get("job_type") == "check"),
        diff_mode=bool(job is not None and job.data.get("diff_mode")),
        extra_vars=safe_vars,
        ticket=ticket,
        reason=reason,
        change_type="standard" if standard else ("normal" if ticket else None),
        launch=launch_type,
        operator={
            "user": clean_optional(created_by) or "awx",
            "on_behalf_of": None,
            "on_behalf_of_source": None,
            "host": clean_optional(instance) or "awx",
            "git_name": None,
            "git_email": None,
        },
        source={
            "commit": job.data.get("scm_revision") if job else None,
            "branch": job.data.get("scm_branch") or None if job else None,
            "dirty": False if job else None,
        },
        files={},
        # The run's tools are AWX's execution environment's, not this machine's.
        versions={
            "opsctl": __version__,
            "ansible_core": None,
            "ansible_runner": None,
            "python": None,
            "execution_environment": (job.summary("execution_environment").get("image") if job is not None else None),
        },
        targets=targets,
    )
    pending = archive.begin(meta.id, meta)
    try:
        for event in events:
            pending.write_event(event)
            if event.get("stdout"):
                pending.write_stdout(str(event["stdout"]) + "\n")
    except BaseException:
        pending.discard()
        raise
    record = builder.finish(
        meta,
        status=status,
        rc=rc,
        ended=ended if isinstance(ended, str) else None,
        error=redactor.redact_text(error) if error else None,
        redaction=redactor.report(),
        output_keys=list(op.outputs),
    )
    if job is not None and isinstance(job.data.get("artifacts"), Mapping) and not record["outputs"]:
        record["outputs"] = dict(redactor.redact_obj(job.data["artifacts"]))
        record["outputs_missing"] = sorted(k for k in op.outputs if k not in record["outputs"])
    given = dict(origin or {"source": "file"})
    url = given.get("url")
    if url is None and job is not None and isinstance(job.data.get("url"), str) and instance:
        url = urllib.parse.urljoin(instance.rstrip("/") + "/", job.data["url"])  # the job's own API address
    record["awx"] = {
        "source": given.get("source"),
        "url": url,
        **({"files": given["files"]} if given.get("files") else {}),
        "imported_by": collect_operator(paths.repo_root()),
        "instance": instance,
        "job_id": job_id,
        "job_template": job.summary("job_template").get("name") if job is not None else None,
        "job_type": job.data.get("job_type") if job is not None else None,
        "launch_type": job.data.get("launch_type") if job is not None else None,
        "status": job.data.get("status") if job is not None else None,
        "playbook": playbook,
        "events": len(events),
    }
    return archive.commit(pending, record)


# -- fetching from the API (for the post-job step) -----------------------------------------


def fetch_json(url: str, token: str | None, timeout: float = 60) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - the configured AWX
            return json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise OpsError(f"cannot read {url}: {exc}") from exc


def fetch_job(base_url: str, job_id: int, token: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job and all its event pages from the AWX API (follows ``next`` links, only on the
    configured AWX: a link to another scheme, host or port is refused, never fetched)."""
    base = base_url.rstrip("/") + "/"
    home = urllib.parse.urlsplit(base)
    job = fetch_json(urllib.parse.urljoin(base, f"api/v2/jobs/{job_id}/"), token)
    pages: list[dict[str, Any]] = []
    url: str | None = urllib.parse.urljoin(base, f"api/v2/jobs/{job_id}/job_events/?order_by=counter&page_size=200")
    while url:
        page = fetch_json(url, token)
        if not isinstance(page, dict):
            raise OpsError(f"unexpected answer from {url}")
        pages.append(page)
        nxt = page.get("next")
        url = urllib.parse.urljoin(base, nxt) if isinstance(nxt, str) and nxt else None
        if url is not None:
            there = urllib.parse.urlsplit(url)
            if (there.scheme, there.netloc) != (home.scheme, home.netloc):
                raise OpsError(
                    f"the AWX answer links its next page to {there.scheme}://{there.netloc}, "
                    f"not to the configured AWX ({home.scheme}://{home.netloc}): refused"
                )
        if len(pages) > 10000:
            raise OpsError("too many event pages")
    return job if isinstance(job, dict) else {}, pages


def read_json_file(path: Path) -> Any:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
