"""Alertmanager webhook -> incidents -> Apprise notifications, over real HTTP on 127.0.0.1.

A receiver (orchestrator.alerts) runs in the test on a free port; Alertmanager's
version 4 payloads are POSTed to it; an Apprise ``json://`` URL points at a
capture server (http.server) that keeps what Apprise sends, so the zh-CN
messages are checked as they would reach a WeCom/DingTalk group.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator import alerts as alerts_mod
from orchestrator import notify
from orchestrator.archive import Archive
from orchestrator.cli import cli
from orchestrator.incidents import IncidentRegister, compute_deadlines
from orchestrator.oncall import Roster
from orchestrator.records import (
    RECORD_ID_RE,
    RecordBuilder,
    RunMeta,
    collect_operator,
    collect_source,
    collect_versions,
    new_record_id,
)
from orchestrator.workdays import TZ, local

REPO = Path(__file__).resolve().parent.parent
TOKEN = "test-alert-token-5d8e2c1f9a"
SECRET_PASSWORD = "Notify-Secret-0a9f3e7b"


# -- the capture receiver (what Apprise's json:// sends) ------------------------------------------


class Capture:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = False
        self.lock = threading.Lock()
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with capture.lock:
                    if not capture.fail:
                        capture.messages.append(json.loads(body))
                self.send_response(500 if capture.fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture() -> Iterator[Capture]:
    cap = Capture()
    yield cap
    cap.close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: Capture) -> Path:
    """A repository layout: production notifies the capture receiver (a ${VAR} placeholder), lab has no channel."""
    root = tmp_path / "home"
    for env in ("production", "lab"):
        inv = root / "inventories" / env
        inv.mkdir(parents=True)
        (inv / "hosts.yml").write_text("all:\n  hosts:\n    web1: {}\n", encoding="utf-8")
    (root / "inventories" / "production" / ".opsctl.yml").write_text(
        'requires_ticket: true\nnotify:\n  urls:\n    - "json://127.0.0.1:${CAPTURE_PORT}/hook"\n  timeout_s: 5\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CAPTURE_PORT", str(capture.port))
    monkeypatch.setenv("OPSCTL_HOME", str(root))
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(root / "var" / "archive"))
    monkeypatch.setenv("OPSCTL_LOCKS", str(root / "var" / "locks"))
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    for var in ("OPSCTL_NOTIFY_URLS", "OPSCTL_SLA_MARGIN_HOURS", "OPSCTL_ALERTS_TOKEN", "OPSCTL_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(var, raising=False)
    return root


@pytest.fixture
def archive(home: Path) -> Archive:
    return Archive(home / "var" / "archive")


class Receiver:
    def __init__(self, archive: Archive, env: str = "production") -> None:
        self.processor = alerts_mod.Processor(IncidentRegister(archive), env)
        self.server = alerts_mod.make_server("127.0.0.1:0", self.processor, TOKEN, max_body=64 * 1024)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def post(
        self, body: bytes | dict[str, Any], token: str | None = TOKEN, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url, data=data, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
        )
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(archive: Archive) -> Iterator[Receiver]:
    rec = Receiver(archive)
    yield rec
    rec.close()


# -- Alertmanager payloads --------------------------------------------------------------------------


def am_time(moment: dt.datetime) -> str:
    """As Alertmanager (Go) writes it: UTC, nanoseconds, Z."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def minutes_ago(minutes: float) -> dt.datetime:
    return (dt.datetime.now(TZ) - dt.timedelta(minutes=minutes)).replace(microsecond=0)


def am_alert(
    name: str,
    fingerprint: str,
    starts: dt.datetime,
    *,
    status: str = "firing",
    severity: str | None = "outage",
    ends: dt.datetime | None = None,
    summary: str = "门户首页无法访问",
) -> dict[str, Any]:
    labels = {"alertname": name, "instance": "lab-web1:443", "job": "blackbox", "severity": "critical"}
    if severity is not None:
        labels["incident_severity"] = severity
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": summary, "description": "probe_success == 0 for 2m"},
        "startsAt": am_time(starts),
        "endsAt": am_time(ends) if ends else "0001-01-01T00:00:00Z",
        "generatorURL": "http://lab-mon1:9090/graph?g0.expr=probe_success+%3D%3D+0",
        "fingerprint": fingerprint,
    }


