"""The CSV convention and the validation of roles/db_transfer/files/envcredit_transfer.py (no lab needed).

The lab tests (test_db_transfer_lab.py) run the same code against both engines; these pin the
parser's and validator's exact behaviour and messages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers.common import REPO

sys.path.insert(0, str(REPO / "roles" / "db_transfer" / "files"))
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # envcredit_dbcommon, the tools' shared code
import envcredit_transfer as t  # noqa: E402

COLS = [
    t.Column("id", "int", False, False, lo=-(2**31), hi=2**31 - 1),
    t.Column("code", "text", False, False, length=4),
    t.Column("name", "text", False, False, length=100),
    t.Column("score", "numeric", True, False, precision=5, scale=2),
    t.Column("day", "date", True, False),
    t.Column("note", "text", True, True),
]
KEYS = [["id"], ["code"]]


def test_null_and_empty_string_are_distinct_both_ways() -> None:
    line = t.csv_line([1, None, "", 'a,"b"', "两行\n文本"])
    assert line == '1,,"","a,""b""","两行\n文本"\n'
    assert list(t.parse_csv(line)) == [(1, ["1", None, "", 'a,"b"', "两行\n文本"])]


def test_record_line_numbers_count_physical_lines() -> None:
    text = 'a,b\n1,"x\ny\nz"\n2,w\r\n3,\n'
    assert [n for n, _ in t.parse_csv(text)] == [1, 2, 5, 6]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a,b\n1,"open\n', "line 2: quoted field not closed"),
        ('a,b\n1,x"y\n', "line 2: quote inside an unquoted field"),
        ('a,b\n1,"x"y\n', "line 2: text after a closing quote"),
    ],
)
def test_malformed_quoting_is_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(t.Fail, match=message):
        list(t.parse_csv(text))


def test_broken_utf8_names_its_line(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes("id,name\n1,甲\n".encode() + "2,韶关".encode("gbk") + b"\n")
    with pytest.raises(t.Fail, match=r"line 3: not valid UTF-8"):
        t.read_csv(f)


def test_bom_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes(b"\xef\xbb\xbfid\n1\n")
    assert t.read_csv(f) == [(1, ["id"]), (2, ["1"])]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,code,colour\n", "line 1: unknown column 'colour'"),
        ("id,code,code\n", "line 1: column 'code' appears twice"),
        ("id,code\n", r"line 1: missing column\(s\) name"),
        ("id,code,name\n1,A1,x,y\n", r"line 2: 4 field\(s\), the header has 3"),
        ("id,code,name\n1.5,A1,x\n", "line 2: column 'id': '1.5' is not an integer"),
        ("id,code,name\n99999999999,A1,x\n", "line 2: column 'id': 99999999999 is out of range"),
        ("id,code,name\n1,ABCDE,x\n", "line 2: column 'code': 5 characters, longer than the column's 4"),
        ("id,code,name,score\n1,A1,x,1000.00\n", r"line 2: column 'score': 1000.00 does not fit NUMERIC\(5,2\)"),
        ("id,code,name,score\n1,A1,x,1.234\n", "line 2: column 'score': 1.234 has more than 2 decimal places"),
        ("id,code,name,day\n1,A1,x,2026-02-30\n", "line 2: column 'day': '2026-02-30' is not a date"),
        ("id,code,name\n1,A1,\n", "line 2: column 'name': NULL"),
        ("id,code,name,score\n1,A1,x,abc\n", "line 2: column 'score': 'abc' is not a decimal number"),
        ("id,code,name\n1,A1,甲\n2,A2,乙,多余\n", r"line 3: 4 field\(s\), the header has 3"),
        ("id,code,name\n1,A1,x\n2,A2,y\n01,A3,z\n", r"line 4: duplicate key \(id\)=\(1\), already on line 2"),
        ("id,code,name\n1,A1,x\n2,A1,y\n", r"line 3: duplicate key \(code\)=\(A1\), already on line 2"),
    ],
)
def test_validation_refuses_with_line_and_reason(text: str, message: str) -> None:
    with pytest.raises(t.Fail, match=message):
        t.validate(list(t.parse_csv(text)), COLS, KEYS, "demo")


def test_valid_file_passes_and_nulls_in_keys_do_not_collide() -> None:
    text = 'id,code,name,score,day,note\n1,A1,甲,98.50,2026-03-01,\n2,A2,"",0.5,,""\n'
    names, rows = t.validate(list(t.parse_csv(text)), COLS, KEYS + [["note"]], "demo")
    assert names == ["id", "code", "name", "score", "day", "note"]
    assert [r[1][5] for r in rows] == [None, ""]


