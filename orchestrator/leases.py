"""Host leases in the shared store: the lock that holds across checkouts and controllers.

The per-checkout lock (:mod:`orchestrator.lock`) only sees runs started from the same
``var/locks``. Two engineers with two checkouts, or CI and an engineer, would run on the
same host at once. An environment whose policy says ``host_leases: store`` therefore also
takes a **lease per target host in the shared store** (the same ``$OPSCTL_STORE`` that
``opsctl store push`` appends records to), which every controller of that environment
sees:

git store (``ssh://``, ``file://``, a bare repository ...)
    one ref per host, ``refs/leases/<env>/<host>``, pointing at a commit whose only file
    ``lease.json`` names the holder. Taking leases is one ``git push --atomic`` whose
    refspecs carry ``--force-with-lease=<ref>:`` (the ref must not exist) or
    ``<ref>:<sha of the stale lease>``: the server compares and swaps every ref in one
    transaction, so of two controllers racing for a host exactly one wins and a run
    never holds half of its hosts. Releasing deletes the refs the same way (only if they
    are still ours).
``dir:/path``
    ``<path>/leases/<env>/<host>.json`` under the store's ``.lock`` flock.

A lease is **stale** (taken over, and the take-over named in the error-free path) when
its holder is gone: the controller that wrote it is this machine and the holder's
process is not running any more (killed, crashed, machine rebooted), or it expired
(``started + lease_ttl_hours``, default 12 h: the holder's machine is another one and
has not released it in that time). A live lease held by another run is refused with the
holder named: run, operation, operator, controller, since when and until when.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import ArchiveError, BadInput, LockHeld
from .lock import flock_file
from .proc import process_identity, process_matches
from .redact import mask_url_credentials

REF_PREFIX = "refs/leases"
DEFAULT_TTL_HOURS = 12.0
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "opsctl",
    "GIT_AUTHOR_EMAIL": "opsctl@localhost",
    "GIT_COMMITTER_NAME": "opsctl",
    "GIT_COMMITTER_EMAIL": "opsctl@localhost",
}


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def machine_identity() -> dict[str, str]:
    """This controller: its host name, machine id and boot id (a reboot ends every holder)."""
    return {
        "controller": socket.gethostname(),
        "machine_id": _read("/etc/machine-id"),
        "boot_id": _read("/proc/sys/kernel/random/boot_id"),
    }


def _valid_name(name: str) -> bool:
    return (
        bool(name)
        and all(c.isalnum() or c in "-_." for c in name)
        and not name.startswith(".")
        and ".." not in name
        and not name.endswith(".lock")
    )


def holder_gone(lease: dict[str, Any], now: datetime, me: dict[str, str]) -> str | None:
    """Why ``lease`` is stale (its holder is gone), or None while it is live."""
    try:
        expires = datetime.fromisoformat(str(lease.get("expires")))
    except ValueError:
        return "its expiry is unreadable"
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if now >= expires:
        return f"it expired at {expires.isoformat(timespec='seconds')}"
    if me.get("machine_id") and lease.get("machine_id") == me["machine_id"]:
        if lease.get("boot_id") != me.get("boot_id"):
            return "its controller (this machine) has rebooted since"
        if not process_matches(int(lease.get("pid") or -1), lease.get("pid_start")):
            return f"its process {lease.get('pid')} on this machine is gone"
    return None


def describe(host: str, lease: dict[str, Any]) -> str:
    return (
        f"{host} by run {lease.get('run_id')} ({lease.get('operation')}, {lease.get('operator')}, "
        f"controller {lease.get('controller')} pid {lease.get('pid')}, since {lease.get('started')}, "
        f"until {lease.get('expires')})"
    )


def _held_message(env: str, held: list[tuple[str, dict[str, Any]]], where: str) -> str:
    shown = "; ".join(describe(h, lease) for h, lease in held[:3]) + (" ..." if len(held) > 3 else "")
    return (
        f"environment {env!r}: host lease held in the shared store ({where}): {shown}; wait for it "
        f"to finish (a lease whose holder is gone is taken over: same controller and process dead, "
        f"or expired)"
    )


@dataclass
class Leases:
    """The leases of one run on its target hosts, in a store (``git`` or ``dir:``)."""

    spec: str
    env: str
    run_id: str
    holder: dict[str, Any]
    ttl_hours: float = DEFAULT_TTL_HOURS
    taken: dict[str, str] = field(default_factory=dict)  # host -> lease sha (git) or "" (dir)
    took_over: list[str] = field(default_factory=list)  # "host: why it was stale"
    #: Where git keeps the lease objects before pushing them (default var/store/leases.git).
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not _valid_name(self.env):
            raise BadInput(f"environment name {self.env!r} cannot name a lease")
        self.where = mask_url_credentials(self.spec)

    # -- what a lease says

    def _lease(self, hosts: list[str], now: datetime) -> dict[str, Any]:
        pid, start = process_identity()
        return {
            **self.holder,
            "run_id": self.run_id,
            "env": self.env,
            "hosts": hosts,
            "pid": pid,
            "pid_start": start,
            **machine_identity(),
            "started": now.isoformat(timespec="seconds"),
            "expires": (now + timedelta(hours=self.ttl_hours)).isoformat(timespec="seconds"),
        }

    def _check_hosts(self, hosts: Iterable[str]) -> list[str]:
        out = sorted(set(hosts))
        bad = [h for h in out if not _valid_name(h)]
        if bad:
            raise BadInput(f"host name(s) {', '.join(bad)} cannot name a lease")
        return out

    # -- the two kinds of store

    def acquire(self, hosts: Iterable[str]) -> None:
        wanted = self._check_hosts(hosts)
        if not wanted:
            return
        if self.spec.startswith("dir:"):
            self._acquire_dir(Path(self.spec[4:]), wanted)
        else:
            self._acquire_git(wanted)

    def release(self) -> None:
        if not self.taken:
            return
        try:
            if self.spec.startswith("dir:"):
                self._release_dir(Path(self.spec[4:]))
            else:
                self._release_git()
        finally:
            self.taken = {}

    # dir:

    def _acquire_dir(self, root: Path, wanted: list[str]) -> None:
        if not root.is_dir():
            raise ArchiveError(f"lease store {self.where}: no such directory")
        folder = root / "leases" / self.env
        now = datetime.now(UTC)
        me = machine_identity()
        with flock_file(root / ".lock"):
            folder.mkdir(parents=True, exist_ok=True, mode=0o750)
            held, stale = [], []
            for host in wanted:
                path = folder / f"{host}.json"
                try:
                    lease = json.loads(path.read_text(encoding="utf-8"))
                except FileNotFoundError:
                    continue
                except (OSError, ValueError):
                    lease = {}
                why = holder_gone(lease, now, me) if lease else "it is unreadable"
                if why:
                    stale.append(f"{host}: {why} ({describe(host, lease)})")
                else:
                    held.append((host, lease))
            if held:
                raise LockHeld(_held_message(self.env, held, self.where))
            body = json.dumps(self._lease(wanted, now), ensure_ascii=False, indent=1) + "\n"
            for host in wanted:
                path = folder / f"{host}.json"
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{host}.")
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(body)
                os.replace(tmp, path)
                self.taken[host] = ""
            self.took_over = stale

    def _release_dir(self, root: Path) -> None:
        folder = root / "leases" / self.env
        with flock_file(root / ".lock"):
            for host in self.taken:
                path = folder / f"{host}.json"
                try:
                    lease = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if lease.get("run_id") == self.run_id:  # never someone else's (a take-over after expiry)
                    path.unlink(missing_ok=True)

    # git

    def _cache(self) -> Path:
        from . import paths

        cache = self.cache_dir or paths.var_dir() / "store" / "leases.git"
        if not (cache / "HEAD").is_file():
            cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._git(None, "init", "-q", "--bare", str(cache))
        return cache

    def _git(
        self, cwd: Path | None, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **_GIT_ENV}
        try:
            proc = subprocess.run(
                ["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ArchiveError(f"lease store {self.where}: git {args[0]}: {exc}") from exc
        if check and proc.returncode != 0:
            raise ArchiveError(
                f"lease store {self.where}: git {args[0]} failed: {mask_url_credentials(proc.stderr.strip())[-500:]}"
            )
        return proc

    def _ref(self, host: str) -> str:
        return f"{REF_PREFIX}/{self.env}/{host}"

    def _remote_leases(self, cache: Path, wanted: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """host -> (sha, lease) for the wanted hosts that hold a lease in the store now."""
        listed = self._git(cache, "ls-remote", self.spec, f"{REF_PREFIX}/{self.env}/*").stdout
        shas = {}
        for line in listed.splitlines():
            sha, _, ref = line.partition("\t")
            host = ref.rsplit("/", 1)[-1]
            if host in wanted:
                shas[host] = sha
        if not shas:
            return {}
        self._git(cache, "fetch", "-q", "--no-tags", self.spec, *(f"+{self._ref(h)}:{self._ref(h)}" for h in shas))
        out = {}
        for host, sha in shas.items():
            shown = self._git(cache, "show", f"{sha}:lease.json", check=False)
            try:
                lease = json.loads(shown.stdout) if shown.returncode == 0 else {}
            except ValueError:
                lease = {}
            out[host] = (sha, lease if isinstance(lease, dict) else {})
        return out

    def _acquire_git(self, wanted: list[str]) -> None:
        cache = self._cache()
        now = datetime.now(UTC)
        me = machine_identity()
        existing = self._remote_leases(cache, wanted)
        held, stale = [], []
        for host, (_sha, lease) in sorted(existing.items()):
            why = holder_gone(lease, now, me) if lease else "it is unreadable"
            if why:
                stale.append(f"{host}: {why} ({describe(host, lease)})")
            else:
                held.append((host, lease))
        if held:
            raise LockHeld(_held_message(self.env, held, self.where))
        body = json.dumps(self._lease(wanted, now), ensure_ascii=False, indent=1) + "\n"
        blob = self._git(cache, "hash-object", "-w", "--stdin", stdin=body).stdout.strip()
        tree = self._git(cache, "mktree", stdin=f"100644 blob {blob}\tlease.json\n").stdout.strip()
        commit = self._git(cache, "commit-tree", tree, "-m", f"lease {self.env} {self.run_id}").stdout.strip()
        leases = [f"--force-with-lease={self._ref(h)}:{existing[h][0] if h in existing else ''}" for h in wanted]
        pushed = self._git(
            cache,
            "push",
            "--atomic",
            "--porcelain",
            *leases,
            self.spec,
            *(f"{commit}:{self._ref(h)}" for h in wanted),
            check=False,
        )
        if pushed.returncode != 0:
            # Another controller took one of the hosts between our look and our push (the
            # server's compare-and-swap refused the whole set): say who holds it now.
            now_held = [
                (h, lease)
                for h, (_s, lease) in sorted(self._remote_leases(cache, wanted).items())
                if lease and not holder_gone(lease, datetime.now(UTC), me)
            ]
            if now_held:
                raise LockHeld(_held_message(self.env, now_held, self.where))
            raise ArchiveError(
                f"lease store {self.where}: taking the leases failed: "
                f"{mask_url_credentials(pushed.stderr.strip() or pushed.stdout.strip())[-500:]}"
            )
        self.taken = dict.fromkeys(wanted, commit)
        self.took_over = stale

    def _release_git(self) -> None:
        cache = self._cache()
        leases = [f"--force-with-lease={self._ref(h)}:{sha}" for h, sha in sorted(self.taken.items())]
        # Deleting only refs that still point at our lease: one taken over after it expired stays.
        self._git(
            cache,
            "push",
            "--porcelain",
            *leases,
            self.spec,
            *(f":{self._ref(h)}" for h in sorted(self.taken)),
            check=False,
        )

    # -- for `opsctl` and tests

    def list(self) -> dict[str, dict[str, Any]]:
        """Every lease of this environment in the store: host -> lease."""
        if self.spec.startswith("dir:"):
            folder = Path(self.spec[4:]) / "leases" / self.env
            out = {}
            for path in sorted(folder.glob("*.json")):
                try:
                    out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    out[path.stem] = {}
            return out
        cache = self._cache()
        listed = self._git(cache, "ls-remote", self.spec, f"{REF_PREFIX}/{self.env}/*").stdout
        hosts = [line.rsplit("/", 1)[-1] for line in listed.splitlines() if line.strip()]
        return {h: lease for h, (_s, lease) in self._remote_leases(cache, hosts).items()}


def host_leases(env: Any, run_id: str, holder: dict[str, Any]) -> Leases | None:
    """The leases a run in ``env`` (an :class:`operations.Environment`) takes, from its policy:

    ``host_leases: store`` leases every target host in the shared store, ``$OPSCTL_STORE``
    (or the policy's ``lease_store``); a run without a store is refused, since without one
    no other controller could see the lease. ``lease_ttl_hours`` (default 12) is how long
    a lease lasts when its holder never releases it. Absent or ``local``: only the
    per-checkout lock.
    """
    settings = getattr(env, "settings", {}) or {}
    mode = settings.get("host_leases", "local")
    if mode in (None, "local"):
        return None
    policy = env.policy_shown() if hasattr(env, "policy_shown") else "the policy"
    if mode != "store":
        raise BadInput(f"{policy}: host_leases must be 'store' or 'local', not {mode!r}")
    spec = os.environ.get("OPSCTL_STORE") or str(settings.get("lease_store") or "")
    if not spec.strip():
        raise BadInput(
            f"environment {env.name!r} takes host leases in the shared store ({policy}: "
            f"host_leases: store), so that runs from other checkouts and controllers see them: "
            f"set OPSCTL_STORE to the store (docs/ci.md, 'The shared archive store')"
        )
    try:
        ttl = float(settings.get("lease_ttl_hours", DEFAULT_TTL_HOURS))
    except (TypeError, ValueError):
        ttl = -1.0
    if not 0 < ttl <= 24 * 7:
        raise BadInput(f"{policy}: lease_ttl_hours must be a number of hours between 0 and 168")
    return Leases(spec=spec.strip(), env=env.name, run_id=run_id, holder=holder, ttl_hours=ttl)
