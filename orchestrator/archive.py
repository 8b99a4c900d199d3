"""The change-record archive: one folder per record, chained by hashes, indexed.

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
sequence or HEAD, and :meth:`Archive.verify` names the first bad record.

Commit order (crash safety): record.json is written into the pending folder,
then HEAD is replaced, then the pending folder is renamed into place. A crash
between the last two steps is rolled forward by the next commit or recovery
(HEAD names a pending folder whose record.json has exactly HEAD's hash).

Files are written atomically (temporary file in the same directory, fsync,
rename, fsync of the directory), mode 0600; directories are mode 0700.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import sys
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from . import paths
from .errors import ArchiveError, BadInput, NotFound, OpsError
from .lock import flock_file
from .proc import process_matches, process_start_time, stop_gracefully
from .records import RECORD_ID_RE, RunMeta, build_from_events, iso, parse_iso, utc_now, validate_record_id
from .redact import Redactor

FILE_MODE = 0o600
DIR_MODE = 0o700
ARTIFACTS = ("stdout.txt", "events.jsonl")
INDEX_NAME = "index.sqlite"
INDEX_VERSION = "2"  # 2: index on incident
EXPORT_FORMATS = ("csv", "json", "html")
_ARCHIVE_FIELDS = ("seq", "prev_hash", "artifacts", "hash")


# -- canonical form and hashing --------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes hashed for a record: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``record`` without its ``hash`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def record_bytes(record: Mapping[str, Any]) -> bytes:
    """What ``record.json`` holds: the canonical JSON of the full record and a newline."""
    return canonical_json(record) + b"\n"


def _sha256_bytes(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


# -- low-level file helpers ------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
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
        _fsync_dir(path.parent)


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=False, exist_ok=True)
    os.chmod(path, DIR_MODE)


# -- pending runs ----------------------------------------------------------------------


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


# -- verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    count: int
    first_bad_id: str | None = None
    problem: str = ""
    #: With signatures checked: records per signer, and records without a signature.
    signers: dict[str, int] = field(default_factory=dict)
    unsigned: int = 0


@dataclass
class SignaturePolicy:
    """What ``verify`` checks of the signatures: against whom, and which environments'
    records must be signed."""

    verifier: Any  # signing.Verifier
    #: environment -> the time from which its runs must be signed (policy ``signed_records_since``):
    #: an archive's history from before signing was required keeps verifying.
    required_envs: Mapping[str, str] = field(default_factory=dict)
    #: The operations whose runs must be signed there (the catalog's: ``opsctl run`` refuses to
    #: start them without a key); None: every record. Register entries (incidents, notes) are
    #: checked when signed.
    operations: frozenset[str] | None = None


@dataclass
class _Entry:
    name: str
    id: str | None = None
    seq: int | None = None
    hash: str | None = None
    prev_hash: str | None = None
    problem: str | None = None
    #: What the index must hold for this record (derived from it).
    index_row: tuple[Any, ...] | None = None
    hosts: tuple[str, ...] = ()


def _check_folder(root: Path, name: str) -> _Entry:
    """Check one record folder on its own: id, own hash, artifact hashes."""
    entry = _Entry(name=name)
    folder = root / name
    if RECORD_ID_RE.fullmatch(name) is None:
        entry.problem = f"folder {name!r} is not a record id (inserted or renamed folder)"
    try:
        with open(folder / "record.json", "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        entry.problem = entry.problem or f"record.json unreadable: {exc.strerror or exc}"
        return entry
    try:
        rec = json.loads(raw)
        if not isinstance(rec, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        entry.problem = entry.problem or f"record.json is not valid JSON ({exc}): edited"
        return entry
    seq = rec.get("seq")
    entry.seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    entry.id = rec.get("id") if isinstance(rec.get("id"), str) else None
    stored = rec.get("hash")
    entry.hash = stored if isinstance(stored, str) else None
    prev = rec.get("prev_hash")
    entry.prev_hash = prev if isinstance(prev, str) else None
    if entry.problem:
        return entry
    if entry.seq is None:
        entry.problem = "record has no integer seq: edited"
    elif entry.id != name:
        entry.problem = (
            f"folder {name} holds record {entry.id!r} (seq {entry.seq}): folders renamed or swapped"
        )
    elif entry.hash is None:
        entry.problem = "record has no hash: edited"
    elif not _hash_ok(raw, rec, entry.hash):
        entry.problem = "record hash mismatch: record.json was edited"
    else:
        artifacts = rec.get("artifacts")
        if not isinstance(artifacts, dict):
            entry.problem = "record has no artifact hashes: edited"
        else:
            for art in ARTIFACTS:
                actual = _sha256_bytes(folder / art)
                if actual is None:
                    entry.problem = f"{art} is missing: removed"
                    break
                if actual != artifacts.get(art):
                    entry.problem = f"{art} hash mismatch: {art} was edited"
                    break
            else:
                extra = sorted(set(os.listdir(folder)) - _FOLDER_FILES)
                if extra:
                    entry.problem = f"unexpected file(s) in the record folder: {', '.join(extra)}: added"
    if entry.problem is None:
        entry.index_row = _index_row(rec)
        entry.hosts = tuple(_hosts_of(rec))
    return entry


#: Every file a record folder holds; anything else was put there afterwards.
_FOLDER_FILES = frozenset({"record.json", "record.sig", *ARTIFACTS})


def _hash_ok(raw: bytes, rec: Mapping[str, Any], stored: str) -> bool:
    # Fast path: record.json as written by commit() is canonical_json(record) + "\n", so
    # the hashed bytes are the file minus its '"hash":"<hex>",' member. If that fails
    # (e.g. the file was reformatted), fall back to re-serialising the parsed record.
    body = raw[:-1] if raw.endswith(b"\n") else raw
    member = b'"hash":"' + stored.encode("ascii", "replace") + b'",'
    if body.count(member) == 1 and hashlib.sha256(body.replace(member, b"", 1)).hexdigest() == stored:
        return True
    try:
        return record_hash(rec) == stored
    except ValueError:
        return False


# -- the archive -----------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    seq INTEGER UNIQUE NOT NULL,
    operation TEXT, environment TEXT, status TEXT, rc INTEGER,
    ticket TEXT, incident TEXT, started TEXT, ended TEXT, duration_s REAL,
    check_mode INTEGER, operator TEXT, hosts TEXT, changed INTEGER, failed INTEGER,
    hash TEXT
);
CREATE TABLE record_hosts (host TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (host, id)) WITHOUT ROWID;
CREATE INDEX records_env ON records (environment, seq);
CREATE INDEX records_op ON records (operation, seq);
CREATE INDEX records_status ON records (status, seq);
CREATE INDEX records_ticket ON records (ticket, seq);
CREATE INDEX records_incident ON records (incident, seq);
CREATE INDEX records_started ON records (started);
CREATE INDEX record_hosts_id ON record_hosts (id);
"""

