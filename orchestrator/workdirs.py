"""ansible-runner's work folders (``var/run/run-<id>-*``): made per run, removed when it ends.

A work folder holds the run's extra vars in plain text (``env/extravars``), so one left by
a killed ``opsctl`` must not wait for the next ``opsctl run``: every ``opsctl`` command
removes the folders whose process is gone (:func:`remove_stale`). The folder names its
process in ``owner.json`` (pid and start time), so a concurrent run's folder survives.

Cheap on purpose (a directory listing; shutil and tempfile are imported only when needed):
the root command calls it on every invocation.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import paths
from .proc import process_identity, process_matches

OWNER_FILE = "owner.json"

#: A folder without a readable owner file is being created (or is junk) until it is this old.
UNOWNED_GRACE_S = 3600


def root() -> Path:
    return paths.var_dir() / "run"


def create(run_id: str) -> Path:
    """A new private work folder for run ``run_id``, owned by this process."""
    import tempfile

    base = root()
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(base, 0o700)
    folder = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=base))
    pid, pid_start = process_identity()
    (folder / OWNER_FILE).write_text(json.dumps({"pid": pid, "pid_start": pid_start}), encoding="utf-8")
    return folder


def remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _owner_alive(folder: Path) -> bool:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        return process_matches(int(owner["pid"]), owner.get("pid_start"))
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - folder.stat().st_mtime < UNOWNED_GRACE_S  # being created, or junk
        except OSError:
            return True  # gone meanwhile: nothing to do


def remove_stale(base: Path | None = None) -> list[Path]:
    """Remove the work folders whose ``opsctl`` process is gone; returns them.

    Best effort: a folder that cannot be listed or removed now is tried again by the
    next command.
    """
    base = root() if base is None else base
    try:
        entries = [entry for entry in base.iterdir() if entry.is_dir()]
    except OSError:
        return []
    removed: list[Path] = []
    for entry in entries:
        if not _owner_alive(entry):
            remove(entry)
            removed.append(entry)
    return removed
