"""The monthly report's consulting section (咨询服务), fed by orchestrator.requests.requests_in_period."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from orchestrator.archive import Archive
from orchestrator.reports.monthly import build_monthly
from orchestrator.reports.render import render_report
from orchestrator.requests import RequestRegister
from orchestrator.workdays import TZ

AS_OF = dt.datetime(2026, 11, 30, 12, 0, tzinfo=TZ)
NOT_MEASURED = {"source": "none", "reason": "no Prometheus"}


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    root = tmp_path / "archive"
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(root))
    return Archive(root)


def test_monthly_report_has_the_consulting_requests(archive: Archive) -> None:
    reg = RequestRegister(archive)
    answered, _ = reg.open("bureau-question", "评价结果何时公示", dt.datetime(2026, 11, 2, 9, 0, tzinfo=TZ), "张科长")
    reg.close(answered.id, "已答复", dt.datetime(2026, 11, 2, 15, 0, tzinfo=TZ))
    late, _ = reg.open("consultation", "导出方法", dt.datetime(2026, 11, 3, 1, 0, tzinfo=dt.timezone.utc))
    reg.open("cloud-liaison", "申请开放端口", dt.datetime(2026, 11, 4, 9, 0, tzinfo=TZ))

    data = build_monthly(archive, "2026-11", as_of=AS_OF, availability=NOT_MEASURED)
    req = data["requests"]
    assert req["total"] == 3 and req["closed"] == 1 and req["open_at_end"] == 2
    assert req["clocks_met"] == 2 and req["clocks_evaluated"] == 4  # the consultation breached both clocks
    assert all(not o["operation"].startswith("request-") for o in data["by_operation"])  # entries, not runs

    zh = render_report("monthly", "md", "zh", data)
    assert "## 九、咨询服务" in zh
    assert "本月咨询服务 3 项（咨询 1、生态环境局问询 1、政务云运营方联络 1），办结 1 项，月末未办结 2 项" in zh
    assert "时限达标率 50.0%（2/4）" in zh
    row = next(line for line in zh.splitlines() if line.startswith(f"| {late.id} |"))
    assert "| 咨询 | 导出方法 |" in row and "2026-11-03 09:00" in row  # 01:00 UTC shown in Beijing time
    assert "| 待答复 | 响应 已超时；办结 已超时 |" in row
    assert "| 政务云运营方联络 | 申请开放端口 |" in zh and "| 无时限 |" in zh
    en = render_report("monthly", "md", "en", data)
    assert "## 9. Consulting requests" in en and "respond breached; close breached" in en
    html = render_report("monthly", "html", "zh", data | {"charts": {"runs": "", "inspections": ""}})
    assert "<h2>九、咨询服务</h2>" in html and answered.id in html


def test_monthly_report_without_requests_says_so(archive: Archive) -> None:
    data = build_monthly(archive, "2026-11", as_of=AS_OF, availability=NOT_MEASURED)
    assert data["requests"]["total"] == 0
    assert "本月无咨询服务登记。" in render_report("monthly", "md", "zh", data)
    assert "No consulting requests this month." in render_report("monthly", "md", "en", data)
