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
