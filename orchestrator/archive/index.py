"""The archive's query index (``index.sqlite``): derived from the record folders, rebuildable
from them at any time, and checked against them by :func:`differs` (``records verify``).

A commit appends its record when the index is current (its meta names the previous HEAD);
otherwise the index is dropped and the next :func:`query` rebuilds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError, BadInput
from ..records import iso, parse_iso
from .files import FILE_MODE, fsync_dir

if TYPE_CHECKING:
    from .chain import Archive
    from .verify import _Entry

INDEX_NAME = "index.sqlite"
INDEX_VERSION = "2"  # 2: index on incident

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

SUMMARY_COLUMNS = (
    "id, seq, operation, environment, status, rc, ticket, incident, started, ended, "
    "duration_s, check_mode, operator, hosts, changed, failed, hash"
)


def hosts_of(record: Mapping[str, Any]) -> list[str]:
    hosts = set(record.get("targets") or [])
    hosts.update((record.get("hosts") or {}).keys())
    return sorted(str(h) for h in hosts)


def index_row(record: Mapping[str, Any]) -> tuple[Any, ...]:
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
        ",".join(hosts_of(record)),
        len(record.get("changes") or []),
        sum(1 for f in failures if isinstance(f, dict) and not f.get("ignored")),
        record.get("hash"),
    )


def _insert(conn: sqlite3.Connection, record: Mapping[str, Any]) -> None:
    conn.execute(f"INSERT INTO records ({SUMMARY_COLUMNS}) VALUES ({','.join('?' * 17)})", index_row(record))
    conn.executemany(
        "INSERT OR IGNORE INTO record_hosts (host, id) VALUES (?, ?)",
        [(h, record["id"]) for h in hosts_of(record)],
    )


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    keys = [c.strip() for c in SUMMARY_COLUMNS.split(",")]
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


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def rebuild(archive: Archive) -> int:
    """Rebuild index.sqlite from the record folders (the caller holds the archive lock);
    returns the number indexed."""
    fd, tmp_name = tempfile.mkstemp(dir=archive.root, prefix=".index.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, FILE_MODE)
    head = archive.head()
    count = 0
    try:
        conn = connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            for name in archive.record_ids():
                try:
                    rec = json.loads((archive.root / name / "record.json").read_bytes())
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
        os.replace(tmp, archive.index_path)
        fsync_dir(archive.root)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return count


def append(archive: Archive, record: Mapping[str, Any]) -> None:
    """Add a just-committed record to the index if the index is current; else drop
    the index so the next list() rebuilds it. Never fails the commit."""
    if not archive.index_path.exists():
        return
    try:
        conn = connect(archive.index_path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("head_seq") == str(record["seq"] - 1) and meta.get("head_hash") == (record["prev_hash"] or ""):
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
        archive.index_path.unlink()


def current(archive: Archive) -> bool:
    if not archive.index_path.exists():
        return False
    head = archive.head()
    try:
        conn = connect(archive.index_path)
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


def query(
    archive: Archive,
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
    if not archive.root.is_dir():
        return []
    if not current(archive):
        archive.reindex()
    where: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("environment", env),
        ("operation", op),
        ("status", status),
        ("ticket", ticket),
        ("incident", incident),
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
    sql = f"SELECT {SUMMARY_COLUMNS} FROM records"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    try:
        conn = connect(archive.index_path)
        try:
            rows = conn.execute(sql, args).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ArchiveError(f"cannot query the index {archive.index_path}: {exc}; run `opsctl records reindex`") from exc
    return [_summary(row) for row in rows]


def differs(archive: Archive, entries: Sequence[_Entry]) -> tuple[str | None, str] | None:
    """The index is derived from the records: any row that differs from its record,
    is missing or has no record is reported (``records list`` reads the index)."""
    if not archive.index_path.exists():
        return None  # nothing derived yet: list() rebuilds it
    fix = "index.sqlite edited; `opsctl records reindex` rebuilds it from the records"
    try:
        conn = connect(archive.index_path)
        try:
            rows = {r[0]: tuple(r) for r in conn.execute(f"SELECT {SUMMARY_COLUMNS} FROM records")}
            hosts: dict[str, set[str]] = {}
            for host, rid in conn.execute("SELECT host, id FROM record_hosts"):
                hosts.setdefault(rid, set()).add(host)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return None, f"index.sqlite is unreadable ({exc}): {fix}"
    keys = [c.strip() for c in SUMMARY_COLUMNS.split(",")]
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
