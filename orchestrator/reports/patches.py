"""Rendering of the patch compliance report: HTML/Markdown/JSON through :mod:`.render`, CSV here."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import BadInput
from .render import PROVENANCE_COLUMNS, provenance_cells, render_report, to_csv as csv_text

FORMATS = ("html", "md", "csv", "json")
CSV_COLUMNS = (
    "environment",
    "record_id",
    "host",
    "compliant",
    "package",
    "current",
    "candidate",
    "security",
    "held",
    "excluded",
    "reboot_required",
    "last_patch",
    "scanned_at",
    *PROVENANCE_COLUMNS,
)


def to_csv(data: Mapping[str, Any]) -> str:
    """One row per host and pending package (a host with nothing pending gets one empty-package row)."""
    return csv_text(CSV_COLUMNS, _rows(data))


def _rows(data: Mapping[str, Any]) -> Iterator[list[Any]]:
    for host in data["hosts"]:
        base = {
            "environment": data["environment"],
            "record_id": data["record"]["id"],
            "host": host["host"],
            "compliant": host["compliant"],
            "reboot_required": host["reboot_required"],
            "last_patch": host["last_patch"],
            "scanned_at": host["scanned_at"],
        }
        rows = host["updates"] or [{}]
        for u in rows:
            full = {
                **base,
                "package": u.get("name", ""),
                "current": u.get("current", ""),
                "candidate": u.get("candidate", ""),
                "security": u.get("security", ""),
                "held": u.get("held", ""),
                "excluded": u.get("excluded", ""),
            }
            yield [full.get(c) for c in CSV_COLUMNS[: -len(PROVENANCE_COLUMNS)]] + provenance_cells(
                data, base["record_id"]
            )


def render_patches(fmt: str, lang: str, data: Mapping[str, Any]) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        return to_csv(data)
    return render_report("patches", fmt, lang, data)
