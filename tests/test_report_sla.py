"""``opsctl report sla``: incidents of a month against the targets, in zh and en, html/md/json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.reports import render

REPO = Path(__file__).resolve().parent.parent
AS_OF = "2026-03-31T00:00"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def opened(*args: str) -> str:
    result = invoke("incident", "open", "--json", *args)
    assert result.exit_code == 0, result.output
    inc: str = json.loads(result.stdout)["id"]
    return inc


@pytest.fixture
def month(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """February 2026: an outage (recovery late), a general fault (response late), one never answered."""
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    # Outage on the make-up Saturday 14 Feb 09:00: respond by 13:00, recover by Tue 24 Feb 09:00
    # (15-23 Feb off), resolve by Thu 26 Feb 09:00.
    a = opened(
        "--severity",
        "outage",
        "--summary",
        "Portal down <script>alert(1)</script> | all pages",
        "--reported-at",
        "2026-02-14T09:00",
    )
    assert invoke("incident", "ack", a, "--at", "2026-02-14T10:00").exit_code == 0
    assert invoke("incident", "recovered", a, "--at", "2026-02-25T09:00").exit_code == 0  # 24 h late
    assert (
        invoke("incident", "resolve", a, "--cause", "RAID controller replaced", "--at", "2026-02-26T08:00").exit_code
        == 0
    )
    # General fault Fri 27 Feb 16:00: respond by Sat 28 16:00, resolve by Thu 5 Mar 16:00.
    b = opened("--severity", "general", "--summary", "Rating export slow", "--reported-at", "2026-02-27T16:00")
    assert invoke("incident", "ack", b, "--at", "2026-02-28T20:00").exit_code == 0  # 4 h late
    assert invoke("incident", "resolve", b, "--cause", "missing index added", "--at", "2026-03-04T10:00").exit_code == 0
    # General fault 10 Feb, never answered: both clocks breached as of the report time.
    c = opened("--severity", "general", "--summary", "Typo on the notice page", "--reported-at", "2026-02-10T10:00")
    assert invoke("incident", "note", c, "waiting for the bureau's wording", "--at", "2026-02-11T10:00").exit_code == 0
    # Reported in March: not in February's report.
    d = opened("--severity", "general", "--summary", "March fault", "--reported-at", "2026-03-02T10:00")
    return {"a": a, "b": b, "c": c, "d": d}


def test_sla_json(month: dict[str, str]) -> None:
    result = invoke("report", "sla", "--month", "2026-02", "--lang", "en", "--format", "json", "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"] == "sla" and data["month"] == "2026-02" and data["as_of"] == "2026-03-31T00:00:00+08:00"
    assert [i["id"] for i in data["incidents"]] == [month["c"], month["a"], month["b"]]
    # 7 clocks: a respond met, recover late, resolve met; b respond late, resolve met; c both breached: 3 met
    assert (data["clocks_met"], data["clocks_evaluated"], data["compliance_pct"]) == (3, 7, 42.9)
    outage = data["by_severity"]["outage"]
    assert outage["count"] == 1 and outage["open"] == 0
    assert outage["clocks"]["recover"] == {
        "target": "1 working day",
        "met": 0,
        "late": 1,
        "breached": 0,
        "pending": 0,
        "evaluated": 1,
        "compliance_pct": 0.0,
        "mean_hours": 264.0,
        "max_hours": 264.0,
    }
    general = data["by_severity"]["general"]
    assert general["count"] == 2 and general["open"] == 1
    assert general["clocks"]["respond"]["compliance_pct"] == 0.0
    assert general["clocks"]["resolve"]["breached"] == 1 and general["clocks"]["resolve"]["met"] == 1
    reasons = {(b["id"], b["clock"]): b for b in data["breaches"]}
    assert set(reasons) == {
        (month["a"], "recover"),
        (month["b"], "respond"),
        (month["c"], "respond"),
        (month["c"], "resolve"),
    }
    assert (
        reasons[(month["a"], "recover")]["late_hours"] == 24.0
        and reasons[(month["a"], "recover")]["cause"] == "RAID controller replaced"
    )
    assert reasons[(month["b"], "respond")]["late_hours"] == 4.0
    assert reasons[(month["c"], "respond")]["status"] == "breached"
    assert reasons[(month["c"], "respond")]["last_note"] == "waiting for the bureau's wording"


def test_sla_as_of_before_the_milestones(month: dict[str, str]) -> None:
    """As of 20 Feb, the outage's recovery was still running (due 24 Feb): pending, not met."""
    data = json.loads(
        invoke("report", "sla", "--month", "2026-02", "--format", "json", "--as-of", "2026-02-20T12:00").stdout
    )
    assert data["by_severity"]["outage"]["clocks"]["recover"]["pending"] == 1
    assert [i["id"] for i in data["incidents"]] == [month["c"], month["a"]]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sla_html(month: dict[str, str], tmp_path: Path, lang: str) -> None:
    out = tmp_path / f"sla-{lang}.html"
    result = invoke("report", "sla", "--month", "2026-02", "--lang", lang, "--out", str(out), "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and (out.stat().st_mode & 0o777) == 0o600
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "@page" in html and "<link" not in html and "src=" not in html and "http" not in html.lower()
    assert "42.9%" in html and month["a"] in html and month["d"] not in html
    if lang == "zh":
        assert 'lang="zh-CN"' in html
        for text in (
            "运维服务等级（SLA）月报",
            "总体达标率",
            "系统无法运行",
            "应急恢复",
            "超时未完成",
            "应急恢复于期限后 24.0 小时完成",
            "RAID controller replaced",
            "1 个工作日内",
        ):
            assert text in html, text
    else:
        assert 'lang="en"' in html
        for text in (
            "Service level (SLA) report",
            "Overall compliance: 42.9% (3 of 7 clocks met)",
            "Emergency recovery done 24.0 h after the deadline",
            "Response not done as of the report time",
            "within 5 working day(s)",
        ):
            assert text in html, text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_sla_markdown(month: dict[str, str], lang: str) -> None:
    result = invoke("report", "sla", "--month", "2026-02", "--lang", lang, "--as-of", AS_OF)  # md to stdout
    assert result.exit_code == 0
    md = result.stdout
    assert md.startswith("# ")
    assert "\\| all pages" in md and "<script>" not in md  # table cells escaped
    table_rows = [line for line in md.splitlines() if line.startswith("| " + month["a"])]
    assert table_rows and all(row.count(" | ") >= 4 for row in table_rows)
    # each Markdown table row has as many unescaped cells as its header
    for block in md.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if len(lines) >= 2:
            widths = {ln.replace("\\|", "").count("|") for ln in lines}
            assert len(widths) == 1, block
    assert ("总体达标率：42.9%" if lang == "zh" else "Overall compliance: 42.9%") in md


def test_empty_month_and_bad_input(month: dict[str, str], tmp_path: Path) -> None:
    result = invoke("report", "sla", "--month", "2025-07", "--lang", "en", "--format", "md")
    assert result.exit_code == 0 and "No incident was reported this month." in result.stdout
    assert "No clock could be evaluated this month." in result.stdout
    out = tmp_path / "r.json"
    assert invoke("report", "sla", "--month", "2025-07", "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text())["incidents"] == []
    for bad in (["--month", "2026-13"], ["--month", "Feb 2026"], ["--month", "2026-02", "--as-of", "soon"]):
        res = CliRunner().invoke(cli, ["report", "sla", *bad])
        assert res.exit_code == 2 and "Error" in res.stderr


def test_strings_tables_are_complete() -> None:
    zh, en = render.strings("sla", "zh"), render.strings("sla", "en")
    assert zh.keys() == en.keys() and "title" in zh and "system_name" in zh  # base merged in
    with pytest.raises(Exception, match="language"):
        render.strings("sla", "fr")
    assert render.md_cell("a|b\nc<d>") == "a\\|b c&lt;d&gt;"
    assert render.format_for(Path("x.html"), None) == "html" and render.format_for(None, None) == "md"
