"""Rendering of the patch compliance report: HTML/Markdown/JSON through :mod:`.render`, CSV here."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from ..errors import BadInput
from .render import render_report

FORMATS = ("html", "md", "csv", "json")
CSV_COLUMNS = ("environment", "record_id", "host", "compliant", "package", "current", "candidate",
               "security", "held", "excluded", "reboot_required", "last_patch", "scanned_at")


def _cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (a cell starting with = + - @)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def to_csv(data: Mapping[str, Any]) -> str:
    """One row per host and pending package (a host with nothing pending gets one empty-package row)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for host in data["hosts"]:
        base = {"environment": data["environment"], "record_id": data["record"]["id"], "host": host["host"],
                "compliant": host["compliant"], "reboot_required": host["reboot_required"],
                "last_patch": host["last_patch"], "scanned_at": host["scanned_at"]}
        rows = host["updates"] or [{}]
        for u in rows:
            full = {**base, "package": u.get("name", ""), "current": u.get("current", ""),
                    "candidate": u.get("candidate", ""), "security": u.get("security", ""),
                    "held": u.get("held", ""), "excluded": u.get("excluded", "")}
            writer.writerow([_cell(full[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


def render_patches(fmt: str, lang: str, data: Mapping[str, Any]) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        return to_csv(data)
    return render_report("patches", fmt, lang, data)
