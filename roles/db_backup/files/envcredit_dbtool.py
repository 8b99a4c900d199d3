#!/usr/bin/python3
"""Backup, check, restore and compare envcredit databases on the database host.

Runs as `postgres` (PostgreSQL, peer authentication) or root (MariaDB, unix
socket). No shell pipelines: where two programs are chained (dump | zstd) both
are started here and BOTH exit statuses are checked. Every command prints one
JSON object on stdout; errors go to stderr with exit status 1.

  backup   --engine E --root DIR --id ID --db NAME... [--record-id R --env ENV
           --jobs N --level L --min-free-mb M --free-factor F --keep-on-host K]
  check    --root DIR --id ID                     sha256 of every file against the manifest
  restore  --engine E --root DIR --id ID --source-db NAME --into NEWDB [--jobs N]
           restore one database of a backup into a NEW database and compare
           its row counts with the manifest (the new database is dropped on failure)
  counts   --engine E --db NAME                   exact row count of every table
  checksum --engine E --db NAME                   per-table checksum of the data
  drop     --engine E --db NAME                   drop a database (never the --protect one)
  swap     --engine E --live NAME --new NAME --old NAME
           live -> old, new -> live (PostgreSQL: rename, new connections refused meanwhile;
           MariaDB: one RENAME TABLE); exit 1: nothing changed, exit 3: the live name is
           missing (could not be put back, the message says where its data is); the JSON's
           "warnings" name what a done swap left (an emptied database that could not be dropped)
  exists   --engine E --db NAME
  pitr-window --stanza S --target TIME            (PostgreSQL, pgBackRest) the recovery window:
           earliest = end of the oldest backup in the repository, latest = a commit made
           now and archived (pgbackrest check); whether TIME (ISO 8601 with a zone, or
           `latest`: a second before that commit) is in it
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# The code both database tools share (Fail, now, sha256, the engines' connection and quoting)
# is envcredit_dbcommon.py, installed beside this file (the collection's
# plugins/module_utils/envcredit_dbcommon.py). This file's own directory first, also when
# python runs in safe-path mode; no bytecode cache (__pycache__) written next to the tools.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_WRITE_BYTECODE, sys.dont_write_bytecode = sys.dont_write_bytecode, True
import envcredit_dbcommon as common  # noqa: E402
from envcredit_dbcommon import MY_SOCKET, Fail, now, sha256  # noqa: E402,F401

sys.dont_write_bytecode = _WRITE_BYTECODE

STARTED = time.monotonic()
# A table this big (with its TOAST and indexes) is worth a pg_dump worker of its own.
PARALLEL_TABLE_BYTES = 256 * 1024 * 1024
FORMAT = 1


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise Fail(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


# sha256 of the files written (and fsynced) by write_hashed, by path: the manifest takes them
# from here instead of reading the files again after the dump.
SEALED: dict[str, str] = {}
SEALED_LOCK = threading.Lock()


def write_hashed(pipe: Any, dest: Path) -> None:
    """Write what comes out of `pipe` (a binary file object) to `dest`, hashing on the way; fsync."""
    h = hashlib.sha256()
    try:
        with dest.open("wb") as f:
            src = pipe.fileno()
            while True:
                chunk = os.read(src, 1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:  # ENOSPC and the like: a clear message, not a traceback
        raise Fail(f"writing {dest}: {exc.strerror or exc}") from exc
    with SEALED_LOCK:
        SEALED[str(dest)] = h.hexdigest()


def chain(
    first: list[str], second: list[str], stdout: Any = None, stdin: Any = None, hashed_to: Path | None = None
) -> None:
    """first | second, both exit statuses checked (the equivalent of set -o pipefail).

    With `hashed_to`, second's output goes to that file through write_hashed."""
    with tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
        p1 = subprocess.Popen(first, stdin=stdin, stdout=subprocess.PIPE, stderr=err1)
        out = subprocess.PIPE if hashed_to is not None else (stdout or subprocess.DEVNULL)
        p2 = subprocess.Popen(second, stdin=p1.stdout, stdout=out, stderr=err2)
        assert p1.stdout is not None
        p1.stdout.close()
        try:
            if hashed_to is not None:
                write_hashed(p2.stdout, hashed_to)
        except BaseException:
            p1.kill()
            p2.kill()
            raise
        finally:
            p2.wait()
            p1.wait()
        for proc, argv, err in ((p1, first, err1), (p2, second, err2)):
            if proc.returncode != 0:
                err.seek(0)
                raise Fail(f"{argv[0]} exited {proc.returncode}: {err.read().decode(errors='replace').strip()[-2000:]}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_by_others(path: Path) -> bool:
    """Whether any other process of this user holds `path` open (from /proc/<pid>/fd)."""
    target, me = str(path), os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return True
            except OSError:
                continue
    return False


class Follower(threading.Thread):
    """Compresses one file of pg_dump's directory output WHILE pg_dump still writes it.

    pg_dump opens each data file once, writes it and closes it. The follower streams
    what is there into `zstd` (sendfile into its stdin), and at end of file waits until
    either more data comes or no process holds the file open any more (then it reads
    the rest: nothing more can be written). The raw file is removed once `<file>.zst`
    is complete; a failure (zstd or read error) is kept in `.error` and the caller
    fails the backup. The same result as `pg_dump ...; zstd --rm <dir>/*.dat`, but
    the compression runs beside the dump instead of after it.
    """

    def __init__(self, raw: Path, level: int, writer_gone: threading.Event) -> None:
        super().__init__(name=f"zstd {raw.name}", daemon=True)
        self.raw, self.level, self.writer_gone = raw, level, writer_gone
        self.error: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def _finished_writing(self) -> bool:
        return self.writer_gone.is_set() or not open_by_others(self.raw)

    def run(self) -> None:
        out = self.raw.with_name(self.raw.name + ".zst")
        written: dict[str, BaseException] = {}  # the output writer's failure, the real cause
        try:
            with self.raw.open("rb") as src, tempfile.TemporaryFile() as err:
                self.proc = subprocess.Popen(
                    ["zstd", "-q", f"-{self.level}", "-T0", "-c"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                )
                assert self.proc.stdin is not None

                def drain() -> None:
                    try:
                        write_hashed(self.proc.stdout, out)  # type: ignore[union-attr]
                    except BaseException as exc:
                        written["error"] = exc
                        # nobody reads zstd's output any more: stop it, so that feeding it
                        # fails (broken pipe) instead of blocking for ever
                        self.proc.kill()  # type: ignore[union-attr]

                writer = threading.Thread(target=drain, name=f"write {out.name}", daemon=True)
                writer.start()
                pipe, offset, last_round = self.proc.stdin.fileno(), 0, False
                try:
                    while True:
                        sent = os.sendfile(pipe, src.fileno(), offset, 1 << 22)
                        if sent:
                            offset += sent
                            continue
                        if last_round:
                            break
                        if self._finished_writing():
                            last_round = True  # closed: one more pass reads what came before the close
                        else:
                            time.sleep(0.02)
                finally:
                    self.proc.stdin.close()
                    writer.join()
                    rc = self.proc.wait()
                if "error" in written:
                    raise written["error"]
                if rc != 0:
                    err.seek(0)
                    raise Fail(f"zstd exited {rc} on {self.raw.name}: {err.read().decode(errors='replace')[-500:]}")
            self.raw.unlink()
        except BaseException as exc:  # reported to the caller, which fails the backup
            self.error = str(written.get("error") or exc) or type(exc).__name__
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()


def dump_directory_compressed(argv: list[str], out: Path, level: int) -> None:
    """Run pg_dump -Fd (uncompressed, no sync) into `out` and zstd every file as it is written."""
    gone = threading.Event()
    followers: dict[str, Follower] = {}

    def follow_new() -> None:
        if not out.is_dir():
            return
        for p in sorted(out.iterdir()):
            if p.is_file() and not p.name.endswith(".zst") and p.name not in followers:
                followers[p.name] = Follower(p, level, gone)
                followers[p.name].start()

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        try:
            while proc.poll() is None:
                follow_new()
                time.sleep(0.05)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            gone.set()  # pg_dump and its workers are gone: nothing is written any more
        if proc.returncode != 0:
            for f in followers.values():
                f.join()
            err.seek(0)
            raise Fail(f"{argv[0]} exited {proc.returncode}: {err.read().decode(errors='replace').strip()[-2000:]}")
    follow_new()  # files opened right before the end (toc.dat)
    for f in followers.values():
        f.join()
    failed = [f.error for f in followers.values() if f.error]
    if failed:
        raise Fail("compression failed: " + "; ".join(failed))


# ----------------------------------------------------------------------------- engines


class SwapBroken(Fail):
    """The swap failed half-way and could not be undone: the live name does not exist (exit 3)."""


def _pg_message(exc: Any) -> str:
    """psycopg2's message on one line (its DETAIL too), no traceback."""
    return " ".join(str(exc).split())


def _my_message(exc: Any) -> str:
    """pymysql's (code, message) as 'message (code)'."""
    args = getattr(exc, "args", ())
    if len(args) >= 2:
        return f"{args[1]} ({args[0]})"
    return " ".join(str(exc).split())


class Engine(common.Engine):
    def __init__(self) -> None:
        # database -> how far the manifest's row counts may be from the dump's snapshot
        # (0: exact, taken in the same snapshot)
        self.tolerance: dict[str, int] = {}
        # database -> parallel dump jobs used (PostgreSQL; 1 elsewhere)
        self.jobs: dict[str, int] = {}

    def query(self, db: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect(db)
        try:
            cur = conn.cursor()
            cur.execute(sql, args)
            rows = list(cur.fetchall()) if cur.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def tables(self, conn: Any, db: str) -> list[str]:
        raise NotImplementedError

    def count_tables(self, conn: Any, db: str) -> dict[str, int]:
        cur = conn.cursor()
        out: dict[str, int] = {}
        for t in self.tables(conn, db):
            cur.execute(f"SELECT count(*) FROM {self.quote(t)}")
            out[t] = int(cur.fetchone()[0])
        return out


class Postgres(common.Postgres, Engine):
    """connect(db): peer authentication as the OS user (postgres)."""

    def tables(self, conn: Any, db: str) -> list[str]:
        cur = conn.cursor()
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        return [r[0] for r in cur.fetchall()]

    def version(self) -> str:
        return str(self.query("postgres", "SHOW server_version")[0][0])

    def exists(self, db: str) -> bool:
        return bool(self.query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (db,)))

    def size(self, db: str) -> int:
        return int(self.query("postgres", "SELECT pg_database_size(%s)", (db,))[0][0])

    def owner(self, db: str) -> str:
        return str(
            self.query("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (db,))[0][0]
        )

    def dump(self, db: str, dest: Path, jobs: int, level: int) -> tuple[dict[str, int], list[Path]]:
        """pg_dump directory format in the snapshot the row counts were taken in."""
        conn = self.connect(db)
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        try:
            cur = conn.cursor()
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
            counts = self.count_tables(conn, db)
            # Parallel jobs only where they pay: each pg_dump worker takes whole tables, so
            # beyond one worker per big table plus one for all the small ones, more cannot
            # help (and cost a connection each); no big table at all: one job. Sizes
            # from the catalog's page counts (table + TOAST, as of the last VACUUM/ANALYZE):
            # pg_total_relation_size() would wait on a table another session has locked.
            cur.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_class t ON t.oid = c.reltoastrelid "
                "WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND (c.relpages::bigint + coalesce(t.relpages, 0)) "
                "* current_setting('block_size')::bigint >= %s",
                (PARALLEL_TABLE_BYTES,),
            )
            big = int(cur.fetchone()[0])
            self.jobs[db] = max(1, min(jobs, big + 1 if big else 1))
            out = dest / f"{db}.dir"
            # --no-sync: the raw files are compressed and removed as they are written; the
            # compressed files are fsynced with the manifest before the backup is renamed.
            dump_directory_compressed(
                [
                    "pg_dump",
                    "-Fd",
                    "-Z",
                    "0",
                    "-j",
                    str(self.jobs[db]),
                    "--no-sync",
                    "--snapshot",
                    snapshot,
                    "-f",
                    str(out),
                    db,
                ],
                out,
                level,
            )
        finally:
            conn.rollback()
            conn.close()
        return counts, sorted(p for p in out.iterdir() if p.is_file())

    def dump_globals(self, dest: Path, level: int) -> Path:
        out = dest / "globals.sql.zst"
        chain(["pg_dumpall", "--globals-only"], ["zstd", "-q", f"-{level}", "-c"], hashed_to=out)
        return out

    def create(self, db: str, owner: str) -> None:
        run(["createdb", "-T", "template0", "-E", "UTF8", "-O", owner, db])

    def restore(self, files: list[Path], source_db: str, into: str, jobs: int, owner: str, tmp: Path) -> None:
        work = tmp / f"{source_db}.dir"
        work.mkdir()
        for p in files:
            if p.parent.name != f"{source_db}.dir":
                continue
            target = work / p.name.removesuffix(".zst")
            run(["zstd", "-q", "-d", "-o", str(target), str(p)])
        self.create(into, owner)
        run(["pg_restore", "--exit-on-error", "-j", str(jobs), "-d", into, str(work)])

    def drop(self, db: str) -> None:
        run(["dropdb", "--if-exists", "--force", db])

    def swap(self, live: str, new: str, old: str) -> list[str]:
        """live -> old, new -> live. Both databases refuse new connections from before their
        sessions are ended until after the renames (a client that reconnects at once, a pool
        or a probe, would otherwise hold the name and fail the rename); each gets its own
        setting back, found by OID since the names change. Fails (live unchanged, or
        SwapBroken when it could not be put back) without a traceback."""
        import psycopg2

        conn = self.connect("postgres")
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT oid, datallowconn FROM pg_database WHERE datname IN (%s, %s)", (live, new))
        allowed = {int(oid): bool(allow) for oid, allow in cur.fetchall()}
        step = "refusing new connections"
        failure: Fail | None = None
        try:
            try:
                for name in (live, new):
                    cur.execute(f"ALTER DATABASE {self.quote(name)} WITH ALLOW_CONNECTIONS false")
                step = "ending the sessions"
                for name in (live, new):
                    # waits up to 5 s for each session to end (PostgreSQL 14+)
                    cur.execute(
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()",
                        (name,),
                    )
                step = f"renaming {live} to {old}"
                cur.execute(f"ALTER DATABASE {self.quote(live)} RENAME TO {self.quote(old)}")
                try:
                    step = f"renaming {new} to {live}"
                    cur.execute(f"ALTER DATABASE {self.quote(new)} RENAME TO {self.quote(live)}")
                except psycopg2.Error as exc:
                    first = _pg_message(exc)
                    try:
                        cur.execute(f"ALTER DATABASE {self.quote(old)} RENAME TO {self.quote(live)}")
                    except psycopg2.Error as back:
                        raise SwapBroken(
                            f"{step} failed ({first}) and {old} could not be renamed back to {live} "
                            f"({_pg_message(back)}): {live} does not exist; its data is in {old}"
                        ) from None
                    raise
            except SwapBroken as exc:
                failure = exc
            except psycopg2.Error as exc:
                failure = Fail(f"the swap failed while {step}: {_pg_message(exc)}; {live} is unchanged")
        finally:  # also on any other exception: no database is left refusing connections
            warnings = self._allow_again(cur, allowed)
            conn.close()
        if failure is not None:
            raise type(failure)("; ".join([str(failure), *warnings]))
        return warnings

    def _allow_again(self, cur: Any, allowed: dict[int, bool]) -> list[str]:
        import psycopg2

        warnings = []
        for oid, allow in allowed.items():
            try:
                cur.execute("SELECT datname FROM pg_database WHERE oid = %s", (oid,))
                row = cur.fetchone()
                if row:
                    cur.execute(
                        f"ALTER DATABASE {self.quote(row[0])} WITH ALLOW_CONNECTIONS {'true' if allow else 'false'}"
                    )
            except psycopg2.Error as exc:
                warnings.append(
                    f"could not allow connections to database OID {oid} again: {_pg_message(exc)}; "
                    "ALTER DATABASE ... WITH ALLOW_CONNECTIONS true by hand"
                )
        return warnings

    def checksums(self, db: str) -> dict[str, str]:
        conn = self.connect(db)
        try:
            out = {}
            cur = conn.cursor()
            for t in self.tables(conn, db):
                cur.execute(
                    f"SELECT md5(coalesce(string_agg(md5(r::text), '' ORDER BY md5(r::text)), '')) "
                    f"FROM {self.quote(t)} r"
                )
                out[t] = str(cur.fetchone()[0])
            return out
        finally:
            conn.close()


class MariaDB(common.MariaDB, Engine):
    """connect(db): root over the unix socket (unix_socket authentication)."""

    def tables(self, conn: Any, db: str) -> list[str]:
        cur = conn.cursor()
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_type = 'BASE TABLE' ORDER BY table_name",
            (db,),
        )
        return [r[0] for r in cur.fetchall()]

    def version(self) -> str:
        return str(self.query("", "SELECT VERSION()")[0][0])

    def exists(self, db: str) -> bool:
        return bool(self.query("", "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (db,)))

    def size(self, db: str) -> int:
        rows = self.query(
            "",
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            "WHERE table_schema = %s",
            (db,),
        )
        return int(rows[0][0])

    def owner(self, db: str) -> str:
        return "root"

    def snapshot_counts(self, conn: Any, db: str) -> dict[str, int]:
        cur = conn.cursor()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            return self.count_tables(conn, db)
        finally:
            conn.rollback()

    def dump(self, db: str, dest: Path, jobs: int, level: int) -> tuple[dict[str, int], list[Path]]:
        """mariadb-dump --single-transaction | zstd, with the row counts taken beside it.

        mariadb-dump's snapshot cannot be shared. The manifest's counts come from a snapshot
        opened just before it starts (counted while it runs); a second count in a snapshot
        opened after it ends measures how much each table changed in between. The sum of
        those changes is the database's `count_tolerance`: 0 when nothing was written (the
        counts are exact), otherwise the most the restored counts may differ from the
        manifest in total (a table that only grows, or only shrinks, during the dump is
        always within it; one written both ways can still fail verification: a false alarm,
        never a false pass beyond the measured change).
        """
        conn = self.connect(db)
        counted: dict[str, Any] = {}

        def count() -> None:
            try:
                counted["tables"] = self.count_tables(conn, db)
            except BaseException as exc:
                counted["error"] = exc

        try:
            cur = conn.cursor()
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            counter = threading.Thread(target=count, name="row counts", daemon=True)
            counter.start()
            out = dest / f"{db}.sql.zst"
            try:
                chain(
                    [
                        "mariadb-dump",
                        "--single-transaction",
                        "--routines",
                        "--triggers",
                        "--events",
                        "--hex-blob",
                        "--default-character-set=utf8mb4",
                        db,
                    ],
                    ["zstd", "-q", f"-{level}", "-T0", "-c"],
                    hashed_to=out,
                )
            finally:
                counter.join()
            conn.rollback()
            if "error" in counted:
                raise Fail(f"row counts of {db} failed: {counted['error']}")
            before: dict[str, int] = counted["tables"]
            after = self.snapshot_counts(conn, db)
            self.tolerance[db] = sum(abs(after.get(t, 0) - before.get(t, 0)) for t in set(before) | set(after))
        finally:
            conn.close()
        return before, [out]

    def dump_globals(self, dest: Path, level: int) -> Path:
        out = dest / "users.sql.zst"
        chain(["mariadb-dump", "--system=users", "--insert-ignore"], ["zstd", "-q", f"-{level}", "-c"], hashed_to=out)
        return out

    def create(self, db: str, owner: str) -> None:
        self.query("", f"CREATE DATABASE {self.quote(db)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def restore(self, files: list[Path], source_db: str, into: str, jobs: int, owner: str, tmp: Path) -> None:
        src = [p for p in files if p.name == f"{source_db}.sql.zst"]
        if not src:
            raise Fail(f"the backup holds no dump of {source_db}")
        self.create(into, owner)
        chain(["zstd", "-q", "-d", "-c", str(src[0])], ["mariadb", "--default-character-set=utf8mb4", into])

    def drop(self, db: str) -> None:
        self.query("", f"DROP DATABASE IF EXISTS {self.quote(db)}")

    def swap(self, live: str, new: str, old: str) -> list[str]:
        """live -> old, new -> live in one atomic RENAME TABLE. Once it has run, the swap is
        done: failing to drop the emptied new database (a file MariaDB does not know in its
        directory, say) is a warning naming what is left, not a failure. Before it, nothing
        has changed: the empty old database made for it is dropped again."""
        import pymysql

        conn = self.connect("")
        try:
            cur = conn.cursor()
            try:
                live_t = self.tables(conn, live)
                new_t = self.tables(conn, new)
                cur.execute(f"CREATE DATABASE {self.quote(old)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            except pymysql.Error as exc:
                raise Fail(f"the swap could not start: {_my_message(exc)}; {live} is unchanged") from None
            pairs = [f"{self.quote(live)}.{self.quote(t)} TO {self.quote(old)}.{self.quote(t)}" for t in live_t]
            pairs += [f"{self.quote(new)}.{self.quote(t)} TO {self.quote(live)}.{self.quote(t)}" for t in new_t]
            try:
                cur.execute("SET foreign_key_checks = 0")
                cur.execute("RENAME TABLE " + ", ".join(pairs))  # one atomic statement
            except pymysql.Error as exc:
                left = ""
                try:
                    cur.execute(f"DROP DATABASE {self.quote(old)}")
                except pymysql.Error as drop:
                    left = f" (the empty database {old} made for the swap is left: {_my_message(drop)})"
                raise Fail(f"the swap failed: {_my_message(exc)}; {live} is unchanged{left}") from None
            try:
                cur.execute(f"DROP DATABASE {self.quote(new)}")
            except pymysql.Error as exc:
                return [
                    f"the swap is done, but the emptied database {new} could not be dropped: {_my_message(exc)}; "
                    f"remove what is left in it and drop it by hand"
                ]
            return []
        finally:
            conn.close()

    def checksums(self, db: str) -> dict[str, str]:
        conn = self.connect(db)
        try:
            out = {}
            cur = conn.cursor()
            for t in self.tables(conn, db):
                cur.execute(f"CHECKSUM TABLE {self.quote(t)} EXTENDED")
                out[t] = str(cur.fetchone()[1])
            return out
        finally:
            conn.close()


def engine(name: str) -> Engine:
    return Postgres() if name == "postgresql" else MariaDB()


# ----------------------------------------------------------------------------- commands


def cmd_backup(a: argparse.Namespace) -> dict[str, Any]:
    eng = engine(a.engine)
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in root.glob("*.partial"):  # left by a killed run: never listed, removed here
        shutil.rmtree(stale, ignore_errors=True)
    final = root / a.id
    if final.exists():
        raise Fail(f"backup {a.id} already exists in {root}")
    missing = [db for db in a.db if not eng.exists(db)]
    if missing:
        raise Fail(f"no such database: {', '.join(missing)}")
    estimate = sum(eng.size(db) for db in a.db)
    free = shutil.disk_usage(root).free
    need = int(estimate * a.free_factor) + a.min_free_mb * 1024 * 1024
    if free < need:
        raise Fail(
            f"not enough free space in {root}: {free} bytes free, {need} needed "
            f"({estimate} bytes of data x {a.free_factor} + {a.min_free_mb} MB reserve)"
        )
    partial = root / f"{a.id}.partial"
    partial.mkdir(mode=0o700)
    started = now()
    try:
        databases = []
        files: list[Path] = []
        for db in a.db:
            counts, dumped = eng.dump(db, partial, a.jobs, a.level)
            files += dumped
            databases.append(
                {
                    "name": db,
                    "owner": eng.owner(db),
                    "size_bytes": eng.size(db),
                    "tables": counts,
                    "count_tolerance": eng.tolerance.get(db, 0),
                    "dump_jobs": eng.jobs.get(db, 1),
                }
            )
        files.append(eng.dump_globals(partial, a.level))
        manifest = {
            "format": FORMAT,
            "backup_id": a.id,
            "engine": eng.name,
            "server_version": eng.version(),
            "host": a.host or socket.gethostname(),
            "env": a.env,
            "record_id": a.record_id,
            "databases": databases,
            "files": [
                {
                    "path": str(p.relative_to(partial)),
                    "bytes": p.stat().st_size,
                    "sha256": SEALED.get(str(p)) or sha256(p),
                }
                for p in files
            ],
            "started": started,
            "ended": now(),
        }
        manifest["total_bytes"] = sum(f["bytes"] for f in manifest["files"])
        mpath = partial / "manifest.json"
        with mpath.open("w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        for p in partial.rglob("*"):
            if p.is_file() and str(p) not in SEALED:  # the others were fsynced as they were written
                fd = os.open(p, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
        os.rename(partial, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if a.keep_on_host > 0:  # only once the new backup is complete; the store keeps the history
        mine = sorted(p for p in root.glob(f"*Z-{a.host or socket.gethostname()}") if p.is_dir())
        for old in mine[: -a.keep_on_host]:
            shutil.rmtree(old)
        manifest["removed_on_host"] = [p.name for p in mine[: -a.keep_on_host]]
    manifest["rsync_on_host"] = shutil.which("rsync") is not None
    manifest["elapsed_s"] = round(time.monotonic() - STARTED, 3)  # the whole tool run, for bench/db
    return manifest


def load_manifest(root: Path, backup_id: str) -> tuple[Path, dict[str, Any]]:
    base = root / backup_id
    mpath = base / "manifest.json"
    if not mpath.is_file():
        raise Fail(f"backup {backup_id} not found in {root}")
    try:
        return base, json.loads(mpath.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise Fail(f"backup {backup_id}: manifest unreadable: {exc}") from exc


def verify_files(base: Path, manifest: dict[str, Any]) -> list[str]:
    bad = []
    for f in manifest.get("files", []):
        p = base / f["path"]
        if not p.is_file():
            bad.append(f"{f['path']}: missing")
        elif p.stat().st_size != f["bytes"] or sha256(p) != f["sha256"]:
            bad.append(f"{f['path']}: checksum mismatch")
    return bad


def cmd_check(a: argparse.Namespace) -> dict[str, Any]:
    base, manifest = load_manifest(Path(a.root), a.id)
    bad = verify_files(base, manifest)
    if bad:
        raise Fail(f"backup {a.id} is corrupt: {'; '.join(bad)}")
    return {"backup_id": a.id, "files": len(manifest["files"]), "ok": True}


def compare_counts(expected: dict[str, int], restored: dict[str, int], tolerance: int) -> str | None:
    """None when the restored row counts match the manifest; otherwise why they do not.

    Same tables always; the counts exactly, or within `tolerance` rows in total when the
    manifest says its counts and the dump came from snapshots that writes fell between.
    """
    if set(expected) != set(restored):
        missing = {
            t: {"expected": expected.get(t), "restored": restored.get(t)} for t in sorted(set(expected) ^ set(restored))
        }
        return f"tables differ: {json.dumps(missing)}"
    diff = {
        t: {"expected": expected[t], "restored": restored[t]} for t in sorted(expected) if expected[t] != restored[t]
    }
    total = sum(abs(d["expected"] - d["restored"]) for d in diff.values())
    if total > tolerance:
        within = f" (more than the {tolerance} rows written during the backup)" if tolerance else ""
        return f"{json.dumps(diff)}{within}"
    return None


def cmd_restore(a: argparse.Namespace) -> dict[str, Any]:
    eng = engine(a.engine)
    base, manifest = load_manifest(Path(a.root), a.id)
    if manifest.get("engine") != eng.name:
        raise Fail(f"backup {a.id} is a {manifest.get('engine')} backup, not {eng.name}")
    bad = verify_files(base, manifest)
    if bad:
        raise Fail(f"backup {a.id} is corrupt: {'; '.join(bad)}")
    dbs = {d["name"]: d for d in manifest["databases"]}
    if a.source_db not in dbs:
        raise Fail(f"backup {a.id} holds no database {a.source_db} (it holds {', '.join(dbs)})")
    if a.into in a.protect:
        raise Fail(f"refusing to restore into the protected database {a.into}")
    if eng.exists(a.into):
        raise Fail(f"database {a.into} already exists; restore only goes into a new database")
    started = now()
    files = [base / f["path"] for f in manifest["files"]]
    try:
        with tempfile.TemporaryDirectory(prefix="envcredit-restore-", dir=a.tmp) as tmp:
            eng.restore(files, a.source_db, a.into, a.jobs, dbs[a.source_db]["owner"], Path(tmp))
        conn = eng.connect(a.into)
        try:
            counts = eng.count_tables(conn, a.into)
        finally:
            conn.close()
        expected = dbs[a.source_db]["tables"]
        tolerance = int(dbs[a.source_db].get("count_tolerance", 0))
        off = compare_counts(expected, counts, tolerance)
        if off is not None:
            raise Fail(f"row counts of {a.into} differ from the manifest: {off}")
    except BaseException:
        try:
            eng.drop(a.into)
        finally:
            pass
        raise
    return {
        "backup_id": a.id,
        "database": a.into,
        "tables": counts,
        "count_tolerance": tolerance,
        "counts_differ_by": sum(abs(counts[t] - expected[t]) for t in expected),
        "started": started,
        "ended": now(),
    }


BEIJING = dt.timezone(dt.timedelta(hours=8))


def parse_target_time(text: str) -> dt.datetime:
    """``2026-11-29 10:15:00+08`` (ISO 8601, a zone required) as an aware datetime."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise Fail(f"target_time {text!r} is not a time: give it as '2026-11-29 10:15:00+08'") from None
    if when.tzinfo is None:
        raise Fail(f"target_time {text!r} has no zone: give it as '2026-11-29 10:15:00+08' (Beijing time)")
    return when


def beijing(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, BEIJING).strftime("%Y-%m-%d %H:%M:%S+08")


def recovery_window(info: list[dict[str, Any]], last_archived: float | None) -> tuple[float, float]:
    """(earliest, latest) restorable epoch seconds from ``pgbackrest info`` and the newest archived commit."""
    if not info:
        raise Fail("pgbackrest info returned no stanza")
    stanza = info[0]
    status = stanza.get("status") or {}
    if status.get("code") != 0:
        # its message may quote undecryptable bytes: only the code and the first words
        raise Fail(
            f"the pgBackRest repository cannot be read (status {status.get('code')}: "
            f"{str(status.get('message', ''))[:80]!r}): wrong repository key or the backup host unreachable"
        )
    backups = stanza.get("backup") or []
    if not backups:
        raise Fail("the pgBackRest repository holds no backup of this stanza: take one first (opsctl run backup)")
    earliest = min(float(b["timestamp"]["stop"]) for b in backups)
    # the newest backup's end is restorable without any later WAL (its own WAL is archived)
    newest_stop = max(float(b["timestamp"]["stop"]) for b in backups)
    latest = max(newest_stop, last_archived or 0.0)
    return earliest, latest


def cmd_pitr_window(a: argparse.Namespace) -> dict[str, Any]:
    # The repository first: unreadable (wrong key, backup host unreachable) or empty, nothing
    # else is done.
    proc = subprocess.run(
        ["pgbackrest", f"--stanza={a.stanza}", "--output=json", "info"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        said = (
            "".join(ch for ch in proc.stderr.strip().splitlines()[0][:160] if ch.isprintable())
            if proc.stderr.strip()
            else ""
        )
        raise Fail(
            f"the pgBackRest repository cannot be read (pgbackrest info exited {proc.returncode}: {said!r}): "
            "wrong repository key or the backup host unreachable"
        )
    info = json.loads(proc.stdout or "[]")
    recovery_window(info, None)
    # Recovery to a time stops at the first commit after it: without one in the archived WAL,
    # PostgreSQL ends the recovery "before the target was reached". So a commit is made now
    # (an xid assigned, nothing written), then `pgbackrest check` switches the WAL and waits
    # until it is in the repository: every time before that commit is restorable.
    conn = engine("postgresql").connect("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT txid_current(), extract(epoch FROM clock_timestamp())")
            row = cur.fetchone()
        conn.commit()
    finally:
        conn.close()
    last = float(row[1]) if row else None
    run(["pgbackrest", f"--stanza={a.stanza}", "check"])
    earliest, latest = recovery_window(info, last)
    out: dict[str, Any] = {
        "stanza": a.stanza,
        "earliest": earliest,
        "latest": latest,
        "window": f"{beijing(earliest)} .. {beijing(latest)}",
    }
    try:
        # latest: everything committed before the commit made above (a restore drill)
        target = latest - 1 if a.target.strip() == "latest" else parse_target_time(a.target).timestamp()
    except Fail as exc:
        return {**out, "within": False, "reason": str(exc)}
    out["target"] = target
    out["target_beijing"] = beijing(target)
    if target < earliest:
        out.update(within=False, reason=f"target_time {beijing(target)} is before the recovery window {out['window']}")
    elif target >= latest:
        out.update(
            within=False,
            reason=f"target_time {beijing(target)} is after the newest archived WAL: the recovery window is "
            f"{out['window']}",
        )
    else:
        # the backup set pgBackRest restores from: the newest that ended before the target
        ended = [b for b in (info[0].get("backup") or [] if info else []) if float(b["timestamp"]["stop"]) <= target]
        out.update(within=True, reason="", set=ended[-1]["label"] if ended else None)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backup")
    b.add_argument("--engine", required=True, choices=["postgresql", "mariadb"])
    b.add_argument("--root", required=True)
    b.add_argument("--id", required=True)
    b.add_argument("--db", action="append", required=True)
    b.add_argument("--record-id", default="")
    b.add_argument("--env", default="")
    b.add_argument("--host", default="")
    b.add_argument("--jobs", type=int, default=1)
    b.add_argument("--level", type=int, default=3)
    b.add_argument("--min-free-mb", type=int, default=64)
    b.add_argument("--free-factor", type=float, default=1.0)
    b.add_argument(
        "--keep-on-host",
        type=int,
        default=0,
        help="complete backups of this host kept in --root "
        "(older ones removed after the new one is complete; 0 keeps all)",
    )
    c = sub.add_parser("check")
    c.add_argument("--root", required=True)
    c.add_argument("--id", required=True)
    r = sub.add_parser("restore")
    r.add_argument("--engine", required=True, choices=["postgresql", "mariadb"])
    r.add_argument("--root", required=True)
    r.add_argument("--id", required=True)
    r.add_argument("--source-db", required=True)
    r.add_argument("--into", required=True)
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--tmp", default=None)
    r.add_argument("--protect", action="append", default=[])
    for name in ("counts", "checksum", "drop", "exists"):
        s = sub.add_parser(name)
        s.add_argument("--engine", required=True, choices=["postgresql", "mariadb"])
        s.add_argument("--db", required=True)
        s.add_argument("--protect", action="append", default=[])
    w = sub.add_parser("swap")
    w.add_argument("--engine", required=True, choices=["postgresql", "mariadb"])
    w.add_argument("--live", required=True)
    w.add_argument("--new", required=True)
    w.add_argument("--old", required=True)
    pw = sub.add_parser("pitr-window")
    pw.add_argument("--stanza", required=True)
    pw.add_argument("--target", required=True)
    a = ap.parse_args()
    os.umask(0o077)
    try:
        if a.cmd == "backup":
            out = cmd_backup(a)
        elif a.cmd == "check":
            out = cmd_check(a)
        elif a.cmd == "restore":
            out = cmd_restore(a)
        elif a.cmd == "pitr-window":
            out = cmd_pitr_window(a)
        else:
            eng = engine(a.engine)
            if a.cmd == "exists":
                out = {"database": a.db, "exists": eng.exists(a.db)}
            elif a.cmd == "counts":
                conn = eng.connect(a.db)
                try:
                    out = {"database": a.db, "tables": eng.count_tables(conn, a.db)}
                finally:
                    conn.close()
            elif a.cmd == "checksum":
                out = {"database": a.db, "tables": eng.checksums(a.db)}
            elif a.cmd == "drop":
                if a.db in a.protect:
                    raise Fail(f"refusing to drop the protected database {a.db}")
                existed = eng.exists(a.db)
                eng.drop(a.db)
                out = {"database": a.db, "dropped": existed}
            else:
                for db in (a.live, a.new):
                    if not eng.exists(db):
                        raise Fail(f"no such database: {db}")
                if eng.exists(a.old):
                    raise Fail(f"database {a.old} already exists")
                out = {"live": a.live, "previous": a.old, "warnings": eng.swap(a.live, a.new, a.old)}
    except SwapBroken as exc:
        print(f"envcredit_dbtool: {exc}", file=sys.stderr)
        return 3
    except Fail as exc:
        print(f"envcredit_dbtool: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
