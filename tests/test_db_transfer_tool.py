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