def test_query_must_be_one_statement() -> None:
    with pytest.raises(t.Fail, match="one statement"):
        t.Postgres().check_query("SELECT 1; DELETE FROM x")
    t.Postgres().check_query("SELECT 1;")
    with pytest.raises(t.Fail, match="server files"):
        t.MariaDB().check_query("SELECT * FROM enterprises INTO OUTFILE '/tmp/x'")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT name INTO OUTFILE '/tmp/x' FROM enterprises",
        "SELECT name INTO/**/OUTFILE '/tmp/x' FROM enterprises",
        "SELECT name INTO/* a comment */DUMPFILE '/tmp/x' FROM enterprises",
        "SELECT LOAD_FILE/**/('/etc/hostname') AS f",
        "SELECT load_file ('/etc/hostname') AS f",
        "SELECT name /*!50000 INTO OUTFILE '/tmp/x' */ FROM enterprises",
        "SELECT name INTO -- a line comment\n OUTFILE '/tmp/x' FROM enterprises",
        "SELECT name INTO # a hash comment\n OUTFILE '/tmp/x' FROM enterprises",
    ],
)
def test_mariadb_server_file_access_is_refused_around_comments(query: str) -> None:
    """The second line of defence (the export account has no FILE privilege: the first)."""
    with pytest.raises(t.Fail, match="server files"):
        t.MariaDB().check_query(query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, name FROM enterprises WHERE note = 'into outfile later'",
        "SELECT load_file_count, outfile_name FROM reports",
        "SELECT id /* the key */ FROM enterprises",
    ],
)
def test_mariadb_ordinary_queries_pass_the_check(query: str) -> None:
    t.MariaDB().check_query(query)


# ----------------------------------------------------------------------------- Excel (issue 20)


def test_export_with_bom_for_excel(tmp_path: Path) -> None:
    plain, bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    t.write_if_changed(plain, iter(["id,name\n", "1,韶关\n"]))
    rows, changed = t.write_if_changed(bom, iter(["id,name\n", "1,韶关\n"]), bom=True)
    assert (rows, changed) == (1, True)
    assert bom.read_bytes() == b"\xef\xbb\xbf" + plain.read_bytes()
    assert not plain.read_bytes().startswith(b"\xef\xbb\xbf")
    assert t.read_csv(bom) == t.read_csv(plain) == [(1, ["id", "name"]), (2, ["1", "韶关"])]


GBK_FILE = "id,code,name\n1,A1,韶关市环保科技有限公司\n".encode("gbk")


def test_gbk_is_read_when_stated(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes(GBK_FILE)
    assert t.read_csv(f, "gbk")[1] == (2, ["1", "A1", "韶关市环保科技有限公司"])
    assert t.read_csv(f, "gb18030") == t.read_csv(f, "gbk")
    assert t.decode_csv("id\n1\n".encode("utf-8-sig"))[1] == "utf-8-bom"


def test_gbk_is_not_guessed_and_the_refusal_says_what_to_state(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes(GBK_FILE)
    with pytest.raises(t.Fail, match=r"line 2: not valid UTF-8 .*reads as GBK/GB18030.*db_import_encoding=gbk"):
        t.read_csv(f)
    with pytest.raises(t.Fail, match=r"line 2: not valid UTF-8 .*save the file as UTF-8$"):
        t.read_csv(f, "utf-8")  # stated UTF-8: no hint about GBK


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        (b"\xef\xbb\xbfid\n1\n", "gbk", "line 1: the file starts with a UTF-8 byte order mark but the encoding"),
        (b"id\n\x80\n", "gbk", r"line 2: not valid GBK/GB18030 \(byte 0x80"),
        (b"id\n\xff\xfe\n", "auto", r"line 2: not valid UTF-8 \(byte 0xff at offset 3\); save the file as UTF-8$"),
        (b"id\n1\n", "latin-1", "unknown encoding 'latin-1'"),
    ],
)
def test_encoding_refusals(data: bytes, encoding: str, message: str) -> None:
    with pytest.raises(t.Fail, match=message):
        t.decode_csv(data, encoding)


