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