_SUMMARY_COLUMNS = (
    "id, seq, operation, environment, status, rc, ticket, incident, started, ended, "
    "duration_s, check_mode, operator, hosts, changed, failed, hash"
)


def _hosts_of(record: Mapping[str, Any]) -> list[str]:
    hosts = set(record.get("targets") or [])
    hosts.update((record.get("hosts") or {}).keys())
    return sorted(str(h) for h in hosts)


def _index_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
    operator = record.get("operator") or {}
    failures = record.get("failures") or []
    return (
        record["id"],
        record["seq"],
        record.get("operation"),
        record.get("environment"),
        record.get("status"),
        record.get("rc"),
        record.get("ticket"),
        record.get("incident"),
        record.get("started"),
        record.get("ended"),
        record.get("duration_s"),
        1 if record.get("check_mode") else 0,
        operator.get("user") if isinstance(operator, dict) else None,
        ",".join(_hosts_of(record)),
        len(record.get("changes") or []),
        sum(1 for f in failures if isinstance(f, dict) and not f.get("ignored")),
        record.get("hash"),
    )


def _insert(conn: sqlite3.Connection, record: Mapping[str, Any]) -> None:
    conn.execute(f"INSERT INTO records ({_SUMMARY_COLUMNS}) VALUES ({','.join('?' * 17)})", _index_row(record))
    conn.executemany(
        "INSERT OR IGNORE INTO record_hosts (host, id) VALUES (?, ?)",
        [(h, record["id"]) for h in _hosts_of(record)],
    )


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = [c.strip() for c in _SUMMARY_COLUMNS.split(",")]
    out = dict(zip(keys, row, strict=True))
    out["check_mode"] = bool(out["check_mode"])
    out["hosts"] = [h for h in (out["hosts"] or "").split(",") if h]
    return out