def _workbook(path: Path, rows: list[list[object]]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_xlsx_cells_become_the_csv_convention(tmp_path: Path) -> None:
    import datetime as dt

    f = _workbook(
        tmp_path / "x.xlsx",
        [
            ["id", "code", "name", "score", "day", "note"],
            [1, "A1", "韶关", 98.5, dt.datetime(2026, 3, 1), None],
            [2.0, "A2", "乙", 0.25, dt.date(2026, 3, 2), True],
            [None, None, None, None, None, None],  # an empty row: left out
            [3, "A3", "丙", None, dt.datetime(2026, 3, 3, 8, 30), "x"],
        ],
    )
    records = t.read_file(f)
    assert records == [
        (1, ["id", "code", "name", "score", "day", "note"]),
        (2, ["1", "A1", "韶关", "98.5", "2026-03-01", None]),
        (3, ["2", "A2", "乙", "0.25", "2026-03-02", "true"]),
        (5, ["3", "A3", "丙", None, "2026-03-03 08:30:00", "x"]),
    ]
    names, rows = t.validate(records[:3], COLS, KEYS, "demo")  # row 5's timestamp is no date
    assert names[0] == "id" and len(rows) == 2
    with pytest.raises(t.Fail, match="line 5: column 'day': '2026-03-03 08:30:00' is not a date"):
        t.validate(records, COLS, KEYS, "demo")


def test_xlsx_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"id,name\n1,x\n")  # a CSV renamed
    with pytest.raises(t.Fail, match="not a readable .xlsx workbook"):
        t.read_file(bad)
    with pytest.raises(t.Fail, match="row 1: empty sheet"):
        t.read_file(_workbook(tmp_path / "empty.xlsx", []))
    with pytest.raises(t.Fail, match=r"\.xls is not read"):
        t.read_file(tmp_path / "old.xls")


def test_upsert_key_is_checked_before_any_write() -> None:
    keys = KEYS + [["note", "day"]]
    names, rows = t.validate(list(t.parse_csv("id,code,name,note\n1,A1,x,a\n2,A2,y,\n")), COLS, keys, "demo")
    t.check_upsert_key(["id"], names, keys, rows, "demo")
    t.check_upsert_key(["code"], names, keys, rows, "demo")
    with pytest.raises(
        t.Fail, match=r"\(name\) is not a unique key of table demo \(its unique keys: \(id\); \(code\);"
    ):
        t.check_upsert_key(["name"], names, keys, rows, "demo")
    with pytest.raises(t.Fail, match=r"line 1: key column\(s\) day not in the header"):
        t.check_upsert_key(["day", "note"], names, keys, rows, "demo")
    names, rows = t.validate(list(t.parse_csv("id,code,name,note\n1,A1,x,a\n2,A2,y,\n")), COLS, [["note"]], "demo")
    with pytest.raises(t.Fail, match="line 3: key column 'note' is empty"):
        t.check_upsert_key(["note"], names, [["note"]], rows, "demo")
    with pytest.raises(t.Fail, match="named twice"):
        t.check_upsert_key(["id", "id"], names, KEYS, rows, "demo")
    with pytest.raises(t.Fail, match="upsert needs the key columns"):
        t.check_upsert_key([], names, KEYS, rows, "demo")


class _SQLite(t.Engine):
    """The SQL the tool writes, run by SQLite (the engines' own runs are the lab's)."""

    placeholder = "?"

    def quote(self, ident: str) -> str:
        return '"' + ident + '"'


def _demo_db() -> object:
    import sqlite3

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE demo (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, name TEXT NOT NULL)")
    conn.execute("INSERT INTO demo VALUES (1, 'A1', 'old'), (2, 'A2', 'same')")
    return conn


def test_upsert_updates_by_key_and_inserts_the_rest() -> None:
    conn: object = _demo_db()
    names, rows = t.validate(list(t.parse_csv("code,id,name\nA1,1,new\nA2,2,same\nA3,3,added\n")), COLS, KEYS, "demo")
    written = t.write_rows(_SQLite(), conn, "demo", names, rows, ["code"])
    assert written == {"inserted": 1, "updated": 2}  # an unchanged row counts as updated (matched)
    got = conn.execute("SELECT id, code, name FROM demo ORDER BY id").fetchall()  # type: ignore[attr-defined]
    assert got == [(1, "A1", "new"), (2, "A2", "same"), (3, "A3", "added")]


def test_upsert_refusal_names_the_line() -> None:
    conn: object = _demo_db()
    # line 3 would give A9 the id 1 that A1 has: the database refuses it, the caller rolls back.
    names, rows = t.validate(list(t.parse_csv("code,id,name\nA2,2,ok\nA9,1,clash\n")), COLS, KEYS, "demo")
    with pytest.raises(t.Fail, match="line 3: refused by the database: UNIQUE constraint failed"):
        t.write_rows(_SQLite(), conn, "demo", names, rows, ["code"])


# ----------------------------------------------------------------------------- .xlsx export (issue 20)


