#!/usr/bin/python3
"""Bulk export to CSV or .xlsx and validated, all-or-nothing CSV/.xlsx import for the envcredit databases.

Runs on the database host as `postgres` (PostgreSQL, peer authentication) or
root (MariaDB, unix socket); Python 3 stdlib + psycopg2 / pymysql. Prints one
JSON object on stdout; on a refusal or error prints the reason on stderr
(``envcredit_transfer: line N: ...``) and exits 1.

CSV convention (both directions): UTF-8 without BOM (``--bom`` writes one, for
Excel on Chinese Windows; a BOM is accepted on import), RFC 4180 quoting (``"`` doubled inside quoted fields, fields may span
lines), ``\\n`` line ends (``\\r\\n`` accepted), a header line with the column
names. **NULL is an empty unquoted field; the empty string is ``""``** (the
convention of PostgreSQL's ``COPY ... CSV``). Dates ``YYYY-MM-DD``, timestamps
``YYYY-MM-DD HH:MM:SS[.ffffff]``, numerics as plain decimals, booleans
``true``/``false``, binary as ``\\x`` + hex.

  export --engine E --db DB --out DIR [--table T]... [--query SQL --name N]
         [--format csv|xlsx] [--bom] --user U --password-stdin [--dry-run]
      Connects as the export account U (SELECT only; password on stdin, never
      in an argument or the environment): PostgreSQL over TCP to 127.0.0.1,
      MariaDB over the unix socket. Tables and the query are read in ONE
      read-only transaction (PostgreSQL SET TRANSACTION READ ONLY, repeatable
      read; MariaDB START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY). The
      account's privileges are the first line; the tool's checks the second:
      one statement (no ``;``); in PostgreSQL through a cursor (SELECT/VALUES
      only); in MariaDB INTO OUTFILE/DUMPFILE and LOAD_FILE are refused, also
      around comments. A file whose content did not change is left as it was
      (``changed`` false). ``--format xlsx`` writes ``<table>.xlsx`` (openpyxl;
      refused before connecting when it is missing): one sheet named after the
      table, the first row the column names (bold, frozen), typed cells
      (numbers, Excel dates, timestamptz in Beijing time, text kept as text,
      NULL an empty cell), column widths for Chinese text.
  import --engine E --db DB --table T --file CSV|XLSX --backup-dir DIR [--record-id R]
         [--keep-backups N] [--done-dir DIR] [--encoding auto|utf-8|gbk|gb18030]
         [--mode insert|upsert --key COL[,COL]] --user U --password-stdin [--dry-run]
      Connects as the import account U (the role grants it SELECT and INSERT on
      table T only, for the length of the import; password on stdin). The
      table backup is taken by this process's OS account (pg_dump /
      mariadb-dump), which reads and never writes.
      1. read: a ``.xlsx`` file (openpyxl; the first sheet, its first row the
         header; cells as text in the CSV convention, an empty cell NULL) or a
         CSV decoded as ``--encoding`` says: ``auto`` (the default) takes UTF-8
         (with or without BOM) and refuses anything else, naming the encoding
         to state when the file reads as GBK/GB18030 (what Excel on Chinese
         Windows saves); ``gbk``/``gb18030`` decode strictly as GB18030 (a
         superset of GBK); then check the header against the table's
         columns and every value against its column type, duplicate keys in
         the file; in ``--mode upsert`` the ``--key`` columns must be in the
         header, make up a unique key of the table and have a value on every
         line; 2. dry run: write every row inside a transaction that is
         rolled back (the database's own checks: existing keys, foreign keys,
         lengths); 3. unless --dry-run: back up the table (PostgreSQL pg_dump
         -Fc -t in the snapshot of the import transaction, whose table lock
         keeps writers out; MariaDB mariadb-dump --single-transaction | zstd),
         then write every row in ONE transaction and commit: ``insert`` (the
         default) inserts; ``upsert`` updates the row with the line's key and
         inserts the line when there is none. Any failure: refused with the
         line number and the reason, the table unchanged.

Size (over 400 lines): one tool copied to the database hosts as a single file (beside
envcredit_dbcommon.py only), so both directions, both file formats, the CSV parser, the
type checks and both engines' SQL stay together; split, each piece would have to be
installed and found on the host as well.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import decimal
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Iterator

# The code both database tools share (Fail, now, sha256, the engines' connection and quoting)
# is envcredit_dbcommon.py, installed beside this file (the collection's
# plugins/module_utils/envcredit_dbcommon.py). This file's own directory first, also when
# python runs in safe-path mode; no bytecode cache (__pycache__) written next to the tools.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
_WRITE_BYTECODE, sys.dont_write_bytecode = sys.dont_write_bytecode, True
import envcredit_dbcommon as common  # noqa: E402
from envcredit_dbcommon import MY_SOCKET, Fail, now, sha256  # noqa: E402,F401

sys.dont_write_bytecode = _WRITE_BYTECODE

PG_HOST = os.environ.get("ENVCREDIT_PG_HOST", "127.0.0.1")
BATCH = 500
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def chain(first: list[str], second: list[str], stdout: Any) -> None:
    """first | second with both exit statuses checked (no shell pipe)."""
    p1 = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p2 = subprocess.Popen(second, stdin=p1.stdout, stdout=stdout, stderr=subprocess.PIPE)
    assert p1.stdout is not None
    p1.stdout.close()
    err2 = p2.communicate()[1]
    err1 = p1.communicate()[1]
    if p1.returncode != 0:
        raise Fail(f"{first[0]} exited {p1.returncode}: {err1.decode(errors='replace').strip()[-1000:]}")
    if p2.returncode != 0:
        raise Fail(f"{second[0]} exited {p2.returncode}: {err2.decode(errors='replace').strip()[-1000:]}")


# ----------------------------------------------------------------------------- CSV


def csv_field(value: Any) -> str:
    """One value in the file's convention (NULL: nothing; empty string: "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, (dt.date, dt.time)):
        text = value.isoformat()
    elif isinstance(value, decimal.Decimal):
        text = format(value, "f")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = "\\x" + bytes(value).hex()
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_line(values: list[Any] | tuple[Any, ...]) -> str:
    return ",".join(csv_field(v) for v in values) + "\n"