def _time_bound(value: str, *, upper: bool) -> str:
    """Normalise a --since/--until value; a bare date as --until means the end of that day."""
    text = value.strip()
    dt = parse_iso(text)
    if upper and len(text) == 10:  # YYYY-MM-DD: include the whole day
        dt = dt + timedelta(days=1)
    return iso(dt)


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
                _mkdir_private(self.root)
            _mkdir_private(self.pending_root)
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
        _mkdir_private(folder)
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
        out = {k: v for k, v in record.items() if k not in _ARCHIVE_FIELDS}
        out["seq"] = (head["seq"] if head else 0) + 1
        out["prev_hash"] = head["hash"] if head else None
        for art in ARTIFACTS:
            if not (folder / art).exists():
                fd = os.open(folder / art, os.O_WRONLY | os.O_CREAT, FILE_MODE)
                os.close(fd)
        out["artifacts"] = {art: _sha256_bytes(folder / art) for art in ARTIFACTS}
        out["hash"] = record_hash(out)
        atomic_write(folder / "record.json", record_bytes(out))
        self._sign(folder, out)
        for transient in ("pending.json", "child.json"):  # run state, not evidence
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / transient)
        atomic_write(self.root / "HEAD", canonical_json({"seq": out["seq"], "id": run_id, "hash": out["hash"]}) + b"\n")
        os.rename(folder, final)
        _fsync_dir(folder.parent)
        _fsync_dir(self.root)
        self._index_append(out)
        return out

    @staticmethod
    def _sign(folder: Path, record: Mapping[str, Any]) -> None:
        """``record.sig`` with the key of whoever files the record (``OPSCTL_SIGNING_KEY``); a
        failure leaves the record unsigned (said on stderr) rather than lose it: environments
        whose records must be signed check the key before the run starts."""
        from . import signing

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
            _fsync_dir(self.pending_root)
            _fsync_dir(self.root)
            self._index_append(rec)

    def recover_interrupted(self, redactor_factory: Callable[[], Redactor] | None = None) -> list[str]:
        """Commit every pending run whose process is gone, as status ``interrupted``.

        The record is rebuilt from the saved events and pending.json. If the run had
        already written its final record.json (crash during commit), that record is
        committed with its own status instead. ``redactor_factory`` (optional) gives a
        Redactor applied once more to the rebuilt record. Returns the ids recovered.
        """
        if not self.pending_root.is_dir():
            return []
        recovered: list[str] = []
        with self._locked():
            self._roll_forward()
            for folder in sorted(self.pending_root.iterdir()):
                if not folder.is_dir() or RECORD_ID_RE.fullmatch(folder.name) is None:
                    continue
                record = self._rebuild_pending(folder, redactor_factory)
                if record is None:
                    continue
                self._commit_locked(folder, record)
                recovered.append(folder.name)
        return recovered

    def _rebuild_pending(
        self, folder: Path, redactor_factory: Callable[[], Redactor] | None
    ) -> dict[str, Any] | None:
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
                    return {k: v for k, v in done.items() if k not in _ARCHIVE_FIELDS}
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
            meta = RunMeta(id=folder.name, operation="unknown", playbook="unknown", environment="unknown",
                           inventory="unknown")
        events = list(self._read_events(folder / "events.jsonl"))
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
        record = build_from_events(
            events, meta, status="interrupted", rc=-1, ended=ended, redaction=redaction, error=error
        )
        if redactor_factory is not None:
            redactor = redactor_factory()
            record = redactor.redact_obj(record)
            record["redaction"] = {**redactor.report(), "recovered": True}
        return record

    @staticmethod
    def _read_events(path: Path) -> Iterator[dict[str, Any]]:
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
        return self._read_events(self._artifact(record_id, "events.jsonl"))

    def record_ids(self) -> list[str]:
        """The ids of all record folders (unordered check-free listing, sorted by id)."""
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as it:
            return sorted(e.name for e in it if RECORD_ID_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False))

    # -- the index ---------------------------------------------------------------------

    def _connect(self, path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def reindex(self) -> int:
        """Rebuild index.sqlite from the record folders; returns the number indexed."""
        self._ensure()
        with self._locked():
            return self._reindex_locked()

    def _reindex_locked(self) -> int:
        fd, tmp_name = tempfile.mkstemp(dir=self.root, prefix=".index.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        os.chmod(tmp, FILE_MODE)
        head = self.head()
        count = 0
        try:
            conn = self._connect(tmp)
            try:
                conn.execute("PRAGMA journal_mode = OFF")
                conn.execute("PRAGMA synchronous = OFF")
                conn.execute("BEGIN")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                for name in self.record_ids():
                    try:
                        rec = json.loads((self.root / name / "record.json").read_bytes())
                    except (OSError, ValueError):
                        continue  # verify reports it
                    if not isinstance(rec, dict) or rec.get("id") != name or not isinstance(rec.get("seq"), int):
                        continue
                    try:
                        _insert(conn, rec)
                    except sqlite3.IntegrityError:
                        continue  # duplicate seq: verify reports it
                    count += 1
                meta = {
                    "version": INDEX_VERSION,
                    "head_seq": str(head["seq"]) if head else "0",
                    "head_hash": head["hash"] if head else "",
                }
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
                conn.execute("COMMIT")
            finally:
                conn.close()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.index_path)
            _fsync_dir(self.root)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return count

    def _index_append(self, record: Mapping[str, Any]) -> None:
        """Add a just-committed record to the index if the index is current; else drop
        the index so the next list() rebuilds it. Never fails the commit."""
        if not self.index_path.exists():
            return
        try:
            conn = self._connect(self.index_path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("head_seq") == str(record["seq"] - 1) and meta.get("head_hash") == (
                    record["prev_hash"] or ""
                ):
                    _insert(conn, record)
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'head_seq'", (str(record["seq"]),))
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'head_hash'", (record["hash"],))
                    conn.execute("COMMIT")
                    return
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        except sqlite3.Error:
            pass
        with contextlib.suppress(OSError):
            self.index_path.unlink()

    def _index_current(self) -> bool:
        if not self.index_path.exists():
            return False
        head = self.head()
        try:
            conn = self._connect(self.index_path)
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            finally:
                conn.close()
        except sqlite3.Error:
            return False
        return (
            meta.get("version") == INDEX_VERSION
            and meta.get("head_seq") == (str(head["seq"]) if head else "0")
            and meta.get("head_hash") == (head["hash"] if head else "")
        )

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
        since_bound = _time_bound(since, upper=False) if since is not None else None
        until_bound = _time_bound(until, upper=True) if until is not None else None
        if limit is not None and limit < 0:
            raise BadInput("limit must not be negative")
        if not self.root.is_dir():
            return []
        if not self._index_current():
            self.reindex()
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("environment", env), ("operation", op), ("status", status), ("ticket", ticket), ("incident", incident)
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if host is not None:
            where.append("id IN (SELECT id FROM record_hosts WHERE host = ?)")
            args.append(host)
        if since_bound is not None:
            where.append("started >= ?")
            args.append(since_bound)
        if until_bound is not None:
            where.append("started < ?")
            args.append(until_bound)
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            conn = self._connect(self.index_path)
            try:
                rows = conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ArchiveError(f"cannot query the index {self.index_path}: {exc}; run `opsctl records reindex`") from exc
        return [_summary(row) for row in rows]

    # -- verification ------------------------------------------------------------------

    def verify(self, signatures: SignaturePolicy | None = None) -> VerifyReport:
        """Check the whole chain; report the first bad record (in seq order). With
        ``signatures``, also every record's signature (:mod:`orchestrator.signing`)."""
        if not self.root.is_dir():
            return VerifyReport(ok=True, count=0)
        try:
            head = self.head()
        except ArchiveError as exc:
            return VerifyReport(ok=False, count=0, first_bad_id=None, problem=str(exc))
        names: list[str] = []
        with os.scandir(self.root) as it:
            for dirent in it:
                if dirent.name.startswith("."):
                    continue
                if dirent.is_dir(follow_symlinks=False) or (
                    dirent.is_symlink() and RECORD_ID_RE.fullmatch(dirent.name)
                ):
                    names.append(dirent.name)
        entries = [_check_folder(self.root, name) for name in names]
        count = len(entries)

        def bad(entry_id: str | None, problem: str) -> VerifyReport:
            return VerifyReport(ok=False, count=count, first_bad_id=entry_id, problem=problem)

        unplaced = sorted((e for e in entries if e.seq is None), key=lambda e: e.name)
        if unplaced:
            return bad(unplaced[0].name, unplaced[0].problem or "record has no seq")
        by_seq: dict[int, list[_Entry]] = {}
        for e in entries:
            assert e.seq is not None
            by_seq.setdefault(e.seq, []).append(e)
        seqs = sorted(by_seq)
        expected, prev_hash, prev_id = 1, None, None
        for i, seq in enumerate(seqs):
            group = by_seq[seq]
            if len(group) > 1:
                if i + 1 < len(seqs):
                    wanted = {e.prev_hash for e in by_seq[seqs[i + 1]]}
                else:
                    wanted = {head["hash"]} if head else set()
                genuine = [e for e in group if e.problem is None and e.hash in wanted and e.prev_hash == prev_hash]
                keep = genuine[0] if genuine else None
                forged = sorted((e for e in group if e is not keep), key=lambda e: (e.problem is None, e.name))
                ids = ", ".join(sorted(e.name for e in group))
                return bad(
                    forged[0].name,
                    f"seq {seq} is claimed by {len(group)} records ({ids}); "
                    f"{forged[0].name} is not part of the chain: inserted record"
                    + (f" ({forged[0].problem})" if forged[0].problem else ""),
                )
            entry = group[0]
            if entry.problem:
                return bad(entry.name, entry.problem)
            if seq != expected:
                if seq < expected:
                    return bad(entry.name, f"seq {seq} is out of range (the first record has seq 1): edited")
                missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
                return bad(entry.name, f"seq jumps from {expected - 1} to {seq}: record(s) with {missing} missing (removed)")
            if entry.prev_hash != prev_hash:
                before = f"record {prev_id}" if prev_id else "nothing (first record)"
                return bad(
                    entry.name,
                    f"prev_hash does not match the hash of {before}: "
                    "a record before it was edited and re-hashed, replaced or reordered",
                )
            expected, prev_hash, prev_id = seq + 1, entry.hash, entry.name
        if not seqs:
            if head is not None:
                return bad(head.get("id"), f"HEAD names seq {head['seq']} but the archive holds no records: removed")
            return VerifyReport(ok=True, count=0)
        last = by_seq[seqs[-1]][0]
        if head is None:
            return bad(last.name, "HEAD is missing: cannot tell whether the newest records were removed")
        if head["seq"] > seqs[-1]:
            pend = self.pending_root / str(head.get("id")) / "record.json"
            note = " (its commit was interrupted; run `opsctl records recover`)" if pend.exists() else ""
            return bad(
                head.get("id"),
                f"HEAD names seq {head['seq']} ({head.get('id')}) but the newest record is seq {seqs[-1]}: "
                f"newest record(s) removed{note}",
            )
        if head["seq"] < seqs[-1]:
            beyond = by_seq[head["seq"] + 1][0] if head["seq"] + 1 in by_seq else last
            return bad(beyond.name, f"record {beyond.name} (seq {beyond.seq}) is beyond HEAD (seq {head['seq']}): inserted")
        if head["hash"] != last.hash or head.get("id") != last.name:
            return bad(last.name, "the newest record does not match HEAD: edited and re-hashed, or replaced")
        problem = self._index_differs(entries)
        if problem:
            return bad(problem[0], problem[1])
        if signatures is not None:
            return self._verify_signatures(sorted(entries, key=lambda e: e.seq or 0), signatures)
        return VerifyReport(ok=True, count=count)

    @staticmethod
    def _must_be_signed(row: tuple[Any, ...], policy: SignaturePolicy) -> bool:
        operation, env, status, started = row[2], row[3], row[4], row[8]
        since = policy.required_envs.get(env)
        if since is None or status == "refused":
            return False
        if policy.operations is not None and operation not in policy.operations:
            return False
        try:
            return bool(started) and parse_iso(str(started)) >= parse_iso(since)
        except OpsError:
            return True

    def _verify_signatures(self, entries: Sequence[_Entry], policy: SignaturePolicy) -> VerifyReport:
        from . import signing

        signers: dict[str, int] = {}
        unsigned = 0
        for e in entries:
            assert e.index_row is not None
            env = e.index_row[3]
            sig = self.root / e.name / signing.SIG_FILE
            if not sig.is_file():
                # A refusal is filed even when the key is missing (that is often why it was
                # refused); it changed nothing, and re-sealing one would break every later
                # record's signature, so it may stay unsigned.
                if self._must_be_signed(e.index_row, policy):
                    return VerifyReport(ok=False, count=len(entries), first_bad_id=e.name,
                                        problem=f"record of {env} is not signed (its records must be): "
                                                "signature removed, or made without a key",
                                        signers=signers, unsigned=unsigned)
                unsigned += 1
                continue
            who, why = policy.verifier.signer(sig, signing.message(e.name, e.seq, e.hash))
            if who is None:
                return VerifyReport(ok=False, count=len(entries), first_bad_id=e.name,
                                    problem=f"bad signature: {why}", signers=signers, unsigned=unsigned)
            signers[who] = signers.get(who, 0) + 1
        return VerifyReport(ok=True, count=len(entries), signers=signers, unsigned=unsigned)

    def _index_differs(self, entries: Sequence[_Entry]) -> tuple[str | None, str] | None:
        """The index is derived from the records: any row that differs from its record,
        is missing or has no record is reported (``records list`` reads the index)."""
        if not self.index_path.exists():
            return None  # nothing derived yet: list() rebuilds it
        fix = "index.sqlite edited; `opsctl records reindex` rebuilds it from the records"
        try:
            conn = self._connect(self.index_path)
            try:
                rows = {r[0]: tuple(r) for r in conn.execute(f"SELECT {_SUMMARY_COLUMNS} FROM records")}
                hosts: dict[str, set[str]] = {}
                for host, rid in conn.execute("SELECT host, id FROM record_hosts"):
                    hosts.setdefault(rid, set()).add(host)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return None, f"index.sqlite is unreadable ({exc}): {fix}"
        keys = [c.strip() for c in _SUMMARY_COLUMNS.split(",")]
        for e in sorted(entries, key=lambda e: e.seq or 0):
            assert e.id is not None and e.index_row is not None
            row = rows.pop(e.id, None)
            if row is None:
                return e.id, f"record {e.id} is missing from the index: {fix}"
            if row != e.index_row:
                diff = next(k for k, a, b in zip(keys, row, e.index_row, strict=True) if a != b)
                return e.id, f"the index row of {e.id} differs from its record ({diff}): {fix}"
            if hosts.pop(e.id, set()) != set(e.hosts):
                return e.id, f"the index's hosts of {e.id} differ from its record: {fix}"
        if rows:
            extra = sorted(rows)[0]
            return extra, f"the index lists {extra}, which is not in the archive: {fix}"
        if hosts:
            extra = sorted(hosts)[0]
            return extra, f"the index lists hosts of {extra}, which is not in the archive: {fix}"
        return None

    # -- export ------------------------------------------------------------------------

    def export_stamp(self) -> dict[str, Any]:
        """What every export carries so a copy can be checked later against the archive
        (``opsctl records verify-export FILE``): the chain's HEAD when it was made."""
        head = self.head() or {}
        return {"seq": head.get("seq", 0), "hash": head.get("hash"), "id": head.get("id"),
                "exported_at": iso(utc_now())}

    def export(self, fmt: str, out: Path, **filters: Any) -> int:
        """Write the matching records as CSV, JSON or a static HTML page; returns the count."""
        if fmt not in EXPORT_FORMATS:
            raise BadInput(f"export format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
        rows = self.list(**filters)
        records = [self.get(row["id"]) for row in rows]
        stamp = self.export_stamp()
        if fmt == "csv":
            data = _to_csv(records, stamp).encode("utf-8")
        elif fmt == "json":
            body = {"archive_head": stamp, "records": records}
            data = (json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
        else:
            data = _to_html(records, self, filters, stamp).encode("utf-8")
        out = Path(out)
        try:
            if not out.parent.exists():
                out.parent.mkdir(parents=True)
            atomic_write(out, data)
        except OSError as exc:
            raise ArchiveError(f"cannot write {out}: {exc}") from exc
        return len(records)


CSV_COLUMNS = (
    "seq", "id", "operation", "environment", "status", "rc", "check_mode", "ticket", "incident", "reason",
    "launch", "operator_user", "on_behalf_of", "operator_host", "git_name", "git_email", "started", "ended", "duration_s",
    "targets", "hosts_failed", "changes", "failures", "source_commit", "source_branch", "source_dirty",
    "prev_hash", "hash",
)


def verify_export(archive: Archive, claims: Mapping[str, Any]) -> list[str]:
    """Problems between an export's claims (``{"head": stamp, "records": [(id, seq, hash)]}``)
    and this archive: its HEAD then must be a record of this chain now, and every record it
    lists must be here with the same seq and hash."""
    problems: list[str] = []
    head = claims.get("head") or {}
    seq, digest = head.get("seq"), head.get("hash")
    by_seq: dict[Any, dict[str, Any]] = {}
    for rid in archive.record_ids():
        try:
            rec = archive.get(rid)
        except ArchiveError as exc:
            problems.append(f"record {rid}: {exc}")
            continue
        by_seq[rec.get("seq")] = rec
    if seq:
        at = by_seq.get(seq)
        if at is None:
            problems.append(f"the export was made at HEAD seq {seq}, which this archive does not hold: "
                            "records removed, or another archive")
        elif at.get("hash") != digest:
            problems.append(f"the export was made at HEAD seq {seq} hash {str(digest)[:12]}, but this archive's "
                            f"seq {seq} has hash {str(at.get('hash'))[:12]}: the chain was rewritten since")
    for rid, rseq, rhash in claims.get("records") or []:
        found = by_seq.get(rseq)
        if found is None or found.get("id") != rid:
            problems.append(f"record {rid} (seq {rseq}) of the export is not in this archive")
        elif found.get("hash") != rhash:
            problems.append(f"record {rid} (seq {rseq}) differs: the export says hash {str(rhash)[:12]}, "
                            f"the archive {str(found.get('hash'))[:12]}")
    return problems



def read_export_claims(path: Path) -> dict[str, Any]:
    """The HEAD and (id, seq, hash) of each record an export file claims (CSV, JSON or HTML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the export {path}: {exc}") from exc
    try:
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            return {"head": data["archive_head"],
                    "records": [(r["id"], r["seq"], r["hash"]) for r in data["records"]]}
        if text.lstrip().startswith("<"):
            m = re.search(r'<script type="application/json" id="envcredit-export">(.*?)</script>', text, re.S)
            if not m:
                raise BadInput(f"{path}: an HTML file without the export's data (not made by records export)")
            data = json.loads(m.group(1))
            return {"head": data["head"], "records": [tuple(r) for r in data["records"]]}
        rows = list(csv.DictReader(text.splitlines()))
        if rows and "archive_head_seq" not in rows[0]:
            raise BadInput(f"{path}: a CSV without archive_head_seq (not made by records export)")
        head = {"seq": int(rows[0]["archive_head_seq"]), "hash": rows[0]["archive_head_hash"]} if rows else {}
        return {"head": head, "records": [(r["id"], int(r["seq"]), r["hash"]) for r in rows]}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BadInput(f"{path}: not an export of records export ({type(exc).__name__}: {exc})") from exc


def _csv_safe(value: Any) -> Any:
    """Defuse spreadsheet formulas in text cells (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def _to_csv(records: list[dict[str, Any]], stamp: Mapping[str, Any]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow((*CSV_COLUMNS, "archive_head_seq", "archive_head_hash"))
    for r in records:
        operator = r.get("operator") or {}
        source = r.get("source") or {}
        hosts = r.get("hosts") or {}
        row = [
            r.get("seq"), r.get("id"), r.get("operation"), r.get("environment"), r.get("status"), r.get("rc"),
            r.get("check_mode"), r.get("ticket"), r.get("incident"), r.get("reason"),
            (r.get("launch") or {}).get("type"), operator.get("user"), operator.get("on_behalf_of"),
            operator.get("host"),
            operator.get("git_name"), operator.get("git_email"), r.get("started"), r.get("ended"),
            r.get("duration_s"), " ".join(r.get("targets") or []),
            " ".join(h for h, c in hosts.items() if c.get("failed") or c.get("unreachable")),
            len(r.get("changes") or []), sum(1 for f in r.get("failures") or [] if not f.get("ignored")),
            source.get("commit"), source.get("branch"), source.get("dirty"), r.get("prev_hash"), r.get("hash"),
            stamp.get("seq"), stamp.get("hash"),
        ]
        writer.writerow(["" if v is None else _csv_safe(v) for v in row])
    return buf.getvalue()


def _to_html(records: list[dict[str, Any]], archive: Archive, filters: Mapping[str, Any],
             stamp: Mapping[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def pretty(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)

    env.filters["pretty"] = pretty
    from .reports.render import when

    env.filters["when"] = when  # Beijing time, like every report
    report = archive.verify()
    try:
        html = env.get_template("archive.html.j2").render(
            records=records,
            generated=iso(utc_now()),
            archive=str(archive.root),
            filters={k: v for k, v in filters.items() if v is not None},
            verify=report,
            stamp=stamp,
            # what `opsctl records verify-export` reads back (inert data, no code)
            claims=json.dumps({"head": dict(stamp), "records": [[r.get("id"), r.get("seq"), r.get("hash")]
                                                               for r in records]}).replace("</", "<\\/"),
        )
    except jinja2.TemplateError as exc:
        raise OpsError(f"cannot render the HTML export: {exc}") from exc
    return html