class _Cursor:
    """A DB-API cursor over fixed rows (what the engines' server-side cursors give the writer)."""

    def __init__(self, names: list[str], rows: list[tuple[object, ...]]) -> None:
        self.description = [(n, None, None, None, None, None, None) for n in names]
        self._rows = list(rows)

    def fetchmany(self, size: int) -> list[tuple[object, ...]]:
        batch, self._rows = self._rows[:size], self._rows[size:]
        return batch


def test_xlsx_export_cells_are_typed_and_the_sheet_is_set_up(tmp_path: Path) -> None:
    import datetime as dt
    import decimal

    import openpyxl

    utc = dt.timezone.utc
    names = ["id", "credit_code", "name", "score", "day", "updated", "note", "formula", "big", "active"]
    rows: list[tuple[object, ...]] = [
        (1, "0914400000MA4W1234", "韶关市环保科技有限公司", decimal.Decimal("98.50"), dt.date(2026, 3, 1),
         dt.datetime(2026, 3, 1, 0, 30, tzinfo=utc), None, "=1+1", 2**62, True),
        (2, "00123", "乙", decimal.Decimal("7"), None, dt.datetime(2026, 3, 2, 9, 15, 0), "x", "+1", -5, False),
    ]  # fmt: skip
    path = tmp_path / "enterprises.xlsx"
    assert t.write_xlsx_if_changed(path, _Cursor(names, rows), "enterprises") == (2, True)

    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["enterprises"]
    sheet = book["enterprises"]
    assert sheet.freeze_panes == "A2"
    header = sheet[1]
    assert [c.value for c in header] == names
    assert all(c.font.b for c in header)
    r2 = {n: sheet.cell(row=2, column=i + 1) for i, n in enumerate(names)}
    r3 = {n: sheet.cell(row=3, column=i + 1) for i, n in enumerate(names)}
    assert (r2["id"].value, r2["id"].data_type) == (1, "n")
    # the credit code keeps its leading zero: a text cell, formatted as text
    assert (r2["credit_code"].value, r2["credit_code"].data_type) == ("0914400000MA4W1234", "s")
    assert r2["credit_code"].number_format == "@"
    assert (r3["credit_code"].value, r3["credit_code"].data_type) == ("00123", "s")
    assert r2["name"].value == "韶关市环保科技有限公司"
    assert (r2["score"].value, r2["score"].data_type, r2["score"].number_format) == (98.5, "n", "0.00")
    assert (r3["score"].value, r3["score"].number_format) == (7, "0")
    assert r2["day"].is_date and r2["day"].value == dt.datetime(2026, 3, 1) and r2["day"].number_format == "yyyy-mm-dd"
    assert r3["day"].value is None  # NULL: an empty cell
    # timestamptz (aware): shown in Beijing time, 00:30 UTC is 08:30; a naive timestamp as it is
    assert r2["updated"].is_date and r2["updated"].value == dt.datetime(2026, 3, 1, 8, 30)
    assert r2["updated"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert r3["updated"].value == dt.datetime(2026, 3, 2, 9, 15)
    assert r2["note"].value is None and r3["note"].value == "x"
    assert (r2["formula"].value, r2["formula"].data_type) == ("=1+1", "s")  # text, never a formula
    assert (r2["big"].value, r2["big"].data_type) == (str(2**62), "s")  # past Excel's 15 digits: text
    assert (r3["big"].value, r3["big"].data_type) == (-5, "n")
    assert (r2["active"].value, r3["active"].value) == (True, False)
    widths = {n: sheet.column_dimensions[chr(ord("A") + i)].width for i, n in enumerate(names)}
    assert widths["name"] >= 2 * len("韶关市环保科技有限公司")  # a Chinese character is two columns wide
    assert widths["credit_code"] >= 18 and widths["id"] >= 8
    assert all(w <= 60 for w in widths.values())


def test_xlsx_export_of_the_same_rows_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "demo.xlsx"
    rows: list[tuple[object, ...]] = [(1, "甲"), (2, "乙")]
    assert t.write_xlsx_if_changed(path, _Cursor(["id", "name"], rows), "demo") == (2, True)
    first = t.sha256(path)
    # the workbook's saved time differs; the content does not: the file stays, same sha256
    assert t.write_xlsx_if_changed(path, _Cursor(["id", "name"], rows), "demo") == (2, False)
    assert t.sha256(path) == first
    assert t.write_xlsx_if_changed(path, _Cursor(["id", "name"], rows[:1]), "demo") == (1, True)
    assert t.sha256(path) != first
    assert [p.name for p in tmp_path.iterdir()] == ["demo.xlsx"]  # no temporary file left


def test_xlsx_export_refuses_what_a_cell_cannot_hold_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.xlsx"
    with pytest.raises(t.Fail, match=r"row 3: column 'name': a control character .* export as CSV"):
        t.write_xlsx_if_changed(path, _Cursor(["id", "name"], [(1, "ok"), (2, "bell\x07")]), "demo")
    with pytest.raises(t.Fail, match=r"row 2: column 'name': 40000 characters, more than an Excel cell"):
        t.write_xlsx_if_changed(path, _Cursor(["id", "name"], [(1, "长" * 40000)]), "demo")
    assert list(tmp_path.iterdir()) == []
    from openpyxl.worksheet._writer import ALL_TEMP_FILES

    assert ALL_TEMP_FILES == []  # openpyxl's temporary copy of the rows streamed so far is removed too


class _SQLiteExport(_SQLite):
    """cmd_export's engine over a SQLite file: the SQL and the files of the tool, not an engine's."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def connect(self, db: str, login: object) -> object:  # type: ignore[override]
        import sqlite3

        return sqlite3.connect(self.db, detect_types=sqlite3.PARSE_DECLTYPES)  # DATE columns as dates

    def columns(self, conn: object, db: str, table: str) -> list[t.Column]:
        return COLS if table == "demo" else []

    def begin_read_only(self, conn: object) -> None:
        pass

    def cursor_for(self, conn: object, sql: str) -> object:
        return conn.execute(sql)  # type: ignore[attr-defined]


DEMO_TABLE = (
    "CREATE TABLE demo (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
    " score NUMERIC, day DATE, note TEXT)"
)
DEMO_ROWS = [
    (1, "0012", "韶关市环保科技有限公司", 98.5, "2026-03-01", None),
    (2, "A2", "乙 “引号”, 逗号", None, None, "两行\n文本"),
    (3, "0003", "=SUM(A1:A2)", 0.25, "2026-12-31", "note"),
]


def _export_args(out: Path, fmt: str, **extra: object) -> object:
    import argparse

    values: dict[str, object] = dict(
        engine="postgresql", db="envcredit", out=str(out), table=["demo"], query="", name="query",
        user="envcredit_export", password_stdin=False, dry_run=False, bom=False, format=fmt,
    )  # fmt: skip
    values.update(extra)
    return argparse.Namespace(**values)


def test_xlsx_export_imports_back_with_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    source = tmp_path / "source.db"
    with sqlite3.connect(source) as conn:
        conn.execute(DEMO_TABLE)
        conn.executemany("INSERT INTO demo VALUES (?, ?, ?, ?, ?, ?)", DEMO_ROWS)
    monkeypatch.setattr(t, "engine", lambda name: _SQLiteExport(source))
    out = tmp_path / "out"

    result = t.cmd_export(_export_args(out, "xlsx"))  # type: ignore[arg-type]
    path = out / "demo.xlsx"
    assert result["format"] == "xlsx" and result["changed"] is True and "encoding" not in result
    # the manifest the role publishes and checks after the fetch: rows, bytes, sha256 of the file written
    (entry,) = result["files"]
    assert entry == {
        "name": "demo.xlsx",
        "source": "table demo",
        "rows": 3,
        "bytes": path.stat().st_size,
        "sha256": t.sha256(path),
        "changed": True,
    }
    again = t.cmd_export(_export_args(out, "xlsx"))  # type: ignore[arg-type]
    assert again["changed"] is False and again["files"][0]["sha256"] == entry["sha256"]

    records = t.read_file(path)
    names, rows = t.validate(records, COLS, KEYS, "demo")
    assert names == ["id", "code", "name", "score", "day", "note"]
    target = sqlite3.connect(":memory:")
    target.execute(DEMO_TABLE)
    assert t.write_rows(_SQLite(), target, "demo", names, rows, []) == {"inserted": 3, "updated": 0}
    assert target.execute("SELECT * FROM demo ORDER BY id").fetchall() == DEMO_ROWS


def test_xlsx_export_without_openpyxl_says_so_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # `import openpyxl` raises ImportError
    argv = ["envcredit_transfer.py", "export", "--engine=postgresql", "--db=envcredit", f"--out={out}"]
    monkeypatch.setattr(sys, "argv", argv + ["--table=demo", "--user=envcredit_export", "--format=xlsx"])
    assert t.main() == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "envcredit_transfer: writing .xlsx needs openpyxl on the database host (the role installs python3-openpyxl)\n"
    )
    assert captured.out == "" and "Traceback" not in captured.err
    assert not out.exists()  # refused before connecting: no directory, no partial file


def test_xlsx_export_refuses_a_byte_order_mark(tmp_path: Path) -> None:
    with pytest.raises(t.Fail, match="--bom is for CSV files"):
        t.cmd_export(_export_args(tmp_path / "out", "xlsx", bom=True))  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_xlsx_import_reads_timestamptz_cells_as_beijing_time(tmp_path: Path) -> None:
    import datetime as dt

    cols = [t.Column("id", "int", False, False), t.Column("updated", "timestamp", True, False, tz=True)]
    cols.append(t.Column("local", "timestamp", True, False))
    f = _workbook(
        tmp_path / "x.xlsx",
        [["id", "updated", "local"], [1, dt.datetime(2026, 3, 1, 8, 30), dt.datetime(2026, 3, 1, 8, 30)], [2]],
    )
    records = t.beijing_time(t.read_file(f), cols)
    assert records[1:] == [
        (2, ["1", "2026-03-01 08:30:00+08:00", "2026-03-01 08:30:00"]),  # the zone only where the column has one
        (3, ["2", None, None]),  # a short row: its missing cells are empty (NULL)
    ]
    assert t.validate(records, cols, [["id"]], "demo")[0] == ["id", "updated", "local"]


# ----------------------------------------------------------------------------- issue 22: mutation survivors


def test_csv_field_writes_each_type_in_the_file_convention() -> None:
    import datetime as dt
    import decimal

    assert t.csv_field(None) == ""
    assert t.csv_field("") == '""'
    assert (t.csv_field(True), t.csv_field(False)) == ("true", "false")
    assert t.csv_field(dt.datetime(2026, 3, 1, 8, 5, 9)) == "2026-03-01 08:05:09"  # a space, not "T"
    assert t.csv_field(dt.date(2026, 3, 1)) == "2026-03-01"
    assert t.csv_field(dt.time(8, 5)) == "08:05:00"
    assert t.csv_field(decimal.Decimal("1E+2")) == "100"  # fixed point, never an exponent
    assert t.csv_field(decimal.Decimal("0.50")) == "0.50"
    assert t.csv_field(decimal.Decimal("NaN")) == "NaN"  # as PostgreSQL writes it, not "NAN"
    assert t.csv_field(b"\x00\xff") == "\\x00ff"
    assert t.csv_field(bytearray(b"\x01")) == "\\x01"
    assert t.csv_field(memoryview(b"\xab")) == "\\xab"
    assert t.csv_field({"b": 1, "a": "甲"}) == '"{""a"": ""甲"", ""b"": 1}"'  # sorted keys, not \\u escapes
    assert t.csv_field([1]) == "[1]"
    assert t.csv_field(2.5) == "2.5"
    assert t.csv_field("plain") == "plain"
    assert t.csv_field("Xmas X") == "Xmas X"  # only , " CR LF (and the empty string) are quoted
    for special in ("a,b", 'a"b', "a\rb", "a\nb"):
        assert t.csv_field(special) == '"' + special.replace('"', '""') + '"'


@pytest.mark.parametrize(
    ("text", "records"),
    [
        ("a,b", [(1, ["a", "b"])]),  # no newline at the end
        ("a\r\nb\r\n", [(1, ["a"]), (2, ["b"])]),
        ("a,\n,b\n", [(1, ["a", None]), (2, [None, "b"])]),
        ("\n", [(1, [None])]),
        ('"",""\n', [(1, ["", ""])]),
        ('"a""b",""""\n', [(1, ['a"b', '"'])]),
        ('"x"\r\n"y"', [(1, ["x"]), (2, ["y"])]),
        ('"a,b\r\nc",d\ne\n', [(1, ["a,b\r\nc", "d"]), (3, ["e"])]),
        ("a,", [(1, ["a", None])]),  # a last empty field at the very end of the file
        ("aXb,X\n", [(1, ["aXb", "X"])]),
    ],
)
def test_parse_csv_records_and_their_lines(text: str, records: list[tuple[int, list[str | None]]]) -> None:
    assert list(t.parse_csv(text)) == records


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\rb\n", "line 1: carriage return without line feed"),
        ("a\n\nb\r", "line 3: carriage return without line feed"),
        ('a\n"x\ny"z\n', "line 3: text after a closing quote"),
        ('"a"X\n', "line 1: text after a closing quote"),
        ('a\n"x\ny""', "line 2: quoted field not closed before the end of the file"),
        ('a\nb\n"x\ny",c"d\n', "line 4: quote inside an unquoted field"),
    ],
)
def test_parse_csv_refusals_name_the_physical_line(text: str, message: str) -> None:
    with pytest.raises(t.Fail) as exc:
        list(t.parse_csv(text))
    assert str(exc.value).startswith(message)


