"""Full zh-CN (issue 20): a zh report holds no English word outside an allow-list (product
names and units, host names and other names from the data, commands inside code), while the
English report keeps the engineer's English text."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.records import commit_record
from orchestrator.archive import Archive
from orchestrator.baseline import build_baseline, latest_check
from orchestrator.cli import cli
from orchestrator.patches import build_patches, latest_scan
from orchestrator.reports import inspect as inspect_report
from orchestrator.reports.baseline import render_baseline
from orchestrator.reports.findings import ZH, detail
from orchestrator.reports.patches import render_patches
from orchestrator.reports.render import render_report, strings

REPO = Path(__file__).resolve().parent.parent
WHEN = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)

#: Words a zh report may show: product names, units, standards, the service-level acronym.
ALLOWED = {
    "cpu", "mb", "gb", "kb", "ssh", "ntp", "http", "https", "tls", "postgresql", "mariadb", "nginx",
    "lynis", "prometheus", "sla", "gb/t", "mlps", "debian", "ubuntu", "json", "pdf", "html", "csv",
    "utc",
}  # fmt: skip

#: One finding per code the inspection raises (values as the role gives them).
FINDINGS: list[dict[str, Any]] = [
    {"check": "disk", "target": "/srv/backup", "value": 93.1, "threshold": 90},
    {"check": "inodes", "target": "/var", "value": 91.0, "threshold": 90},
    {"check": "load", "target": "load5", "value": 2.25, "threshold": 2.0},
    {"check": "memory", "target": "memory", "value": 95.5, "threshold": 95},
    {"check": "swap", "target": "swap", "value": 60.0, "threshold": 50},
    {"check": "systemd", "target": "failed_units", "value": 1, "threshold": 0, "params": {"units": ["x.service"]}},
    {"check": "reboot", "target": "reboot", "value": True, "threshold": False},
    {"check": "service", "target": "nginx", "value": "failed", "threshold": "active"},
    {"check": "time_sync", "target": "clock", "value": False, "threshold": True},
    {"check": "certificate", "target": "/etc/ssl/site.pem", "value": 5.0, "threshold": 14},
    {"check": "certificate", "target": "/etc/ssl/old.pem", "value": None, "threshold": None},
    {"check": "health", "target": "site", "value": 502, "threshold": "< 400"},
    {"check": "db_down", "target": "postgresql", "value": None, "threshold": None},
    {"check": "db_connections", "target": "postgresql", "value": 91.0, "threshold": 90},
    {"check": "db_long_query", "target": "mariadb", "value": 700, "threshold": 300},
    {"check": "db_replication", "target": "postgresql:replica", "value": None, "threshold": None},
    {"check": "db_replication", "target": "postgresql:replica", "value": 120, "threshold": 60},
    {"check": "updates", "target": "packages", "value": 87, "threshold": 0, "params": {"packages": ["openssl"]}},
    {"check": "log_errors", "target": "access", "value": 12.5, "threshold": 5},
    {"check": "backup", "target": "db1", "value": 30.0, "threshold": 26},
    {"check": "backup_verify", "target": "db1", "value": None, "threshold": 48},
]
for _f in FINDINGS:
    _f.update(severity="warning", message=f"English message about {_f['check']}", action="English action")


def english_words(text: str, names: set[str]) -> list[str]:
    """Latin words a reader sees in ``text`` (HTML or Markdown) that are neither allowed nor names
    from the data; code (``<code>``, `` `...` ``), scripts, styles and comments do not count."""
    text = re.sub(r"<(style|script|code)\b.*?</\1>", " ", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = htmllib.unescape(re.sub(r"<[^>]+>", " ", text))
    allowed = ALLOWED | {w.lower() for n in names for w in re.findall(r"[A-Za-z]+", n)}
    return sorted({w for w in re.findall(r"\b[A-Za-z][A-Za-z/]*[A-Za-z]\b", text) if w.lower() not in allowed})


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    return Archive(tmp_path / "archive")


def test_every_finding_code_has_a_chinese_sentence() -> None:
    codes = {f["check"] for f in FINDINGS}
    assert codes <= set(ZH) and {"disk_forecast", "certificate_forecast"} <= set(ZH)
    for f in FINDINGS:
        zh = detail(f, "zh")
        assert zh and "English" not in zh and not english_words(zh, {str(f["target"]), "x.service", "openssl"}), zh
        assert detail(f, "en") == f["message"]
    assert "2.25" in detail(FINDINGS[2], "zh") and "每 CPU" in detail(FINDINGS[2], "zh")
    assert "87 个安全更新" in detail(FINDINGS[17], "zh") and "`openssl`" in detail(FINDINGS[17], "zh")
    unknown = detail({"check": "new_check", "target": "t", "value": 1, "threshold": 2, "message": "m"}, "zh")
    assert unknown.startswith("检查项") and "m" not in unknown.replace("`", " ").split()


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_inspection_report(archive: Archive, fmt: str) -> None:
    res = {"worst": "warning", "findings": FINDINGS}
    commit_record(archive, op="inspect", outputs={"inspect": {"web1": res}}, when=WHEN, hosts=["web1"])
    data = inspect_report.build_inspect(archive, None, "lab")
    names = {"web1", "ops", data["record"]["id"], "x.service", "openssl", "nginx", "postgresql", "mariadb", "replica"}
    for lang in ("zh", "en"):
        payload: dict[str, Any] = inspect_report.public(data)
        if fmt == "html":
            payload["charts"] = inspect_report.charts(data, strings("inspect", lang))
        text = render_report("inspect", fmt, lang, payload)
        if lang == "zh":
            assert english_words(text, names) == []
            assert "English message" not in text and "每 CPU 2.25" in text
        else:
            assert "English message about load" in text


def test_baseline_report(archive: Archive) -> None:
    control = {
        "id": "ACC-01",
        "zh": "口令复杂度",
        "en": "Password quality",
        "ref": "8.1.4.1",
        "status": "fail",
        "reason": "minlen = None, expected 12",
        "evidence": {"minlen": None},
    }
    host = {"os": "Debian 12", "evaluated_at": "2026-11-20T01:00:00Z", "controls": [control], "lynis": {}}
    commit_record(archive, op="baseline-check", outputs={"baseline": {"web1": host}}, when=WHEN, hosts=["web1"])
    data = build_baseline(latest_check(archive, "lab"))
    zh = render_baseline("html", "zh", data)
    assert english_words(zh, {"web1", "ACC", data["record"]["id"]}) == []
    assert "minlen = None, expected" not in zh and "<code>minlen = null</code>" in zh
    assert "minlen = None, expected 12" in render_baseline("html", "en", data)


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_patches_report(archive: Archive, fmt: str) -> None:
    update = {"name": "openssl", "current": "3.0.1", "candidate": "3.0.2", "security": True, "held": False}
    scan = {"os": "Debian 12", "updates": [update], "held": [], "reboot_required": True, "last_patch": None}
    commit_record(archive, op="patch-scan", outputs={"patch_scan": {"web1": scan}}, when=WHEN, hosts=["web1"])
    data = build_patches(latest_scan(archive, "lab"))
    text = render_patches(fmt, "zh", data)
    assert english_words(text, {"web1", "openssl", "security", data["record"]["id"]}) == []
    assert "True" not in text and "是" in text


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_sla_report(archive: Archive, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    runner = CliRunner()
    for severity, at in (("outage", "2026-11-03T09:00"), ("general", "2026-11-04T10:00")):
        args = ["incident", "open", "--severity", severity, "--summary", "网站无法访问", "--reported-at", at]
        assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, ["report", "sla", "--month", "2026-11", "--format", fmt, "--as-of", "2026-11-30T00:00"])
    assert result.exit_code == 0, result.output
    assert english_words(result.stdout, set(re.findall(r"INC-[\w-]+", result.stdout))) == []
    assert "超时未完成" in result.stdout
