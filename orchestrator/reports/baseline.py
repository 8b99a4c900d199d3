"""Rendering of the security baseline report: HTML/JSON through :mod:`.render`, CSV here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import BadInput
from .render import PROVENANCE_COLUMNS, provenance_cells, render_report, strings, to_csv as csv_text

FORMATS = ("html", "csv", "json")
CSV_COLUMNS = (
    "environment",
    "record_id",
    "host",
    "control",
    "description",
    "requirement",
    "status",
    "reason",
    "waiver_approved_by",
    "waiver_reason",
    "waiver_until",
    *PROVENANCE_COLUMNS,
)


def to_csv(data: Mapping[str, Any], lang: str) -> str:
    """One row per host and control; status words in the report's language."""
    return csv_text(CSV_COLUMNS, _rows(data, lang))


def _rows(data: Mapping[str, Any], lang: str) -> Iterator[list[Any]]:
    t = strings("baseline", lang)
    for host in data["hosts"]:
        for c in host["controls"]:
            w = c.get("waiver") or {}
            row = {
                "environment": data["environment"],
                "record_id": data["record"]["id"],
                "host": host["host"],
                "control": c["id"],
                "description": c[lang],
                "requirement": c["ref"],
                "status": t[f"status_{c['status']}"],
                "reason": c["reason"],
                "waiver_approved_by": w.get("approved_by") or "",
                "waiver_reason": w.get("reason") or "",
                "waiver_until": w.get("until") or "",
            }
            yield [row[col] for col in CSV_COLUMNS[: -len(PROVENANCE_COLUMNS)]] + provenance_cells(
                data, row["record_id"]
            )


def render_baseline(fmt: str, lang: str, data: Mapping[str, Any]) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        return to_csv(data, lang)
    return render_report("baseline", fmt, lang, data)