def test_read_csv_refuses_an_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "empty.csv"
    f.write_bytes(b"")
    with pytest.raises(t.Fail) as exc:
        t.read_csv(f)
    assert str(exc.value) == "line 1: empty file (a header line is required)"


def _why(col: t.Column, value: str | None) -> str | None:
    return col.check(value)


def test_column_check_int_bounds_and_messages() -> None:
    col = t.Column("id", "int", False, False, lo=-128, hi=127)
    for ok in ("-128", "127", "+5", "0", "-0"):
        assert _why(col, ok) is None, ok
    assert _why(col, "128") == "128 is out of range [-128, 127]"
    assert _why(col, "-129") == "-129 is out of range [-128, 127]"
    assert _why(col, "5a") == "'5a' is not an integer"
    assert _why(col, " 5") == "' 5' is not an integer"
    assert _why(col, "x" * 50) == repr("x" * 40) + " is not an integer"  # cut at 40 characters
    assert _why(col, None) == "NULL (empty unquoted field) in a NOT NULL column"
    assert _why(t.Column("id", "int", True, False), None) is None
    assert _why(t.Column("id", "int", False, False, lo=0), "1" + "0" * 30) is None  # no upper bound
    assert _why(t.Column("id", "int", False, False, hi=0), "-" + "1" * 30) is None  # no lower bound
    assert _why(t.Column("id", "int", False, False, lo=0), "-1") == "-1 is out of range [0, None]"
    assert _why(t.Column("id", "int", False, False, hi=0), "1") == "1 is out of range [None, 0]"