def parse_csv(text: str) -> Iterator[tuple[int, list[str | None]]]:
    """Records of an RFC 4180 text as (line where the record starts, fields).

    An unquoted empty field is None (NULL); a quoted one is a string. Strict:
    a quote inside an unquoted field, text after a closing quote or an
    unterminated quoted field is refused with its line number."""
    i, n, line = 0, len(text), 1
    while i < n:
        start = line
        fields: list[str | None] = []
        while True:  # one field per turn
            if i < n and text[i] == '"':
                opened = line
                i += 1
                buf = []
                while True:
                    j = text.find('"', i)
                    if j < 0:
                        raise Fail(f"line {opened}: quoted field not closed before the end of the file")
                    buf.append(text[i:j])
                    line += text.count("\n", i, j)
                    if j + 1 < n and text[j + 1] == '"':
                        buf.append('"')
                        i = j + 2
                        continue
                    i = j + 1
                    break
                fields.append("".join(buf))
                if i < n and text[i] not in ",\r\n":
                    raise Fail(f"line {line}: text after a closing quote")
            else:
                j = i
                while j < n and text[j] not in ",\r\n":
                    j += 1
                raw = text[i:j]
                if '"' in raw:
                    raise Fail(f"line {line}: quote inside an unquoted field (quote the whole field)")
                fields.append(raw if raw else None)
                i = j
            if i < n and text[i] == ",":
                i += 1
                continue
            break
        if i < n and text[i] == "\r":
            i += 1
            if i >= n or text[i] != "\n":
                raise Fail(f"line {line}: carriage return without line feed")
        if i < n and text[i] == "\n":
            i += 1
            line += 1
        yield start, fields


# ----------------------------------------------------------------------------- types


class Column:
    def __init__(
        self,
        name: str,
        kind: str,
        nullable: bool,
        has_default: bool,
        length: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
        lo: int | None = None,
        hi: int | None = None,
        serial: bool = False,
        tz: bool = False,
    ) -> None:
        self.name, self.kind, self.nullable, self.has_default = name, kind, nullable, has_default
        self.length, self.precision, self.scale, self.lo, self.hi = length, precision, scale, lo, hi
        self.serial = serial
        self.tz = tz  # a timestamp with time zone (PostgreSQL timestamptz)

    def check(self, value: str | None) -> str | None:
        """Why the value does not fit the column, or None."""
        if value is None:
            return None if self.nullable else "NULL (empty unquoted field) in a NOT NULL column"
        if "\x00" in value:
            return "NUL character"
        k = self.kind
        if k == "int":
            if not re.fullmatch(r"[+-]?\d+", value):
                return f"{value[:40]!r} is not an integer"
            v = int(value)
            if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
                return f"{value} is out of range [{self.lo}, {self.hi}]"
        elif k == "numeric":
            if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)", value):
                return f"{value[:40]!r} is not a decimal number"
            d = decimal.Decimal(value)
            if self.precision is not None and self.scale is not None:
                exp = d.as_tuple().exponent
                if isinstance(exp, int) and -exp > self.scale:
                    return f"{value} has more than {self.scale} decimal places"
                if abs(d) >= decimal.Decimal(10) ** (self.precision - self.scale):
                    return f"{value} does not fit NUMERIC({self.precision},{self.scale})"
        elif k == "float":
            try:
                float(value)
            except ValueError:
                return f"{value[:40]!r} is not a number"
        elif k == "bool":
            if value.lower() not in ("true", "false", "t", "f", "1", "0", "yes", "no"):
                return f"{value[:40]!r} is not a boolean (true/false)"
        elif k == "date":
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                return f"{value[:40]!r} is not a date (YYYY-MM-DD)"
        elif k == "timestamp":
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                return f"{value[:40]!r} is not a timestamp (YYYY-MM-DD HH:MM:SS)"
        elif k == "text":
            if self.length is not None and len(value) > self.length:
                return f"{len(value)} characters, longer than the column's {self.length}"
        return None


INT_RANGE = {
    "smallint": 16,
    "integer": 32,
    "bigint": 64,
    "tinyint": 8,
    "mediumint": 24,
    "int": 32,
}


def classify(data_type: str, unsigned: bool = False) -> tuple[str, int | None, int | None]:
    t = data_type.lower()
    if t in INT_RANGE:
        bits = INT_RANGE[t]
        if unsigned:
            return "int", 0, 2**bits - 1
        return "int", -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if t in ("numeric", "decimal"):
        return "numeric", None, None
    if t in ("real", "double precision", "float", "double"):
        return "float", None, None
    if t == "boolean":
        return "bool", None, None
    if t == "date":
        return "date", None, None
    if t.startswith("timestamp") or t == "datetime":
        return "timestamp", None, None
    if t in ("character varying", "character", "text", "varchar", "char", "tinytext", "mediumtext", "longtext"):
        return "text", None, None
    return "other", None, None  # left to the database's dry run


# ----------------------------------------------------------------------------- engines


