"""Exports of the change records (``opsctl records export``): CSV, JSON or a static HTML
page, each carrying the chain's HEAD when it was made, and the check of an export against
the archive later (``opsctl records verify-export FILE``).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2

from ..archive import Archive
from ..archive.files import atomic_write
from ..errors import ArchiveError, BadInput, OpsError
from ..records import RECORD_ID_RE, iso, utc_now
from .render import environment, to_csv

EXPORT_FORMATS = ("csv", "json", "html")


def export_stamp(archive: Archive) -> dict[str, Any]:
    """What every export carries so a copy can be checked later against the archive
    (``opsctl records verify-export FILE``): the chain's HEAD when it was made."""
    head = archive.head() or {}
    return {"seq": head.get("seq", 0), "hash": head.get("hash"), "id": head.get("id"), "exported_at": iso(utc_now())}


def _record_ids(data: Any, found: set[str]) -> set[str]:
    if isinstance(data, str):
        if RECORD_ID_RE.fullmatch(data):
            found.add(data)
    elif isinstance(data, Mapping):
        for value in data.values():
            _record_ids(value, found)
    elif isinstance(data, (list, tuple)):
        for value in data:
            _record_ids(value, found)
    return found


def report_provenance(archive: Archive, data: Any) -> dict[str, Any]:
    """What a report carries so a filed copy can be checked later (``opsctl records
    verify-export FILE``): the chain's HEAD when it was made and ``[id, seq, hash]`` of every
    change record it names (the records it was built from)."""
    records: list[list[Any]] = []
    for rid in sorted(_record_ids(data, set())):
        try:
            rec = archive.get(rid)
        except (ArchiveError, BadInput):
            continue
        records.append([rid, rec.get("seq"), rec.get("hash")])
    return {"head": export_stamp(archive), "records": records}


