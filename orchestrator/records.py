"""The change record: built from the ansible-runner event stream of one run.

A record is a plain JSON dict (``SCHEMA_VERSION`` 1). :class:`RecordBuilder`
is fed the events exactly as ansible-runner's ``event_handler`` receives them
(already redacted by the caller) and :meth:`RecordBuilder.finish` returns the
record without the fields the archive adds (``seq``, ``prev_hash``,
``artifacts``, ``hash``).

Size (over 400 lines): the record's whole schema in one place -- the run's metadata
(operator, source, versions, approval), the event-stream builder and the finished record --
so a field is added in one module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import pwd
import re
import secrets
import socket
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import paths
from .errors import BadInput
from .textclean import clean_optional, clean_text

if TYPE_CHECKING:  # the archive imports this module
    from .archive import Archive

SCHEMA_VERSION = 1

#: How a run ended. ``refused``: opsctl declined to start it (missing ticket, lock held, bad input).
STATUSES = ("successful", "failed", "canceled", "interrupted", "timeout", "refused")
LAUNCH_TYPES = ("manual", "scheduled", "ci", "awx")  # awx: imported from an AWX job (opsctl awx import)

#: ``20261128T134500123Z-a1b2c3``: UTC time to the millisecond + 6 random hex digits.
RECORD_ID_RE = re.compile(r"[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}", re.ASCII)

_RECAP_FIELDS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
#: playbook_on_stats key -> recap field
_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}
_MSG_TAIL_CHARS = 2000


# -- ids and times -----------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds: ``2026-11-28T13:45:00.123Z``."""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 time; naive times are taken as UTC."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except (ValueError, AttributeError) as exc:
        raise BadInput(f"not an ISO 8601 time: {text!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def new_record_id(now: datetime | None = None) -> str:
    """A new time-sortable record id, e.g. ``20261128T134500123Z-a1b2c3``."""
    now = (now or utc_now()).astimezone(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def validate_record_id(value: object) -> str:
    """Return ``value`` if it is a well-formed record id, else raise :class:`BadInput`.

    This is the guard against path traversal: only ids matching
    :data:`RECORD_ID_RE` exactly are ever joined to the archive path.
    """
    if not isinstance(value, str) or RECORD_ID_RE.fullmatch(value) is None:
        shown = repr(value)[:60]
        raise BadInput(f"invalid record id {shown}: expected the form 20261128T134500123Z-a1b2c3")
    return value


# -- metadata ----------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path, base: Path | None = None) -> dict[str, str | None]:
    """``{"path": ..., "sha256": ...}`` for the record's ``files`` field (path relative to base)."""
    shown = str(path)
    if base is not None:
        try:
            shown = str(Path(path).resolve().relative_to(Path(base).resolve()))
        except ValueError:
            pass
    try:
        digest: str | None = sha256_file(path) if Path(path).is_file() else None
    except OSError:
        digest = None
    return {"path": shown, "sha256": digest}


def inventory_entries(inventory: Path, base: Path | None = None) -> list[dict[str, str | None]]:
    """Digests of every file of an inventory (a file, or a directory walked in sorted order)."""
    inventory = Path(inventory)
    if inventory.is_file():
        return [file_entry(inventory, base)]
    entries: list[dict[str, str | None]] = []
    if inventory.is_dir():
        for dirpath, dirnames, filenames in os.walk(inventory):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    entries.append(file_entry(Path(dirpath) / name, base))
    return entries


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def login_user() -> str:
    """The real login identity of this process: its uid's account name (``pwd``), never an
    environment variable (``USER``/``LOGNAME`` are the caller's to set); the bare uid when
    the account has no passwd entry (a container's arbitrary uid)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


#: Environment variables naming the person or job a run is made for, first one set wins.
ON_BEHALF_OF_VARS = ("OPSCTL_OPERATOR", "SUDO_USER")


def on_behalf_of() -> tuple[str | None, str | None]:
    """``(name, variable)`` from :data:`ON_BEHALF_OF_VARS` (control characters removed), or ``(None, None)``."""
    for var in ON_BEHALF_OF_VARS:
        value = clean_text(os.environ.get(var) or "")
        if value:
            return value, var
    return None, None


def collect_operator(repo: Path | None = None) -> dict[str, str | None]:
    """Who runs this: the real OS user, host and git identity; a claimed identity
    (``OPSCTL_OPERATOR``: a timer, a CI job's actor; ``SUDO_USER``) is kept beside it as
    ``on_behalf_of`` (with the variable it came from), never instead of it."""
    behalf, source = on_behalf_of()
    repo = repo or Path.cwd()
    return {
        "user": login_user(),
        "on_behalf_of": behalf,
        "on_behalf_of_source": source,
        "host": socket.gethostname(),
        "git_name": clean_optional(_git(repo, "config", "user.name")) or None,
        "git_email": clean_optional(_git(repo, "config", "user.email")) or None,
    }


#: Largest approved plan (``OPSCTL_APPROVAL_PLAN``) read for the record, in bytes.
MAX_PLAN_BYTES = 10 << 20


def collect_approval() -> dict[str, Any] | None:
    """An approval given outside opsctl, by a CI gate: who approved (``OPSCTL_APPROVED_BY``,
    from ci/approver.py) and the plan they saw (``OPSCTL_APPROVAL_PLAN``: the plan.json of
    ``ci/plan.py plan``, recorded by its hash, environment, commit and operations).
    None when neither is set; :class:`BadInput` when the plan cannot be read."""
    by = clean_text(os.environ.get("OPSCTL_APPROVED_BY") or "")
    plan_path = os.environ.get("OPSCTL_APPROVAL_PLAN") or ""
    if not by and not plan_path:
        return None
    plan: dict[str, Any] | None = None
    if plan_path:
        try:
            with open(plan_path, "rb") as fh:
                data = fh.read(MAX_PLAN_BYTES + 1)
        except OSError as exc:
            raise BadInput(f"OPSCTL_APPROVAL_PLAN: cannot read {plan_path}: {exc.strerror}") from exc
        if len(data) > MAX_PLAN_BYTES:
            raise BadInput(f"OPSCTL_APPROVAL_PLAN: {plan_path} is larger than {MAX_PLAN_BYTES} bytes")
        try:
            loaded = json.loads(data)
        except ValueError as exc:
            raise BadInput(f"OPSCTL_APPROVAL_PLAN: {plan_path} is not a plan.json (not JSON)") from exc
        if not isinstance(loaded, dict) or loaded.get("mode") != "plan":
            raise BadInput(f"OPSCTL_APPROVAL_PLAN: {plan_path} is not the plan.json of `ci/plan.py plan`")
        plan = {
            "file": Path(plan_path).name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "env": clean_optional(str(loaded.get("env") or "")) or None,
            "commit": clean_optional(str(loaded.get("commit") or "")) or None,
            "operations": [
                clean_text(str(o.get("operation")))
                for o in loaded.get("operations") or []
                if isinstance(o, dict) and o.get("operation")
            ],
        }
    return {"approved_by": by or None, "plan": plan}


def operator_name(operator: Mapping[str, Any] | None) -> str | None:
    """The record's operator for reports: ``user``, plus `` (for NAME)`` when the run was
    made on someone's behalf (a timer, a CI job's actor, the user behind sudo)."""
    if not operator or not operator.get("user"):
        return None
    behalf = operator.get("on_behalf_of")
    return f"{operator['user']} (for {behalf})" if behalf else str(operator["user"])


def collect_source(repo: Path) -> dict[str, Any]:
    """The repository state the run came from: commit, branch, dirty tree."""
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git(repo, "rev-parse", "HEAD"),
        "branch": _git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": None if status is None else bool(status),
    }


def collect_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    def _v(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {
        "opsctl": __version__,
        "ansible_core": _v("ansible-core"),
        "ansible": _v("ansible"),
        "ansible_runner": _v("ansible-runner"),
        "python": platform.python_version(),
    }


@dataclass
class RunMeta:
    """Everything about a run that is known before it starts (the record's inputs).

    ``extra_vars`` must already be redacted by the caller.
    """

    id: str
    operation: str
    playbook: str | None
    environment: str
    inventory: str | None
    started: str = field(default_factory=lambda: iso(utc_now()))
    limit: str | None = None
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    check_mode: bool = False
    diff_mode: bool = False
    extra_vars: dict[str, Any] = field(default_factory=dict)
    ticket: str | None = None
    reason: str | None = None
    incident: str | None = None
    #: "standard" (a pre-approved standard change: the ticket is its id), "normal" (a ticket), or None.
    change_type: str | None = None
    launch: str | Mapping[str, Any] = "manual"  # "manual" | "scheduled" | "ci" | "awx" (or {"type": ...})
    operator: dict[str, str | None] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    #: The host leases taken in the shared store (environments with ``host_leases: store``):
    #: ``{"store", "hosts", "took_over"}``; None where the environment takes none.
    leases: dict[str, Any] | None = None
    #: An approval given outside opsctl (a CI gate, :func:`collect_approval`); None without one.
    approval: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        validate_record_id(self.id)
        if isinstance(self.launch, Mapping):
            self.launch = str(self.launch.get("type", ""))
        self.started = iso(parse_iso(self.started))  # one format everywhere: index range queries compare text
        if self.launch not in LAUNCH_TYPES:
            raise BadInput(f"launch type must be one of {', '.join(LAUNCH_TYPES)}, not {self.launch!r}")

    @property
    def launch_type(self) -> str:
        return self.launch if isinstance(self.launch, str) else str(self.launch.get("type", ""))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# -- the builder -------------------------------------------------------------------------


def _tail(text: Any, limit: int = _MSG_TAIL_CHARS) -> str:
    if not isinstance(text, str):
        return ""
    stripped: str = text.rstrip()
    return stripped if len(stripped) <= limit else "..." + stripped[-limit:]


#: Characters of a failed command's stderr kept beside its message.
_STDERR_TAIL_CHARS = 600


def _failure_msg(res: Mapping[str, Any]) -> str:
    msg = res.get("msg")
    if isinstance(msg, str) and msg.strip():
        # A failed command/shell task says only "non-zero return code": the reason is
        # in its stderr (or, for programs that report there, its stdout).
        detail = _tail(res.get("stderr"), _STDERR_TAIL_CHARS) or (
            _tail(res.get("stdout"), _STDERR_TAIL_CHARS) if "rc" in res else ""
        )
        if detail and detail not in msg:
            rc = res.get("rc")
            return _tail(f"{msg.strip()}{f' (rc {rc})' if isinstance(rc, int) else ''}: {detail}")
        return _tail(msg)
    for key in ("stderr", "module_stderr", "stdout", "module_stdout"):
        text = _tail(res.get(key))
        if text:
            return text
    results = res.get("results")
    if isinstance(results, list):
        msgs = [
            _failure_msg(item)
            for item in results
            if isinstance(item, Mapping) and (item.get("failed") or item.get("unreachable"))
        ]
        msgs = [m for m in msgs if m]
        if msgs:
            return _tail("; ".join(msgs))
    if msg is not None:
        return _tail(str(msg))
    return ""


def _item_label(item: Mapping[str, Any]) -> Any:
    label = item.get("_ansible_item_label", item.get("item"))
    if isinstance(label, (str, int, float, bool)) or label is None:
        return label
    return str(label)[:200]


class RecordBuilder:
    """Builds a change record incrementally from ansible-runner events."""

    def __init__(self) -> None:
        self._recap: dict[str, dict[str, int]] = {}
        self._stats: dict[str, dict[str, int]] | None = None
        self.changes: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.outputs: dict[str, Any] = {}
        self.events = 0
        self._play: str | None = None
        self._task: str | None = None
        self._task_hosts: set[str] = set()
        self._hosts_failed: set[str] = set()
        self._hosts_seen: set[str] = set()

    # -- feeding --------------------------------------------------------------

    def _count(self, host: str, what: str) -> None:
        recap = self._recap.setdefault(host, dict.fromkeys(_RECAP_FIELDS, 0))
        recap[what] += 1

    def feed(self, event: Mapping[str, Any]) -> None:
        """Take one event (as given to ansible-runner's ``event_handler``)."""
        self.events += 1
        kind = event.get("event")
        data = event.get("event_data") or {}
        if not isinstance(data, Mapping):
            return
        host = data.get("host")
        if kind == "playbook_on_play_start":
            self._play = data.get("play") or data.get("name")
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            self._task = data.get("task") or data.get("name")
            self._task_hosts = set()
        elif kind == "playbook_on_stats":
            self._on_stats(data)
        elif isinstance(host, str) and kind in (
            "runner_on_ok",
            "runner_on_failed",
            "runner_on_unreachable",
            "runner_on_skipped",
            "runner_on_async_failed",
        ):
            self._hosts_seen.add(host)
            self._task_hosts.add(host)
            res = data.get("res")
            res = res if isinstance(res, Mapping) else {}
            if kind == "runner_on_ok":
                self._on_ok(host, data, res)
            elif kind == "runner_on_skipped":
                self._count(host, "skipped")
            else:
                self._on_failed(host, data, res, unreachable=kind == "runner_on_unreachable")

    def _base(self, host: str, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "host": host,
            "task": data.get("task"),
            "role": data.get("role") or None,
            "module": data.get("resolved_action") or data.get("task_action"),
        }

    def _on_ok(self, host: str, data: Mapping[str, Any], res: Mapping[str, Any]) -> None:
        changed = bool(res.get("changed"))
        self._count(host, "ok")  # as in Ansible's recap, ok includes changed
        if changed:
            self._count(host, "changed")
        if not changed:
            return
        results = res.get("results")
        added = False
        if isinstance(results, list):
            for item in results:
                if isinstance(item, Mapping) and item.get("changed"):
                    change = self._base(host, data)
                    change["item"] = _item_label(item)
                    change["diff"] = item.get("diff")
                    self.changes.append(change)
                    added = True
        if not added:
            change = self._base(host, data)
            change["diff"] = res.get("diff")
            self.changes.append(change)

    def _on_failed(self, host: str, data: Mapping[str, Any], res: Mapping[str, Any], *, unreachable: bool) -> None:
        ignored = bool(data.get("ignore_errors")) and not unreachable
        if unreachable:
            self._count(host, "unreachable")
            self._hosts_failed.add(host)
        elif ignored:
            self._count(host, "ok")
            self._count(host, "ignored")
        else:
            self._count(host, "failed")
            self._hosts_failed.add(host)
        failure = self._base(host, data)
        failure.update({"msg": _failure_msg(res), "unreachable": unreachable, "ignored": ignored})
        self.failures.append(failure)

    def _on_stats(self, data: Mapping[str, Any]) -> None:
        stats: dict[str, dict[str, int]] = {}
        for key, field_name in _STATS_KEYS.items():
            per_host = data.get(key)
            if not isinstance(per_host, Mapping):
                continue
            for host, count in per_host.items():
                stats.setdefault(str(host), dict.fromkeys(_RECAP_FIELDS, 0))[field_name] = int(count or 0)
        self._stats = stats
        artifact = data.get("artifact_data")
        if isinstance(artifact, Mapping):
            self.outputs = dict(artifact)

    # -- reading ---------------------------------------------------------------

    @property
    def hosts(self) -> dict[str, dict[str, int]]:
        """The per-host recap: from the stats event if there was one, else counted from events."""
        source = self._stats if self._stats is not None else self._recap
        return {host: dict(source[host]) for host in sorted(source)}

    @property
    def has_stats(self) -> bool:
        return self._stats is not None

    def progress(self) -> dict[str, Any]:
        """What the run is doing now, for live progress output."""
        return {
            "play": self._play,
            "task": self._task,
            "task_hosts_done": len(self._task_hosts),
            "hosts_seen": len(self._hosts_seen),
            "hosts_failed": sorted(self._hosts_failed),
            "changes": len(self.changes),
            "events": self.events,
        }

    def finish(
        self,
        meta: RunMeta,
        *,
        status: str,
        rc: int,
        ended: str | None = None,
        redaction: Mapping[str, Any] | None = None,
        error: str | None = None,
        output_keys: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """The record (without ``seq``, ``prev_hash``, ``artifacts``, ``hash``).

        ``error``: why the run did not succeed, in words (redacted by the caller).
        ``output_keys``: the outputs the operation promises; any not produced are
        listed in ``outputs_missing``.
        """
        if status not in STATUSES:
            raise BadInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        ended = iso(parse_iso(ended)) if ended else iso(utc_now())
        duration = max(0.0, (parse_iso(ended) - parse_iso(meta.started)).total_seconds())
        return {
            "schema_version": SCHEMA_VERSION,
            "id": meta.id,
            "operation": meta.operation,
            "playbook": meta.playbook,
            "environment": meta.environment,
            "inventory": meta.inventory,
            "limit": meta.limit,
            "tags": list(meta.tags),
            "skip_tags": list(meta.skip_tags),
            "check_mode": meta.check_mode,
            "diff_mode": meta.diff_mode,
            "extra_vars": dict(meta.extra_vars),
            "ticket": meta.ticket,
            "reason": meta.reason,
            "incident": meta.incident,
            "change_type": meta.change_type,
            "launch": {"type": meta.launch_type},
            "operator": dict(meta.operator),
            "source": dict(meta.source),
            "files": dict(meta.files),
            "versions": dict(meta.versions),
            "targets": list(meta.targets),
            "started": meta.started,
            "ended": ended,
            "duration_s": round(duration, 3),
            "status": status,
            "rc": rc,
            "hosts": self.hosts,
            "changes": list(self.changes),
            "failures": list(self.failures),
            "outputs": dict(self.outputs),
            "outputs_missing": sorted(k for k in (output_keys or ()) if k not in self.outputs),
            "error": error,
            "redaction": dict(redaction)
            if redaction is not None
            else {"keys": [], "values_masked": 0, "min_length": 4},
            # only where the environment takes host leases (orchestrator/leases.py)
            **({"leases": dict(meta.leases)} if meta.leases is not None else {}),
            # only where a CI gate approved the run (ci/approver.py, ci/plan.py apply --plan)
            **({"approval": dict(meta.approval)} if meta.approval is not None else {}),
        }


def build_from_events(
    events: Iterable[Mapping[str, Any]],
    meta: RunMeta,
    *,
    status: str,
    rc: int,
    ended: str | None = None,
    redaction: Mapping[str, Any] | None = None,
    error: str | None = None,
    output_keys: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Build a whole record from a finished (or interrupted) event stream."""
    builder = RecordBuilder()
    for event in events:
        builder.feed(event)
    return builder.finish(
        meta, status=status, rc=rc, ended=ended, redaction=redaction, error=error, output_keys=output_keys
    )


def commit_event_record(
    archive: Archive,
    *,
    operation: str,
    environment: str,
    text: str,
    fields: Mapping[str, Any],
    reason: str | None = None,
    incident: str | None = None,
) -> dict[str, Any]:
    """The change record of a step that runs no playbook (an incident's or a request's): who,
    from which source and with which versions as for a run, ``text`` as its output and
    ``fields`` added to the record. Committed whole, or nothing is left in the archive."""
    repo = paths.repo_root()
    meta = RunMeta(
        id=new_record_id(),
        operation=operation,
        playbook=None,
        environment=environment,
        inventory=None,
        incident=incident,
        reason=reason,
        operator=collect_operator(repo),
        source=collect_source(repo),
        versions=collect_versions(),
    )
    pending = archive.begin(meta.id, meta)
    try:
        pending.write_stdout(text.rstrip("\n") + "\n")
        record = RecordBuilder().finish(meta, status="successful", rc=0)
        record.update(fields)
        return archive.commit(pending, record)
    except BaseException:
        if not pending.closed:
            pending.discard()
        raise