class Login:
    """An account with a password (the export account); None: the administrator (peer/socket)."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password


class Engine(common.Engine):
    placeholder = "%s"

    def columns(self, conn: Any, db: str, table: str) -> list[Column]:
        raise NotImplementedError

    def unique_keys(self, conn: Any, db: str, table: str) -> list[list[str]]:
        raise NotImplementedError

    def begin_read_only(self, conn: Any) -> None:
        raise NotImplementedError

    def cursor_for(self, conn: Any, sql: str) -> Any:
        raise NotImplementedError

    def check_query(self, sql: str) -> None:
        if ";" in sql.strip().rstrip(";"):
            raise Fail("the query must be one statement (no ';' inside)")

    def begin_import(self, conn: Any, table: str) -> None:
        raise NotImplementedError

    def backup_table(self, conn: Any, db: str, table: str, dest: Path) -> Path:
        raise NotImplementedError

    def after_import(self, conn: Any, table: str, cols: list[Column], names: list[str]) -> None:
        pass

    def error_text(self, exc: Exception) -> str:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Postgres(common.Postgres, Engine):
    def connect(self, db: str, login: Login) -> Any:  # type: ignore[override]
        return super().connect(
            db, host=PG_HOST, user=login.user, password=login.password, application_name="envcredit_transfer"
        )

    def columns(self, conn: Any, db: str, table: str) -> list[Column]:
        cur = conn.cursor()
        cur.execute(
            "SELECT column_name, data_type, is_nullable = 'YES', column_default IS NOT NULL OR is_identity = 'YES',"
            " character_maximum_length, numeric_precision, numeric_scale, coalesce(column_default, '') LIKE 'nextval(%%'"
            " FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s"
            " ORDER BY ordinal_position",
            (table,),
        )
        out = []
        for name, dtype, nullable, has_default, length, prec, scale, serial in cur.fetchall():
            kind, lo, hi = classify(dtype)
            tz = dtype == "timestamp with time zone"
            out.append(Column(name, kind, nullable, has_default, length, prec, scale, lo, hi, serial, tz))
        return out

    def unique_keys(self, conn: Any, db: str, table: str) -> list[list[str]]:
        cur = conn.cursor()
        cur.execute(
            "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = ('public.' || quote_ident(%s))::regclass AND i.indisunique"
            " GROUP BY i.indexrelid",
            (table,),
        )
        return [list(r[0]) for r in cur.fetchall()]

    def begin_read_only(self, conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("SET TRANSACTION READ ONLY")

    def cursor_for(self, conn: Any, sql: str) -> Any:
        named = conn.cursor(name=f"envcredit_export_{os.getpid()}")  # DECLARE ... CURSOR: SELECT/VALUES only
        named.itersize = 2000
        named.execute(sql)
        return named

    def begin_import(self, conn: Any, table: str) -> None:
        cur = conn.cursor()
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # Writers wait until the import commits; readers go on. Taken before the snapshot.
        cur.execute(f"LOCK TABLE {self.quote(table)} IN SHARE ROW EXCLUSIVE MODE")

    def backup_table(self, conn: Any, db: str, table: str, dest: Path) -> Path:
        cur = conn.cursor()
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
        out = dest.with_name(dest.name + ".dump")
        proc = subprocess.run(
            ["pg_dump", "-Fc", "--snapshot", snapshot, "-t", f"public.{self.quote(table)}", "-f", str(out), db],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            out.unlink(missing_ok=True)
            raise Fail(f"pg_dump of table {table} exited {proc.returncode}: {proc.stderr.strip()[-1000:]}")
        return out

    def after_import(self, conn: Any, table: str, cols: list[Column], names: list[str]) -> None:
        cur = conn.cursor()
        for c in cols:
            if c.serial and c.name in names:  # explicit ids: move the sequence past them
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                    f"GREATEST((SELECT max({self.quote(c.name)}) FROM {self.quote(table)}), 1))",
                    (f"public.{self.quote(table)}", c.name),
                )


class MariaDB(common.MariaDB, Engine):
    def connect(self, db: str, login: Login) -> Any:  # type: ignore[override]
        return super().connect(db, user=login.user, password=login.password, autocommit=False)

    def columns(self, conn: Any, db: str, table: str) -> list[Column]:
        cur = conn.cursor()
        cur.execute(
            "SELECT column_name, data_type, is_nullable = 'YES', column_default IS NOT NULL"
            " OR extra LIKE '%%auto_increment%%', character_maximum_length, numeric_precision, numeric_scale,"
            " column_type LIKE '%%unsigned%%', extra LIKE '%%auto_increment%%'"
            " FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
            " ORDER BY ordinal_position",
            (db, table),
        )
        out = []
        for name, dtype, nullable, has_default, length, prec, scale, unsigned, serial in cur.fetchall():
            kind, lo, hi = classify(dtype, bool(unsigned))
            if dtype.lower() not in ("varchar", "char"):
                length = None  # TEXT limits are in bytes: left to the database
            out.append(Column(name, kind, bool(nullable), bool(has_default), length, prec, scale, lo, hi, bool(serial)))
        return out

    def unique_keys(self, conn: Any, db: str, table: str) -> list[list[str]]:
        cur = conn.cursor()
        cur.execute(
            "SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema = %s"
            " AND table_name = %s AND non_unique = 0 ORDER BY index_name, seq_in_index",
            (db, table),
        )
        keys: dict[str, list[str]] = {}
        for index, col in cur.fetchall():
            keys.setdefault(index, []).append(col)
        return list(keys.values())

    def begin_read_only(self, conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    #: Server-file access, looked for with comments read both ways (see below).
    FILE_ACCESS = re.compile(r"\bINTO\s+(OUTFILE|DUMPFILE)\b|\bLOAD_FILE\s*\(", re.IGNORECASE)

    def check_query(self, sql: str) -> None:
        super().check_query(sql)
        # MariaDB runs the text of /*! ... */ comments and ignores the others, so the
        # statement is checked with comments as blanks and with their markers removed.
        # String literals are blanked first: their text is data, not code.
        code = re.sub(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"", "''", sql, flags=re.S)
        as_blank = re.sub(r"/\*.*?\*/|#[^\n]*|--(\s[^\n]*|$)", " ", code, flags=re.S)
        as_code = re.sub(r"/\*!?[0-9]*|\*/", " ", code)
        if self.FILE_ACCESS.search(as_blank) or self.FILE_ACCESS.search(as_code):
            raise Fail("the query may not read or write server files (INTO OUTFILE/DUMPFILE, LOAD_FILE)")

    def cursor_for(self, conn: Any, sql: str) -> Any:
        import pymysql.cursors  # type: ignore[import-untyped]

        cur = conn.cursor(pymysql.cursors.SSCursor)  # streamed, not held in memory
        cur.execute(sql)
        return cur

    def begin_import(self, conn: Any, table: str) -> None:
        cur = conn.cursor()
        cur.execute(
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
            "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
        )
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION")

    def backup_table(self, conn: Any, db: str, table: str, dest: Path) -> Path:
        out = dest.with_name(dest.name + ".sql.zst")
        try:
            with out.open("wb") as f:
                chain(
                    [
                        "mariadb-dump",
                        "--single-transaction",
                        "--hex-blob",
                        "--default-character-set=utf8mb4",
                        db,
                        table,
                    ],
                    ["zstd", "-q", "-c"],
                    stdout=f,
                )
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return out


def engine(name: str) -> Engine:
    return Postgres() if name == "postgresql" else MariaDB()


# ----------------------------------------------------------------------------- export


def write_if_changed(path: Path, lines: Iterator[str], bom: bool = False) -> tuple[int, bool]:
    """Write the lines to path unless the same bytes are there already. Returns (rows, changed).

    ``bom``: UTF-8 with a byte order mark, which Excel on Chinese Windows needs to read UTF-8."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    rows = -1  # the header is not a row
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
            for line in lines:
                f.write(line)
                rows += 1
            f.flush()
            os.fsync(f.fileno())
        if path.is_file() and sha256(path) == sha256(tmp):
            tmp.unlink()
            return rows, False
        os.replace(tmp, path)
        return rows, True
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def rows_of(cur: Any) -> Iterator[str]:
    batch = cur.fetchmany(2000)  # a PostgreSQL named cursor has a description only after a fetch
    yield csv_line([d[0] for d in cur.description])
    while batch:
        for row in batch:
            yield csv_line(row)
        batch = cur.fetchmany(2000)


