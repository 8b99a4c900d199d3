"""Process identity (a pid plus its start time, so a reused pid is not mistaken for the
holder) and stopping an ansible-playbook process gracefully."""

from __future__ import annotations

import os
import signal
import time


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw.rsplit(")", 1)[-1].split()


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    rest = _stat_fields(pid)
    return rest[19] if rest is not None and len(rest) > 19 else None


def process_identity(pid: int | None = None) -> tuple[int, str | None]:
    pid = os.getpid() if pid is None else pid
    return pid, process_start_time(pid)


def process_matches(pid: int, start: object) -> bool:
    """True when ``pid`` is alive (not a zombie) and, if ``start`` is known, started then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    rest = _stat_fields(pid)
    if rest is not None and rest and rest[0] in ("Z", "X"):
        return False
    if start is None:
        return True
    return rest is not None and len(rest) > 19 and rest[19] == str(start)


def stop_gracefully(pid: int, start: object, grace: float = 10.0) -> bool:
    """Stop ``pid`` the way Ctrl-C would: SIGINT lets ansible-playbook stop its workers and
    close its connections; whatever is left after ``grace`` seconds is killed with its
    process group. Returns True when the process had to be stopped."""
    if not process_matches(pid, start):
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not process_matches(pid, start):
            return True
        time.sleep(0.1)
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return True