def am_payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="PortalDown"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "opsctl",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://lab-mon1:9093",
        "alerts": list(alerts),
    }


def ops(archive: Archive) -> list[str]:
    """The operations of the archive's records, oldest first."""
    return [r["operation"] for r in reversed(archive.list())]


def beijing(moment: dt.datetime) -> str:
    return local(moment).strftime("%Y-%m-%d %H:%M") + " 北京时间（+08:00）"


def on_call_now() -> dict[str, Any]:
    return Roster.load(REPO / "oncall" / "roster.yml").on_call().as_dict()


# -- firing, repeated, resolved ---------------------------------------------------------------------


def test_firing_outage_opens_an_incident_and_notifies_the_on_call_person(
    receiver: Receiver, archive: Archive, capture: Capture
) -> None:
    starts = minutes_ago(30)
    code, body = receiver.post(am_payload(am_alert("PortalDown", "c6e0b3e3e2f1b0a1", starts)))
    assert code == 200, body
    assert len(body["opened"]) == 1 and body["notifications"][0].startswith("opened: sent to json://")
    inc_id = body["opened"][0]
    assert re.fullmatch(r"INC-[0-9]{8}-001", inc_id)

    assert ops(archive) == ["incident-open", "incident-note"]
    open_row = archive.list(op="incident-open")[0]
    rec = archive.get(open_row["id"])
    event = rec["incident_event"]
    assert rec["incident"] == inc_id and rec["environment"] == "production"
    assert event["severity"] == "outage" and event["reported_at"] == local(starts).isoformat(timespec="milliseconds")
    assert event["alert"]["fingerprint"] == "c6e0b3e3e2f1b0a1" and event["alert"]["alertname"] == "PortalDown"
    assert event["summary"] == "[PortalDown] lab-web1:443: 门户首页无法访问"

    # the message, as Apprise delivered it
    assert len(capture.messages) == 1
    msg = capture.messages[0]
    assert msg["title"] == f"【新故障】{inc_id} 系统中断（紧急故障）"
    text = msg["message"]
    deadlines, _ = compute_deadlines("outage", starts)
    who = on_call_now()
    for line in (
        f"故障编号：{inc_id}",
        "故障级别：系统中断（紧急故障）",
        "故障标题：[PortalDown] lab-web1:443: 门户首页无法访问",
        f"报告时间：{beijing(starts)}",
        f"值班人员：{who['primary']['name']}，电话 {who['primary']['phone']}",
        f"报修热线：{who['hotline']}",
        f"  响应：{beijing(deadlines['respond'])} 之前",
        f"  应急恢复：{beijing(deadlines['recover'])} 之前",
        f"  故障解决：{beijing(deadlines['resolve'])} 之前",
        f"变更记录：{open_row['id']}",
    ):
        assert line in text.splitlines(), f"{line!r} not in\n{text}"
    assert (
        beijing(deadlines["respond"])
        == (local(starts) + dt.timedelta(hours=4)).strftime("%Y-%m-%d %H:%M") + " 北京时间（+08:00）"
    )
    # zh-CN: apart from ids, host names, names in the roster and commands, no English words
    bare = RECORD_ID_RE.sub("", re.sub(r"opsctl incident ack .*", "", text)).replace("c6e0b3e3e2f1b0a1", "")
    latin = set(re.findall(r"[A-Za-z]{3,}", bare))
    allowed = {
        "INC",
        "PortalDown",
        "lab",
        "web",
        "production",
        "Alertmanager",
        "Chen",
        "Lin",
        "Zhou",
        "Wang",
        "Zhao",
        "Yi",
        "Er",
        "San",
        "Si",
        "Wu",
    }
    assert latin <= allowed, latin - allowed

    # who was told when: a note record with the notice
    note = archive.get(archive.list(op="incident-note")[0]["id"])
    notice = note["incident_event"]["notice"]
    assert notice["kind"] == "opened" and notice["ok"] is True and notice["channels"] == ["json://********"]
    assert str(capture.port) not in json.dumps(note)  # the URL itself is never recorded
    assert CliRunner().invoke(cli, ["records", "verify"]).exit_code == 0


