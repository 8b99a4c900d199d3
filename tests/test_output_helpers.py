"""The shared output helpers: one CSV formula guard, one --format rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import BadInput
from orchestrator.reports.render import csv_cell, format_for, to_csv


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "-cmd", "@SUM(A1)", "\tx", "\rx"])
def test_formula_starts_are_guarded(text: str) -> None:
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "", "a=b", 3, -1, 2.5, True])
def test_other_cells_kept(value: object) -> None:
    assert csv_cell(value) == value


def test_none_is_empty_and_rows_guarded() -> None:
    assert csv_cell(None) == ""
    assert to_csv(("a", "b"), [("=x", None), (1, "y")]) == "a,b\n'=x,\n1,y\n"


def test_one_format_rule() -> None:
    formats = ("html", "csv", "json")
    assert format_for(None, None, formats, "html") == "html"
    assert format_for(Path("r.csv"), None, formats, "html") == "csv"
    assert format_for(Path("r.HTM"), None, formats, "html") == "html"
    assert format_for(Path("r.md"), None, formats, "html") == "html"  # not a format of this report
    assert format_for(Path("r.csv"), "json", formats, "html") == "json"
    assert format_for(Path("r.txt"), None) == "md"  # the reports' default set: html, md, json
    with pytest.raises(BadInput):
        format_for(None, "xml", formats, "html")


def test_markdown_and_html_reports_carry_their_provenance(tmp_path: Path) -> None:
    """A report's provenance (HEAD and records) is a line for the reader and claims that
    `records verify-export` reads back, from HTML and from Markdown; text that would end the
    script element or the comment early cannot."""
    from orchestrator.reports.export import read_export_claims
    from orchestrator.reports.render import _with_provenance

    prov = {
        "head": {"seq": 7, "hash": "ab" * 32, "id": "x--y</script>"},
        "records": [["20261128T090000000Z-8dc20c", 3, "cd" * 32]],
    }
    for fmt, body in (("md", "# 报告\n"), ("html", "<html><body><p>x</p></body></html>\n")):
        text = _with_provenance(body, fmt, "zh", prov)
        assert f"序号 7，哈希 {'ab' * 32}" in text and "本报告依据 1 条记录" in text
        assert text.count("</script>") == (1 if fmt == "html" else 0) and "x--y" not in text
        path = tmp_path / f"r.{fmt}"
        path.write_text(text, encoding="utf-8")
        claims = read_export_claims(path)
        assert claims["head"] == prov["head"]
        assert claims["records"] == [("20261128T090000000Z-8dc20c", 3, "cd" * 32)]