# ----------------------------------------------------------------------------- xlsx export

#: Beijing time (China keeps UTC+8 all year since 1991): timestamptz values are shown in it.
BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
XLSX_MAX_ROWS = 1_048_576  # an Excel sheet's rows, the header's included
XLSX_MAX_TEXT = 32_767  # characters in one Excel cell
XLSX_EXACT_DIGITS = 15  # significant digits Excel keeps of a number
XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # control characters a sheet cannot hold
DATETIME_FORMAT, DATE_FORMAT, TIME_FORMAT, TEXT_FORMAT = "yyyy-mm-dd hh:mm:ss", "yyyy-mm-dd", "hh:mm:ss", "@"


def need_openpyxl(purpose: str) -> Any:
    """The openpyxl module, or a refusal saying what is missing (no traceback)."""
    try:
        import openpyxl  # type: ignore[import-untyped]
    except ImportError as exc:
        raise Fail(f"{purpose} needs openpyxl on the database host (the role installs python3-openpyxl)") from exc
    return openpyxl


def xlsx_value(value: Any) -> tuple[Any, str]:
    """A database value as a typed cell: (cell value, number format).

    Numbers Excel holds exactly stay numbers (others, e.g. a 19-digit bigint, become text);
    dates and timestamps are Excel dates (an aware timestamp in Beijing time, Excel has no
    time zones; Excel keeps milliseconds); text stays text (format ``@``: leading zeros of
    codes are kept); NULL is an empty cell; the rest is text in the CSV convention."""
    if value is None:
        return None, "General"
    if isinstance(value, bool):
        return value, "General"
    if isinstance(value, int):
        return (value, "0") if abs(value) < 10**XLSX_EXACT_DIGITS else (str(value), TEXT_FORMAT)
    if isinstance(value, decimal.Decimal):
        exact = value.as_tuple()
        if value.is_finite() and isinstance(exact.exponent, int) and len(exact.digits) <= XLSX_EXACT_DIGITS:
            scale = max(-exact.exponent, 0)
            return value, "0." + "0" * scale if scale else "0"
        return format(value, "f"), TEXT_FORMAT
    if isinstance(value, float):
        return (value, "General") if value == value and abs(value) != float("inf") else (repr(value), TEXT_FORMAT)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(BEIJING).replace(tzinfo=None)
        return value, DATETIME_FORMAT + (".000" if value.microsecond else "")
    if isinstance(value, dt.date):
        return value, DATE_FORMAT
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value, TIME_FORMAT
    return csv_text(value), TEXT_FORMAT


def csv_text(value: Any) -> str:
    """A value's text in the CSV convention, unquoted."""
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def display_width(value: Any, number_format: str) -> int:
    """Columns a value takes in Excel: a Chinese (wide) character takes two."""
    if isinstance(value, dt.datetime):
        return len(number_format)
    if isinstance(value, (dt.date, dt.time)):
        return len(number_format)
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def same_workbook(old: Path, new: Path) -> bool:
    """The two workbooks hold the same parts, the document properties (the time saved) aside."""
    try:
        with zipfile.ZipFile(old) as a, zipfile.ZipFile(new) as b:
            names = sorted(a.namelist())
            if names != sorted(b.namelist()):
                return False
            return all(a.read(n) == b.read(n) for n in names if n != "docProps/core.xml")
    except (OSError, zipfile.BadZipFile):
        return False


