"""Alertmanager's webhook -> the incident register -> notifications.

``opsctl alerts serve`` runs :func:`serve`: a threaded standard-library HTTP
server that accepts only ``POST`` of Alertmanager's webhook JSON (version
``"4"``) with ``Authorization: Bearer <shared token>`` (compared in constant
time), bodies up to :data:`MAX_BODY` bytes. ``opsctl alerts handle FILE`` runs
the same :func:`process` on a payload from a file.

For each alert of a payload:

* firing, with the label ``incident_severity`` = ``outage`` or ``general``:
  opens an incident (``reported_at`` = the alert's ``startsAt``) unless an open
  incident already carries the alert's ``fingerprint``; a repeat adds a note only
  when the alert changed (status, start, labels, annotations) or at most once per
  :data:`REPEAT_NOTE_S`;
* resolved: records the recovery of the open incident with that fingerprint
  (``incident-recovered`` at ``endsAt`` for an outage; a general fault has no
  recovery clock, so a note);
* without ``incident_severity`` (or with another value): notified only, nothing
  is opened or recorded.

A bad payload (not JSON, wrong shape, missing fields) raises :class:`BadPayload`
before anything is written: the whole payload is validated first.

Size (over 400 lines): the webhook server, its authentication and the mapping of an alert to
incident actions are one request path; splitting it would scatter the checks a request goes
through.
"""

from __future__ import annotations

import datetime as dt
import hmac
import http.server
import json
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import notify
from .errors import BadInput, OpsError
from .incidents import FUTURE_SKEW_S, SEVERITIES, Incident, IncidentRegister, digest_of_alert
from .workdays import isoformat, local, now

MAX_BODY = 1024 * 1024
MAX_ALERTS = 1000
#: A repeat of an unchanged firing alert adds a note at most this often (seconds).
REPEAT_NOTE_S = 3600
TOKEN_ENV = "OPSCTL_ALERTS_TOKEN"
MIN_TOKEN_LENGTH = 16
SEVERITY_LABEL = "incident_severity"
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")
_FINGERPRINT_RE = re.compile(r"[0-9A-Za-z]{1,64}")
_ZERO_TIME = "0001-01-01T00:00:00Z"


class BadPayload(BadInput):
    """The webhook body is not an Alertmanager version 4 payload (HTTP 400)."""


def log(message: str) -> None:
    sys.stderr.write(f"opsctl alerts: {message}\n")
    sys.stderr.flush()


# -- validation ----------------------------------------------------------------------------------


def _time(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, str) or _TIME_RE.fullmatch(value) is None:
        raise BadPayload(f"{where} is not an RFC 3339 time")
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    head, _, frac_tz = text.partition(".")
    if frac_tz:  # Go writes nanoseconds; Python reads at most microseconds
        digits = re.match(r"[0-9]+", frac_tz)
        assert digits is not None
        text = f"{head}.{digits.group(0)[:6].ljust(6, '0')}{frac_tz[digits.end() :]}"
    try:
        return local(dt.datetime.fromisoformat(text))
    except ValueError:
        raise BadPayload(f"{where} is not an RFC 3339 time") from None


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadPayload(f"{where} must map strings to strings")
    if len(value) > 200 or any(len(k) > 200 or len(v) > 4000 for k, v in value.items()):
        raise BadPayload(f"{where} is too large")
    return dict(value)


