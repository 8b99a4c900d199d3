"""The monthly service report from real runs (local hosts): counts, missed inspection days, zh/en, charts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from helpers.common import run_opsctl
from helpers.home import CATALOG
from orchestrator.workdays import TZ


@pytest.fixture
def home(opsctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    catalog = opsctl_home / "catalog.yml"
    catalog.write_text(
        CATALOG
        + """\
  inspect:
    playbook: ok.yml
    description: Stand-in inspection
    tags: [inspection]
    risk: low
    read_only: true
    outputs: [probe]
""",
        encoding="utf-8",
    )
    return opsctl_home


def test_monthly_report_counts_runs_and_lists_missed_inspection_days(home: Path, tmp_path: Path) -> None:
    assert (
        run_opsctl(
            "run", "inspect", "--env", "test", env={"OPSCTL_LAUNCH": "scheduled", "OPSCTL_OPERATOR": "timer:inspection"}
        ).returncode
        == 0
    )
    assert run_opsctl("run", "ok", "--env", "test").returncode == 0
    assert run_opsctl("run", "fail", "--env", "test").returncode == 1
    today = dt.datetime.now(TZ).date()
    month = today.strftime("%Y-%m")
    proc = run_opsctl("report", "monthly", "--month", month, "--env", "test", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    ops = {o["operation"]: o for o in data["by_operation"]}
    assert ops["inspect"]["runs"] == 1 and ops["inspect"]["scheduled"] == 1
    assert ops["fail"]["failed"] == 1 and data["totals"]["runs"] == 3
    insp = data["inspections"]
    assert insp["days_expected"] == today.day and insp["days_done"] == 1 and insp["scheduled_days"] == 1
    assert today.isoformat() not in insp["missed"] and len(insp["missed"]) == today.day - 1
    assert data["sla"] is None
    for lang, words in (
        ("zh", ["运维服务月报", "日常巡检", "按操作统计"]),
        ("en", ["Monthly service report", "Missed days"]),
    ):
        out = tmp_path / f"m.{lang}.html"
        proc = run_opsctl("report", "monthly", "--month", month, "--env", "test", "--lang", lang, "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        html = out.read_text(encoding="utf-8")
        assert html.count("<svg") == 1 and all(w in html for w in words), lang  # runs chart; days: a strip
        md = run_opsctl("report", "monthly", "--month", month, "--env", "test", "--lang", lang, "--format", "md").stdout
        assert words[0] in md and "| inspect | 1 |" in md


def test_bad_month_is_bad_input(home: Path) -> None:
    proc = run_opsctl("report", "monthly", "--month", "2026-13")
    assert proc.returncode == 2 and "YYYY-MM" in proc.stderr