def discard(sheet: Any) -> None:
    """Drop a streamed sheet left unfinished: its rows so far are in a temporary file of
    openpyxl's (which it otherwise removes only when the process exits)."""
    writer = getattr(sheet, "_writer", None)
    if writer is None:
        return
    with contextlib.suppress(Exception):
        sheet.close()
    with contextlib.suppress(Exception):
        writer.cleanup()


def write_xlsx_if_changed(path: Path, cur: Any, sheet_name: str) -> tuple[int, bool]:
    """The cursor's rows as a workbook at path, unless one with the same content is there.

    One sheet named ``sheet_name`` (Excel allows 31 characters); the first row the column
    names (bold, frozen); typed cells (xlsx_value); widths from the header and the first
    2000 rows, a Chinese character counting two. Written to a temporary file first: any
    refusal leaves no file behind. Returns (rows, changed)."""
    openpyxl = need_openpyxl("writing .xlsx")
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    batch = cur.fetchmany(2000)  # a PostgreSQL named cursor has a description only after a fetch
    names = [str(d[0]) for d in cur.description]
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title=sheet_name[:31])
    sheet.freeze_panes = "A2"
    for i, name in enumerate(names):
        widest = max([display_width(name, "")] + [display_width(*xlsx_value(row[i])) for row in batch])
        sheet.column_dimensions[get_column_letter(i + 1)].width = min(max(widest + 2, 8), 60)
    bold = Font(bold=True)

    def cell(value: Any, number_format: str, bold_font: Any = None) -> Any:
        c = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            c.data_type = "s"  # text that starts with "=" stays text, never a formula
        c.number_format = number_format
        if bold_font is not None:
            c.font = bold_font
        return c

    try:
        sheet.append([cell(n, TEXT_FORMAT, bold) for n in names])
        rows = 0
        while batch:
            for row in batch:
                rows += 1
                if rows >= XLSX_MAX_ROWS:
                    raise Fail(f"more than {XLSX_MAX_ROWS - 1} rows, more than an Excel sheet holds: export as CSV")
                cells = []
                for name, raw in zip(names, row):
                    value, number_format = xlsx_value(raw)
                    if isinstance(value, str):
                        if len(value) > XLSX_MAX_TEXT:
                            raise Fail(
                                f"row {rows + 1}: column {name!r}: {len(value)} characters, more than an Excel "
                                f"cell holds ({XLSX_MAX_TEXT}): export as CSV"
                            )
                        if XLSX_ILLEGAL.search(value):
                            raise Fail(
                                f"row {rows + 1}: column {name!r}: a control character an Excel cell cannot hold: "
                                "export as CSV"
                            )
                    cells.append(cell(value, number_format))
                sheet.append(cells)
            batch = cur.fetchmany(2000)
    except BaseException:
        discard(sheet)
        raise
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".xlsx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        book.save(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        if path.is_file() and same_workbook(path, tmp):
            tmp.unlink()
            return rows, False
        os.replace(tmp, path)
        return rows, True
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cmd_export(a: argparse.Namespace) -> dict[str, Any]:
    eng = engine(a.engine)
    fmt = a.format
    if fmt == "xlsx":
        if a.bom:
            raise Fail("--bom is for CSV files (a workbook has no byte order mark)")
        need_openpyxl("writing .xlsx")  # before any connection or file
    jobs: list[tuple[str, str, str]] = []  # (file name, source, sql)
    for t in a.table:
        if not IDENT.match(t):
            raise Fail(f"not a table name: {t!r}")
        jobs.append((f"{t}.{fmt}", f"table {t}", f"SELECT * FROM {eng.quote(t)} ORDER BY 1"))
    if a.query:
        eng.check_query(a.query)
        if not IDENT.match(a.name):
            raise Fail(f"not a file name for the query: {a.name!r}")
        jobs.append((f"{a.name}.{fmt}", "query", a.query.strip().rstrip(";")))
    if not jobs:
        raise Fail("nothing to export: give tables or a query")
    if len({j[0] for j in jobs}) != len(jobs):
        raise Fail("two exports would write the same file")
    out = Path(a.out)
    if not a.user:
        raise Fail("export needs the export account: --user U --password-stdin")
    login = Login(a.user, sys.stdin.readline().rstrip("\n") if a.password_stdin else "")
    try:
        conn = eng.connect(a.db, login)
    except Exception as exc:  # wrong password, no such account, server down: say which
        raise Fail(f"cannot connect as the export account {a.user}: {eng.error_text(exc)}") from exc
    files = []
    try:
        eng.begin_read_only(conn)
        for _, source, _ in jobs:
            if source.startswith("table ") and not eng.columns(conn, a.db, source[6:]):
                raise Fail(f"no such table: {source[6:]}")
        if a.dry_run:
            for _name, _source, sql in jobs:
                cur = eng.cursor_for(conn, f"SELECT * FROM ({sql}) AS q LIMIT 0")
                cur.fetchall()
                cur.close()
            return {
                "dry_run": True,
                "changed": False,
                "format": fmt,
                "files": [{"name": n, "source": s} for n, s, _ in jobs],
            }
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        changed = False
        for name, source, sql in jobs:
            cur = eng.cursor_for(conn, sql)
            try:
                path = out / name
                if fmt == "xlsx":  # the sheet is named after the table (the query: its file name)
                    rows, file_changed = write_xlsx_if_changed(path, cur, name.rsplit(".", 1)[0])
                else:
                    rows, file_changed = write_if_changed(path, rows_of(cur), a.bom)
            finally:
                cur.close()
            changed = changed or file_changed
            files.append(
                {
                    "name": name,
                    "source": source,
                    "rows": rows,
                    "bytes": path.stat().st_size,
                    "sha256": sha256(path),
                    "changed": file_changed,
                }
            )
            if source == "query":
                files[-1]["query"] = sql
    except Fail:
        raise
    except Exception as exc:  # the database refused: say why
        raise Fail(f"export refused by the database: {eng.error_text(exc)}") from exc
    finally:
        conn.rollback()
        conn.close()
    return {
        "dir": str(out),
        "changed": changed,
        "files": files,
        "format": fmt,
        **({} if fmt == "xlsx" else {"encoding": "utf-8-bom" if a.bom else "utf-8"}),
        "read_only": True,
        "ended": now(),
    }