def parse_payload(body: bytes) -> dict[str, Any]:
    """Validate a webhook body; returns it with each alert normalised (``*_dt`` times, ``digest``)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadPayload("the body is not JSON") from None
    if not isinstance(data, Mapping):
        raise BadPayload("the payload must be a JSON object")
    if data.get("version") != "4":
        raise BadPayload(f'unsupported webhook version {str(data.get("version"))[:20]!r} (expected "4")')
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("'alerts' must be a list")
    if len(alerts) > MAX_ALERTS:
        raise BadPayload(f"more than {MAX_ALERTS} alerts in one payload")
    latest = now() + dt.timedelta(seconds=FUTURE_SKEW_S)
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(raw, Mapping):
            raise BadPayload(f"{where} must be an object")
        status = raw.get("status")
        if status not in ("firing", "resolved"):
            raise BadPayload(f"{where}.status must be 'firing' or 'resolved'")
        labels = _str_map(raw.get("labels"), f"{where}.labels")
        if not labels.get("alertname"):
            raise BadPayload(f"{where}.labels.alertname is missing")
        annotations = _str_map(raw.get("annotations"), f"{where}.annotations")
        fingerprint = raw.get("fingerprint")
        if not isinstance(fingerprint, str) or _FINGERPRINT_RE.fullmatch(fingerprint) is None:
            raise BadPayload(f"{where}.fingerprint is missing or malformed")
        starts = _time(raw.get("startsAt"), f"{where}.startsAt")
        if starts > latest:
            raise BadPayload(f"{where}.startsAt {isoformat(starts)} is in the future")
        ends: dt.datetime | None = None
        if status == "resolved":
            if raw.get("endsAt") in (None, "", _ZERO_TIME):
                raise BadPayload(f"{where}.endsAt is required for a resolved alert")
            ends = _time(raw.get("endsAt"), f"{where}.endsAt")
            if ends > latest or ends < starts:
                raise BadPayload(f"{where}.endsAt {isoformat(ends)} is in the future or before startsAt")
        generator = raw.get("generatorURL")
        alert: dict[str, Any] = {
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "fingerprint": fingerprint,
            "starts_at": isoformat(starts),
            "ends_at": isoformat(ends) if ends else None,
            "generator_url": generator[:500] if isinstance(generator, str) else None,
            "starts_at_dt": starts,
            "ends_at_dt": ends,
        }
        alert["digest"] = digest_of_alert(alert)
        out.append(alert)
    return {
        "receiver": str(data.get("receiver") or "")[:200],
        "group_key": str(data.get("groupKey") or "")[:500],
        "status": data.get("status"),
        "alerts": out,
    }


# -- processing ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    opened: list[str] = field(default_factory=list)
    noted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notified_only: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in self.__dict__.items()}


def _stored(alert: Mapping[str, Any], receiver: str) -> dict[str, Any]:
    """What of an alert goes into a record (no ``*_dt`` objects)."""
    keep = ("status", "fingerprint", "labels", "annotations", "starts_at", "ends_at", "generator_url", "digest")
    return {**{k: alert.get(k) for k in keep}, "alertname": alert["labels"]["alertname"], "receiver": receiver}


def _summary(alert: Mapping[str, Any]) -> str:
    labels, ann = alert["labels"], alert["annotations"]
    # The incident's title is read by the bureau's staff: the Chinese summary first.
    text = ann.get("summary_zh") or ann.get("summary") or ann.get("description") or ""
    where = labels.get("instance") or labels.get("job") or ""
    head = f"[{labels['alertname']}]" + (f" {where}" if where else "")
    return f"{head}: {text}" if text else head


def _on_call() -> tuple[dict[str, Any] | None, str | None]:
    from .oncall import Roster

    try:
        return Roster.load().on_call().as_dict(), None
    except OpsError as err:
        return None, str(err)


class Processor:
    """Applies payloads to the register and notifies; one per server (it remembers notify-only repeats)."""

    def __init__(self, register: IncidentRegister, env: str, do_notify: bool = True) -> None:
        self.register = register
        self.env = env
        self.do_notify = do_notify
        self._lock = threading.Lock()
        self._notified_only: dict[str, tuple[str, dt.datetime]] = {}

    def _config(self) -> notify.NotifyConfig | None:
        if not self.do_notify:
            return None
        cfg = notify.load_config(self.env)
        for problem in cfg.problems:
            notify.log(f"{self.env}: {problem}")
        return cfg

    def process(self, payload: Mapping[str, Any]) -> Outcome:
        out = Outcome()
        with self._lock:  # one payload at a time: a repeat posted twice at once opens one incident
            cfg = self._config()
            for alert in payload["alerts"]:
                self._one(alert, payload.get("receiver") or "", cfg, out)
        return out

    def _deliver(
        self,
        cfg: notify.NotifyConfig | None,
        title: str,
        body: str,
        out: Outcome,
        inc: Incident | None,
        kind: str,
        **extra: Any,
    ) -> None:
        """Send; record the outcome on the incident (who was told when, or the failure)."""
        if cfg is None or not cfg.configured:
            return
        delivery = notify.send(cfg, title, body)
        out.notifications.append(f"{kind}: {delivery.summary()}")
        if not delivery.ok:
            notify.log(f"{kind}{' ' + inc.id if inc else ''}: {delivery.summary()}")
        if inc is None:
            return
        text = (
            f"通知已发送（{kind}）：{notify.channels_text(delivery.channels)}"
            if delivery.ok
            else f"通知发送失败（{kind}）：{'; '.join(delivery.errors)}"
        )
        try:
            self.register.note(inc.id, text, by="opsctl-notify", notice=delivery.as_notice(kind, **extra))
        except OpsError as err:
            log(f"could not record the notification of {inc.id}: {err}")

    def _one(self, alert: dict[str, Any], receiver: str, cfg: notify.NotifyConfig | None, out: Outcome) -> None:
        labels = alert["labels"]
        fp, name = alert["fingerprint"], labels["alertname"]
        severity = labels.get(SEVERITY_LABEL)
        tag = f"{name}/{fp}"
        stored = _stored(alert, receiver)
        if severity not in SEVERITIES:
            reason = (
                "该告警未设置 incident_severity 标签，仅通知，不立案"
                if severity is None
                else f"incident_severity 标签值 {severity} 无效（应为 outage 或 general），仅通知，不立案"
            )
            if severity is not None:
                log(f"{tag}: unknown {SEVERITY_LABEL} {severity[:40]!r}: notified only")
            last = self._notified_only.get(fp)
            moment = now()
            if last is not None and last[0] == alert["digest"] and (moment - last[1]).total_seconds() < REPEAT_NOTE_S:
                out.unchanged.append(tag)
                return
            self._notified_only[fp] = (alert["digest"], moment)
            out.notified_only.append(tag)
            title, body = notify.alert_message(alert, self.env, reason)
            self._deliver(cfg, title, body, out, None, "alert")
            return
        if alert["status"] == "firing":
            self._firing(alert, stored, severity, cfg, out, tag)
        else:
            self._resolved(alert, stored, cfg, out, tag)

    def _firing(
        self,
        alert: dict[str, Any],
        stored: dict[str, Any],
        severity: str,
        cfg: notify.NotifyConfig | None,
        out: Outcome,
        tag: str,
    ) -> None:
        reg = self.register
        with reg.locked():
            inc = reg.find_by_fingerprint(alert["fingerprint"])
            if inc is None:
                on_call, problem = _on_call()
                inc, record = reg.open(
                    severity,
                    _summary(alert),
                    alert["starts_at_dt"],
                    f"Alertmanager ({stored['receiver'] or 'webhook'})",
                    self.env,
                    on_call,
                    alert=stored,
                )
                out.opened.append(inc.id)
                opened = (inc, record, on_call, problem)
            else:
                opened = None
                changed = inc.alert_digest != alert["digest"]
                seen = inc.alert_seen_at or inc.opened_at
                if not changed and (now() - seen).total_seconds() < REPEAT_NOTE_S:
                    out.unchanged.append(inc.id)
                    return
                what = "告警内容有变化" if changed else "告警仍在触发"
                reg.note(
                    inc.id,
                    f"{what}：{alert['labels']['alertname']}（指纹 {alert['fingerprint']}，"
                    f"开始于 {isoformat(alert['starts_at_dt'])}）",
                    by="alertmanager",
                    alert=stored,
                )
                out.noted.append(inc.id)
        if opened is not None:
            inc, record, on_call, problem = opened
            title, body = notify.opened_message(
                inc,
                record["id"],
                on_call,
                problem,
                source=f"Alertmanager 告警 {alert['labels']['alertname']}（指纹 {alert['fingerprint']}）",
            )
            self._deliver(cfg, title, body, out, inc, "opened")

    def _resolved(
        self, alert: dict[str, Any], stored: dict[str, Any], cfg: notify.NotifyConfig | None, out: Outcome, tag: str
    ) -> None:
        reg = self.register
        ends: dt.datetime = alert["ends_at_dt"]
        name = alert["labels"]["alertname"]
        with reg.locked():
            inc = reg.find_by_fingerprint(alert["fingerprint"])
            if inc is None:
                out.ignored.append(f"{tag}: resolved, no open incident")
                return
            if inc.alert_resolved_at is not None and inc.alert_digest == alert["digest"]:
                out.unchanged.append(inc.id)
                return
            at = max(ends, inc.reported_at)
            recovered = inc.severity == "outage" and inc.recovered_at is None
            text = f"告警已恢复：{name}（指纹 {alert['fingerprint']}，结束于 {isoformat(ends)}）"
            if recovered:
                inc, record = reg.recovered_by_alert(inc.id, at, text, stored)
                out.recovered.append(inc.id)
            else:
                inc, record = reg.note(inc.id, text, at=at, by="alertmanager", alert=stored)
                out.noted.append(inc.id)
        title, body = notify.recovered_message(inc, record["id"], ends, name, recovered)
        self._deliver(cfg, title, body, out, inc, "alert-resolved")


# -- the HTTP server -----------------------------------------------------------------------------


def read_token(token_file: Path | None) -> str:
    """The shared bearer token: ``--token-file`` or ``$OPSCTL_ALERTS_TOKEN``; at least 16 characters."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadInput(f"cannot read the token file {token_file}: {exc.strerror or exc}") from exc
        try:
            if token_file.stat().st_mode & 0o077:
                log(f"warning: the token file {token_file} is readable by group or others (chmod 600 it)")
        except OSError:
            pass
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise BadInput(f"no token: give --token-file FILE or set {TOKEN_ENV} (the receiver never runs without one)")
    if len(token) < MIN_TOKEN_LENGTH:
        raise BadInput(f"the token is too short (at least {MIN_TOKEN_LENGTH} characters)")
    return token


