"""Run one catalog operation through ansible-runner and record it.

The flow: validate the request against the catalog and the environment's
policy, recover runs an earlier ``opsctl`` left unfinished, resolve the target
hosts, take the host lock, start a pending record, stream ansible-runner's
events (redacted) into the record builder, the pending record and the live
progress callback, and finally commit the change record to the archive. Every
attempt that gets this far leaves a record, refused ones included.

Size (over 400 lines): one run's whole life -- request checks, policy, targets, the ansible-
runner call with its stop/timeout handling and the record -- kept in one module so the order
of those steps is read in one place; input parsing helpers are the first candidates to move
out.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import stat
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from . import paths, workdirs
from .archive import Archive
from .errors import BadInput, LockHeld, OpsError
from .leases import Leases, host_leases
from .lock import HostLock
from .proc import process_identity, process_matches
from .operations import (
    POLICY_FILE,
    RESERVED_VAR_RE,
    Environment,
    Operation,
    get_environment,
    get_operation,
    load_catalog,
    yaml_problem,
)
from .records import (
    LAUNCH_TYPES,
    RecordBuilder,
    RunMeta,
    collect_approval,
    collect_operator,
    collect_source,
    collect_versions,
    file_entry,
    inventory_entries,
    new_record_id,
)
from .redact import MASK, Redactor, _scalar_leaves, vault_values
from .targets import resolve_targets
from .textclean import clean_optional, clean_text, has_controls

#: Seconds ptyprocess sleeps after closing the pty of ansible-playbook (its default: 0.1).
PTY_CLOSE_DELAY = 0.01

#: ansible-runner settings of every run. suppress_output_file: the pending record keeps the
#: (redacted) stdout; runner's own copy would be unredacted and is deleted unread anyway.
RUNNER_SETTINGS: dict[str, Any] = {"pexpect_timeout": 1, "suppress_ansible_output": True, "suppress_output_file": True}

EXIT_OK = 0
EXIT_FAILED = 1
#: A run a role refused for its input before changing anything (every failure's message
#: starts with :data:`BAD_INPUT_PREFIX`): the same code as opsctl's own input checks.
EXIT_BAD_INPUT = 2
BAD_INPUT_PREFIX = "bad input: "
EXIT_CANCELED = 130

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class RunRequest:
    operation: str
    env: str
    limit: str | None = None
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    check: bool = False
    diff: bool = False
    ticket: str | None = None
    reason: str | None = None
    incident: str | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    confirmed: bool = False
    timeout: int | None = None
    #: Run as the pre-approved standard change the environment's policy lists for the operation.
    standard_change: bool = False
    launch_type: str = field(default_factory=lambda: os.environ.get("OPSCTL_LAUNCH", "manual"))


@dataclass
class RunResult:
    record: dict[str, Any]
    exit_code: int


# ----------------------------------------------------------------------------- inputs

#: Largest file opsctl reads for ``-e @file`` and ``--limit @file``, in bytes.
MAX_INPUT_FILE = 1 << 20
#: Most values (mappings, lists and scalars, counted as expanded) one ``-e @file`` may hold:
#: a few YAML aliases can otherwise stand for billions of values.
MAX_VARS_VALUES = 100_000

_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_input_file(path: Path, what: str) -> str:
    """The text of a small regular file named on the command line, else :class:`BadInput`.

    The file is opened without blocking (a FIFO is refused, not waited on), judged on the
    open descriptor (it cannot be swapped after the check) and read to at most
    :data:`MAX_INPUT_FILE` + 1 bytes: a device such as ``/dev/zero`` or a huge file is
    never read whole.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise BadInput(f"{what}: cannot read {path}: {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
            raise BadInput(f"{what}: {path} is {kind}; give a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_INPUT_FILE:
            chunk = os.read(fd, MAX_INPUT_FILE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise BadInput(f"{what}: cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if size > MAX_INPUT_FILE:
        raise BadInput(f"{what}: {path} is larger than {MAX_INPUT_FILE // 1024} KiB; give a smaller file")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what}: {path} is not UTF-8 text (byte {exc.start})") from exc


def _valid_name(key: object) -> bool:
    return (
        isinstance(key, str)
        and bool(key)
        and key.replace("_", "a").isalnum()
        and key.isascii()
        and not key[0].isdigit()
    )


def _count_values(data: Any, item: str) -> None:
    """Refuse more than :data:`MAX_VARS_VALUES` values, counting shared (aliased) ones each time."""
    stack, count = [data], 0
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_VARS_VALUES:
            raise BadInput(f"-e {item}: more than {MAX_VARS_VALUES} values (YAML aliases expanded); give fewer")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def load_vars_file(item: str) -> dict[str, Any]:
    """``-e @file``: a regular file under :data:`MAX_INPUT_FILE` holding a YAML/JSON mapping
    of variables; anything else is :class:`BadInput`."""
    text = read_input_file(Path(item[1:]), f"-e {item}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"-e {item}: not valid YAML/JSON: {yaml_problem(exc)}") from exc
    except RecursionError as exc:
        raise BadInput(f"-e {item}: nested too deeply") from exc
    if not isinstance(data, dict):
        found = "nothing" if data is None else f"a {type(data).__name__}"
        raise BadInput(f"-e {item}: the file must hold a mapping of variables (name: value), not {found}")
    bad = [str(k) for k in data if not _valid_name(k)]
    if bad:
        raise BadInput(f"-e {item}: invalid variable name {bad[0][:60]!r} (letters, digits, _; not first a digit)")
    _count_values(data, item)
    return data


def parse_extra_vars(items: list[str]) -> dict[str, Any]:
    """Parse ``-e key=value`` and ``-e @file.yml`` the way an engineer expects; errors are BadInput.

    Error messages never repeat a ``key=value`` argument or a line of a vars file: either
    may hold a secret, and the message goes to the terminal and into the record.
    """
    result: dict[str, Any] = {}
    for number, item in enumerate(items, start=1):
        if item.startswith("@"):
            result.update(load_vars_file(item))
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _valid_name(key):
            raise BadInput(
                f"-e argument {number}: expected key=value with a valid variable name, or @file.yml "
                "(the argument is not repeated here: it may hold a secret)"
            )
        result[key] = value
    return result


def check_limit(limit: str | None) -> None:
    """Refuse a blank ``--limit``, one with control characters, and ``@file`` parts whose file
    is not a small readable regular file (Ansible would read any file whole, or fail with a traceback)."""
    if limit is None:
        return
    if not limit.strip():
        raise BadInput("--limit is blank: give a host pattern (e.g. --limit node1), or leave the option out")
    if has_controls(limit):
        raise BadInput("--limit holds control characters: give a plain host pattern")
    if "@" not in limit:
        return  # no @file part: no need for Ansible's pattern splitting (importing it takes 0.25 s)
    from ansible.inventory.manager import split_host_pattern

    for part in split_host_pattern(limit):
        if part.startswith("@"):
            read_input_file(Path(part[1:]), f"--limit {part}")


def clean_request(req: RunRequest) -> RunRequest:
    """``req`` with its free text (ticket, reason, incident) cleaned of escape sequences and
    control characters; a text that was only blanks or controls becomes ``""`` (refused later)."""
    return dataclasses.replace(
        req, ticket=clean_optional(req.ticket), reason=clean_optional(req.reason), incident=clean_optional(req.incident)
    )


def needs_confirmation(op: Operation, env: str) -> bool:
    return op.risk_in(env) == "high"


def resolve_ticket(req: RunRequest, op: Operation, env: Environment) -> str | None:
    """The run's ticket: the policy's change id for ``--standard-change``, else ``--ticket``
    checked against the environment's ``ticket_pattern``."""
    if req.standard_change:
        if req.ticket is not None:
            raise BadInput("--standard-change takes its change id from the policy: leave out --ticket")
        return env.standard_change(op)
    return None if req.ticket is None else env.check_ticket(req.ticket)


def _ticket_hint(op: Operation, env: Environment) -> str:
    """How to give what the policy asks for, for the refusal message."""
    hint = f" ({env.ticket_pattern.pattern})" if env.ticket_pattern is not None else ""
    if op.name in env.standard_changes:
        hint += f", or --standard-change (pre-approved {env.standard_changes[op.name]})"
    return hint


def check_policy(req: RunRequest, op: Operation, env: Environment, extra_vars: dict[str, Any] | None = None) -> None:
    """Refuse what the catalog and the environment's policy do not allow.

    ``req`` has been through :func:`clean_request`; ``extra_vars`` are all the run's extra
    vars (``req.extra_vars`` plus the parsed ``-e``).
    """
    given = req.extra_vars if extra_vars is None else extra_vars
    if req.reason is not None and not req.reason:
        raise BadInput("--reason is blank: say why this run is made, or leave the option out")
    if req.incident is not None and not req.incident:
        raise BadInput("--incident is blank: give the incident id (INC-...), or leave the option out")
    check_limit(req.limit)
    for flag, values in (("--tags", req.tags), ("--skip-tags", req.skip_tags)):
        if any(has_controls(v) for v in values):
            raise BadInput(f"{flag} holds control characters: give plain tag names")
    ticket = resolve_ticket(req, op, env)
    if env.requires_ticket and not ticket:
        if op.read_only and req.reason:
            pass
        elif op.read_only:
            raise BadInput(
                f"environment {env.name!r} requires --ticket or --reason for {op.name!r}" + _ticket_hint(op, env)
            )
        else:
            raise BadInput(f"environment {env.name!r} requires --ticket for {op.name!r}" + _ticket_hint(op, env))
    check_inputs(op, env, given, ticket)
    missing = op.missing(given)
    if missing:
        raise BadInput(f"operation {op.name!r} requires " + ", ".join(missing))
    if needs_confirmation(op, env.name) and not req.confirmed:
        raise BadInput(
            f"operation {op.name!r} is high risk in {env.name!r}: not confirmed "
            "(confirm at the terminal prompt, or pass --yes)"
        )


def check_approval(req: RunRequest, op: Operation, env: Environment, approval: Mapping[str, Any] | None) -> None:
    """``ci_approval: required`` (production): a run that CI launches and that may change
    something (not read-only, not --check) needs the gate's approval on record: who approved
    (OPSCTL_APPROVED_BY) and the plan they saw (OPSCTL_APPROVAL_PLAN), a plan of this
    environment that covers this operation."""
    if env.settings.get("ci_approval") != "required" or req.launch_type != "ci" or op.read_only or req.check:
        return
    how = "(the CI gate: ci/approver.py and make ci-apply PLAN=...; docs/ci.md)"
    if not approval or not approval.get("approved_by"):
        raise BadInput(
            f"environment {env.name!r} requires an approval for CI runs of {op.name!r}: "
            f"OPSCTL_APPROVED_BY is not set {how}"
        )
    plan = approval.get("plan")
    if not isinstance(plan, Mapping):
        raise BadInput(
            f"environment {env.name!r} requires the approved plan for CI runs of {op.name!r}: "
            f"OPSCTL_APPROVAL_PLAN is not set {how}"
        )
    if plan.get("env") != env.name:
        raise BadInput(f"the approved plan is a plan of {plan.get('env')!r}, not of {env.name!r}")
    if op.name not in (plan.get("operations") or []):
        raise BadInput(
            f"the approved plan does not cover {op.name!r} "
            f"(it covers {', '.join(plan.get('operations') or []) or 'no operation'})"
        )


def _declared_secrets(operation: str, given: Mapping[str, Any]) -> list[str]:
    """The -e keys that the operation's catalog entry declares secret (none when the
    operation is unknown: the run is refused later anyway)."""
    try:
        op = get_operation(operation, load_catalog())
    except OpsError:
        return []
    return [k for k in given if (spec := op.input_for(k)) is not None and spec.secret]


def check_inputs(op: Operation, env: Environment, given: Mapping[str, Any], ticket: str | None) -> None:
    """Each -e key must be one the operation declares (catalog ``inputs``/``requires``): an
    extra var outranks every role variable, so an undeclared one could turn the operation
    into another (an export into an import) or reach Ansible's own settings."""
    for key in sorted(given):
        spec = op.input_for(key)
        if spec is None:
            why = (
                "Ansible's own variables and role internals are never accepted"
                if RESERVED_VAR_RE.match(key)
                else f"accepted: {', '.join(op.accepted()) or 'none'}"
            )
            raise BadInput(
                f"operation {op.name!r} does not accept -e {key} ({why}); "
                f"an input it needs is added to its catalog entry by a reviewed change"
            )
        if spec.needs_ticket and env.requires_ticket and not ticket:
            raise BadInput(
                f"-e {key} on {op.name!r} needs --ticket in {env.name!r} (a reason is not enough)"
                + _ticket_hint(op, env)
            )


# ----------------------------------------------------------------------------- context


def file_hashes(op: Operation, env: Environment) -> dict[str, Any]:
    root = paths.repo_root()
    files: dict[str, Any] = {
        "playbook": file_entry(op.playbook_path(), root),
        "inventory": inventory_entries(env.inventory, root),
    }
    policy = env.inventory / POLICY_FILE
    if policy.is_file():
        files["policy"] = file_entry(policy, root)
    return files


# ----------------------------------------------------------------------------- running


class _Stopper:
    """Cancellation and timeout for one run, handed to ansible-runner as its cancel callback.

    SIGINT/SIGTERM (or the timeout) first send SIGINT to ansible-playbook, which stops its
    workers and closes connections the way Ctrl-C does; only if it is still running after
    ``GRACE`` seconds does ansible-runner kill it. Killing the process group at once would
    leave ansible's worker processes (each in a session of their own) running their task.
    """

    GRACE = 15.0

    def __init__(self, timeout: int | None) -> None:
        self.requested: str | None = None
        self.child: tuple[int, str | None] | None = None
        self._deadline = time.monotonic() + timeout if timeout else None
        self._sent_at: float | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, _frame: types.FrameType | None) -> None:
        if self.requested is None:
            self.requested = signal.Signals(signum).name

    def __enter__(self) -> _Stopper:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def __call__(self) -> bool:
        if self.requested is None and self._deadline is not None and time.monotonic() > self._deadline:
            self.requested = "timeout"
        if self.requested is None:
            return False
        if self.child is None:
            return True
        pid, start = self.child
        if self._sent_at is None:
            self._sent_at = time.monotonic()
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                return True
            return False
        if time.monotonic() - self._sent_at < self.GRACE and process_matches(pid, start):
            return False
        return True


def recover_interrupted(archive: Archive) -> list[str]:
    """What killed opsctl processes left behind, cleaned up before a command works: their
    pending runs become ``interrupted`` records (their orphaned ansible-playbook stopped,
    :mod:`orchestrator.archive.recovery`). It checks and kills processes, so it is called once
    per command: by the ``opsctl`` group for every command that uses the archive, and by
    :meth:`Executor.run` for library callers that did not. Returns the ids recovered."""
    return archive.recover_interrupted()


class Executor:
    """Runs requests against one archive and lock directory.

    ``recovered``: the caller (an ``opsctl`` command) has already called
    :func:`recover_interrupted` and removed stale runner folders for this command; else
    :meth:`run` does both first.
    """

    def __init__(
        self, archive: Archive | None = None, lock_root: Path | None = None, *, recovered: bool = False
    ) -> None:
        self.archive = archive or Archive(paths.archive_dir())
        self.lock_root = lock_root or paths.lock_dir()
        self.recovered = recovered

    def run(self, req: RunRequest, progress: ProgressFn | None = None) -> RunResult:
        if not self.recovered:
            recover_interrupted(self.archive)
            workdirs.remove_stale()
        run_id = new_record_id(datetime.now(UTC))
        started = datetime.now(UTC)
        redactor = Redactor()
        req = clean_request(req)
        raw_vars = dict(req.extra_vars)
        early_error: OpsError | None = None
        launch_type = req.launch_type
        if launch_type not in LAUNCH_TYPES:
            early_error = BadInput(f"OPSCTL_LAUNCH {clean_text(launch_type)!r} is not one of {', '.join(LAUNCH_TYPES)}")
            launch_type = "manual"
        try:
            raw_vars.update(parse_extra_vars(req.extra_args))
        except OpsError as err:
            early_error = early_error or err
        try:
            approval = collect_approval()
        except OpsError as err:
            approval, early_error = None, early_error or err
        safe_vars, _ = redactor.redact_vars(raw_vars)
        for key in _declared_secrets(req.operation, raw_vars):  # secret by the catalog, whatever the name
            redactor.add_values(_scalar_leaves(raw_vars[key]))
            safe_vars[key] = MASK
        meta = RunMeta(
            id=run_id,
            operation=req.operation,
            playbook=None,
            environment=req.env,
            inventory=None,
            limit=req.limit,
            tags=list(req.tags),
            skip_tags=list(req.skip_tags),
            check_mode=req.check,
            diff_mode=req.diff,
            extra_vars=safe_vars,
            ticket=req.ticket or None,
            reason=req.reason or None,
            incident=req.incident or None,
            change_type="standard" if req.standard_change else ("normal" if req.ticket else None),
            launch={"type": launch_type},
            operator=collect_operator(paths.repo_root()),
            source=collect_source(paths.repo_root()),
            files={},
            versions=collect_versions(),
            targets=[],
            started=started.isoformat(),
            approval=approval,
        )
        try:
            if early_error is not None:
                raise early_error
            op = get_operation(req.operation, load_catalog())
            meta.playbook = str(Path("playbooks") / op.playbook)
            env = get_environment(req.env)
            meta.inventory = str(Path("inventories") / env.name)
            meta.ticket = resolve_ticket(req, op, env)
            check_policy(req, op, env, raw_vars)
            check_approval(req, op, env, approval)
            if env.settings.get("signed_records") == "required":
                from .signing import check_key

                check_key()  # refused now, not left unsigned at the end
            # ssh's ControlPersist sockets: in a directory only this user can change.
            control_dir = paths.ensure_private_dir(paths.control_path_dir())
            # Decrypting the vault (PBKDF2) is the slowest step before the run: do it
            # while the inventory is parsed and files are hashed, and wait for it
            # before anything starts (a wrong vault password refuses the run).
            with ThreadPoolExecutor(max_workers=1) as pool:
                secrets = pool.submit(_vault_secrets, env)
                meta.files = file_hashes(op, env)
                meta.targets = resolve_targets(op, env, req.limit)
                redactor.add_values(secrets.result())
        except OpsError as err:
            return self._refused(meta, redactor, err)

        lock = HostLock(
            self.lock_root,
            env.name,
            meta.targets,
            run_id,
            holder={"operation": op.name, "operator": meta.operator["user"], "started": meta.started},
        )
        try:
            lock.acquire()
        except LockHeld as err:
            return self._refused(meta, redactor, err)
        leases: Leases | None = None
        try:
            leases = host_leases(
                env,
                run_id,
                {
                    "operation": op.name,
                    "operator": meta.operator["user"],
                    "on_behalf_of": meta.operator.get("on_behalf_of"),
                },
            )
            if leases is not None:
                leases.acquire(meta.targets)
                meta.leases = {"store": leases.where, "hosts": sorted(leases.taken), "took_over": leases.took_over}
        except OpsError as err:
            lock.release()
            return self._refused(meta, redactor, err)
        try:
            return self._execute(req, op, env, meta, raw_vars, redactor, progress, control_dir)
        finally:
            try:
                if leases is not None:
                    leases.release()
            finally:
                lock.release()

    # -- pieces

    def _refused(self, meta: RunMeta, redactor: Redactor, err: OpsError) -> RunResult:
        ended = datetime.now(UTC)
        pending = self.archive.begin(meta.id, _pending_meta(meta))
        # One line, no control characters: the message may quote what the operator typed.
        message = redactor.redact_text(clean_text(str(err) or type(err).__name__))
        pending.write_stdout(f"opsctl: refused: {message}\n")
        builder = RecordBuilder()
        record = builder.finish(
            meta,
            status="refused",
            rc=err.exit_code,
            ended=ended.isoformat(),
            error=message,
            redaction=redactor.report(),
        )
        final = self.archive.commit(pending, record)
        return RunResult(final, err.exit_code)

    def _execute(
        self,
        req: RunRequest,
        op: Operation,
        env: Environment,
        meta: RunMeta,
        raw_vars: dict[str, Any],
        redactor: Redactor,
        progress: ProgressFn | None,
        control_dir: Path,
    ) -> RunResult:
        import ansible_runner

        _shorten_pty_close_delay()
        pending = self.archive.begin(meta.id, _pending_meta(meta))
        builder = RecordBuilder()
        workdir = workdirs.create(meta.id)
        cmdline: list[str] = []
        if req.check:
            cmdline.append("--check")
        if req.diff:
            cmdline.append("--diff")
        if req.tags:
            cmdline += ["--tags", ",".join(req.tags)]
        if req.skip_tags:
            cmdline += ["--skip-tags", ",".join(req.skip_tags)]
        if env.vault_password_file is not None:
            cmdline += ["--vault-password-file", str(env.vault_password_file)]
        envvars = {
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),  # the directory checked above
        }

        cfg = paths.repo_root() / "ansible.cfg"
        if cfg.is_file():
            envvars["ANSIBLE_CONFIG"] = str(cfg)

        stopper = _Stopper(req.timeout)

        def on_event(event: dict[str, Any]) -> bool:
            if stopper.child is None and isinstance(event.get("pid"), int):
                stopper.child = process_identity(int(event["pid"]))
                pending.write_child(*stopper.child)
            clean = redactor.redact_obj(event)
            builder.feed(clean)
            pending.write_event(clean)
            text = clean.get("stdout")
            if text:
                pending.write_stdout(text + "\n")
            if progress is not None:
                progress(dict(builder.progress(), event=clean.get("event"), stdout=text or ""))
            return False  # the pending record keeps the events; runner's copy is not needed

        status = "failed"
        rc = -1
        error: str | None = None
        try:
            with stopper:
                r = ansible_runner.run(
                    private_data_dir=str(workdir),
                    ident="run",
                    playbook=str(op.playbook_path()),
                    inventory=str(env.inventory),
                    limit=req.limit,
                    # Playbooks may stamp what they produce (backup manifests, release
                    # markers) with the id of the change record that made it.
                    extravars={
                        **raw_vars,
                        "opsctl_record_id": meta.id,
                        "opsctl_env": env.name,
                        "opsctl_data_root": str(paths.data_dir()),
                    },
                    cmdline=" ".join(_quote(c) for c in cmdline) or None,
                    envvars=envvars,
                    quiet=True,
                    event_handler=on_event,
                    cancel_callback=stopper,
                    fact_cache=str(paths.var_dir() / "facts"),
                    settings=dict(RUNNER_SETTINGS),
                    project_dir=str(paths.repo_root()),
                )
            status = str(r.status)
            rc = int(r.rc) if r.rc is not None else -1
            if stopper.requested == "timeout":
                status, error = "timeout", f"timed out after {req.timeout} s"
            elif stopper.requested:
                status, error = "canceled", f"canceled by {stopper.requested}"
        except Exception as exc:  # noqa: BLE001 - any runner failure must still end in a record
            status, rc, error = "failed", -1, f"ansible-runner error: {exc}"
        finally:
            workdirs.remove(workdir)
        ended = datetime.now(UTC)
        record = builder.finish(
            meta,
            status=status,
            rc=rc,
            ended=ended.isoformat(),
            error=redactor.redact_text(error) if error else None,
            redaction=redactor.report(),
            output_keys=list(op.outputs),
        )
        final = self.archive.commit(pending, record)
        code = {"successful": EXIT_OK, "canceled": EXIT_CANCELED}.get(status, EXIT_FAILED)
        if status == "failed" and refused_input(record):
            code = EXIT_BAD_INPUT
        return RunResult(final, code)


def refused_input(record: Mapping[str, Any]) -> bool:
    """Whether a failed run only refused its input: failures all say so, nothing changed."""
    failures = record.get("failures") or []
    return (
        bool(failures)
        and not record.get("changes")
        and all(str(f.get("msg", "")).startswith(BAD_INPUT_PREFIX) for f in failures if isinstance(f, Mapping))
        and all(isinstance(f, Mapping) for f in failures)
    )


def _shorten_pty_close_delay() -> None:
    """Make ptyprocess's sleep after closing ansible-playbook's pty ``PTY_CLOSE_DELAY``.

    ansible-runner only closes the pty once ``isalive()`` has reaped the child, so the
    0.1 s "give the kernel time" sleep in ``PtyProcess.close`` is a fixed cost of every
    run for nothing. ``PtyProcess.__init__`` sets the delay per instance (a class
    attribute would be shadowed), so it is set on each instance pexpect spawns.
    Idempotent; affects only pexpect spawns of this process.
    """
    from pexpect import pty_spawn

    spawn_cls: Any = pty_spawn.spawn
    original = spawn_cls._spawnpty
    if getattr(original, "_opsctl_short_close", False):
        return

    def _spawnpty(self: Any, args: Any, **kwargs: Any) -> Any:
        proc = original(self, args, **kwargs)
        proc.delayafterclose = min(proc.delayafterclose, PTY_CLOSE_DELAY)
        return proc

    _spawnpty._opsctl_short_close = True  # type: ignore[attr-defined]
    spawn_cls._spawnpty = _spawnpty


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _pending_meta(meta: RunMeta) -> dict[str, Any]:
    return meta.to_dict()


def _vault_secrets(env: Environment) -> set[str]:
    if env.vault_password_file is None and not _has_vault(env.inventory):
        return set()
    return vault_values(_var_files(env.inventory), env.vault_password_file)


def _var_files(inventory: Path) -> list[Path]:
    return [p for p in sorted(inventory.rglob("*")) if p.is_file() and p.suffix in (".yml", ".yaml", "")]


def _has_vault(inventory: Path) -> bool:
    for p in _var_files(inventory):
        try:
            if b"$ANSIBLE_VAULT" in p.read_bytes():
                return True
        except OSError:
            continue
    return False