# ----------------------------------------------------------------------------- import


ENCODINGS = ("auto", "utf-8", "gbk", "gb18030")


def _decode(data: bytes, codec: str, name: str, hint: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise Fail(
            f"line {line}: not valid {name} (byte 0x{data[exc.start]:02x} at offset {exc.start}); {hint}"
        ) from exc


def decode_csv(data: bytes, encoding: str = "auto") -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read as.

    ``auto``: UTF-8, with or without BOM; anything else is refused (a file that reads as
    GB18030 is refused too, with the option to state, rather than guessed: a GBK file and a
    broken UTF-8 file cannot be told apart for sure). ``gbk``/``gb18030``: strict GB18030
    (a superset of GBK); a UTF-8 BOM then is a contradiction and refused."""
    if encoding not in ENCODINGS:
        raise Fail(f"unknown encoding {encoding!r} (one of {', '.join(ENCODINGS)})")
    bom = data.startswith(b"\xef\xbb\xbf")
    if encoding in ("gbk", "gb18030"):
        if bom:
            raise Fail("line 1: the file starts with a UTF-8 byte order mark but the encoding given is " + encoding)
        return _decode(data, "gb18030", "GBK/GB18030", "check the encoding the file was saved in"), "gb18030"
    body = data[3:] if bom else data
    try:
        return body.decode("utf-8"), "utf-8-bom" if bom else "utf-8"
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        where = f"byte 0x{body[exc.start]:02x} at offset {exc.start + (3 if bom else 0)}"
        if encoding == "auto" and not bom and _reads_as_gb18030(body):
            raise Fail(
                f"line {line}: not valid UTF-8 ({where}), but the file reads as GBK/GB18030 (what Excel on "
                "Chinese Windows saves as CSV): state the encoding (-e db_import_encoding=gbk), or save it as "
                "CSV UTF-8"
            ) from exc
        raise Fail(f"line {line}: not valid UTF-8 ({where}); save the file as UTF-8") from exc


def _reads_as_gb18030(data: bytes) -> bool:
    try:
        data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True


def read_csv(path: Path, encoding: str = "auto") -> list[tuple[int, list[str | None]]]:
    text, _ = decode_csv(path.read_bytes(), encoding)
    records = list(parse_csv(text))
    if not records:
        raise Fail("line 1: empty file (a header line is required)")
    return records


def xlsx_cell(value: Any) -> str | None:
    """A cell's value as text in the CSV convention (an empty cell is NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()  # a date cell (Excel keeps dates as date-times)
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.timedelta):
        raise Fail(f"a duration cell ({value}) has no column type to go into")
    return str(value)


def read_xlsx(path: Path) -> list[tuple[int, list[str | None]]]:
    """The first sheet of a workbook as (row number, fields): the first row is the header;
    empty rows are left out, and so are empty cells right of the header's last column; a
    row shorter than the header is filled up with empty cells (NULL)."""
    openpyxl = need_openpyxl("reading .xlsx")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # not a zip, not a workbook, encrypted
        raise Fail(f"not a readable .xlsx workbook: {type(exc).__name__}: {str(exc)[:200]}") from exc
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise Fail("the workbook has no sheet")
        records: list[tuple[int, list[str | None]]] = []
        width = 0
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            fields = [xlsx_cell(v) for v in row]
            if not records:
                while fields and fields[-1] is None:
                    fields.pop()
                width = len(fields)
            if all(f is None for f in fields):
                continue
            if len(fields) > width and all(f is None for f in fields[width:]):
                fields = fields[:width]
            elif len(fields) < width:  # a row whose last cells are not written (a streamed sheet
                fields += [None] * (width - len(fields))  # has no dimension): empty cells, NULL
            records.append((number, fields))
    finally:
        book.close()
    if not records:
        raise Fail("row 1: empty sheet (a header row is required)")
    return records


def read_file(path: Path, encoding: str = "auto") -> list[tuple[int, list[str | None]]]:
    """A CSV file (decoded as ``encoding``) or, by its suffix, an .xlsx workbook."""
    if path.suffix.lower() == ".xlsx":
        return read_xlsx(path)
    if path.suffix.lower() == ".xls":
        raise Fail("the old Excel format .xls is not read: save the sheet as .xlsx or CSV UTF-8")
    return read_csv(path, encoding)


def beijing_time(records: list[tuple[int, list[str | None]]], cols: list[Column]) -> list[tuple[int, list[str | None]]]:
    """A workbook's timestamps without a zone, in the timestamptz columns, read as Beijing time
    (the time the .xlsx export shows them in, and the bureau's clock): ``+08:00`` appended."""
    if not records:
        return records
    tz = {c.name for c in cols if c.tz}
    at = [i for i, h in enumerate(records[0][1]) if h in tz]
    if not at:
        return records
    out = records[:1]
    for line, fields in records[1:]:
        fields = list(fields)
        for i in at:
            v = fields[i] if i < len(fields) else None
            if v is None:
                continue
            try:
                naive = dt.datetime.fromisoformat(v).tzinfo is None
            except ValueError:
                continue  # not a timestamp: the validation names the line
            if naive:
                fields[i] = (v + " 00:00:00" if len(v) == 10 else v) + "+08:00"
        out.append((line, fields))
    return out


