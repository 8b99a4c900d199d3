"""Analysis of collected application, nginx and PostgreSQL logs.

Input: a directory as ``log_collect`` leaves it on the controller
(``var/logs/<record id>/<host>/<source>/<file>``) or any directory of such files.
Sources are recognised by name: ``app`` (the application's JSON access and
error logs), ``nginx`` (the site's JSON access log and its error log),
``postgresql`` (PostgreSQL's text log).

Output: requests, status classes, 4xx/5xx rates per time window, top paths,
slowest endpoints, slow requests per window, errors grouped by signature and
database errors -- as a dict (JSON), a text summary, or a small HTML page with
bar charts in zh-CN or English.

Size (over 400 lines): the log formats it reads (nginx, the application, PostgreSQL,
MariaDB) and the statistics over them; it also runs as a script on the controller (python
-m), so it stays one file.
"""

from __future__ import annotations

import gzip
import html
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .errors import BadInput

_PG_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ?(?P<tz>[A-Z]{2,5}|[+-]\d\d)?"
    r".*?\b(?P<level>ERROR|FATAL|PANIC):\s+(?P<msg>.*)$"
)
#: Windows are shown in Beijing time (China has no daylight saving time).
BEIJING = timezone(timedelta(hours=8))
_TZ_NAMES = {"CST": "+08:00", "UTC": "+00:00", "GMT": "+00:00"}
_NUM = re.compile(r"\d+")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def parse_time(value: str) -> datetime:
    """ISO 8601 (with or without offset; naive means local time)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"bad time {value!r}: use ISO 8601, e.g. 2026-11-28T10:00") from exc
    return moment if moment.tzinfo else moment.astimezone()


def _open(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as gz:
            yield from gz
        return
    with open(path, encoding="utf-8", errors="replace") as fh:
        yield from fh


def _source_of(path: Path) -> str | None:
    parts = {p.lower() for p in path.parts}
    name = path.name.lower()
    if "postgresql" in parts or name.startswith("postgresql"):
        return "postgresql"
    if "nginx" in parts or name.startswith("envcredit-"):
        return "nginx"
    if "app" in parts or name.startswith(("access", "error")):
        return "app"
    return None


def _signature(msg: str) -> str:
    """Group messages that differ only in numbers and quoted values."""
    return _NUM.sub("N", _QUOTED.sub("'…'", msg)).strip()[:160]


@dataclass
class Window:
    requests: int = 0
    s4xx: int = 0
    s5xx: int = 0
    slow: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "4xx": self.s4xx,
            "5xx": self.s5xx,
            "slow": self.slow,
            "error_rate": round(self.s5xx / self.requests, 4) if self.requests else 0.0,
        }


@dataclass
class SourceStats:
    requests: int = 0
    status: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    windows: dict[str, Window] = field(default_factory=lambda: defaultdict(Window))
    slow: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, top: int) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        ranked = sorted(((pct(d, 0.95), p) for p, d in self.durations.items() if d), key=lambda r: (-r[0], r[1]))
        slowest = [
            {"path": p, "count": len(self.durations[p]), "p95_ms": p95, "max_ms": round(max(self.durations[p]), 2)}
            for p95, p in ranked[:top]
        ]
        return {
            "requests": self.requests,
            "status": dict(sorted(self.status.items())),
            "classes": dict(sorted(self.classes.items())),
            "rate_4xx": round(self.classes["4xx"] / self.requests, 4) if self.requests else 0.0,
            "rate_5xx": round(self.classes["5xx"] / self.requests, 4) if self.requests else 0.0,
            "top_paths": [{"path": p, "count": n} for p, n in self.paths.most_common(top)],
            "slowest_endpoints": slowest,
            "slow_requests": len(self.slow),
            "windows": {k: w.as_dict() for k, w in sorted(self.windows.items())},
        }


class Analyzer:
    def __init__(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        window_minutes: int = 5,
        slow_ms: float = 500.0,
        top: int = 10,
    ) -> None:
        if window_minutes < 1:
            raise BadInput("the time window must be at least one minute")
        self.since, self.until = since, until
        self.window = timedelta(minutes=window_minutes)
        self.slow_ms = slow_ms
        self.top = top
        self.sources: dict[str, SourceStats] = defaultdict(SourceStats)
        self.errors: dict[str, dict[str, Any]] = {}
        self.db_errors: dict[str, dict[str, Any]] = {}
        self.files: list[str] = []
        self.unparsed = 0

    def _in_range(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)

    def _bucket(self, moment: datetime) -> str:
        local = moment.astimezone(BEIJING)  # windows are Beijing time, whatever the log's offset
        start = local - timedelta(
            minutes=local.minute % int(self.window.total_seconds() // 60),
            seconds=local.second,
            microseconds=local.microsecond,
        )
        return start.strftime("%Y-%m-%dT%H:%M")

    def feed_dir(self, root: Path) -> None:
        if not root.is_dir():
            raise BadInput(f"{root} is not a directory of collected logs")
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            source = _source_of(path.relative_to(root))
            if source is None:
                continue
            self.files.append(str(path.relative_to(root)))
            host = path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 1 else "-"
            for line in _open(path):
                self.feed_line(source, host, line)

    def feed_line(self, source: str, host: str, line: str) -> None:
        line = line.strip()
        if not line:
            return
        if source == "postgresql":
            m = _PG_LINE.match(line)
            if m:
                tz = m.group("tz") or ""
                offset = _TZ_NAMES.get(tz, f"{tz}:00" if tz[:1] in "+-" else "")
                moment = parse_time(m.group("ts").replace(" ", "T") + offset)
                if self._in_range(moment):
                    self._group(
                        self.db_errors,
                        f"{m.group('level')}: {_signature(m.group('msg'))}",
                        m.group("msg"),
                        host,
                        moment,
                    )
            return
        if not line.startswith("{"):
            if source == "nginx" and re.match(r"^\d{4}/\d\d/\d\d", line):  # nginx error log
                moment = datetime.strptime(line[:19], "%Y/%m/%d %H:%M:%S").astimezone()
                if self._in_range(moment) and ("[error]" in line or "[crit]" in line or "[alert]" in line):
                    msg = re.sub(r"^.*?\] \d+#\d+: (\*\d+ )?", "", line).split(", client:")[0]
                    self._group(self.errors, f"nginx: {_signature(msg)}", msg, host, moment)
            else:
                self.unparsed += 1
            return
        try:
            entry = json.loads(line)
            moment = parse_time(str(entry["ts"]))
        except (ValueError, KeyError, BadInput):
            self.unparsed += 1
            return
        if not self._in_range(moment):
            return
        if "status" in entry and "path" in entry:
            self._request(source, entry, moment)
        elif entry.get("level") == "error":
            sig = entry.get("signature") or _signature(str(entry.get("msg", "")))
            self._group(self.errors, f"{source}: {sig}", str(entry.get("exc") or entry.get("msg", "")), host, moment)

    def _request(self, source: str, entry: dict[str, Any], moment: datetime) -> None:
        stats = self.sources[source]
        try:
            status = int(entry["status"])
        except (TypeError, ValueError):
            status = 0
        if "duration_ms" in entry:
            ms = float(entry.get("duration_ms") or 0)
        else:
            ms = float(entry.get("request_time") or 0) * 1000
        path = str(entry["path"])
        stats.requests += 1
        stats.status[str(status)] += 1
        cls = f"{status // 100}xx" if status else "none"
        stats.classes[cls] += 1
        stats.paths[path] += 1
        stats.durations[path].append(ms)
        w = stats.windows[self._bucket(moment)]
        w.requests += 1
        w.s4xx += cls == "4xx"
        w.s5xx += cls == "5xx"
        if ms >= self.slow_ms:
            w.slow += 1
            stats.slow.append({"ts": moment.isoformat(), "path": path, "ms": round(ms, 2), "status": status})

    def _group(self, table: dict[str, dict[str, Any]], sig: str, example: str, host: str, moment: datetime) -> None:
        g = table.setdefault(
            sig,
            {
                "signature": sig,
                "count": 0,
                "example": example[:300],
                "hosts": [],
                "first": moment.isoformat(),
                "last": moment.isoformat(),
            },
        )
        g["count"] += 1
        if host not in g["hosts"]:
            g["hosts"].append(host)
        g["first"] = min(g["first"], moment.isoformat())
        g["last"] = max(g["last"], moment.isoformat())

    def result(self) -> dict[str, Any]:
        def top_groups(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
            return sorted(table.values(), key=lambda g: (-g["count"], g["signature"]))[: self.top]

        return {
            "window_minutes": int(self.window.total_seconds() // 60),
            "slow_ms": self.slow_ms,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "files": self.files,
            "unparsed_lines": self.unparsed,
            "sources": {name: s.as_dict(self.top) for name, s in sorted(self.sources.items())},
            "errors": top_groups(self.errors),
            "error_total": sum(g["count"] for g in self.errors.values()),
            "db_errors": top_groups(self.db_errors),
            "db_error_total": sum(g["count"] for g in self.db_errors.values()),
        }


def analyze(
    root: Path,
    since: datetime | None = None,
    until: datetime | None = None,
    window_minutes: int = 5,
    slow_ms: float = 500.0,
    top: int = 10,
) -> dict[str, Any]:
    analyzer = Analyzer(since, until, window_minutes, slow_ms, top)
    analyzer.feed_dir(root)
    return analyzer.result()


# ----------------------------------------------------------------------------- rendering

_TEXT = {
    "en": {
        "title": "Log analysis",
        "requests": "requests",
        "rate4": "4xx rate",
        "rate5": "5xx rate",
        "top": "Top paths",
        "slowest": "Slowest endpoints (p95 ms)",
        "slow": "slow requests",
        "errors": "Errors by signature",
        "db": "Database errors",
        "windows": "Requests per window (UTC+8)",
        "none": "none",
        "source": "source",
    },
    "zh": {
        "title": "日志分析",
        "requests": "请求数",
        "rate4": "4xx 比例",
        "rate5": "5xx 比例",
        "top": "访问最多的路径",
        "slowest": "最慢的接口（p95 毫秒）",
        "slow": "慢请求",
        "errors": "按特征归类的错误",
        "db": "数据库错误",
        "windows": "各时间窗口的请求（北京时间）",
        "none": "无",
        "source": "来源",
    },
}


def render_text(res: dict[str, Any], lang: str = "en") -> str:
    t = _TEXT[lang]
    out: list[str] = []
    for name, s in res["sources"].items():
        out.append(
            f"[{name}] {t['requests']} {s['requests']}  {s['classes']}  "
            f"{t['rate4']} {s['rate_4xx']:.2%}  {t['rate5']} {s['rate_5xx']:.2%}  {t['slow']} {s['slow_requests']}"
        )
        out.append(f"  {t['top']}: " + ", ".join(f"{p['path']} ({p['count']})" for p in s["top_paths"][:5]))
        out.append(f"  {t['slowest']}: " + ", ".join(f"{p['path']} {p['p95_ms']}" for p in s["slowest_endpoints"][:5]))
        for key, w in list(s["windows"].items())[-6:]:
            out.append(
                f"  {key}  {t['requests']} {w['requests']:>6}  4xx {w['4xx']:>5}  5xx {w['5xx']:>5}  "
                f"{t['slow']} {w['slow']:>4}"
            )
    for title, key in ((t["errors"], "errors"), (t["db"], "db_errors")):
        out.append(f"{title}: " + ("" if res[key] else t["none"]))
        for g in res[key]:
            out.append(f"  {g['count']:>6}  {g['signature']}  ({', '.join(g['hosts'])})")
    return "\n".join(out) + "\n"


def _bars(windows: dict[str, dict[str, Any]]) -> str:
    if not windows:
        return ""
    peak = max(w["requests"] for w in windows.values()) or 1
    width, bar = 640, max(4, 640 // max(len(windows), 1) - 2)
    parts = [f'<svg width="{width}" height="130" role="img">']
    for i, (key, w) in enumerate(windows.items()):
        x = i * (bar + 2)
        for value, color, offset in ((w["requests"], "#90caf9", 0), (w["4xx"], "#ffb74d", 0), (w["5xx"], "#e57373", 0)):
            h = int(110 * value / peak) + offset
            parts.append(
                f'<rect x="{x}" y="{115 - h}" width="{bar}" height="{h}" fill="{color}">'
                f"<title>{html.escape(key)}: {value}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render_html(res: dict[str, Any], lang: str = "en") -> str:
    t = _TEXT[lang]
    e = html.escape
    body = [f"<h1>{e(t['title'])}</h1>"]
    for name, s in res["sources"].items():
        body.append(
            f"<h2>{e(t['source'])}: {e(name)}</h2><p>{e(t['requests'])} {s['requests']}; "
            f"{e(t['rate4'])} {s['rate_4xx']:.2%}; {e(t['rate5'])} {s['rate_5xx']:.2%}; "
            f"{e(t['slow'])} {s['slow_requests']}</p>"
        )
        body.append(f"<h3>{e(t['windows'])}</h3>{_bars(s['windows'])}")
        body.append(
            f"<h3>{e(t['slowest'])}</h3><table>"
            + "".join(
                f"<tr><td>{e(p['path'])}</td><td>{p['count']}</td><td>{p['p95_ms']}</td><td>{p['max_ms']}</td></tr>"
                for p in s["slowest_endpoints"]
            )
            + "</table>"
        )
        body.append(
            f"<h3>{e(t['top'])}</h3><table>"
            + "".join(f"<tr><td>{e(p['path'])}</td><td>{p['count']}</td></tr>" for p in s["top_paths"])
            + "</table>"
        )
    for title, key in ((t["errors"], "errors"), (t["db"], "db_errors")):
        body.append(
            f"<h2>{e(title)}</h2><table>"
            + (
                "".join(
                    f"<tr><td>{g['count']}</td><td>{e(g['signature'])}</td><td>{e(', '.join(g['hosts']))}</td>"
                    f"<td>{e(g['example'])}</td></tr>"
                    for g in res[key]
                )
                or f"<tr><td>{e(t['none'])}</td></tr>"
            )
            + "</table>"
        )
    return (
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        f"<title>{e(t['title'])}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.loganalysis DIR [WINDOW_MINUTES SLOW_MS]``: JSON on stdout (used by playbooks/logs.yml)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m orchestrator.loganalysis DIR [WINDOW_MINUTES SLOW_MS]", file=sys.stderr)
        return 2
    res = analyze(
        Path(args[0]),
        window_minutes=int(args[1]) if len(args) > 1 else 5,
        slow_ms=float(args[2]) if len(args) > 2 else 500.0,
    )
    print(json.dumps(res, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