def test_column_check_numeric_scale_and_precision() -> None:
    col = t.Column("score", "numeric", True, False, precision=5, scale=2)
    for ok in ("999.99", "-999.99", "1.", ".5", "+1.5", "0.10", "0"):
        assert _why(col, ok) is None, ok
    assert _why(col, "1000") == "1000 does not fit NUMERIC(5,2)"
    assert _why(col, "-1000.0") == "-1000.0 does not fit NUMERIC(5,2)"
    assert _why(col, "0.001") == "0.001 has more than 2 decimal places"
    for bad in ("1e5", ".", "1.2.3", "", "x" * 50):
        assert _why(col, bad) == f"{bad[:40]!r} is not a decimal number"
    assert _why(t.Column("n", "numeric", True, False), "123456789.123456789") is None  # unbounded NUMERIC
    assert _why(t.Column("n", "numeric", True, False, precision=3), "12345.678") is None  # no scale: not checked


def test_column_check_other_kinds() -> None:
    flt = t.Column("f", "float", True, False)
    for ok in ("1e5", "-1.5", "nan", "inf"):
        assert _why(flt, ok) is None, ok
    assert _why(flt, "x" * 50) == repr("x" * 40) + " is not a number"
    boolean = t.Column("b", "bool", True, False)
    for ok in ("true", "FALSE", "t", "F", "1", "0", "yes", "No"):
        assert _why(boolean, ok) is None, ok
    assert _why(boolean, "y") == "'y' is not a boolean (true/false)"
    assert _why(boolean, "2" * 50) == repr("2" * 40) + " is not a boolean (true/false)"
    day = t.Column("d", "date", True, False)
    assert _why(day, "2026-03-01") is None
    assert _why(day, "x" * 50) == repr("x" * 40) + " is not a date (YYYY-MM-DD)"
    ts = t.Column("ts", "timestamp", True, False)
    for ok in ("2026-03-01 08:00:00", "2026-03-01T08:00:00+08:00", "2026-03-01"):
        assert _why(ts, ok) is None, ok
    assert _why(ts, "x" * 50) == repr("x" * 40) + " is not a timestamp (YYYY-MM-DD HH:MM:SS)"
    text = t.Column("s", "text", True, False, length=3)
    assert _why(text, "abc") is None
    assert _why(text, "甲乙丙") is None  # characters, not bytes
    assert _why(text, "abcd") == "4 characters, longer than the column's 3"
    assert _why(t.Column("s", "text", True, False), "x" * 10_000) is None
    assert _why(text, "a\x00") == "NUL character"
    assert _why(t.Column("o", "other", True, False), "anything at all") is None  # left to the database


