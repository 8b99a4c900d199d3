"""Inspection results from the change records: findings, trends over earlier runs, forecasts.

Every ``inspect`` run keeps, in its record's ``outputs.inspect``, one result per
host (see roles/inspect/README.md). This module reads them back from the
archive: the findings of one run, the series of earlier runs (disk usage per
mount, database sizes, certificate days left, backup age) and, through
:mod:`orchestrator.forecast`, findings about problems that do not exist yet
(a filesystem that will be full in a few days).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .archive import Archive
from .errors import BadInput, NotFound
from .forecast import DAY_S, days_until, growth_per_week
from .operations import tagged_one
from .records import parse_iso

SEVERITIES = ("critical", "warning", "info")
SEVERITY_RANK = {"critical": 3, "warning": 2, "info": 1, "ok": 0}
#: The output key under which an inspection record keeps its per-host results.
OUTPUT = "inspect"

FORECAST_ACTIONS = {
    "disk_forecast": "Plan the clean-up or the extension of the filesystem now, before it fills up.",
    "certificate_forecast": "Order the renewal of the certificate now and plan its installation.",
    "backup_forecast": "Check the nightly backup timer and the last backup run.",
}


@dataclass(frozen=True)
class Thresholds:
    """When a forecast becomes a finding."""

    history: int = 14  # inspections fitted
    disk_warn_days: float = 14.0
    disk_crit_days: float = 3.0
    min_span_h: float = 0.0  # shortest time span of the fitted points
    cert_info_days: float = 45.0
    min_points: int = 3


def results(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-host inspection results of a record (empty when it has none)."""
    out = (record.get("outputs") or {}).get(OUTPUT) or {}
    if not isinstance(out, Mapping):
        return {}
    return {str(h): dict(r) for h, r in out.items() if isinstance(r, Mapping)}


def worst(severities: Iterable[str]) -> str:
    best = "ok"
    for sev in severities:
        if SEVERITY_RANK.get(sev, 0) > SEVERITY_RANK[best]:
            best = sev
    return best


def find_record(archive: Archive, record_id: str | None, env: str | None) -> dict[str, Any]:
    """The record asked for, or the newest inspect record (of ``env``) that has results."""
    if record_id:
        rec = archive.get(record_id)
        if rec.get("operation") != tagged_one("inspection") or not results(rec):
            raise BadInput(f"record {record_id} is not an inspection with results (operation {rec.get('operation')})")
        return rec
    for row in archive.list(op=tagged_one("inspection"), env=env):
        rec = archive.get(row["id"])
        if results(rec):
            return rec
    where = f" of environment {env}" if env else ""
    raise NotFound(f"no inspection record with results{where} in the archive {archive.root}")