def check_upsert_key(
    key: list[str], names: list[str], keys: list[list[str]], rows: list[tuple[int, list[str | None]]], table: str
) -> None:
    """Upsert by ``key``: in the header, a unique key of the table, a value on every line."""
    if not key:
        raise Fail("upsert needs the key columns (-e db_import_key=col1,col2)")
    if len(set(key)) != len(key):
        raise Fail(f"a key column is named twice: {', '.join(key)}")
    absent = [k for k in key if k not in names]
    if absent:
        raise Fail(f"line 1: key column(s) {', '.join(absent)} not in the header")
    if not any(sorted(k) == sorted(key) for k in keys):
        found = "; ".join("(" + ", ".join(k) + ")" for k in keys) or "none"
        raise Fail(f"({', '.join(key)}) is not a unique key of table {table} (its unique keys: {found})")
    where = [names.index(k) for k in key]
    for line, fields in rows:
        for k, i in zip(key, where):
            if fields[i] is None or fields[i] == "":
                raise Fail(f"line {line}: key column {k!r} is empty (upsert needs every key value)")


def validate(
    records: list[tuple[int, list[str | None]]], cols: list[Column], keys: list[list[str]], table: str
) -> tuple[list[str], list[tuple[int, list[str | None]]]]:
    by_name = {c.name: c for c in cols}
    line, header = records[0]
    names: list[str] = []
    for i, h in enumerate(header):
        if h is None or h == "":
            raise Fail(f"line {line}: column {i + 1} of the header has no name")
        if h not in by_name:
            raise Fail(f"line {line}: unknown column {h!r} (table {table} has: {', '.join(by_name)})")
        if h in names:
            raise Fail(f"line {line}: column {h!r} appears twice in the header")
        names.append(h)
    missing = [c.name for c in cols if not c.nullable and not c.has_default and c.name not in names]
    if missing:
        raise Fail(f"line {line}: missing column(s) {', '.join(missing)} (NOT NULL, no default)")
    checks = [by_name[n] for n in names]
    seen: list[dict[tuple[str, ...], int]] = [{} for _ in keys]
    usable = [all(k in names for k in key) for key in keys]
    rows = records[1:]
    for line, fields in rows:
        if len(fields) != len(names):
            raise Fail(f"line {line}: {len(fields)} field(s), the header has {len(names)}")
        for col, value in zip(checks, fields):
            why = col.check(value)
            if why:
                raise Fail(f"line {line}: column {col.name!r}: {why}")
        for i, key in enumerate(keys):
            if not usable[i]:
                continue
            values = [fields[names.index(k)] for k in key]
            if any(v is None for v in values):
                continue  # NULLs never collide
            norm = tuple(
                str(int(v)) if by_name[k].kind == "int" and v is not None else str(v) for k, v in zip(key, values)
            )
            if norm in seen[i]:
                raise Fail(
                    f"line {line}: duplicate key ({', '.join(key)})=({', '.join(norm)}), "
                    f"already on line {seen[i][norm]}"
                )
            seen[i][norm] = line
    return names, rows


def insert_all(eng: Engine, conn: Any, table: str, names: list[str], rows: list[tuple[int, list[str | None]]]) -> int:
    """Insert every row in the current transaction; a refused row raises Fail with its line."""
    cur = conn.cursor()
    sql = (
        f"INSERT INTO {eng.quote(table)} ({', '.join(eng.quote(n) for n in names)}) "
        f"VALUES ({', '.join([eng.placeholder] * len(names))})"
    )
    done = 0
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        cur.execute("SAVEPOINT envcredit_batch")
        try:
            cur.executemany(sql, [fields for _, fields in batch])
        except Exception:
            cur.execute("ROLLBACK TO SAVEPOINT envcredit_batch")
            for line, fields in batch:  # find the row the database refuses
                try:
                    cur.execute(sql, fields)
                except Exception as exc:
                    raise Fail(f"line {line}: refused by the database: {eng.error_text(exc)}") from exc
            raise Fail("the database refused a batch but no single row of it") from None
        done += len(batch)
    return done


def upsert_all(
    eng: Engine, conn: Any, table: str, names: list[str], key: list[str], rows: list[tuple[int, list[str | None]]]
) -> tuple[int, int]:
    """Update the row with each line's key, or insert the line; in the current transaction.
    Returns (inserted, updated); a refused line raises Fail with its line number."""
    cur = conn.cursor()
    q, ph = eng.quote, eng.placeholder
    rest = [n for n in names if n not in key]
    at = [names.index(k) for k in key]
    other = [names.index(n) for n in rest]
    match = " AND ".join(f"{q(k)} = {ph}" for k in key)
    update = f"UPDATE {q(table)} SET {', '.join(f'{q(n)} = {ph}' for n in rest)} WHERE {match}" if rest else ""
    exists = f"SELECT 1 FROM {q(table)} WHERE {match} LIMIT 1"
    insert = f"INSERT INTO {q(table)} ({', '.join(q(n) for n in names)}) VALUES ({', '.join([ph] * len(names))})"
    inserted = updated = 0
    for line, fields in rows:
        key_values = [fields[i] for i in at]
        try:
            # MariaDB counts changed rows, not matched ones: an unchanged row is found by the SELECT.
            if update:
                cur.execute(update, [fields[i] for i in other] + key_values)
            if update and cur.rowcount > 0:
                updated += 1
                continue
            cur.execute(exists, key_values)
            if cur.fetchone() is not None:
                updated += 1
                continue
            cur.execute(insert, fields)
            inserted += 1
        except Exception as exc:
            raise Fail(f"line {line}: refused by the database: {eng.error_text(exc)}") from exc
    return inserted, updated