@pytest.mark.parametrize(
    ("data_type", "unsigned", "expected"),
    [
        ("smallint", False, ("int", -32768, 32767)),
        ("INTEGER", False, ("int", -(2**31), 2**31 - 1)),
        ("bigint", False, ("int", -(2**63), 2**63 - 1)),
        ("tinyint", True, ("int", 0, 255)),
        ("mediumint", True, ("int", 0, 2**24 - 1)),
        ("int", False, ("int", -(2**31), 2**31 - 1)),
        ("numeric", False, ("numeric", None, None)),
        ("DECIMAL", True, ("numeric", None, None)),
        ("real", False, ("float", None, None)),
        ("double precision", False, ("float", None, None)),
        ("float", False, ("float", None, None)),
        ("double", False, ("float", None, None)),
        ("boolean", False, ("bool", None, None)),
        ("date", False, ("date", None, None)),
        ("timestamp with time zone", False, ("timestamp", None, None)),
        ("timestamp", False, ("timestamp", None, None)),
        ("datetime", False, ("timestamp", None, None)),
        ("character varying", False, ("text", None, None)),
        ("character", False, ("text", None, None)),
        ("text", False, ("text", None, None)),
        ("varchar", False, ("text", None, None)),
        ("char", False, ("text", None, None)),
        ("tinytext", False, ("text", None, None)),
        ("mediumtext", False, ("text", None, None)),
        ("longtext", False, ("text", None, None)),
        ("jsonb", False, ("other", None, None)),
        ("time", False, ("other", None, None)),
    ],
)
def test_classify_maps_the_engines_types(data_type: str, unsigned: bool, expected: tuple[str, object, object]) -> None:
    assert t.classify(data_type, unsigned) == expected


