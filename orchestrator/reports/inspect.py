"""The inspection report (巡检报告): one inspection run, its findings, trends and forecasts.

Data: :func:`build_inspect` (JSON-ready). Charts are inline SVG made here
(:func:`line_chart`, :func:`bar_chart`): no script, no external asset, they
print as they show.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from ..archive import Archive
from ..inspection import Thresholds, all_findings, find_record, forecasts, history, results, series, worst
from ..records import operator_name, parse_iso
from ..workdays import TZ, isoformat, local, now

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


# -- charts --------------------------------------------------------------------------------


def _fmt_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=TZ).strftime("%m-%d %H:%M")


def line_chart(
    lines: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    y_max: float | None = None,
    y_label: str = "",
    width: int = 640,
    height: int = 220,
    limit: float | None = None,
) -> Markup:
    """An SVG line chart of (label, [(epoch, value)]) series; empty markup without points."""
    pts_all = [p for _label, pts in lines for p in pts]
    if not pts_all:
        return Markup("")
    left, right, top, bottom = 52, 12, 12, 28
    legend_h = 16 * ((len(lines) + 2) // 3)
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = min(p[0] for p in pts_all), max(p[0] for p in pts_all)
    span = (t1 - t0) or 1.0
    top_value = y_max if y_max is not None else max(max(p[1] for p in pts_all) * 1.1, 1e-9)
    if limit is not None:
        top_value = max(top_value, limit)

    def x(t: float) -> float:
        return left + (t - t0) / span * plot_w if t1 > t0 else left + plot_w / 2

    def y(v: float) -> float:
        return top + plot_h - min(max(v / top_value, 0.0), 1.0) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height + legend_h}" '
        f'width="{width}" height="{height + legend_h}" role="img">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#c8ccd0"/>',
    ]
    for i in range(5):
        v = top_value * i / 4
        yy = y(v)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eceff1"/>')
        parts.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" font-size="9" text-anchor="end">{_short(v)}</text>')
    parts.append(f'<text x="4" y="{top + 8}" font-size="9">{escape(y_label)}</text>')
    for t, anchor in ((t0, "start"), (t1, "end")):
        parts.append(
            f'<text x="{x(t):.1f}" y="{top + plot_h + 14}" font-size="9" text-anchor="{anchor}">{_fmt_time(t)}</text>'
        )
    if limit is not None:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
            f'stroke="#b00020" stroke-dasharray="4 3"/>'
        )
    for idx, (label, pts) in enumerate(lines):
        color = PALETTE[idx % len(PALETTE)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in sorted(pts))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{coords}"/>')
        for t, v in pts:
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.2" fill="{color}"/>')
        lx, ly = left + (idx % 3) * (plot_w // 3), height + 4 + 16 * (idx // 3)
        parts.append(
            f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly + 9}" font-size="9">{escape(label[:48])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def count_ticks(largest: float) -> list[int]:
    """Whole-number ticks from 0 for a count axis: steps of 1, 2, 5, 10, 20, 50 ... so that
    at most six ticks cover ``largest`` (a count axis never reads 0.8 or 1.5)."""
    top = max(1, math.ceil(largest))
    step = 1
    while top / step > 5:
        for factor in (2, 2.5, 2):
            step = int(step * factor)
            if top / step <= 5:
                break
    return list(range(0, math.ceil(top / step) * step + 1, step))


def bar_chart(
    bars: Sequence[tuple[str, Sequence[float]]],
    series_labels: Sequence[str],
    *,
    width: int = 640,
    height: int = 220,
    integer: bool = False,
) -> Markup:
    """A grouped SVG bar chart: (label, [value per series]); ``integer``: counts, whole-number ticks."""
    if not bars:
        return Markup("")
    left, right, top, bottom = 40, 10, 12, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max((v for _l, vs in bars for v in vs), default=0) or 1
    ticks: list[float] = [top_value * i / 4 for i in range(5)]
    if integer:
        ticks = [float(v) for v in count_ticks(top_value)]
        top_value = ticks[-1]
    group_w = plot_w / len(bars)
    bar_w = max(2.0, group_w * 0.8 / max(1, len(series_labels)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height + 16}" '
        f'width="{width}" height="{height + 16}" role="img">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#c8ccd0"/>',
    ]
    for v in ticks:
        yy = top + plot_h - v / top_value * plot_h
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eceff1"/>'
            f'<text x="{left - 4}" y="{yy + 3:.1f}" font-size="9" text-anchor="end">{int(v) if integer else _short(v)}</text>'
        )
    for gi, (label, values) in enumerate(bars):
        gx = left + gi * group_w + group_w * 0.1
        for si, v in enumerate(values):
            h = v / top_value * plot_h
            parts.append(
                f'<rect x="{gx + si * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[si % len(PALETTE)]}"><title>{escape(label)}: {v:g}</title></rect>'
            )
        cx = left + gi * group_w + group_w / 2
        parts.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 12}" font-size="8" text-anchor="end" '
            f'transform="rotate(-30 {cx:.1f} {top + plot_h + 12})">{escape(label[:18])}</text>'
        )
    for si, name in enumerate(series_labels):
        lx = left + si * 120
        parts.append(
            f'<rect x="{lx}" y="{height + 4}" width="10" height="10" fill="{PALETTE[si % len(PALETTE)]}"/>'
            f'<text x="{lx + 14}" y="{height + 13}" font-size="9">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def local_iso(text: str) -> str:
    """A record's UTC time as Asia/Shanghai ISO 8601 (what the templates print)."""
    return isoformat(local(parse_iso(text)))