def parse_listen(value: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([A-Za-z0-9.-]+):([0-9]{1,5})", value.strip())
    if m is None:
        raise BadInput(f"--listen must be HOST:PORT (e.g. 127.0.0.1:9095), not {value!r}")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise BadInput(f"port {port} is out of range")
    return host, port


class AlertServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], processor: Processor, token: str, max_body: int = MAX_BODY) -> None:
        import socket

        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.processor = processor
        self.token = token.encode("utf-8")
        self.max_body = max_body
        super().__init__(address, AlertHandler)


class AlertHandler(http.server.BaseHTTPRequestHandler):
    server: AlertServer
    timeout = 15  # seconds a client may take to send its request
    server_version = "opsctl-alerts"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass  # one line per request is written by _answer, without headers

    _body_read = False

    def _drain(self) -> None:
        """Read (and drop) an unread body of a refused request, so closing does not reset the
        connection before the client reads the answer; a huge one is left (the client gets a reset)."""
        if self._body_read:
            return
        self._body_read = True
        raw = (self.headers.get("Content-Length") or "").strip()
        left = int(raw) if raw.isdigit() else 0
        if left > 4 * self.server.max_body:
            return
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)

    def _answer(self, code: int, body: Mapping[str, Any], note: str = "") -> None:
        if code >= 400 and self.command == "POST":
            try:
                self._drain()
            except OSError:
                pass
        path = self.path.split("?", 1)[0][:80]
        log(f"{self.client_address[0]} {self.command} {path} -> {code}{' ' + note if note else ''}")
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="opsctl-alerts"')
        if code >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            given = ""
        return hmac.compare_digest(given.strip().encode("utf-8"), self.server.token)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/healthz" and self.command == "GET":
            self._answer(200, {"ok": True})
        elif path == "/metrics" and self.command == "GET":
            self._metrics()
        else:
            self._answer(
                405, {"error": "only POST of Alertmanager's webhook JSON (and GET /metrics)"}, "method not allowed"
            )

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET  # noqa: N815

    def _metrics(self) -> None:
        """The timers' runs from the change records (:mod:`orchestrator.schedule_metrics`), for
        Prometheus; the same bearer token as the webhook."""
        if not self._authorized():
            self._answer(401, {"error": "missing or wrong bearer token"}, "bad token")
            return
        from . import schedule_metrics, schedules

        try:
            runs = schedule_metrics.collect(self.server.processor.register.archive, schedules.load(check_policy=False))
            text = schedule_metrics.render(runs).encode("utf-8")
        except OpsError as err:
            self._answer(500, {"error": "the scheduled runs could not be read"}, f"{type(err).__name__}: {err}")
            return
        log(f"{self.client_address[0]} GET /metrics -> 200 {len(runs)} timer(s)")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] not in ("/", "/alerts"):
            self._answer(404, {"error": "POST to /alerts"}, "unknown path")
            return
        if not self._authorized():
            self._answer(401, {"error": "missing or wrong bearer token"}, "bad token")
            return
        if self.headers.get("Transfer-Encoding"):
            self._answer(400, {"error": "chunked bodies are not accepted; send Content-Length"}, "no length")
            return
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.strip().isdigit():
            self._answer(400, {"error": "Content-Length is required"}, "no length")
            return
        length = int(raw_length)
        if length > self.server.max_body:
            self._answer(413, {"error": f"body larger than {self.server.max_body} bytes"}, f"{length} bytes")
            return
        body = self.rfile.read(length)
        self._body_read = True
        try:
            payload = parse_payload(body)
        except BadPayload as err:
            self._answer(400, {"error": str(err)}, str(err))
            return
        try:
            outcome = self.server.processor.process(payload)
        except OpsError as err:  # the archive is unwritable, ...: Alertmanager retries on 5xx
            self._answer(500, {"error": "the alert could not be recorded"}, f"{type(err).__name__}: {err}")
            return
        result = outcome.as_dict()
        counts = ", ".join(f"{k} {len(v)}" for k, v in result.items() if v and k != "notifications")
        self._answer(200, result, counts or "nothing to do")


def make_server(listen: str, processor: Processor, token: str, max_body: int = MAX_BODY) -> AlertServer:
    host, port = parse_listen(listen)
    try:
        return AlertServer((host, port), processor, token, max_body)
    except OSError as exc:
        raise BadInput(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
