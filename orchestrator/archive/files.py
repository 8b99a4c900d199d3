"""The archive's bytes on disk: the canonical form of a record, its hash, and atomic writes.

Files are written atomically (temporary file in the same directory, fsync, rename, fsync
of the directory), mode 0600; directories are mode 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
DIR_MODE = 0o700
ARTIFACTS = ("stdout.txt", "events.jsonl")
#: The fields the chain sets on commit (a record handed to commit loses any it carries).
ARCHIVE_FIELDS = ("seq", "prev_hash", "artifacts", "hash")

# -- canonical form and hashing --------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes hashed for a record: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``record`` without its ``hash`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def record_bytes(record: Mapping[str, Any]) -> bytes:
    """What ``record.json`` holds: the canonical JSON of the full record and a newline."""
    return canonical_json(record) + b"\n"


def sha256_of(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


# -- low-level file helpers ------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same dir, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def mkdir_private(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=False, exist_ok=True)
    os.chmod(path, DIR_MODE)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """The events of an events.jsonl, skipping torn lines; nothing for a missing file."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line torn by the kill
            if isinstance(event, dict):
                yield event