def test_classify_is_signed_by_default() -> None:
    assert t.classify("tinyint") == ("int", -128, 127)


def _refusal(text: str, cols: list[t.Column] = COLS, keys: list[list[str]] = KEYS) -> str:
    with pytest.raises(t.Fail) as exc:
        t.validate(list(t.parse_csv(text)), cols, keys, "demo")
    return str(exc.value)


def test_validate_refusals_whole_messages() -> None:
    assert _refusal("id,,code\n") == "line 1: column 2 of the header has no name"
    assert _refusal('id,"",code\n') == "line 1: column 2 of the header has no name"
    assert (
        _refusal("id,colour\n") == "line 1: unknown column 'colour' (table demo has: id, code, name, score, day, note)"
    )
    assert _refusal("id,id\n") == "line 1: column 'id' appears twice in the header"
    assert _refusal("id\n") == "line 1: missing column(s) code, name (NOT NULL, no default)"
    assert _refusal("id,code,name\n1,A1\n") == "line 2: 2 field(s), the header has 3"
    assert _refusal("id,code,name\n1,A1,x\n2,A2,\n") == (
        "line 3: column 'name': NULL (empty unquoted field) in a NOT NULL column"
    )
    keys = [["code", "day"]]
    text = "id,code,name,day\n1,A1,x,2026-03-01\n2,A1,y,\n3,A1,z,2026-03-01\n"
    assert _refusal(text, keys=keys) == ("line 4: duplicate key (code, day)=(A1, 2026-03-01), already on line 2")


def test_validate_keys_text_is_compared_as_written_and_absent_keys_are_skipped() -> None:
    # "01" and "1" are one integer but two texts; a key whose column is not in the file is not checked.
    text = "id,code,name\n1,01,x\n2,1,y\n"
    names, rows = t.validate(list(t.parse_csv(text)), COLS, KEYS + [["day"]], "demo")
    assert names == ["id", "code", "name"]
    assert rows == [(2, ["1", "01", "x"]), (3, ["2", "1", "y"])]
    # a key not checked at all (not in the header) lets duplicates through to the database
    cols = COLS[:3] + [t.Column("score", "numeric", True, False)]
    names, rows = t.validate(list(t.parse_csv("id,code,name\n1,A1,x\n")), cols, [["score"], ["id"]], "demo")
    assert rows == [(2, ["1", "A1", "x"])]
    # the first row's line is kept for the message when the third repeats it
    assert _refusal("id,code,name\n5,A1,x\n6,A2,y\n+5,A3,z\n") == ("line 4: duplicate key (id)=(5), already on line 2")


def test_validate_checks_every_key_past_one_it_skips() -> None:
    # a key not in the header, or NULL on a line, is skipped for that line; the keys after it are still checked
    text = "id,code,name,note\n1,A1,x,\n2,A1,y,\n"
    assert _refusal(text, keys=[["day"], ["code"]]) == "line 3: duplicate key (code)=(A1), already on line 2"
    assert _refusal(text, keys=[["note"], ["code"]]) == "line 3: duplicate key (code)=(A1), already on line 2"


def test_a_column_is_not_serial_unless_said() -> None:
    assert t.Column("id", "int", False, False).serial is False
    assert t.Column("id", "int", False, True, serial=True).serial is True
