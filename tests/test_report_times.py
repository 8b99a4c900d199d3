"""One time rule (issue 20): every time a report shows a person is Beijing time with the zone
marked. Each report is rendered from a record with a known UTC time (02:15 UTC) and must show
10:15 with its marker (北京时间 in zh, (UTC+8) in en), never the UTC wall time."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.records import commit_record
from orchestrator.archive import Archive
from orchestrator.baseline import build_baseline, latest_check
from orchestrator.cli import cli
from orchestrator.loganalysis import analyze, render_html, render_text
from orchestrator.patches import build_patches, latest_scan
from orchestrator.reports import inspect as inspect_report
from orchestrator.reports.baseline import render_baseline
from orchestrator.reports.export import export
from orchestrator.reports.monthly import build_monthly
from orchestrator.reports.monthly import charts as monthly_charts
from orchestrator.reports.patches import render_patches
from orchestrator.reports.render import ZONE_MARK, render_report, strings, when, when_marked

UTC_TIME = dt.datetime(2026, 11, 29, 2, 15, tzinfo=dt.UTC)
SHOWN = "2026-11-29 10:15"
UTC_WALL = "2026-11-29 02:15"
REPO = Path(__file__).resolve().parent.parent


def _shown(text: str, lang: str) -> None:
    assert f"{SHOWN} {ZONE_MARK[lang]}" in text, text[:2000]
    assert UTC_WALL not in text


def test_when_converts_and_marks() -> None:
    assert when("2026-11-29T02:15:00Z") == SHOWN
    assert when("2026-11-29T02:15:00") == SHOWN  # no offset in a record: UTC
    assert when("2026-11-29T10:15:00+08:00") == SHOWN
    assert when_marked("2026-11-29T02:15:00.000Z", "zh") == f"{SHOWN} 北京时间"
    assert when_marked("2026-11-29T02:15:00.000Z", "en") == f"{SHOWN} (UTC+8)"
    assert when_marked(None, "zh") == "-"


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    return Archive(tmp_path / "archive")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_baseline_report(archive: Archive, lang: str) -> None:
    control = {"id": "SSH-01", "zh": "口令登录", "en": "Password login", "ref": "8.1.4.1", "status": "pass"}
    host = {"os": "Debian 12", "evaluated_at": "2026-11-29T02:15:00Z", "controls": [control], "lynis": {}}
    commit_record(archive, op="baseline-check", outputs={"baseline": {"web1": host}}, when=UTC_TIME, hosts=["web1"])
    text = render_baseline("html", lang, build_baseline(latest_check(archive, "lab")))
    _shown(text, lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("fmt", ["html", "md"])
def test_patches_report(archive: Archive, lang: str, fmt: str) -> None:
    scan = {"os": "Debian 12", "updates": [], "held": [], "reboot_required": False, "last_patch": None}
    commit_record(archive, op="patch-scan", outputs={"patch_scan": {"web1": scan}}, when=UTC_TIME, hosts=["web1"])
    _shown(render_patches(fmt, lang, build_patches(latest_scan(archive, "lab"))), lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("fmt", ["html", "md"])
def test_inspection_report(archive: Archive, lang: str, fmt: str) -> None:
    res = {"worst": "ok", "findings": []}
    commit_record(archive, op="inspect", outputs={"inspect": {"web1": res}}, when=UTC_TIME, hosts=["web1"])
    data = inspect_report.build_inspect(archive, None, "lab")
    payload: dict[str, Any] = inspect_report.public(data)
    if fmt == "html":
        payload["charts"] = inspect_report.charts(data, strings("inspect", lang))
    _shown(render_report("inspect", fmt, lang, payload), lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("fmt", ["html", "md"])
def test_monthly_report(archive: Archive, lang: str, fmt: str) -> None:
    deploy = {"web1": {"running": "1.2.3"}}
    commit_record(archive, op="deploy", outputs={"deploy": deploy}, when=UTC_TIME, hosts=["web1"])
    data = build_monthly(archive, "2026-11", as_of=UTC_TIME + dt.timedelta(days=1))
    payload: dict[str, Any] = dict(data)
    if fmt == "html":
        payload["charts"] = monthly_charts(data, strings("monthly", lang))
    _shown(render_report("monthly", fmt, lang, payload), lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sla_report(archive: Archive, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    runner = CliRunner()
    opened = runner.invoke(
        cli,
        ["incident", "open", "--json", "--severity", "general", "--summary", "x", "--reported-at", "2026-11-29T02:15Z"],
    )
    assert opened.exit_code == 0, opened.output
    result = runner.invoke(
        cli, ["report", "sla", "--month", "2026-11", "--lang", lang, "--format", "md", "--as-of", "2026-11-30T00:00"]
    )
    assert result.exit_code == 0, result.output
    _shown(result.stdout, lang)


def test_archive_export_html(archive: Archive, tmp_path: Path) -> None:
    commit_record(archive, when=UTC_TIME)
    out = tmp_path / "export.html"
    export(archive, "html", out)
    text = out.read_text(encoding="utf-8")
    assert "2026-11-29 10:15:" in text and "(UTC+8)" in text
    assert "2026-11-29 02:15:" not in text.replace("UTC 2026-11-29T02:15", "")


def test_records_list_and_show(archive: Archive) -> None:
    rec = commit_record(archive, when=UTC_TIME)
    listed = CliRunner().invoke(cli, ["records", "list"])
    assert "(UTC+8)" in listed.stdout and "2026-11-29 10:15:" in listed.stdout
    shown = CliRunner().invoke(cli, ["records", "show", rec["id"]])
    assert "2026-11-29 10:15:" in shown.stdout and "(UTC+8)" in shown.stdout
    assert "UTC 2026-11-29T02:15" in shown.stdout  # engineer output adds UTC


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_log_windows(tmp_path: Path, lang: str) -> None:
    logs = tmp_path / "logs" / "web1" / "nginx"
    logs.mkdir(parents=True)
    line = {"ts": "2026-11-29T02:15:00+00:00", "status": 200, "path": "/", "request_time": 0.01}
    (logs / "envcredit-access.log").write_text(json.dumps(line) + "\n", encoding="utf-8")
    res = analyze(tmp_path / "logs")
    windows = next(iter(res["sources"].values()))["windows"]
    assert list(windows) == ["2026-11-29T10:15"]
    assert ZONE_MARK[lang].strip("()") in render_text(res, lang) + render_html(res, lang)
