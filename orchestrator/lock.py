"""A lock per environment and target hosts.

Each running ``opsctl run`` holds one lock file ``<locks>/<env>/<run id>.json``
naming its hosts and its process. A new run whose hosts overlap a live holder's
is refused with a message naming that holder. Holders whose process is gone
(killed, crashed, machine rebooted) are stale and removed on the next attempt.
The check-and-write is serialised with ``flock`` on ``<locks>/.lock``.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LockHeld
from .proc import process_identity, process_matches


@contextmanager
def flock_file(path: Path, mode: int = 0o600) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with ``mode``; its folder must exist)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with flock_file(path):
        yield


@dataclass
class HostLock:
    root: Path
    env: str
    hosts: list[str]
    run_id: str
    holder: dict[str, Any] = field(default_factory=dict)
    _path: Path | None = None

    def holders(self) -> list[dict[str, Any]]:
        """Live holders in this environment (stale ones are removed)."""
        env_dir = self.root / self.env
        live: list[dict[str, Any]] = []
        if not env_dir.is_dir():
            return live
        for entry in sorted(env_dir.glob("*.json")):
            try:
                data = json.loads(entry.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                entry.unlink(missing_ok=True)
                continue
            if not process_matches(int(data.get("pid", -1)), data.get("pid_start")):
                entry.unlink(missing_ok=True)
                continue
            live.append(data)
        return live

    def acquire(self) -> None:
        with _flock(self.root / ".lock"):
            wanted = set(self.hosts)
            for other in self.holders():
                overlap = sorted(wanted & set(other.get("hosts", [])))
                if overlap:
                    shown = ", ".join(overlap[:5]) + (" ..." if len(overlap) > 5 else "")
                    raise LockHeld(
                        f"environment {self.env!r} hosts {shown} are locked by run {other.get('run_id')} "
                        f"({other.get('operation')}, {other.get('operator')}, pid {other.get('pid')}, "
                        f"since {other.get('started')}); wait for it to finish"
                    )
            env_dir = self.root / self.env
            env_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            pid, start = process_identity()
            data = dict(self.holder, run_id=self.run_id, hosts=sorted(wanted), pid=pid, pid_start=start)
            path = env_dir / f"{self.run_id}.json"
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
            self._path = path

    def release(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def __enter__(self) -> HostLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
