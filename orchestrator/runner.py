"""Run one catalog operation through ansible-runner and record it.

The flow: validate the request against the catalog and the environment's
policy, recover runs an earlier ``opsctl`` left unfinished, resolve the target
hosts, take the host lock, start a pending record, stream ansible-runner's
events (redacted) into the record builder, the pending record and the live
progress callback, and finally commit the change record to the archive. Every
attempt that gets this far leaves a record, refused ones included.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from . import paths, workdirs
from .archive import Archive
from .errors import BadInput, LockHeld, OpsError
from .lock import HostLock
from .proc import process_identity, process_matches
from .operations import POLICY_FILE, Environment, Operation, get_environment, get_operation, load_catalog
from .records import (RecordBuilder, RunMeta, collect_operator, collect_source, collect_versions,
                      file_entry, inventory_entries, new_record_id)
from .redact import Redactor, vault_values

#: Seconds ptyprocess sleeps after closing the pty of ansible-playbook (its default: 0.1).
PTY_CLOSE_DELAY = 0.01

#: ansible-runner settings of every run. suppress_output_file: the pending record keeps the
#: (redacted) stdout; runner's own copy would be unredacted and is deleted unread anyway.
RUNNER_SETTINGS: dict[str, Any] = {"pexpect_timeout": 1, "suppress_ansible_output": True,
                                   "suppress_output_file": True}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
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
    launch_type: str = field(default_factory=lambda: os.environ.get("OPSCTL_LAUNCH", "manual"))


@dataclass
class RunResult:
    record: dict[str, Any]
    exit_code: int


# ----------------------------------------------------------------------------- inputs

def parse_extra_vars(items: list[str]) -> dict[str, Any]:
    """Parse ``-e key=value`` and ``-e @file.yml`` the way an engineer expects; errors are BadInput.

    Error messages never repeat a ``key=value`` argument or a line of a vars file: either
    may hold a secret, and the message goes to the terminal and into the record.
    """
    result: dict[str, Any] = {}
    for number, item in enumerate(items, start=1):
        if item.startswith("@"):
            result.update(_vars_file(item))
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise BadInput(f"-e argument {number}: expected key=value with a valid variable name, or @file.yml "
                           "(the argument is not repeated here: it may hold a secret)")
        result[key] = value
    return result


def _vars_file(item: str) -> dict[str, Any]:
    path = Path(item[1:])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"-e {item}: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"-e {item}: not valid YAML ({_yaml_problem(exc)})") from exc
    if not isinstance(data, dict):
        raise BadInput(f"-e {item}: the file must contain a mapping of variables")
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what the YAML error is, without the excerpt of the file (it may hold a secret)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return type(exc).__name__


def needs_confirmation(op: Operation, env: str) -> bool:
    return op.risk_in(env) == "high"


def check_policy(req: RunRequest, op: Operation, env: Environment,
                 extra_vars: dict[str, Any] | None = None) -> None:
    """Refuse what the catalog and the environment's policy do not allow.

    ``extra_vars`` are all the run's extra vars (``req.extra_vars`` plus the parsed ``-e``).
    """
    given = req.extra_vars if extra_vars is None else extra_vars
    if env.requires_ticket and not req.ticket:
        if op.read_only and req.reason:
            pass
        elif op.read_only:
            raise BadInput(f"environment {env.name!r} requires --ticket or --reason for {op.name!r}")
        else:
            raise BadInput(f"environment {env.name!r} requires --ticket for {op.name!r}")
    missing = [name for name in op.requires if name not in given or given[name] in ("", None)]
    if missing:
        raise BadInput(f"operation {op.name!r} requires " + ", ".join(f"-e {m}=..." for m in missing))
    if needs_confirmation(op, env.name) and not req.confirmed:
        raise BadInput(f"operation {op.name!r} is high risk in {env.name!r}: not confirmed "
                       "(confirm at the terminal prompt, or pass --yes)")


# ----------------------------------------------------------------------------- context

def file_hashes(op: Operation, env: Environment) -> dict[str, Any]:
    root = paths.repo_root()
    files: dict[str, Any] = {"playbook": file_entry(op.playbook_path(), root),
                             "inventory": inventory_entries(env.inventory, root)}
    policy = env.inventory / POLICY_FILE
    if policy.is_file():
        files["policy"] = file_entry(policy, root)
    return files


def resolve_targets(op: Operation, env: Environment, limit: str | None) -> list[str]:
    """The hosts the playbook's plays would run on, after ``--limit``."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    pb = op.playbook_path()
    if not pb.is_file():
        raise BadInput(f"operation {op.name!r}: playbook {pb} is missing")
    try:
        plays = yaml.safe_load(pb.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as exc:
        raise BadInput(f"{pb}: {exc}") from exc
    patterns: list[str] = []
    for play in plays if isinstance(plays, list) else []:
        if isinstance(play, dict) and "hosts" in play:
            hosts = play["hosts"]
            patterns.extend(hosts if isinstance(hosts, list) else [str(hosts)])
    if not patterns:
        patterns = ["all"]
    inventory = InventoryManager(loader=DataLoader(), sources=[str(env.inventory)])
    if limit:
        inventory.subset(limit)
    found: set[str] = set()
    for pattern in patterns:
        if "{{" in pattern:  # templated pattern: be conservative
            pattern = "all"
        found.update(h.name for h in inventory.get_hosts(pattern))
    if not found:
        raise BadInput(f"no host of environment {env.name!r} matches "
                       f"{'limit ' + repr(limit) if limit else 'the playbook'}")
    return sorted(found)


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


class Executor:
    """Runs requests against one archive and lock directory."""

    def __init__(self, archive: Archive | None = None, lock_root: Path | None = None) -> None:
        self.archive = archive or Archive(paths.archive_dir())
        self.lock_root = lock_root or paths.lock_dir()

    def run(self, req: RunRequest, progress: ProgressFn | None = None) -> RunResult:
        self.archive.recover_interrupted()
        workdirs.remove_stale()  # the opsctl command did too; this is for library callers
        run_id = new_record_id(datetime.now(UTC))
        started = datetime.now(UTC)
        redactor = Redactor()
        raw_vars = dict(req.extra_vars)
        parse_error: OpsError | None = None
        try:
            raw_vars.update(parse_extra_vars(req.extra_args))
        except OpsError as err:
            parse_error = err
        safe_vars, _ = redactor.redact_vars(raw_vars)
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
            ticket=req.ticket,
            reason=req.reason,
            incident=req.incident,
            launch={"type": req.launch_type},
            operator=collect_operator(paths.repo_root()),
            source=collect_source(paths.repo_root()),
            files={},
            versions=collect_versions(),
            targets=[],
            started=started.isoformat(),
        )
        try:
            if parse_error is not None:
                raise parse_error
            op = get_operation(req.operation, load_catalog())
            meta.playbook = str(Path("playbooks") / op.playbook)
            env = get_environment(req.env)
            meta.inventory = str(Path("inventories") / env.name)
            check_policy(req, op, env, raw_vars)
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

        lock = HostLock(self.lock_root, env.name, meta.targets, run_id, holder={
            "operation": op.name, "operator": meta.operator["user"], "started": meta.started})
        try:
            lock.acquire()
        except LockHeld as err:
            return self._refused(meta, redactor, err)
        try:
            return self._execute(req, op, env, meta, raw_vars, redactor, progress, control_dir)
        finally:
            lock.release()

    # -- pieces

    def _refused(self, meta: RunMeta, redactor: Redactor, err: OpsError) -> RunResult:
        ended = datetime.now(UTC)
        pending = self.archive.begin(meta.id, _pending_meta(meta))
        pending.write_stdout(redactor.redact_text(f"opsctl: refused: {err}\n"))
        builder = RecordBuilder()
        record = builder.finish(meta, status="refused", rc=err.exit_code, ended=ended.isoformat(),
                                error=redactor.redact_text(str(err)), redaction=redactor.report())
        final = self.archive.commit(pending, record)
        return RunResult(final, err.exit_code)

    def _execute(self, req: RunRequest, op: Operation, env: Environment, meta: RunMeta,
                 raw_vars: dict[str, Any], redactor: Redactor,
                 progress: ProgressFn | None, control_dir: Path) -> RunResult:
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
                    extravars={**raw_vars, "opsctl_record_id": meta.id, "opsctl_env": env.name},
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
        record = builder.finish(meta, status=status, rc=rc, ended=ended.isoformat(),
                                error=redactor.redact_text(error) if error else None,
                                redaction=redactor.report(), output_keys=list(op.outputs))
        final = self.archive.commit(pending, record)
        code = {"successful": EXIT_OK, "canceled": EXIT_CANCELED}.get(status, EXIT_FAILED)
        return RunResult(final, code)


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
