"""The chain: appending records (begin, commit, HEAD), reading them back.

Layout under the archive root::

    <id>/record.json      the record (canonical JSON, see :func:`canonical_json`)
    <id>/stdout.txt       the run's full stdout (redacted)
    <id>/events.jsonl     the ansible-runner events, one JSON object a line (redacted)
    .pending/<id>/        a run in progress (pending.json + the two streams)
    HEAD                  {"seq", "id", "hash"} of the newest record
    index.sqlite          a query index, rebuildable from the folders at any time
    .lock                 flock serialising commits

Each record carries ``seq`` (1, 2, ...), ``prev_hash`` (the previous record's
``hash``), ``artifacts`` (sha256 of stdout.txt and events.jsonl) and ``hash``:
the sha256 of the canonical JSON of the record without ``hash``. Editing,
removing, inserting or reordering any record breaks the chain, the seq
sequence or HEAD, and :meth:`Archive.verify` (:mod:`.verify`) names the first bad record.

Commit order (crash safety): record.json is written into the pending folder,
then HEAD is replaced, then the pending folder is renamed into place. A crash
between the last two steps is rolled forward by the next commit or recovery
(HEAD names a pending folder whose record.json has exactly HEAD's hash).

The index (:mod:`.index`), verification (:mod:`.verify`), the recovery of interrupted runs
(:mod:`.recovery`) and exports (:mod:`orchestrator.reports.export`) are modules of their
own; :class:`Archive` keeps thin methods for them, so callers hold one object.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .. import paths
from ..errors import ArchiveError, NotFound
from ..lock import flock_file
from ..proc import process_start_time
from ..records import RECORD_ID_RE, RunMeta, iso, utc_now, validate_record_id
from . import index, verify
from .files import (
    ARCHIVE_FIELDS,
    ARTIFACTS,
    FILE_MODE,
    atomic_write,
    canonical_json,
    fsync_dir,
    mkdir_private,
    read_events,
    record_bytes,
    record_hash,
    sha256_of,
)
from .index import INDEX_NAME
from .verify import SignaturePolicy, VerifyReport


class PendingRun:
    """A run in progress: ``.pending/<id>/`` with its event and stdout streams.

    Whatever is written here must already be redacted by the caller.
    """

    def __init__(self, archive: Archive, run_id: str, path: Path) -> None:
        self.archive = archive
        self.id = run_id
        self.path = path
        self._events: IO[bytes] | None = self._open(path / "events.jsonl")
        self._stdout: IO[bytes] | None = self._open(path / "stdout.txt")

    @staticmethod
    def _open(path: Path) -> IO[bytes]:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        return os.fdopen(fd, "ab", buffering=0)

    @property
    def closed(self) -> bool:
        return self._events is None

    def write_event(self, event: Mapping[str, Any]) -> None:
        """Append one event as a JSON line."""
        if self._events is None:
            raise ArchiveError(f"pending run {self.id} is already closed")
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        self._events.write(line.encode("utf-8"))

    def write_child(self, pid: int, pid_start: str | None) -> None:
        """Remember the ansible-playbook process, so recovery can stop it if opsctl dies."""
        atomic_write(self.path / "child.json", json.dumps({"pid": pid, "pid_start": pid_start}).encode())

    def write_stdout(self, text: str) -> None:
        """Append text to the captured stdout."""
        if self._stdout is None:
            raise ArchiveError(f"pending run {self.id} is already closed")
        if text:
            self._stdout.write(text.encode("utf-8", "replace"))

    def close(self) -> None:
        """Flush to disk and close both streams (idempotent)."""
        for fh in (self._events, self._stdout):
            if fh is not None:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
        self._events = self._stdout = None

    def discard(self) -> None:
        """Throw the pending run away (for a run that never started)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


