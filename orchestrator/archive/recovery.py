"""Recovery of interrupted runs: a pending run whose opsctl process is gone is committed
as status ``interrupted`` (rebuilt from its saved events), and the ansible-playbook it left
running is stopped. It checks and kills processes, so it runs once per command, called by
the runner layer (:func:`orchestrator.runner.recover_interrupted`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInput
from ..proc import process_matches, stop_gracefully
from ..records import RECORD_ID_RE, RunMeta, build_from_events, iso, parse_iso, utc_now
from .files import ARCHIVE_FIELDS, read_events

if TYPE_CHECKING:
    from .chain import Archive


def _stop_orphan(folder: Path) -> str | None:
    """Stop the ansible-playbook a killed opsctl left running (recorded in child.json)."""
    try:
        child = json.loads((folder / "child.json").read_bytes())
    except (OSError, ValueError):
        return None
    pid = child.get("pid") if isinstance(child, dict) else None
    if not isinstance(pid, int) or not stop_gracefully(pid, child.get("pid_start")):
        return None
    return f"pid {pid}"


def recover_interrupted(archive: Archive) -> list[str]:
    """Commit every pending run whose process is gone, as status ``interrupted``.

    The record is rebuilt from the saved events and pending.json. If the run had
    already written its final record.json (crash during commit), that record is
    committed with its own status instead. Returns the ids recovered.
    """
    if not archive.pending_root.is_dir():
        return []
    recovered: list[str] = []
    with archive._locked():
        archive._roll_forward()
        for folder in sorted(archive.pending_root.iterdir()):
            if not folder.is_dir() or RECORD_ID_RE.fullmatch(folder.name) is None:
                continue
            record = _rebuild_pending(folder)
            if record is None:
                continue
            archive._commit_locked(folder, record)
            recovered.append(folder.name)
    return recovered


def _rebuild_pending(folder: Path) -> dict[str, Any] | None:
    try:
        pending = json.loads((folder / "pending.json").read_bytes())
    except (OSError, ValueError):
        pending = None
    if isinstance(pending, dict):
        pid = pending.get("pid")
        if isinstance(pid, int) and process_matches(pid, pending.get("pid_start")):
            return None  # still running
    elif not (folder / "record.json").exists():
        # No pending.json: begin() has not finished or the folder is junk; leave it alone
        # unless it is older than an hour.
        if time.time() - folder.stat().st_mtime < 3600:
            return None
    stopped_child = _stop_orphan(folder)
    if (folder / "record.json").exists():
        try:
            done = json.loads((folder / "record.json").read_bytes())
            if isinstance(done, dict) and done.get("id") == folder.name:
                return {k: v for k, v in done.items() if k not in ARCHIVE_FIELDS}
        except (OSError, ValueError):
            pass
    meta_dict: dict[str, Any] = dict(pending.get("meta") or {}) if isinstance(pending, dict) else {}
    meta_dict["id"] = folder.name
    for key in ("operation", "playbook", "environment", "inventory"):
        meta_dict.setdefault(key, "unknown")
    if isinstance(pending, dict) and pending.get("started"):
        meta_dict.setdefault("started", pending["started"])
    try:
        meta = RunMeta.from_dict(meta_dict)
    except (BadInput, TypeError):
        meta = RunMeta(
            id=folder.name, operation="unknown", playbook="unknown", environment="unknown", inventory="unknown"
        )
    events = list(read_events(folder / "events.jsonl"))
    last = next((e.get("created") for e in reversed(events) if isinstance(e.get("created"), str)), None)
    try:
        ended = iso(parse_iso(last)) if last else iso(utc_now())
    except BadInput:
        ended = iso(utc_now())
    if parse_iso(ended) < parse_iso(meta.started):
        ended = meta.started
    redaction: dict[str, Any] = {"keys": [], "values_masked": 0, "min_length": 4, "recovered": True}
    pid = pending.get("pid") if isinstance(pending, dict) else None
    error = f"interrupted: the opsctl process (pid {pid}) died before the run finished; rebuilt from its events"
    if stopped_child:
        error += f"; its orphaned ansible-playbook ({stopped_child}) was still running and was stopped"
    record = build_from_events(events, meta, status="interrupted", rc=-1, ended=ended, redaction=redaction, error=error)
    return record