def export(archive: Archive, fmt: str, out: Path, **filters: Any) -> int:
    """Write the matching records as CSV, JSON or a static HTML page; returns the count."""
    if fmt not in EXPORT_FORMATS:
        raise BadInput(f"export format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    rows = archive.list(**filters)
    records = [archive.get(row["id"]) for row in rows]
    stamp = export_stamp(archive)
    if fmt == "csv":
        data = _to_csv(records, stamp).encode("utf-8")
    elif fmt == "json":
        body = {"archive_head": stamp, "records": records}
        data = (json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
    else:
        data = _to_html(records, archive, filters, stamp).encode("utf-8")
    out = Path(out)
    try:
        if not out.parent.exists():
            out.parent.mkdir(parents=True)
        atomic_write(out, data)
    except OSError as exc:
        raise ArchiveError(f"cannot write {out}: {exc}") from exc
    return len(records)


CSV_COLUMNS = (
    "seq",
    "id",
    "operation",
    "environment",
    "status",
    "rc",
    "check_mode",
    "ticket",
    "incident",
    "reason",
    "launch",
    "operator_user",
    "on_behalf_of",
    "operator_host",
    "git_name",
    "git_email",
    "started",
    "ended",
    "duration_s",
    "targets",
    "hosts_failed",
    "changes",
    "failures",
    "source_commit",
    "source_branch",
    "source_dirty",
    "prev_hash",
    "hash",
)


def verify_export(archive: Archive, claims: Mapping[str, Any]) -> list[str]:
    """Problems between an export's claims (``{"head": stamp, "records": [(id, seq, hash)]}``)
    and this archive: its HEAD then must be a record of this chain now, and every record it
    lists must be here with the same seq and hash."""
    problems: list[str] = []
    head = claims.get("head") or {}
    seq, digest = head.get("seq"), head.get("hash")
    by_seq: dict[Any, dict[str, Any]] = {}
    for rid in archive.record_ids():
        try:
            rec = archive.get(rid)
        except ArchiveError as exc:
            problems.append(f"record {rid}: {exc}")
            continue
        by_seq[rec.get("seq")] = rec
    if seq:
        at = by_seq.get(seq)
        if at is None:
            problems.append(
                f"the export was made at HEAD seq {seq}, which this archive does not hold: "
                "records removed, or another archive"
            )
        elif at.get("hash") != digest:
            problems.append(
                f"the export was made at HEAD seq {seq} hash {str(digest)[:12]}, but this archive's "
                f"seq {seq} has hash {str(at.get('hash'))[:12]}: the chain was rewritten since"
            )
    for rid, rseq, rhash in claims.get("records") or []:
        found = by_seq.get(rseq)
        if found is None or found.get("id") != rid:
            problems.append(f"record {rid} (seq {rseq}) of the export is not in this archive")
        elif found.get("hash") != rhash:
            problems.append(
                f"record {rid} (seq {rseq}) differs: the export says hash {str(rhash)[:12]}, "
                f"the archive {str(found.get('hash'))[:12]}"
            )
    return problems


def read_export_claims(path: Path) -> dict[str, Any]:
    """The HEAD and (id, seq, hash) of each record an export file claims (CSV, JSON or HTML)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a CSV saved for Excel starts with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the export {path}: {exc}") from exc
    try:
        report = re.search(r'<script type="application/json" id="envcredit-report">(.*?)</script>', text, re.S)
        report = report or re.search(r"<!-- envcredit-report (\{.*?\}) -->", text, re.S)
        if report:  # a report (HTML or Markdown) made by opsctl report
            data = json.loads(report.group(1))
            return {"head": data["head"], "records": [tuple(r) for r in data["records"]]}
        if text.lstrip().startswith("{"):
            data = json.loads(text)
            if "provenance" in data:  # a report as JSON
                prov = data["provenance"]
                return {"head": prov["head"], "records": [tuple(r) for r in prov["records"]]}
            return {"head": data["archive_head"], "records": [(r["id"], r["seq"], r["hash"]) for r in data["records"]]}
        if text.lstrip().startswith("<"):
            m = re.search(r'<script type="application/json" id="envcredit-export">(.*?)</script>', text, re.S)
            if not m:
                raise BadInput(f"{path}: an HTML file without the export's data (not made by records export)")
            data = json.loads(m.group(1))
            return {"head": data["head"], "records": [tuple(r) for r in data["records"]]}
        rows = list(csv.DictReader(text.splitlines()))
        if rows and "archive_head_seq" not in rows[0]:
            raise BadInput(f"{path}: a CSV without archive_head_seq (not made by records export or opsctl report)")
        head = {"seq": int(rows[0]["archive_head_seq"]), "hash": rows[0]["archive_head_hash"]} if rows else {}
        if rows and "record_seq" in rows[0]:  # a report's CSV: one row per finding, each naming its record
            named = {(r["record_id"], int(r["record_seq"]), r["record_hash"]) for r in rows if r["record_seq"]}
            return {"head": head, "records": sorted(named)}
        return {"head": head, "records": [(r["id"], int(r["seq"]), r["hash"]) for r in rows]}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise BadInput(f"{path}: not an export of records export ({type(exc).__name__}: {exc})") from exc


def _to_csv(records: list[dict[str, Any]], stamp: Mapping[str, Any]) -> str:
    return to_csv((*CSV_COLUMNS, "archive_head_seq", "archive_head_hash"), _csv_rows(records, stamp))


def _csv_rows(records: list[dict[str, Any]], stamp: Mapping[str, Any]) -> Iterator[list[Any]]:
    for r in records:
        operator = r.get("operator") or {}
        source = r.get("source") or {}
        hosts = r.get("hosts") or {}
        row = [
            r.get("seq"),
            r.get("id"),
            r.get("operation"),
            r.get("environment"),
            r.get("status"),
            r.get("rc"),
            r.get("check_mode"),
            r.get("ticket"),
            r.get("incident"),
            r.get("reason"),
            (r.get("launch") or {}).get("type"),
            operator.get("user"),
            operator.get("on_behalf_of"),
            operator.get("host"),
            operator.get("git_name"),
            operator.get("git_email"),
            r.get("started"),
            r.get("ended"),
            r.get("duration_s"),
            " ".join(r.get("targets") or []),
            " ".join(h for h, c in hosts.items() if c.get("failed") or c.get("unreachable")),
            len(r.get("changes") or []),
            sum(1 for f in r.get("failures") or [] if not f.get("ignored")),
            source.get("commit"),
            source.get("branch"),
            source.get("dirty"),
            r.get("prev_hash"),
            r.get("hash"),
            stamp.get("seq"),
            stamp.get("hash"),
        ]
        yield row


def _to_html(
    records: list[dict[str, Any]], archive: Archive, filters: Mapping[str, Any], stamp: Mapping[str, Any]
) -> str:
    report = archive.verify()
    try:
        html = (
            environment()
            .get_template("archive.html.j2")
            .render(
                records=records,
                lang="en",  # the export is in English; its times are marked (UTC+8)
                generated=iso(utc_now()),
                archive=str(archive.root),
                filters={k: v for k, v in filters.items() if v is not None},
                verify=report,
                stamp=stamp,
                # what `opsctl records verify-export` reads back (inert data, no code)
                claims=json.dumps(
                    {"head": dict(stamp), "records": [[r.get("id"), r.get("seq"), r.get("hash")] for r in records]}
                ).replace("</", "<\\/"),
            )
        )
    except jinja2.TemplateError as exc:
        raise OpsError(f"cannot render the HTML export: {exc}") from exc
    return html.removesuffix("\n")  # the page as before the shared environment kept the template's last newline
