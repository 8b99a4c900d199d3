"""Process identity: a pid plus its start time, so a reused pid is not mistaken for the holder."""

from __future__ import annotations

import os


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = raw.rsplit(")", 1)[-1].split()
    return rest[19] if len(rest) > 19 else None


def process_identity() -> tuple[int, str | None]:
    pid = os.getpid()
    return pid, process_start_time(pid)


def process_matches(pid: int, start: object) -> bool:
    """True when ``pid`` is alive and (if known) started at ``start``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is None:
        return True
    return process_start_time(pid) == str(start)