def _short(v: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.1f}{unit}"
    return f"{v:.0f}" if abs(v) >= 10 or v == 0 else f"{v:.1f}"


# -- data ----------------------------------------------------------------------------------


def _host_row(host: str, res: Mapping[str, Any]) -> dict[str, Any]:
    mounts = res.get("mounts") or []
    fullest = max(mounts, key=lambda m: m.get("used_pct") or 0, default=None)
    services = [s for s in res.get("services") or [] if s.get("present") and (s.get("enabled") or s.get("active"))]
    dbs = [d for d in res.get("databases") or [] if d.get("status") not in (None, "not_applicable")]
    certs = [c["days_left"] for c in res.get("certificates") or [] if c.get("days_left") is not None]
    findings = res.get("findings") or []
    backup = res.get("backup") or {}
    return {
        "host": host,
        "worst": res.get("worst") or worst(f.get("severity", "") for f in findings),
        "load_per_cpu": (res.get("load") or {}).get("per_cpu_5m"),
        "mem_pct": (res.get("memory") or {}).get("used_pct"),
        "disk_max": None if fullest is None else {"mount": fullest.get("mount"), "pct": fullest.get("used_pct")},
        "services": [{"name": s.get("name"), "active": s.get("active")} for s in services],
        "databases": [
            {
                "engine": d.get("engine"),
                "status": d.get("status"),
                "connections": d.get("connections"),
                "max_connections": d.get("max_connections"),
            }
            for d in dbs
        ],
        "cert_min_days": min(certs) if certs else None,
        "backup_age_h": (backup.get("newest") or backup.get("newest_verified") or {}).get("age_h"),
        "backup_verified_age_h": (backup.get("newest_verified") or {}).get("age_h"),
        "backup_status": backup.get("status"),
        "security_updates": (res.get("updates") or {}).get("security"),
        "failed_units": len(res.get("failed_units") or []),
        "findings": len(findings),
    }


def build_inspect(
    archive: Archive, record_id: str | None = None, env: str | None = None, thresholds: Thresholds | None = None
) -> dict[str, Any]:
    """The report's data for one inspection record (default: the newest of ``env``)."""
    th = thresholds or Thresholds()
    record = find_record(archive, record_id, env)
    latest = results(record)
    runs = history(archive, record, th.history)
    trend = series(runs)
    fc = forecasts(trend, latest, th)
    findings = all_findings(latest, fc.pop("findings"))
    hosts = [_host_row(h, r) for h, r in sorted(latest.items())]
    unreachable = sorted(
        h
        for h, c in (record.get("hosts") or {}).items()
        if c.get("unreachable") or (c.get("failed") and h not in latest)
    )
    overall = worst([f["severity"] for f in findings] + (["critical"] if unreachable else []))
    counts = {sev: sum(1 for f in findings if f["severity"] == sev) for sev in ("critical", "warning", "info")}
    meta = {
        k: record.get(k) for k in ("id", "environment", "started", "ended", "status", "check_mode", "ticket", "reason")
    }
    for key in ("started", "ended"):
        if meta.get(key):
            meta[key] = local_iso(str(meta[key]))
    return {
        "record": meta
        | {"operator": operator_name(record.get("operator")), "launch": (record.get("launch") or {}).get("type")},
        "generated": isoformat(now()),
        "overall": overall,
        "counts": counts,
        "hosts": hosts,
        "unreachable": unreachable,
        "findings": findings,
        "forecasts": fc,
        "history": {
            "runs": len(runs),
            "first": local_iso(str(runs[0].get("started"))) if runs else None,
            "ids": [r.get("id") for r in runs],
        },
        "thresholds": {
            "disk_warn_days": th.disk_warn_days,
            "disk_crit_days": th.disk_crit_days,
            "history": th.history,
            "cert_info_days": th.cert_info_days,
        },
        "_trend": trend,
    }


def charts(data: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Markup]:
    """Inline SVG charts of the trends (HTML only)."""
    trend = data["_trend"]
    disk = sorted(trend["disk"].items(), key=lambda kv: -kv[1][-1][1])[:8]
    dbs = sorted(trend["db_size"].items(), key=lambda kv: -kv[1][-1][1])[:8]
    certs = sorted(trend["cert_days"].items(), key=lambda kv: kv[1][-1][1])[:8]
    return {
        "disk": line_chart(
            [(f"{h} {m}", pts) for (h, m), pts in disk], y_max=100, y_label=t["chart_disk_y"], limit=100
        ),
        "db": line_chart(
            [(f"{h} {n}", [(ts, v / 1e6) for ts, v in pts]) for (h, n), pts in dbs], y_label=t["chart_db_y"]
        ),
        "cert": line_chart([(f"{h} {p}", pts) for (h, p), pts in certs], y_label=t["chart_cert_y"]),
    }


def public(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data without the raw series (for JSON output)."""
    return {k: v for k, v in data.items() if not k.startswith("_")}
