"""The monthly service report as filed (运维月报, issue 20 part 3): header from the policy,
inspection-based availability (labelled), incidents with SLA, changes by kind with record ids,
backups per host, baseline over the month, the consulting-requests hook, risks, next month's
plan from the schedules, calendar strip, signature block, whole-number chart ticks, A4 PDF
with page numbers, and the provenance line."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.records import commit_record
from orchestrator.archive import Archive
from orchestrator.cli import cli
from orchestrator.reports import monthly_filing
from orchestrator.reports.inspect import count_ticks
from orchestrator.reports.monthly import build_monthly, charts
from orchestrator.reports.render import render_report, strings
from test_report_zh import english_words

REPO = Path(__file__).resolve().parent.parent
START = dt.datetime(2026, 10, 31, 16, 30, tzinfo=dt.UTC)  # 2026-11-01 00:30 Beijing time
AS_OF = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _control(cid: str, status: str) -> dict[str, Any]:
    return {"id": cid, "zh": "控制项", "en": "control", "ref": "8.1.4.1", "status": status, "evidence": {"k": 1}}


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    arch = Archive(tmp_path / "archive")
    disk = {"check": "disk", "severity": "warning", "target": "/srv", "value": 88.0, "threshold": 85, "message": "m"}
    down = {"check": "health", "severity": "critical", "target": "site", "value": 502, "threshold": 400, "message": "m"}
    for day in range(10):  # 1-10 Nov inspected, day 3 the site was down
        findings = [down] if day == 2 else [disk] if day == 9 else []
        outputs = {"inspect": {"web1": {"worst": "ok", "findings": findings}}}
        commit_record(
            arch, op="inspect", env="production", hosts=["web1"], outputs=outputs, when=START + dt.timedelta(days=day)
        )
    for day in (0, 1):
        backup = {"backup": {"db1": {"id": f"b{day}"}}}
        commit_record(
            arch,
            op="backup",
            env="production",
            hosts=["db1"],
            outputs=backup,
            when=START + dt.timedelta(days=day),
            ticket="STD-BACKUP-2026",
        )
    commit_record(arch, op="backup-verify", env="production", hosts=["db1"], when=START + dt.timedelta(days=1, hours=1))
    commit_record(
        arch, op="deploy", env="production", hosts=["web1"], when=START + dt.timedelta(days=4), ticket="CHG-7"
    )
    for day, status in ((0, "fail"), (8, "pass")):
        host = {"controls": [_control("SSH-01", status), _control("ACC-01", "fail")], "lynis": {}}
        commit_record(
            arch,
            op="baseline-check",
            env="production",
            hosts=["web1"],
            outputs={"baseline": {"web1": host}},
            when=START + dt.timedelta(days=day),
        )
    opened = CliRunner().invoke(
        cli, ["incident", "open", "--severity", "general", "--summary", "导出缓慢", "--reported-at", "2026-11-05T10:00"]
    )
    assert opened.exit_code == 0, opened.output
    return arch


def test_the_filed_sections(archive: Archive) -> None:
    data = build_monthly(archive, "2026-11", env="production", inspect_env="production", as_of=AS_OF)
    assert data["header"]["number"] == "SGHJXY-YWYB-202611"  # inventories/production/.opsctl.yml
    assert data["header"]["client"] == "韶关市生态环境局" and data["header"]["operating_unit"] == ""
    assert (data["header"]["period_from"], data["header"]["period_to"]) == ("2026-11-01", "2026-11-30")
    ai = data["availability_inspection"]
    assert (ai["inspections"], ai["healthy"], ai["availability_pct"]) == (10, 9, 90.0)
    assert ai["down"][0]["checks"] == ["health"]
    kinds = {(c["kind"], c["operation"]): c for c in data["changes"]}
    assert kinds[("normal", "deploy")]["tickets"] == ["CHG-7"] and len(kinds[("standard", "backup")]["records"]) == 2
    assert not any(c["operation"] in ("inspect", "baseline-check") for c in data["changes"])  # read-only
    assert not any(o["operation"].startswith("incident-") for o in data["by_operation"])  # register entries
    assert data["backups"]["by_host"][0] | {"last": None, "last_verified": None} == {
        "host": "db1", "taken": 2, "failed": 0, "verified": 1, "verify_failed": 0, "last": None, "last_verified": None,
    }  # fmt: skip
    bl = data["baseline"]
    assert bl["fixed"] == ["SSH-01"] and bl["new_failures"] == [] and bl["last"]["failing_controls"] == ["ACC-01"]
    assert (
        data["requests"]["total"] == 0 and data["requests"]["items"] == []
    )  # the register (orchestrator/requests.py) is empty
    risks = [r["kind"] for r in data["risks"]]
    assert risks[0] == "sla_breach" and {"finding", "baseline_fail", "missed_inspections"} <= set(risks)
    plan = {p["timer"]: p for p in data["plan"]["items"]}
    assert data["plan"]["month"] == "2026-12" and plan["inspection"]["count"] == 31 and plan["patch-scan"]["count"] == 4
    strip = {d["day"]: d["state"] for d in data["calendar"]}
    assert strip["2026-11-03"] == "done" and strip["2026-11-11"] == "missed" and len(strip) == 30
    assert len(data["incidents"]) == 1


def test_html_zh_is_a_filed_document(archive: Archive) -> None:
    data = build_monthly(archive, "2026-11", env="production", inspect_env="production", as_of=AS_OF)
    payload: dict[str, Any] = dict(data, charts=charts(data, strings("monthly", "zh"), "zh"))
    html = render_report("monthly", "html", "zh", payload)
    for words in (
        "SGHJXY-YWYB-202611",
        "服务期间",
        "按日常巡检估算的可用率：90.0%",
        "编制",
        "审核",
        "盖章",
        "下月工作计划",
    ):
        assert words in html, words
    assert "本月无咨询服务登记" in html and "counter(page)" in html and "日常巡检" in html
    assert html.count('class="missed"') == 20 and 'class="strip"' in html
    ticks = re.findall(r'text-anchor="end">([^<]*)</text>', str(payload["charts"]["runs"]))
    assert ticks and all(t.isdigit() for t in ticks)  # counts: whole-number ticks
    names = {"web1", "db1", "ops", "INC", "CHG", "STD", "BACKUP", "SGHJXY", "YWYB", "SSH", "ACC"}
    assert english_words(html, names | {r["id"] for r in archive.list()}) == []


def test_count_ticks_are_whole_numbers() -> None:
    assert count_ticks(2) == [0, 1, 2] and count_ticks(0) == [0, 1]
    assert count_ticks(23) == [0, 5, 10, 15, 20, 25] and count_ticks(7) == [0, 2, 4, 6, 8]


def test_plan_cadence_of_the_schedules_forms() -> None:
    assert monthly_filing._cadence("*-*-* 08:30:00") == {"kind": "daily", "time": "08:30"}
    assert monthly_filing._cadence("Mon *-*-* 07:00:00") == {"kind": "weekly", "weekday": 0, "time": "07:00"}
    assert monthly_filing._cadence("*-*-* *:00/15:00") == {"kind": "minutes", "every": 15}
    assert monthly_filing._cadence("monthly") is None


def test_pdf_needs_out(archive: Archive) -> None:
    result = CliRunner().invoke(cli, ["report", "monthly", "--month", "2026-11", "--format", "pdf"])
    assert result.exit_code == 2 and "--out" in result.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium (make system installs it) is absent")
def test_pdf_is_a4_with_page_numbers_and_provenance(archive: Archive, tmp_path: Path) -> None:
    pypdf = pytest.importorskip("pypdf")
    out = tmp_path / "月报.pdf"
    result = CliRunner().invoke(
        cli, ["report", "monthly", "--month", "2026-11", "--env", "production", "--format", "pdf", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    reader = pypdf.PdfReader(io.BytesIO(out.read_bytes()))
    pages = len(reader.pages)
    assert pages >= 2 and out.stat().st_mode & 0o077 == 0
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 in points
    texts = [p.extract_text() for p in reader.pages]
    for number, text in enumerate(texts, 1):
        assert re.search(rf"第 {number} .，共 {pages} .", text), text[:200]
    assert "verify-export" in texts[-1] and "SGHJXY-YWYB-202611" in texts[0]
