"""Reports as the bureau's staff see them (issue 20): every HTML report, zh and en, laid out by
headless Chromium at 1280 px, has no table wider than the page body (190 mm, the A4 print
width), with five hosts and long names in the data."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.records import commit_record
from orchestrator.archive import Archive
from orchestrator.cli import cli
from test_report_zh import FINDINGS

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="headless Chromium (make system installs it) is absent"
)

REPO = Path(__file__).resolve().parent.parent
WHEN = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)
HOSTS = ["lab-web1", "lab-app1", "lab-app2", "lab-db1", "lab-db2"]
#: Marks the document title, once laid out, with the number of tables wider than the body and
#: the number of short Chinese words broken over lines in a table (a header such as 服务等级指标,
#: or a cell such as 系统无法运行, squeezed into a column one character wide).
PROBE = (
    '<script>window.addEventListener("load",()=>{const r=document.body.getBoundingClientRect();'
    'const bad=[...document.querySelectorAll("table")].filter(t=>t.getBoundingClientRect().right>r.right+1'
    "||t.scrollWidth>t.clientWidth+1);"
    "const lines=c=>{const g=document.createRange();g.selectNodeContents(c);"
    "return new Set([...g.getClientRects()].map(x=>Math.round(x.top))).size;};"
    'const broken=[...document.querySelectorAll("th,td")].filter(c=>{const t=c.textContent.trim();'
    'return /^[\\u3400-\\u9fff\\uff08\\uff09]+$/.test(t)&&(c.tagName==="TH"||t.length<=6)&&lines(c)>1;});'
    'document.title="OVERFLOW="+bad.length+" BODY="+Math.round(r.width)+" BROKEN="+broken.length'
    '+" "+broken.map(c=>c.textContent.trim()).join("|");});</script>'
)


def laid_out(html: str, tmp_path: Path) -> tuple[int, int, list[str]]:
    """(tables wider than the page, body width in px, short Chinese words broken over lines)."""
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [
        str(shutil.which("chromium")),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2000",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    m = re.search(r"OVERFLOW=(\d+) BODY=(\d+) BROKEN=(\d+) ?([^<]*)</title>", dom)
    assert m, dom[-500:]
    broken = [w for w in m.group(4).split("|") if w]
    assert len(broken) == int(m.group(3))
    return int(m.group(1)), int(m.group(2)), broken


def overflowing_tables(html: str, tmp_path: Path) -> tuple[int, int]:
    bad, body, _ = laid_out(html, tmp_path)
    return bad, body


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    arch = Archive(tmp_path / "archive")
    inspect = {h: {"worst": "warning", "findings": FINDINGS} for h in HOSTS}
    commit_record(arch, op="inspect", env="production", hosts=HOSTS, outputs={"inspect": inspect}, when=WHEN)
    control: dict[str, Any] = {
        "id": "ACC-01",
        "zh": "口令复杂度",
        "en": "Password quality",
        "ref": "8.1.4.1 身份鉴别 a)",
        "status": "fail",
        "reason": "minlen = None, expected 12; pam_pwquality.so is not in the password stack",
        "evidence": {"minlen": None, "dcredit": "-1", "ucredit": "-1", "lcredit": "-1", "ocredit": "-1"},
    }
    base = {h: {"os": "Debian 12", "controls": [control], "lynis": {}} for h in HOSTS}
    commit_record(arch, op="baseline-check", env="production", hosts=HOSTS, outputs={"baseline": base}, when=WHEN)
    update = {"name": "linux-image-6.1.0-28-amd64", "current": "6.1.119-1", "candidate": "6.1.123-1", "security": True}
    scan = {h: {"os": "Debian 12", "updates": [update], "held": [], "reboot_required": True} for h in HOSTS}
    commit_record(arch, op="patch-scan", env="production", hosts=HOSTS, outputs={"patch_scan": scan}, when=WHEN)
    for day in range(3):
        commit_record(arch, op="backup", env="production", hosts=["lab-db1"], when=WHEN + dt.timedelta(days=day))
    args = [
        "incident",
        "open",
        "--severity",
        "outage",
        "--summary",
        "门户网站无法访问",
        "--reported-at",
        "2026-11-03T09:00",
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    # A long description beside the short columns (severity, state, SLA clocks), as the alerts write.
    long = "http://lab-web1/healthz: 网站无法访问（经 nginx 的探测失败已超过 2 分钟），" * 3
    args[args.index("门户网站无法访问")] = long
    args[-1] = "2026-11-04T09:00"
    assert CliRunner().invoke(cli, args).exit_code == 0
    return arch


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize(
    "report",
    [
        ["inspect", "--env", "production"],
        ["baseline", "--env", "production"],
        ["patches", "--env", "production"],
        ["sla", "--month", "2026-11", "--as-of", "2026-11-30T00:00"],
        ["monthly", "--month", "2026-11", "--env", "production"],
    ],
)
def test_no_table_overflows_the_page(archive: Archive, tmp_path: Path, report: list[str], lang: str) -> None:
    result = CliRunner().invoke(cli, ["report", *report, "--lang", lang, "--format", "html"])
    assert result.exit_code == 0, result.output
    bad, body, broken = laid_out(result.stdout, tmp_path)
    assert 700 <= body <= 730  # 190 mm at 96 dpi: the A4 print width
    assert bad == 0, f"{report[0]} ({lang}): {bad} table(s) wider than the page"
    assert broken == [], f"{report[0]} ({lang}): short Chinese words broken over lines: {broken}"


def test_the_probe_sees_a_word_broken_a_character_per_line(tmp_path: Path) -> None:
    """A header and a short cell squeezed by a long neighbour are seen; a long cell is not."""
    long = "门户网站无法访问，经 nginx 的探测失败已超过两分钟，" * 8
    table = f"<table><tr><th>服务等级指标</th><th>描述</th></tr><tr><td>系统无法运行</td><td>{long}</td></tr></table>"
    page = "<!DOCTYPE html><html><head><style>body { max-width: 190mm; margin: 0 auto; }</style></head><body>"
    bad, _, broken = laid_out(page + table.replace("<th>", "<th style='width:1px'>", 1) + "</body></html>", tmp_path)
    assert bad == 0 and "服务等级指标" in broken
    squeezed = table.replace("<td>", "<td style='width:1px'>", 1)
    assert "系统无法运行" in laid_out(page + squeezed + "</body></html>", tmp_path)[2]


def test_the_probe_sees_a_table_wider_than_the_page(tmp_path: Path) -> None:
    wide = "<table><tr>" + "<td style='white-space:nowrap'>lab-web1-very-long-host-name</td>" * 12 + "</tr></table>"
    page = "<!DOCTYPE html><html><head><style>body { max-width: 190mm; margin: 0 auto; }</style></head><body>"
    bad, body = overflowing_tables(page + wide + "</body></html>", tmp_path)
    assert bad == 1 and 700 <= body <= 730
