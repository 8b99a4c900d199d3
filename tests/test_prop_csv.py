"""Properties of the CSV import validation of roles/db_transfer/files/envcredit_transfer.py.

Through the entry points tests/test_db_transfer_tool.py uses (``csv_line``, ``read_csv``,
``parse_csv``, ``validate``, ``Column``, ``Fail``), for one table spec:

* a generated well-formed file (any header order holding the NOT NULL columns, any text in
  text columns: commas, quotes, line breaks, CJK; NULL and the empty string; ``\\n`` or
  ``\\r\\n`` line ends, with or without a BOM) is accepted, and the rows read back are exactly
  the values written, each with the physical line it starts on;
* the same file with one defect the tool documents it refuses (a field too many or too few, a
  non-number in a numeric column, NULL in a NOT NULL column, text longer than its column, a bad
  date, a duplicate key inside the file, a quote in an unquoted field, text after a closing
  quote, a quoted field never closed, bytes that are not UTF-8, an unknown or repeated header
  column) is always refused with ``Fail``, naming the line of the defect.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.common import REPO

sys.path.insert(0, str(REPO / "roles" / "db_transfer" / "files"))
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # envcredit_dbcommon, the tools' shared code
import envcredit_transfer as t  # noqa: E402

INT_LO, INT_HI = -(2**31), 2**31 - 1
COLS = [
    t.Column("id", "int", False, False, lo=INT_LO, hi=INT_HI),
    t.Column("code", "text", False, False, length=4),
    t.Column("name", "text", False, False, length=30),
    t.Column("score", "numeric", True, False, precision=5, scale=2),
    t.Column("day", "date", True, False),
    t.Column("note", "text", True, True),
]
KEYS = [["id"], ["code"]]
REQUIRED = ["id", "code", "name"]
OPTIONAL = ["score", "day", "note"]

Row = list[str | None]

# Any text a column may hold: every Unicode character but NUL and lone surrogates (not UTF-8).
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
# ... with the CSV specials drawn often.
# (at most 12 pieces of 1 or 2 characters: it fits the name column's 30)
field_text = st.lists(st.one_of(chars, st.sampled_from([",", '"', "\n", "\r", "\r\n", " ", "甲"])), max_size=12).map(
    "".join
)


@dataclass
class Table:
    header: list[str]
    rows: list[Row]
    crlf: bool
    bom: bool

    def text(self) -> str:
        lines = [t.csv_line(self.header)] + [t.csv_line(row) for row in self.rows]
        if self.crlf:  # only the record ends: a line break inside a quoted field stays as it is
            lines = [line[:-1] + "\r\n" for line in lines]
        return "".join(lines)

    def data(self) -> bytes:
        return (b"\xef\xbb\xbf" if self.bom else b"") + self.text().encode("utf-8")

    def line_of(self, index: int) -> int:
        """The physical line where row ``index`` starts."""
        lines = [t.csv_line(self.header)] + [t.csv_line(row) for row in self.rows]
        return 1 + sum(line.count("\n") for line in lines[: index + 1])


def int_text(draw: st.DrawFn, value: int) -> str:
    """An integer as a file may write it: 42, +42, 0042, -7."""
    style = draw(st.sampled_from(["plain", "plain", "plus", "zeros"]))
    if style == "plus" and value >= 0:
        return f"+{value}"
    if style == "zeros":
        return ("-" if value < 0 else "") + "00" + str(abs(value))
    return str(value)


@st.composite
def tables(draw: st.DrawFn, min_rows: int = 0) -> Table:
    optional = draw(st.lists(st.sampled_from(OPTIONAL), unique=True))
    header = draw(st.permutations(REQUIRED + optional))
    n = draw(st.integers(min_rows, 6))
    ids = draw(st.lists(st.integers(INT_LO, INT_HI), min_size=n, max_size=n, unique=True))
    codes = draw(
        st.lists(
            st.text(st.one_of(chars, st.sampled_from([",", '"', "\n"])), max_size=4),
            min_size=n,
            max_size=n,
            unique=True,
        )
    )
    rows: list[Row] = []
    for i in range(n):
        value: dict[str, str | None] = {
            "id": int_text(draw, ids[i]),
            "code": codes[i],
            "name": draw(field_text),
            "score": draw(
                st.one_of(
                    st.none(),
                    st.decimals("-999.99", "999.99", places=2).map(lambda d: format(d, "f")),
                    st.integers(-999, 999).map(str),
                )
            ),
            "day": draw(
                st.one_of(st.none(), st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)).map(dt.date.isoformat))
            ),
            "note": draw(st.one_of(st.none(), field_text)),
        }
        rows.append([value[c] for c in header])
    return Table(header=list(header), rows=rows, crlf=draw(st.booleans()), bom=draw(st.booleans()))


def import_file(tmp_path: Path, data: bytes) -> tuple[list[str], list[tuple[int, Row]]]:
    path = tmp_path / "import.csv"
    path.write_bytes(data)
    return t.validate(t.read_csv(path), COLS, KEYS, "demo")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("csv")


@settings(max_examples=300)
@given(tables())
def test_well_formed_files_are_accepted_and_round_trip_exactly(workdir: Path, table: Table) -> None:
    names, rows = import_file(workdir, table.data())
    assert names == table.header
    assert [fields for _, fields in rows] == table.rows  # NULL stays None, "" stays "", text exact
    assert [line for line, _ in rows] == [table.line_of(i) for i in range(len(table.rows))]


# -- defects -------------------------------------------------------------------------------

junk = st.sampled_from(list("aAeExX ,/_%#;一"))  # never part of a number (no digit, sign or dot)


@st.composite
def not_a_number(draw: st.DrawFn) -> str:
    digits = st.text("0123456789", max_size=3)
    return draw(digits) + draw(junk) + draw(digits)


@st.composite
def row_defects(draw: st.DrawFn) -> tuple[Table, int]:
    """A well-formed table with one row-level defect; returns it and the defective line."""
    table = draw(tables(min_rows=1))
    r = draw(st.integers(0, len(table.rows) - 1))
    row = table.rows[r]
    col = {name: i for i, name in enumerate(table.header)}
    kind = draw(
        st.sampled_from(
            [
                "extra field",
                "missing field",
                "id not a number",
                "score not a number",
                "id out of range",
                "null name",
                "code too long",
                "name too long",
                "bad date",
                "duplicate id",
                "duplicate code",
            ]
        )
    )
    if kind == "extra field":
        row.append(draw(st.one_of(st.none(), field_text)))
    elif kind == "missing field":
        row.pop(draw(st.integers(0, len(row) - 1)))
    elif kind == "id not a number":
        row[col["id"]] = draw(not_a_number())
    elif kind == "score not a number":
        if "score" not in col:
            table.header.append("score")
            for other in table.rows:
                other.append(None)
            col["score"] = len(table.header) - 1
        row[col["score"]] = draw(not_a_number())
    elif kind == "id out of range":
        row[col["id"]] = str(draw(st.one_of(st.integers(max_value=INT_LO - 1), st.integers(min_value=INT_HI + 1))))
    elif kind == "null name":
        row[col["name"]] = None
    elif kind == "code too long":
        row[col["code"]] = draw(st.text(chars, min_size=5, max_size=8))
    elif kind == "name too long":
        row[col["name"]] = draw(st.text(chars, min_size=31, max_size=40))
    elif kind == "bad date":
        if "day" not in col:
            table.header.append("day")
            for other in table.rows:
                other.append(None)
            col["day"] = len(table.header) - 1
        row[col["day"]] = draw(
            st.sampled_from(["2026-02-30", "2025-13-01", "26-01-01", "2026/01/01", "today", "2026-1-1x", ""])
        )
    else:  # a new last row repeating a key of row r, in another spelling for the integer
        dup = list(row)
        used_codes = {other[col["code"]] for other in table.rows}
        used_ids = {int(str(other[col["id"]])) for other in table.rows}
        if kind == "duplicate id":
            value = int(str(row[col["id"]]))
            dup[col["id"]] = draw(st.sampled_from([str(value), f"0{abs(value)}" if value >= 0 else f"-0{-value}"]))
            dup[col["code"]] = draw(st.text(chars, max_size=4).filter(lambda c: c not in used_codes))
        else:
            dup[col["id"]] = str(draw(st.integers(INT_LO, INT_HI).filter(lambda i: i not in used_ids)))
        table.rows.append(dup)
        r = len(table.rows) - 1
    return table, table.line_of(r)


@settings(max_examples=300)
@given(row_defects())
def test_a_defective_row_is_refused_with_its_line(workdir: Path, case: tuple[Table, int]) -> None:
    table, line = case
    with pytest.raises(t.Fail, match=rf"^line {line}: "):
        import_file(workdir, table.data())


@st.composite
def quoting_defects(draw: st.DrawFn) -> tuple[bytes, int]:
    """A well-formed table whose one field is written with broken quoting; returns the file and
    the line the tool must name."""
    table = draw(tables(min_rows=1))
    kind = draw(st.sampled_from(["quote inside", "text after closing quote", "never closed"]))
    # the last row: a quote opened there cannot be closed by a later one
    r = len(table.rows) - 1 if kind == "never closed" else draw(st.integers(0, len(table.rows) - 1))
    # (an unclosed quote is the row's last field: a quoted field after it would close it)
    last = len(table.header) - 1
    c = last if kind == "never closed" else draw(st.integers(0, last))
    plain = st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters='\x00",\r\n'), min_size=1, max_size=6
    )
    if kind == "quote inside":
        bad = (
            draw(plain)
            + '"'
            + draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00,\r\n"), max_size=4))
        )
    elif kind == "text after closing quote":
        bad = '"' + draw(plain) + '"' + draw(plain)
    else:
        bad = '"' + draw(plain)
    fields = [t.csv_field(v) for v in table.rows[r]]
    fields[c] = bad
    lines = [t.csv_line(table.header)] + [t.csv_line(row) for row in table.rows]
    line = table.line_of(r) + sum(f.count("\n") for f in fields[:c])  # where the bad field is
    lines[r + 1] = ",".join(fields) + "\n"
    if kind == "never closed":
        lines = lines[: r + 2]
    return "".join(lines).encode("utf-8"), line


@settings(max_examples=200)
@given(quoting_defects())
def test_broken_quoting_is_refused_with_its_line(workdir: Path, case: tuple[bytes, int]) -> None:
    data, line = case
    with pytest.raises(t.Fail, match=rf"^line {line}: "):
        import_file(workdir, data)


BAD_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe4\xb8"]


@settings(max_examples=200)
@given(tables(), st.sampled_from(BAD_UTF8), st.floats(0, 1))
def test_bytes_that_are_not_utf8_are_refused_with_their_line(
    workdir: Path, table: Table, bad: bytes, where: float
) -> None:
    """Invalid UTF-8 (a stray or truncated sequence, an overlong form, a surrogate, a code point
    beyond U+10FFFF, GBK-like bytes) inserted between any two characters of the file."""
    text = table.text()
    at = int(where * len(text))
    head = (b"\xef\xbb\xbf" if table.bom else b"") + text[:at].encode("utf-8")
    data = head + bad + text[at:].encode("utf-8")
    line = head.count(b"\n") + 1
    with pytest.raises(t.Fail, match=rf"^line {line}: not valid UTF-8"):
        import_file(workdir, data)


@settings(max_examples=100)
@given(tables(), st.sampled_from(["unknown", "repeated", "missing", "empty"]), st.data())
def test_a_bad_header_is_refused(workdir: Path, table: Table, kind: str, data: st.DataObject) -> None:
    header = list(table.header)
    if kind == "unknown":
        header.insert(
            data.draw(st.integers(0, len(header))),
            data.draw(st.text(chars, min_size=1, max_size=8).filter(lambda h: h not in [c.name for c in COLS])),
        )
    elif kind == "repeated":
        header.append(data.draw(st.sampled_from(header)))
    elif kind == "missing":
        header.remove(data.draw(st.sampled_from(REQUIRED)))
    else:
        header.insert(data.draw(st.integers(0, len(header))), data.draw(st.sampled_from([None, ""])))
    with pytest.raises(t.Fail, match=r"^line 1: "):
        import_file(workdir, Table(header, [], table.crlf, table.bom).data())