def history(archive: Archive, record: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` inspection records of the same environment up to ``record``, oldest first.

    Check-mode runs count too (the probe is read-only); records without results do not.
    """
    out: list[dict[str, Any]] = []
    seq = int(record.get("seq") or 0)
    for row in archive.list(op=tagged_one("inspection"), env=str(record.get("environment"))):
        if seq and int(row.get("seq") or 0) > seq:
            continue
        rec = dict(record) if row["id"] == record.get("id") else archive.get(row["id"])
        if results(rec):
            out.append(rec)
        if len(out) >= count:
            break
    return list(reversed(out))


def _stamp(record: Mapping[str, Any]) -> float:
    return parse_iso(str(record.get("started"))).timestamp()


def series(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per host: time series of disk %, inode %, database sizes, certificate days left, backup age."""
    disk: dict[tuple[str, str], list[tuple[float, float]]] = {}
    sizes: dict[tuple[str, str], list[tuple[float, float]]] = {}
    certs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    backups: dict[str, list[tuple[float, float]]] = {}
    for rec in records:
        t = _stamp(rec)
        for host, res in results(rec).items():
            for m in res.get("mounts") or []:
                disk.setdefault((host, str(m.get("mount"))), []).append((t, float(m.get("used_pct") or 0)))
            for db in res.get("databases") or []:
                for d in db.get("databases") or []:
                    key = (host, f"{db.get('engine')}/{d.get('name')}")
                    sizes.setdefault(key, []).append((t, float(d.get("size_bytes") or 0)))
            for c in res.get("certificates") or []:
                if c.get("days_left") is not None:
                    certs.setdefault((host, str(c.get("path"))), []).append((t, float(c["days_left"])))
            backup = res.get("backup") or {}
            newest = backup.get("newest") or backup.get("newest_verified")  # records before both were kept
            if newest and newest.get("age_h") is not None:
                backups.setdefault(host, []).append((t, float(newest["age_h"])))
    return {"disk": disk, "db_size": sizes, "cert_days": certs, "backup_age_h": backups}


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).isoformat(timespec="seconds")


def forecasts(trend: Mapping[str, Any], latest: Mapping[str, dict[str, Any]], th: Thresholds) -> dict[str, Any]:
    """Forecast rows (JSON-ready) and the findings they raise."""
    findings: list[dict[str, Any]] = []
    disk_rows: list[dict[str, Any]] = []
    latest_mounts = {(h, str(m.get("mount"))) for h, r in latest.items() for m in r.get("mounts") or []}
    for (host, mount), pts in sorted(trend["disk"].items()):
        if (host, mount) not in latest_mounts:
            continue
        fc = days_until(pts, 100.0, min_points=th.min_points, min_span_s=th.min_span_h * 3600)
        row = {"host": host, "mount": mount, **fc.as_dict(), "last_pct": pts[-1][1]}
        row["slope_pct_per_day"] = row.pop("slope_per_day")
        disk_rows.append(row)
        if fc.status == "ok" and fc.days_left is not None and fc.days_left <= th.disk_warn_days:
            sev = "critical" if fc.days_left <= th.disk_crit_days else "warning"
            findings.append(
                _finding(
                    host,
                    "disk_forecast",
                    sev,
                    mount,
                    fc.days_left,
                    th.disk_crit_days if sev == "critical" else th.disk_warn_days,
                    f"{mount} will be full in {fc.days_left:.1f} day(s) (about {fc.eta}) at "
                    f"{fc.slope_per_day or 0:.2f} %/day, now {pts[-1][1]:.1f}%",
                )
            )
    db_rows = []
    for (host, name), pts in sorted(trend["db_size"].items()):
        weekly = growth_per_week(pts)
        db_rows.append(
            {
                "host": host,
                "database": name,
                "size_bytes": int(pts[-1][1]),
                "points": len(pts),
                "growth_bytes_per_week": None if weekly is None else int(weekly),
            }
        )
    cert_rows = []
    for (host, path), pts in sorted(trend["cert_days"].items()):
        t, days = pts[-1]
        row = {"host": host, "path": path, "days_left": days, "expires": _iso(t + days * DAY_S)[:10]}
        cert_rows.append(row)
        if days <= th.cert_info_days and not any(
            f["check"] == "certificate" and f["target"] == path for f in latest.get(host, {}).get("findings") or []
        ):
            findings.append(
                _finding(
                    host,
                    "certificate_forecast",
                    "info",
                    path,
                    days,
                    th.cert_info_days,
                    f"certificate {path} expires in {days:.0f} day(s) ({row['expires']})",
                )
            )
    backup_rows = []
    for host, res in sorted(latest.items()):
        b = res.get("backup") or {}
        if b.get("status") in (None, "not_applicable"):
            continue
        newest = b.get("newest") or b.get("newest_verified") or {}
        verified = b.get("newest_verified") or {}
        backup_rows.append(
            {
                "host": host,
                "status": b.get("status"),
                "newest_id": newest.get("id"),
                "age_h": newest.get("age_h"),
                "verified_id": verified.get("id"),
                "verified_age_h": verified.get("age_h"),
                "verified_count": b.get("verified_count"),
                "count": b.get("count"),
            }
        )
    return {
        "disk": disk_rows,
        "db_growth": db_rows,
        "certificates": cert_rows,
        "backups": backup_rows,
        "findings": findings,
    }


def _finding(
    host: str, check: str, severity: str, target: str, value: Any, threshold: Any, message: str
) -> dict[str, Any]:
    return {
        "host": host,
        "check": check,
        "severity": severity,
        "target": target,
        "value": value,
        "threshold": threshold,
        "message": message,
        "action": FORECAST_ACTIONS.get(check, ""),
        "forecast": True,
    }


def all_findings(
    latest: Mapping[str, dict[str, Any]], forecast_findings: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The run's findings per host plus the forecast findings, most severe first."""
    out: list[dict[str, Any]] = []
    for host, res in latest.items():
        for f in res.get("findings") or []:
            out.append({"host": host, **f, "forecast": False})
    out.extend(dict(f) for f in forecast_findings)
    out.sort(
        key=lambda f: (
            -SEVERITY_RANK.get(str(f.get("severity")), 0),
            str(f.get("host")),
            str(f.get("check")),
            str(f.get("target")),
        )
    )
    return out
