#!/usr/bin/python3
"""Stand-in for the Shaoguan Enterprise Environmental Credit Evaluation System.

A small threaded web service on Python's standard library and python3-psycopg2
(both in the Debian image; nothing from the internet at run time):

    GET /                 enterprises and their latest rating (HTML, zh-CN, UTF-8)
    GET /api/enterprises  the same as JSON
    GET /healthz          checks the database; {"status": "ok"|"error", "version": ...}
    GET /version          {"version": ...}
    GET /_fault/500       (only with fault_injection = true) raises, for log analysis tests
    GET /_fault/slow?ms=N (only with fault_injection = true) answers after N ms

    envcredit_app.py serve   --config /etc/envcredit/app.ini
    envcredit_app.py migrate --config /etc/envcredit/app.ini [--pending]

Access and error logs are JSON lines (one object per line) in ``log_dir``.
The version is the release's VERSION file, next to this file.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import html
import json
import signal
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
# The health self-test: a release whose self-test fails answers /healthz with 503.
SELFTEST_OK = True


def read_version() -> str:
    try:
        return (HERE / "VERSION").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


VERSION = read_version()


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")


class JsonLog:
    """Append-only JSON-lines log, safe across threads."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self.lock:
            if self.path is None:
                sys.stderr.write(line)
                return
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)


class App:
    def __init__(self, cfg: configparser.ConfigParser) -> None:
        self.cfg = cfg
        log_dir = cfg.get("log", "dir", fallback="")
        self.access = JsonLog(Path(log_dir) / "access.log" if log_dir else None)
        self.errors = JsonLog(Path(log_dir) / "error.log" if log_dir else None)
        self.fault_injection = cfg.getboolean("app", "fault_injection", fallback=False)

    def connect(self) -> Any:
        import psycopg2  # python3-psycopg2 from Debian

        db = self.cfg["db"]
        return psycopg2.connect(
            host=db.get("host", "localhost"),
            port=db.getint("port", 5432),
            dbname=db.get("name", "envcredit"),
            user=db.get("user", "envcredit_app"),
            password=db.get("password", ""),
            connect_timeout=db.getint("timeout", 3),
            application_name=f"envcredit-{VERSION}",
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"version": VERSION, "time": now_iso()}
        try:
            conn = self.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM enterprises")
                    body["enterprises"] = cur.fetchone()[0]
            finally:
                conn.close()
            body["db"] = "ok"
        except Exception as exc:  # the health check reports, never raises
            body["db"] = "error"
            body["status"] = "error"
            body["error"] = f"{type(exc).__name__}: {str(exc).strip()}"
            self.log_error("database check failed", exc, path="/healthz")
            return 503, body
        if not SELFTEST_OK:
            body["status"] = "error"
            body["error"] = "self-test failed"
            return 503, body
        body["status"] = "ok"
        return 200, body

    def enterprises(self) -> list[dict[str, Any]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("""
                    SELECT e.credit_code, e.name, e.district, e.industry, r.year, r.score, r.grade
                      FROM enterprises e
                      LEFT JOIN LATERAL (
                           SELECT year, score, grade FROM ratings
                            WHERE enterprise_id = e.id ORDER BY year DESC LIMIT 1) r ON true
                     ORDER BY e.id LIMIT 200""")
                cols = ["credit_code", "name", "district", "industry", "year", "score", "grade"]
                return [dict(zip(cols, row)) for row in cur.fetchall()]
        finally:
            conn.close()

    def log_error(self, msg: str, exc: BaseException, **extra: Any) -> None:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].name}" if tb else "-"
        signature = f"{type(exc).__name__} at {where}"
        self.errors.write(
            {
                "ts": now_iso(),
                "level": "error",
                "version": VERSION,
                "msg": msg,
                "exc_type": type(exc).__name__,
                "exc": str(exc).strip(),
                "signature": signature,
                "sig_id": hashlib.sha256(signature.encode()).hexdigest()[:12],
                "traceback": "".join(traceback.format_exception(exc)).strip(),
                **extra,
            }
        )


PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>韶关市企业环境信用评价系统</title></head>
<body><h1>韶关市企业环境信用评价系统</h1>
<p>企业环境信用评价结果（版本 {version}）</p>
<table border="1"><thead><tr><th>统一社会信用代码</th><th>企业名称</th><th>区县</th><th>行业</th>
<th>年度</th><th>得分</th><th>等级</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "envcredit"
    protocol_version = "HTTP/1.1"
    app: App

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - replaced by JSON logs
        return

    def send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App-Version", VERSION)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status
        self._bytes = len(body)

    def send_json(self, status: int, data: Any) -> None:
        self.send(
            status, json.dumps(data, ensure_ascii=False, default=str).encode("utf-8"), "application/json; charset=utf-8"
        )

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        start = time.monotonic()
        self._status, self._bytes = 0, 0
        request_id = self.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
        url = urlsplit(self.path)
        try:
            self.route(url.path, parse_qs(url.query))
        except Exception as exc:
            self.app.log_error("unhandled exception", exc, path=url.path, request_id=request_id)
            if not self._status:
                self.send_json(500, {"error": "internal server error", "request_id": request_id})
        finally:
            self.app.access.write(
                {
                    "ts": now_iso(),
                    "level": "info",
                    "version": VERSION,
                    "request_id": request_id,
                    "remote": self.headers.get("X-Real-IP") or self.client_address[0],
                    "method": self.command,
                    "path": url.path,
                    "status": self._status,
                    "bytes": self._bytes,
                    "duration_ms": round((time.monotonic() - start) * 1000, 2),
                    "ua": self.headers.get("User-Agent", ""),
                }
            )

    def route(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/healthz":
            status, body = self.app.health()
            self.send_json(status, body)
        elif path == "/version":
            self.send_json(200, {"version": VERSION})
        elif path == "/api/enterprises":
            self.send_json(200, self.app.enterprises())
        elif path in ("/", "/index.html"):
            rows = "\n".join(
                "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r.values()) + "</tr>"
                for r in self.app.enterprises()
            )
            self.send(
                200, PAGE.format(version=html.escape(VERSION), rows=rows).encode("utf-8"), "text/html; charset=utf-8"
            )
        elif self.app.fault_injection and path == "/_fault/500":
            raise RuntimeError("injected fault")
        elif self.app.fault_injection and path == "/_fault/slow":
            time.sleep(min(int(query.get("ms", ["500"])[0]), 10000) / 1000)
            self.send_json(200, {"slept_ms": int(query.get("ms", ["500"])[0])})
        else:
            self.send_json(404, {"error": "not found", "path": path})


# ----------------------------------------------------------------------------- migrations


def migrations() -> list[Path]:
    return sorted((HERE / "migrations").glob("*.sql"))


def migrate(app: App, pending_only: bool) -> int:
    """Apply the release's migrations not yet recorded in schema_migrations, each in a transaction.

    Prints one JSON object: {"pending": [...], "applied": [...]}.
    """
    conn = app.connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('schema_migrations')")
            exists = cur.fetchone()[0] is not None
            done: set[str] = set()
            if exists:
                cur.execute("SELECT name FROM schema_migrations")
                done = {row[0] for row in cur.fetchall()}
        pending = [m for m in migrations() if m.name not in done]
        applied: list[str] = []
        if not pending_only:
            for m in pending:
                with conn, conn.cursor() as cur:
                    cur.execute(
                        "CREATE TABLE IF NOT EXISTS schema_migrations ("
                        "name TEXT PRIMARY KEY, version TEXT NOT NULL, "
                        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    cur.execute(m.read_text(encoding="utf-8"))
                    cur.execute("INSERT INTO schema_migrations (name, version) VALUES (%s, %s)", (m.name, VERSION))
                applied.append(m.name)
        print(json.dumps({"version": VERSION, "pending": [m.name for m in pending], "applied": applied}))
        return 0
    finally:
        conn.close()


def serve(app: App) -> int:
    host = app.cfg.get("app", "listen", fallback="0.0.0.0")
    port = app.cfg.getint("app", "port", fallback=8000)
    Handler.app = app
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def stop(_signum: int, _frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    app.errors.write({"ts": now_iso(), "level": "info", "version": VERSION, "msg": f"listening on {host}:{port}"})
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    app.errors.write({"ts": now_iso(), "level": "info", "version": VERSION, "msg": "stopped"})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="envcredit")
    parser.add_argument("command", choices=["serve", "migrate", "version"])
    parser.add_argument("--config", default="/etc/envcredit/app.ini")
    parser.add_argument("--pending", action="store_true", help="migrate: only list pending migrations")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(VERSION)
        return 0
    cfg = configparser.ConfigParser(interpolation=None)
    if not cfg.read(args.config, encoding="utf-8"):
        print(f"cannot read {args.config}", file=sys.stderr)
        return 2
    app = App(cfg)
    if args.command == "migrate":
        return migrate(app, args.pending)
    return serve(app)


if __name__ == "__main__":
    sys.exit(main())