class Archive:
    """The change-record archive rooted at a directory (default :func:`paths.archive_dir`)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else paths.archive_dir()

    # -- layout ------------------------------------------------------------------------

    @property
    def pending_root(self) -> Path:
        return self.root / ".pending"

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def _ensure(self) -> None:
        try:
            if not self.root.exists():
                self.root.parent.mkdir(parents=True, exist_ok=True)
                mkdir_private(self.root)
            mkdir_private(self.pending_root)
        except OSError as exc:
            raise ArchiveError(f"cannot create the archive at {self.root}: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure()
        with flock_file(self.root / ".lock", FILE_MODE):
            yield

    def _folder(self, record_id: str) -> Path:
        return self.root / validate_record_id(record_id)

    # -- HEAD --------------------------------------------------------------------------

    def head(self) -> dict[str, Any] | None:
        """``{"seq", "id", "hash"}`` of the newest record, or None for an empty archive."""
        try:
            raw = (self.root / "HEAD").read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.root / 'HEAD'}: {exc}") from exc
        try:
            head = json.loads(raw)
            if not (isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str)):
                raise ValueError("fields missing")
        except ValueError as exc:
            raise ArchiveError(f"{self.root / 'HEAD'} is corrupt ({exc})") from exc
        return head

    def _has_records(self) -> bool:
        with os.scandir(self.root) as it:
            return any(not e.name.startswith(".") and e.is_dir(follow_symlinks=False) for e in it)

    # -- writing -----------------------------------------------------------------------

    def begin(self, run_id: str, meta: RunMeta | Mapping[str, Any]) -> PendingRun:
        """Start recording a run: ``.pending/<id>/`` with pending.json and open streams."""
        validate_record_id(run_id)
        self._ensure()
        meta_dict = meta.to_dict() if isinstance(meta, RunMeta) else dict(meta)
        folder = self.pending_root / run_id
        if folder.exists() or (self.root / run_id).exists():
            raise ArchiveError(f"record {run_id} already exists in {self.root}")
        mkdir_private(folder)
        pid = os.getpid()
        pending = {
            "id": run_id,
            "pid": pid,
            "pid_start": process_start_time(pid),
            "started": meta_dict.get("started") or iso(utc_now()),
            "meta": meta_dict,
        }
        atomic_write(folder / "pending.json", canonical_json(pending) + b"\n")
        return PendingRun(self, run_id, folder)

    def commit(self, pending: PendingRun, record: Mapping[str, Any]) -> dict[str, Any]:
        """Chain, hash and file the finished record; returns the final record."""
        if record.get("id") != pending.id:
            raise ArchiveError(f"record id {record.get('id')!r} does not match the pending run {pending.id}")
        pending.close()
        with self._locked():
            self._roll_forward()
            return self._commit_locked(pending.path, record)

    def _commit_locked(self, folder: Path, record: Mapping[str, Any]) -> dict[str, Any]:
        run_id = validate_record_id(record.get("id"))
        final = self.root / run_id
        if final.exists():
            raise ArchiveError(f"record {run_id} is already in the archive")
        head = self.head()
        if head is None and self._has_records():
            raise ArchiveError(
                f"{self.root / 'HEAD'} is missing but the archive holds records; "
                "run `opsctl records verify` and restore HEAD before recording more runs"
            )
        out = {k: v for k, v in record.items() if k not in ARCHIVE_FIELDS}
        out["seq"] = (head["seq"] if head else 0) + 1
        out["prev_hash"] = head["hash"] if head else None
        for art in ARTIFACTS:
            if not (folder / art).exists():
                fd = os.open(folder / art, os.O_WRONLY | os.O_CREAT, FILE_MODE)
                os.close(fd)
        out["artifacts"] = {art: sha256_of(folder / art) for art in ARTIFACTS}
        out["hash"] = record_hash(out)
        atomic_write(folder / "record.json", record_bytes(out))
        self._sign(folder, out)
        for transient in ("pending.json", "child.json"):  # run state, not evidence
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / transient)
        atomic_write(self.root / "HEAD", canonical_json({"seq": out["seq"], "id": run_id, "hash": out["hash"]}) + b"\n")
        os.rename(folder, final)
        fsync_dir(folder.parent)
        fsync_dir(self.root)
        index.append(self, out)
        return out

    @staticmethod
    def _sign(folder: Path, record: Mapping[str, Any]) -> None:
        """``record.sig`` with the key of whoever files the record (``OPSCTL_SIGNING_KEY``); a
        failure leaves the record unsigned (said on stderr) rather than lose it: environments
        whose records must be signed check the key before the run starts."""
        from .. import signing

        key = signing.signing_key()
        if key is None:
            return
        try:
            sig = signing.sign(signing.message(str(record["id"]), record["seq"], record["hash"]), key)
        except signing.SigningError as err:
            print(f"opsctl: warning: record {record['id']} is not signed: {err}", file=sys.stderr)
            return
        atomic_write(folder / signing.SIG_FILE, sig)

    def _roll_forward(self) -> None:
        """Finish a commit that crashed between writing HEAD and renaming its folder."""
        head = self.head()
        if head is None or not isinstance(head.get("id"), str) or RECORD_ID_RE.fullmatch(head["id"]) is None:
            return
        final = self.root / head["id"]
        pend = self.pending_root / head["id"]
        if final.exists() or not (pend / "record.json").exists():
            return
        try:
            rec = json.loads((pend / "record.json").read_bytes())
        except (OSError, ValueError):
            return
        if isinstance(rec, dict) and rec.get("hash") == head["hash"] and record_hash(rec) == head["hash"]:
            for transient in ("pending.json", "child.json"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pend / transient)
            os.rename(pend, final)
            fsync_dir(self.pending_root)
            fsync_dir(self.root)
            index.append(self, rec)

    # -- reading -----------------------------------------------------------------------

    def get(self, record_id: str) -> dict[str, Any]:
        """The full record; NotFound for an unknown id."""
        folder = self._folder(record_id)
        try:
            raw = (folder / "record.json").read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no record {record_id} in the archive {self.root}") from None
        except OSError as exc:
            raise ArchiveError(f"cannot read record {record_id}: {exc}") from exc
        try:
            rec = json.loads(raw)
        except ValueError as exc:
            raise ArchiveError(f"record {record_id} is corrupt: {exc}") from exc
        if not isinstance(rec, dict):
            raise ArchiveError(f"record {record_id} is corrupt: not a JSON object")
        return rec

    def _artifact(self, record_id: str, name: str) -> Path:
        folder = self._folder(record_id)
        if not (folder / "record.json").exists():
            raise NotFound(f"no record {record_id} in the archive {self.root}")
        return folder / name

    def stdout(self, record_id: str) -> str:
        path = self._artifact(record_id, "stdout.txt")
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ArchiveError(f"cannot read the stdout of {record_id}: {exc}") from exc

    def events(self, record_id: str) -> Iterator[dict[str, Any]]:
        return read_events(self._artifact(record_id, "events.jsonl"))

    def record_ids(self) -> list[str]:
        """The ids of all record folders (unordered check-free listing, sorted by id)."""
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as it:
            return sorted(e.name for e in it if RECORD_ID_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False))

    # -- the index, verification, recovery, export (modules of their own) ----------------

    def reindex(self) -> int:
        """Rebuild index.sqlite from the record folders; returns the number indexed."""
        self._ensure()
        with self._locked():
            return index.rebuild(self)

    def verify(self, signatures: SignaturePolicy | None = None) -> VerifyReport:
        """Check the whole chain; report the first bad record (in seq order). With
        ``signatures``, also every record's signature (:mod:`orchestrator.signing`)."""
        return verify.verify(self, signatures)

    def recover_interrupted(self) -> list[str]:
        """Commit every pending run whose process is gone, as status ``interrupted``
        (:func:`.recovery.recover_interrupted`). Returns the ids recovered."""
        from . import recovery

        return recovery.recover_interrupted(self)

    def export_stamp(self) -> dict[str, Any]:
        """The chain's HEAD now, as every export carries it (:mod:`orchestrator.reports.export`)."""
        from ..reports import export

        return export.export_stamp(self)

    def export(self, fmt: str, out: Path, **filters: Any) -> int:
        """Write the matching records as CSV, JSON or a static HTML page; returns the count
        (:func:`orchestrator.reports.export.export`)."""
        from ..reports import export

        return export.export(self, fmt, out, **filters)

    def list(
        self,
        env: str | None = None,
        op: str | None = None,
        host: str | None = None,
        status: str | None = None,
        ticket: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        incident: str | None = None,
    ) -> list[dict[str, Any]]:
        """Summary rows of the matching records, newest (highest seq) first."""
        return index.query(
            self,
            env=env,
            op=op,
            host=host,
            status=status,
            ticket=ticket,
            since=since,
            until=until,
            limit=limit,
            incident=incident,
        )