def test_repeats_are_deduplicated_by_fingerprint(
    receiver: Receiver, archive: Archive, capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = minutes_ago(20)
    alert = am_alert("PortalDown", "aa11bb22cc33dd44", starts)
    code, body = receiver.post(am_payload(alert))
    assert code == 200 and len(body["opened"]) == 1
    inc_id = body["opened"][0]
    before = len(archive.list())

    # Alertmanager's repeat_interval: the same alert again, unchanged -> no incident, no note
    code, body = receiver.post(am_payload(alert))
    assert code == 200 and body["opened"] == [] and body["unchanged"] == [inc_id]
    assert len(archive.list()) == before

    # something changed (the annotation) -> one note on the open incident, no new incident
    changed = {**alert, "annotations": {**alert["annotations"], "summary": "门户首页返回 502"}}
    code, body = receiver.post(am_payload(changed))
    assert code == 200 and body["noted"] == [inc_id] and body["opened"] == []
    assert ops(archive).count("incident-open") == 1 and len(archive.list()) == before + 1
    code, body = receiver.post(am_payload(changed))
    assert body["unchanged"] == [inc_id] and len(archive.list()) == before + 1

    # unchanged but an hour later: one "still firing" note
    later = dt.datetime.now(TZ) + dt.timedelta(minutes=61)
    monkeypatch.setattr(alerts_mod, "now", lambda: later)
    code, body = receiver.post(am_payload(changed))
    assert body["noted"] == [inc_id] and len(archive.list()) == before + 2
    notes = [archive.get(r["id"])["incident_event"]["text"] for r in archive.list(op="incident-note")]
    assert any(n.startswith("告警仍在触发") for n in notes) and any(n.startswith("告警内容有变化") for n in notes)
    assert len(capture.messages) == 1  # repeats are recorded, not re-sent

    # a second alert in the same group opens its own incident
    code, body = receiver.post(am_payload(changed, am_alert("DbDown", "ee55ff66aa77bb88", starts)))
    assert len(body["opened"]) == 1 and body["opened"][0] != inc_id


def test_resolved_outage_records_recovery_at_ends_at(receiver: Receiver, archive: Archive, capture: Capture) -> None:
    starts, ends = minutes_ago(50), minutes_ago(5)
    code, body = receiver.post(am_payload(am_alert("PortalDown", "0123456789abcdef", starts)))
    inc_id = body["opened"][0]
    code, body = receiver.post(
        am_payload(am_alert("PortalDown", "0123456789abcdef", starts, status="resolved", ends=ends))
    )
    assert code == 200 and body["recovered"] == [inc_id], body
    row = archive.list(op="incident-recovered")[0]
    rec = archive.get(row["id"])
    assert rec["incident"] == inc_id and rec["incident_event"]["at"] == local(ends).isoformat(timespec="milliseconds")
    inc = IncidentRegister(archive).get(inc_id)
    assert inc.recovered_at == local(ends) and inc.state == "recovered" and inc.is_open
    assert [c.status for c in inc.clocks()][:2] == ["met", "met"]  # respond and recover by the alert's end

    assert capture.messages[-1]["title"] == f"【告警恢复】{inc_id}"
    assert f"告警恢复时间：{beijing(ends)}" in capture.messages[-1]["message"]
    assert f"变更记录：{row['id']}" in capture.messages[-1]["message"]

    # the resolved alert again: nothing new
    count = len(archive.list())
    code, body = receiver.post(
        am_payload(am_alert("PortalDown", "0123456789abcdef", starts, status="resolved", ends=ends))
    )
    assert body["unchanged"] == [inc_id] and len(archive.list()) == count
    # a resolved alert nobody opened: ignored
    code, body = receiver.post(am_payload(am_alert("Other", "ffff0000ffff0000", starts, status="resolved", ends=ends)))
    assert code == 200 and len(body["ignored"]) == 1 and len(archive.list()) == count


def test_general_fault_and_alerts_without_severity(receiver: Receiver, archive: Archive, capture: Capture) -> None:
    starts = minutes_ago(10)
    code, body = receiver.post(
        am_payload(am_alert("SlowSearch", "1111222233334444", starts, severity="general", summary="检索响应缓慢"))
    )
    inc_id = body["opened"][0]
    inc = IncidentRegister(archive).get(inc_id)
    assert inc.severity == "general" and set(inc.deadlines) == {"respond", "resolve"}
    assert "故障级别：一般故障" in capture.messages[-1]["message"]
    assert "应急恢复" not in capture.messages[-1]["message"]
    # resolved: a general fault has no recovery clock -> a note, the incident stays open and not recovered
    code, body = receiver.post(
        am_payload(
            am_alert(
                "SlowSearch", "1111222233334444", starts, severity="general", status="resolved", ends=minutes_ago(1)
            )
        )
    )
    assert body["noted"] == [inc_id] and body["recovered"] == []
    inc = IncidentRegister(archive).get(inc_id)
    assert inc.recovered_at is None and inc.alert_resolved_at is not None

    # no incident_severity label: notified only, nothing opened or recorded
    count, sent = len(archive.list()), len(capture.messages)
    plain = am_alert("DiskFilling", "5555666677778888", starts, severity=None, summary="磁盘使用率 85%")
    code, body = receiver.post(am_payload(plain))
    assert code == 200 and body["opened"] == [] and body["notified_only"] == ["DiskFilling/5555666677778888"]
    assert len(archive.list()) == count and len(capture.messages) == sent + 1
    msg = capture.messages[-1]
    assert msg["title"] == "【告警】DiskFilling" and "仅通知，不立案" in msg["message"]
    assert f"开始时间：{beijing(starts)}" in msg["message"]
    # its unchanged repeat is not sent again; an unknown severity value is notified only as well
    receiver.post(am_payload(plain))
    assert len(capture.messages) == sent + 1
    code, body = receiver.post(am_payload(am_alert("X", "9999aaaa9999aaaa", starts, severity="critical")))
    assert body["notified_only"] and "incident_severity 标签值 critical 无效" in capture.messages[-1]["message"]
    assert len(archive.list()) == count


# -- bad requests: answered, never recorded ---------------------------------------------------------


def _bad_cases() -> list[tuple[str, Any, str | None, int]]:
    ok = am_payload(am_alert("PortalDown", "abcdefabcdefabcd", minutes_ago(5)))
    no_fp = am_payload(am_alert("PortalDown", "abcdefabcdefabcd", minutes_ago(5)))
    del no_fp["alerts"][0]["fingerprint"]
    future = am_payload(am_alert("PortalDown", "abcdefabcdefabcd", dt.datetime.now(TZ) + dt.timedelta(hours=2)))
    half_bad = am_payload(am_alert("A", "abcdefabcdefabc1", minutes_ago(5)), am_alert("B", "x-y", minutes_ago(5)))
    resolved_no_end = am_payload(am_alert("PortalDown", "abcdefabcdefabcd", minutes_ago(5), status="resolved"))
    return [
        ("no token", ok, None, 401),
        ("wrong token", ok, "wrong-token-000000000000", 401),
        ("token prefix", ok, TOKEN[:-1], 401),
        ("not json", b"{not json", TOKEN, 400),
        ("not utf-8", b"\xff\xfe", TOKEN, 400),
        ("a list", b"[]", TOKEN, 400),
        ("version 3", {**ok, "version": "3"}, TOKEN, 400),
        ("alerts not a list", {**ok, "alerts": {}}, TOKEN, 400),
        ("no fingerprint", no_fp, TOKEN, 400),
        ("startsAt in the future", future, TOKEN, 400),
        ("one bad alert of two", half_bad, TOKEN, 400),
        ("resolved without endsAt", resolved_no_end, TOKEN, 400),
        ("oversized", {**ok, "padding": "x" * 70000}, TOKEN, 413),
    ]


@pytest.mark.parametrize("case, body, token, code", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_requests_are_refused_and_record_nothing(
    receiver: Receiver,
    archive: Archive,
    capture: Capture,
    capfd: pytest.CaptureFixture[str],
    case: str,
    body: Any,
    token: str | None,
    code: int,
) -> None:
    got, answer = receiver.post(body, token=token)
    assert got == code, answer
    assert archive.list() == [] and capture.messages == []
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "POST /alerts" in line]
    assert len(lines) == 1 and f"-> {code} " in lines[0], err
    assert TOKEN not in err


def test_other_methods_and_paths(receiver: Receiver) -> None:
    base = receiver.url.rsplit("/", 1)[0]
    with urllib.request.urlopen(base + "/healthz", timeout=10) as resp:
        assert resp.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(receiver.url, timeout=10)  # GET
    assert err.value.code == 405
    req = urllib.request.Request(base + "/elsewhere", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404


# -- failures of the notification -------------------------------------------------------------------


def test_failed_notification_keeps_the_incident_and_masks_the_url(
    archive: Archive, home: Path, capture: Capture, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # one channel that answers 500, one with a password that refuses connections
    capture.fail = True
    monkeypatch.setenv("OPSCTL_NOTIFY_URLS", f"json://ops:{SECRET_PASSWORD}@127.0.0.1:1/x?cto=2")
    rec = Receiver(archive)
    try:
        code, body = rec.post(am_payload(am_alert("PortalDown", "deadbeefdeadbeef", minutes_ago(3))))
    finally:
        rec.close()
    assert code == 200 and len(body["opened"]) == 1
    inc_id = body["opened"][0]
    assert ops(archive) == ["incident-open", "incident-note"]  # the incident first, then the failure
    note = archive.get(archive.list(op="incident-note")[0]["id"])
    notice = note["incident_event"]["notice"]
    assert notice["ok"] is False and notice["sent"] == 0 and len(notice["channels"]) == 2
    assert "json://********" in notice["error"]
    err = capfd.readouterr().err
    assert f"opened {inc_id}: FAILED (0/2 sent)" in err
    everything = json.dumps(note, ensure_ascii=False) + err + json.dumps(body) + archive.stdout(note["id"])
    assert SECRET_PASSWORD not in everything

    # an undelivered notice does not count as told (incident check tries an SLA warning again)
    assert not IncidentRegister(archive).get(inc_id).notified("opened")


def test_secret_parts_are_masked() -> None:
    cfg = notify.NotifyConfig(
        env="x",
        urls=[
            "wecombot://BotKey-7f3a9b2e1c",
            "dingtalk://DingTokenAbc123/",
            "mailto://ops:MailPass-99@smtp.example.com?to=oncall@example.com",
        ],
    )
    red = cfg.redactor()
    text = (
        "POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=BotKey-7f3a9b2e1c failed; "
        "token DingTokenAbc123; login ops:MailPass-99"
    )
    masked = red.redact_text(text)
    for secret in ("BotKey-7f3a9b2e1c", "DingTokenAbc123", "MailPass-99"):
        assert secret not in masked
    assert cfg.channels == ["wecombot://********", "dingtalk://********", "mailto://********"]


def test_notify_configuration_sources(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: Capture
) -> None:
    urls_file = tmp_path / "notify.urls"
    urls_file.write_text("# the team's group\nwecombot://FileKey-123456\n\n", encoding="utf-8")
    (home / "inventories" / "lab" / ".opsctl.yml").write_text(
        f"notify:\n  urls_file: {urls_file}\n  urls_env: LAB_URLS\n  urls: ['json://h/${{MISSING_VAR}}']\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("LAB_URLS", "json://a/1 json://b/2")
    cfg = notify.load_config("lab")
    assert cfg.urls == ["wecombot://FileKey-123456", "json://a/1", "json://b/2"]
    assert any("MISSING_VAR is not set" in p for p in cfg.problems)
    urls_file.unlink()
    assert any("does not exist" in p for p in notify.load_config("lab").problems)
    assert notify.load_config("production").urls == [capture.url]
    assert not notify.load_config("nosuchenv").configured


# -- opsctl incident check: 50 %, 80 %, breach, each once ------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_incident_check_warns_at_50_80_and_breach_once(home: Path, archive: Archive, capture: Capture) -> None:
    now = dt.datetime.now(TZ)
    # outage: respond within 4 h; reported 2.2 h ago -> 55 % of the response clock
    at55 = (now - dt.timedelta(hours=2.2)).strftime("%Y-%m-%dT%H:%M:%S")
    opened = invoke(
        "incident", "open", "--severity", "outage", "--summary", "门户无法访问", "--reported-at", at55, "--json"
    )
    assert opened.exit_code == 0, opened.output
    inc = json.loads(opened.stdout)["id"]
    assert [m["title"] for m in capture.messages] == [f"【新故障】{inc} 系统中断（紧急故障）"]

    check = invoke("incident", "check", "--json")
    report = json.loads(check.stdout)
    assert [(n["id"], n["clock"], n["level"], n["ok"]) for n in report["notified"]] == [(inc, "respond", 50, True)]
    msg = capture.messages[-1]
    assert msg["title"] == f"【SLA 预警】{inc} 响应时限已用 50%"
    due = json.loads(opened.stdout)["deadlines"]["respond"]
    assert f"截止时间 {beijing(dt.datetime.fromisoformat(due))}" in msg["message"]
    assert f"值班人员：{on_call_now()['primary']['name']}" in msg["message"]

    # the next check: already told
    assert json.loads(invoke("incident", "check", "--json").stdout)["notified"] == []
    assert len(capture.messages) == 2

    # a general fault reported 30 h ago: the 24 h response clock is breached -> exit 1, one breach message
    old = (now - dt.timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%S")
    gen = json.loads(
        invoke(
            "incident", "open", "--severity", "general", "--summary", "报表导出失败", "--reported-at", old, "--json"
        ).stdout
    )["id"]
    check = CliRunner().invoke(cli, ["incident", "check"])
    assert check.exit_code == 1
    assert f"notified {gen} respond 100%: sent (json://********)" in check.stdout
    breach = [m for m in capture.messages if m["title"] == f"【SLA 超时】{gen} 响应时限已过"]
    assert len(breach) == 1 and "请立即处理" in breach[0]["message"]
    check = CliRunner().invoke(cli, ["incident", "check"])
    assert "notified" not in check.stdout
    # the notes say who was told when
    notices = [n for n in IncidentRegister(archive).get(gen).notices if n["kind"] == "sla"]
    assert [(n["clock"], n["level"], n["ok"]) for n in notices] == [("respond", 100, True)]
    assert CliRunner().invoke(cli, ["records", "verify"]).exit_code == 0


def test_incident_check_80_percent_and_no_notify(home: Path, archive: Archive, capture: Capture) -> None:
    at85 = (dt.datetime.now(TZ) - dt.timedelta(hours=3.4)).strftime("%Y-%m-%dT%H:%M:%S")
    inc = json.loads(
        invoke(
            "incident", "open", "--severity", "outage", "--summary", "x", "--reported-at", at85, "--json", "--no-notify"
        ).stdout
    )["id"]
    assert capture.messages == []
    assert json.loads(invoke("incident", "check", "--json", "--no-notify").stdout)["notified"] == []
    # 85 %: the 80 % warning only (the 50 % one is not sent late)
    notified = json.loads(invoke("incident", "check", "--json").stdout)["notified"]
    assert [(n["id"], n["level"]) for n in notified] == [(inc, 80)]
    assert [m["title"] for m in capture.messages] == [f"【SLA 预警】{inc} 响应时限已用 80%"]
    assert json.loads(invoke("incident", "check", "--json").stdout)["notified"] == []


# -- opsctl notify scheduled-failure ------------------------------------------------------------------


def _run_record(archive: Archive, operation: str, env: str, status: str) -> str:
    rid = new_record_id()
    meta = RunMeta(
        id=rid,
        operation=operation,
        playbook=f"{operation}.yml",
        environment=env,
        inventory=None,
        reason="scheduled",
        operator=collect_operator(REPO),
        source=collect_source(REPO),
        versions=collect_versions(),
    )
    pending = archive.begin(rid, meta)
    pending.write_stdout("run\n")
    archive.commit(pending, RecordBuilder().finish(meta, status=status, rc=2))
    return rid


def test_scheduled_failure_names_timer_operation_and_newest_record(
    home: Path, archive: Archive, capture: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedules = tmp_path / "schedules.yml"
    schedules.write_text(
        "defaults: {env: production}\ntimers:\n  backup:\n    description: Nightly backup\n"
        "    operation: backup\n    on_calendar: '*-*-* 02:00:00'\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("OPSCTL_SCHEDULES", str(schedules))
    # no record of the operation yet
    result = invoke("notify", "scheduled-failure", "--timer", "backup", "--unit", "envcredit-ops-backup.service")
    assert result.exit_code == 0, result.output
    assert "该操作最新变更记录：无" in capture.messages[-1]["message"]
    _run_record(archive, "backup", "production", "successful")
    newest = _run_record(archive, "backup", "production", "failed")
    _run_record(archive, "inspect", "production", "successful")
    result = invoke("notify", "scheduled-failure", "--timer", "backup", "--unit", "envcredit-ops-backup.service")
    assert result.exit_code == 0 and "sent to json://********" in result.stdout
    msg = capture.messages[-1]
    assert msg["title"] == "【定时任务失败】backup"
    for line in (
        "定时任务：backup",
        "systemd 单元：envcredit-ops-backup.service",
        "运维操作：数据库备份（backup）",
        "所属环境：生产环境（production）",
    ):
        assert line in msg["message"].splitlines()
    assert f"该操作最新变更记录：{newest}（状态：失败，开始于 " in msg["message"]
    assert "北京时间（+08:00）" in msg["message"]
    # the channel fails: exit 1, the reason (masked) on stderr
    capture.fail = True
    failed = CliRunner().invoke(cli, ["notify", "scheduled-failure", "--timer", "backup", "--unit", "u.service"])
    assert failed.exit_code == 1 and "FAILED" in failed.stderr and str(capture.port) not in failed.stderr


# -- the commands: alerts handle FILE, alerts serve ---------------------------------------------------


def test_alerts_handle_file(home: Path, archive: Archive, capture: Capture, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(
        json.dumps(am_payload(am_alert("PortalDown", "1234abcd1234abcd", minutes_ago(2)))), encoding="utf-8"
    )
    result = invoke("alerts", "handle", str(payload))
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["opened"]) == 1 and len(capture.messages) == 1
    assert json.loads(invoke("alerts", "handle", str(payload)).stdout)["unchanged"]
    count = len(archive.list())
    payload.write_text('{"version": "4", "alerts": [{"status": "firing"}]}', encoding="utf-8")
    bad = CliRunner().invoke(cli, ["alerts", "handle", str(payload)])
    assert bad.exit_code == 2 and "alertname is missing" in bad.stderr and len(archive.list()) == count


def test_alerts_serve_command(home: Path, archive: Archive, capture: Capture, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    opsctl = str(Path(sys.executable).parent / "opsctl")
    short = subprocess.run(
        [opsctl, "alerts", "serve", "--listen", "127.0.0.1:0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert short.returncode == 2 and "no token" in short.stderr
    unknown = subprocess.run(
        [opsctl, "alerts", "serve", "--listen", "127.0.0.1:0", "--token-file", str(token_file), "--env", "nosuchenv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "unknown environment 'nosuchenv'" in unknown.stderr
    proc = subprocess.Popen(
        [opsctl, "alerts", "serve", "--listen", "127.0.0.1:0", "--token-file", str(token_file)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:([0-9]+)", line)
        assert m, line
        url = f"http://127.0.0.1:{m.group(1)}/alerts"
        data = json.dumps(am_payload(am_alert("PortalDown", "5a5a5a5a5a5a5a5a", minutes_ago(1)))).encode()
        req = urllib.request.Request(url, data=data, method="POST", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.loads(resp.read())
        assert resp.status == 200 and len(answer["opened"]) == 1
        assert ops(archive) == ["incident-open", "incident-note"] and len(capture.messages) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0
    rest = proc.stderr.read() if proc.stderr else ""
    assert "-> 200" in rest and TOKEN not in rest
