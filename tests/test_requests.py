"""The consulting register through the CLI and the library: life cycle, clocks on the
working-day calendar, zh/en output in Beijing time, bad input, the chain, the period summary."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.archive import Archive
from orchestrator.cli import cli
from orchestrator.requests import RequestRegister, requests_in_period
from orchestrator.workdays import TZ


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    root = tmp_path / "archive"
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(root))
    return Archive(root)


def open_request(*args: str) -> dict[str, Any]:
    result = invoke("request", "open", "--json", *args)
    assert result.exit_code == 0, result.output + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_life_cycle_clocks_and_records(archive: Archive) -> None:
    # Fri 2026-02-27 16:00; Sat 28 Feb is a make-up working day: 28, 2, 3, 4, 5 Mar.
    opened = open_request(
        "--kind",
        "bureau-question",
        "--subject",
        "评价结果何时公示？",
        "--requester",
        "市生态环境局 张科长",
        "--reported-at",
        "2026-02-27T16:00",
    )
    req = opened["id"]
    assert re.fullmatch(r"REQ-[0-9]{8}-001", req)
    assert opened["deadlines"] == {"respond": "2026-02-28T16:00:00+08:00", "close": "2026-03-05T16:00:00+08:00"}
    assert opened["state"] == "open"

    noted = invoke("request", "note", req, "查询中", "--at", "2026-02-27T17:00")
    assert noted.exit_code == 0 and "已添加备注" in noted.stdout
    assert RequestRegister(archive).get(req).replied_at is None  # a plain note is no reply
    replied = invoke("request", "note", req, "已电话答复", "--reply", "--at", "2026-02-28T09:00", "--by", "wang")
    assert replied.exit_code == 0 and "已添加答复" in replied.stdout
    closed = invoke("request", "close", req, "--answer", "已书面答复", "--at", "2026-03-06T10:00", "--json")
    assert closed.exit_code == 0, closed.output
    state = json.loads(closed.stdout)
    assert state["state"] == "closed" and state["answer"] == "已书面答复"
    assert [(c["clock"], c["status"]) for c in state["clocks"]] == [("respond", "met"), ("close", "late")]

    ops = [r["operation"] for r in reversed(archive.list())]
    assert ops == ["request-open", "request-note", "request-note", "request-close"]
    rec = archive.get(archive.list(op="request-close")[0]["id"])
    assert rec["request"] == req and rec["request_event"]["text"] == "已书面答复"
    assert invoke("records", "verify").exit_code == 0

    again = invoke("request", "close", req, "--answer", "x")
    assert again.exit_code == 2 and "was closed" in again.stderr
    assert len(archive.list()) == 4  # nothing written


def test_output_in_both_languages_is_beijing_time_marked(archive: Archive) -> None:
    text = invoke(
        "request", "open", "--kind", "consultation", "--subject", "导出方法", "--reported-at", "2026-11-02T01:30+00:00"
    )
    assert text.exit_code == 0, text.output
    # 01:30 UTC is 09:30 in Beijing: the zone is said, the deadline is 24 h later.
    assert "2026-11-02 09:30 北京时间（+08:00）" in text.stdout
    assert "响应  24 小时内  截止 2026-11-03 09:30" in text.stdout
    assert "办结  5 个工作日内  截止 2026-11-09 09:30" in text.stdout
    req = re.search(r"REQ-[0-9]{8}-[0-9]{3}", text.stdout)
    assert req is not None
    listed = invoke("request", "list")
    assert "提出时间（北京时间）" in listed.stdout and "2026-11-02 09:30" in listed.stdout
    assert "咨询" in listed.stdout and not re.search(r"consultation|respond|open\b", listed.stdout)
    shown = invoke("request", "show", req.group(0), "--lang", "en")
    assert "consultation" in shown.stdout and "timeline (Beijing time, +08:00)" in shown.stdout
    assert "2026-11-02 09:30  reported  导出方法" in shown.stdout


def test_liaison_has_no_clock(archive: Archive) -> None:
    opened = open_request("--kind", "cloud-liaison", "--subject", "申请开放端口", "--requester", "政务云运营方")
    assert opened["deadlines"] == {} and opened["clocks"] == []
    shown = invoke("request", "show", opened["id"])
    assert "无时限" in shown.stdout and "政务云运营方联络" in shown.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("request", "show", "REQ-1"), "expected the form REQ-20261128-001"),
        (("request", "show", "REQ-20260101-001"), "no request REQ-20260101-001"),
        (("request", "open", "--kind", "chat", "--subject", "x"), "'chat' is not one of"),
        (("request", "open", "--kind", "consultation", "--subject", "  "), "needs a subject"),
        (("request", "open", "--kind", "consultation", "--subject", "x", "--reported-at", "2099-01-01"), "future"),
        (("request", "open", "--kind", "consultation", "--subject", "x", "--reported-at", "soon"), "not a time"),
        (("request", "open", "--kind", "consultation", "--subject", "x", "--env", "a b"), "invalid environment"),
    ],
)
def test_bad_input_exits_2_without_a_record(archive: Archive, args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert archive.list() == []


def test_note_and_close_refuse_bad_times_and_blank_text(archive: Archive) -> None:
    req = open_request("--kind", "consultation", "--subject", "x", "--reported-at", "2026-11-02T09:00")["id"]
    before = invoke("request", "note", req, "early", "--at", "2026-11-01T09:00")
    assert before.exit_code == 2 and "before the request was made" in before.stderr
    blank = invoke("request", "close", req, "--answer", " ")
    assert blank.exit_code == 2 and "--answer" in blank.stderr
    assert len(archive.list()) == 1


def test_requests_in_period(archive: Archive) -> None:
    reg = RequestRegister(archive)
    at = dt.datetime(2026, 10, 20, 9, 0, tzinfo=TZ)
    old, _ = reg.open("consultation", "before the month, still open", at)
    done, _ = reg.open("bureau-question", "answered late", dt.datetime(2026, 11, 3, 9, 0, tzinfo=TZ))
    reg.close(done.id, "answer", dt.datetime(2026, 11, 5, 9, 0, tzinfo=TZ))
    gone, _ = reg.open("consultation", "closed in October", at)
    reg.close(gone.id, "answer", dt.datetime(2026, 10, 20, 10, 0, tzinfo=TZ))
    reg.open("cloud-liaison", "port request", dt.datetime(2026, 11, 10, 9, 0, tzinfo=TZ))

    start, end = dt.datetime(2026, 11, 1, tzinfo=TZ), dt.datetime(2026, 12, 1, tzinfo=TZ)
    summary = requests_in_period(archive, start, end, as_of=dt.datetime(2026, 11, 30, 12, 0, tzinfo=TZ))
    ids = [i["id"] for i in summary["items"]]
    assert ids[0] == old.id and done.id in ids and gone.id not in ids and len(ids) == 3
    assert summary["opened"] == 2 and summary["closed"] == 1 and summary["open_at_end"] == 2
    assert summary["by_kind"] == {
        "consultation": {"count": 1, "closed": 0},
        "bureau-question": {"count": 1, "closed": 1},
        "cloud-liaison": {"count": 1, "closed": 0},
    }
    # the old one breached both clocks; the answered one met neither (no reply within 24 h, closed on day 3).
    assert summary["clocks_evaluated"] == 4 and summary["clocks_met"] == 1
    assert {(b["id"], b["clock"], b["status"]) for b in summary["breaches"]} == {
        (old.id, "respond", "breached"),
        (old.id, "close", "breached"),
        (done.id, "respond", "late"),
    }
    assert set(summary["records"]) == {rid for i in summary["items"] for rid in i["records"]}
    assert len(summary["records"]) == 4  # three opens and one close