def write_rows(
    eng: Engine, conn: Any, table: str, names: list[str], rows: list[tuple[int, list[str | None]]], key: list[str]
) -> dict[str, int]:
    """Insert (no key) or upsert (by ``key``) every row in the current transaction."""
    if not key:
        return {"inserted": insert_all(eng, conn, table, names, rows), "updated": 0}
    inserted, updated = upsert_all(eng, conn, table, names, key, rows)
    return {"inserted": inserted, "updated": updated}


def prune_backups(backup_dir: Path, db: str, table: str, keep: int) -> list[str]:
    mine = sorted(p for p in backup_dir.glob(f"{db}.{table}.*") if p.is_file())
    old = mine[:-keep] if keep > 0 else []
    for p in old:
        p.unlink()
    return [p.name for p in old]


def cmd_import(a: argparse.Namespace) -> dict[str, Any]:
    eng = engine(a.engine)
    if not IDENT.match(a.table):
        raise Fail(f"not a table name: {a.table!r}")
    path = Path(a.file)
    if not path.is_file():
        raise Fail(f"no such file: {path}")
    file_sha = sha256(path)
    if not a.user:
        raise Fail("import needs the import account: --user U --password-stdin")
    login = Login(a.user, sys.stdin.readline().rstrip("\n") if a.password_stdin else "")
    try:
        conn = eng.connect(a.db, login)
    except Exception as exc:  # wrong password, no such account, server down: say which
        raise Fail(f"cannot connect as the import account {a.user}: {eng.error_text(exc)}") from exc
    try:
        cols = eng.columns(conn, a.db, a.table)
        if not cols:
            raise Fail(f"no such table: {a.table}")
        keys = eng.unique_keys(conn, a.db, a.table)
        conn.rollback()
        records = read_file(path, a.encoding)
        if path.suffix.lower() == ".xlsx":
            records = beijing_time(records, cols)
        names, rows = validate(records, cols, keys, a.table)
        key = [k.strip() for k in a.key.split(",") if k.strip()] if a.mode == "upsert" else []
        if a.mode == "upsert":
            check_upsert_key(key, names, keys, rows, a.table)
        elif a.key:
            raise Fail("--key is for --mode upsert (an insert adds every line)")
        result: dict[str, Any] = {
            "table": a.table,
            "database": a.db,
            "file_sha256": file_sha,
            "format": "xlsx" if path.suffix.lower() == ".xlsx" else "csv",
            "mode": a.mode,
            "key": key,
            "columns": names,
            "rows": len(rows),
            "started": now(),
        }
        # Dry run: every row written inside a transaction that is rolled back.
        eng.begin_import(conn, a.table)
        try:
            would = write_rows(eng, conn, a.table, names, rows, key)
        finally:
            conn.rollback()
        result["validated"] = True
        if a.dry_run:
            result.update(dry_run=True, imported=0, changed=False, would=would, ended=now())
            return result
        # The import: back up the table, then all rows in one transaction.
        backup_dir = Path(a.backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = backup_dir / f"{a.db}.{a.table}.{stamp}{'-' + a.record_id if a.record_id else ''}"
        eng.begin_import(conn, a.table)
        try:
            backup = eng.backup_table(conn, a.db, a.table, base)
            written = write_rows(eng, conn, a.table, names, rows, key)
            imported = written["inserted"] + written["updated"]
            eng.after_import(conn, a.table, cols, names)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        result.update(
            dry_run=False,
            imported=imported,
            inserted=written["inserted"],
            updated=written["updated"],
            changed=imported > 0,
            table_backup=str(backup),
            table_backup_sha256=sha256(backup),
            table_backup_bytes=backup.stat().st_size,
            backups_removed=prune_backups(backup_dir, a.db, a.table, a.keep_backups),
            ended=now(),
        )
        if a.done_dir:  # marks this file as imported into this table (the role's `creates`)
            done = Path(a.done_dir)
            done.mkdir(parents=True, exist_ok=True, mode=0o700)
            (done / f"{a.db}.{a.table}.{file_sha}").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        return result
    except Fail:
        raise
    except Exception as exc:
        raise Fail(f"import refused by the database: {eng.error_text(exc)}") from exc
    finally:
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--engine", required=True, choices=["postgresql", "mariadb"])
    e.add_argument("--db", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--table", action="append", default=[])
    e.add_argument("--query", default="")
    e.add_argument("--name", default="query")
    e.add_argument("--user", default="")
    e.add_argument("--password-stdin", action="store_true")
    e.add_argument("--dry-run", action="store_true")
    e.add_argument("--bom", action="store_true", help="UTF-8 with BOM (Excel on Chinese Windows)")
    e.add_argument("--format", default="csv", choices=["csv", "xlsx"], help="csv (default) or an Excel workbook")
    i = sub.add_parser("import")
    i.add_argument("--engine", required=True, choices=["postgresql", "mariadb"])
    i.add_argument("--db", required=True)
    i.add_argument("--table", required=True)
    i.add_argument("--file", required=True)
    i.add_argument("--backup-dir", required=True)
    i.add_argument("--record-id", default="")
    i.add_argument("--keep-backups", type=int, default=10)
    i.add_argument("--done-dir", default="")
    i.add_argument("--user", default="")
    i.add_argument("--password-stdin", action="store_true")
    i.add_argument("--dry-run", action="store_true")
    i.add_argument("--encoding", default="auto", choices=ENCODINGS)
    i.add_argument("--mode", default="insert", choices=["insert", "upsert"])
    i.add_argument("--key", default="", help="upsert: the key columns, comma-separated")
    a = ap.parse_args()
    os.umask(0o077)
    try:
        out = cmd_export(a) if a.cmd == "export" else cmd_import(a)
    except Fail as exc:
        print(f"envcredit_transfer: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
