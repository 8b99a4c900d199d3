"""The site's availability from a real Prometheus (no lab): probe series written into a
TSDB with promtool, served by the prometheus binary on 127.0.0.1, measured by
orchestrator.availability and shown in the monthly report."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator import availability
from orchestrator.cli import cli
from orchestrator.workdays import TZ

START = dt.datetime(2026, 10, 10, 0, 0, tzinfo=TZ)  # Beijing time
HOURS = 6
OUTAGE = (START + dt.timedelta(hours=2, minutes=10), 7)  # 7 failing minutes
GAP = (START + dt.timedelta(hours=4), 30)  # Prometheus saw nothing for 30 minutes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _series() -> str:
    lines = ["# TYPE probe_success gauge"]
    for minute in range(HOURS * 60 + 1):
        t = START + dt.timedelta(minutes=minute)
        if GAP[0] <= t < GAP[0] + dt.timedelta(minutes=GAP[1]):
            continue
        value = 0 if OUTAGE[0] <= t < OUTAGE[0] + dt.timedelta(minutes=OUTAGE[1]) else 1
        lines.append(f'probe_success{{job="site",instance="http://lab-web1/"}} {value} {int(t.timestamp())}')
        # a second probe of the site that never fails: the worst of both counts
        lines.append(f'probe_success{{job="site",instance="http://lab-web1/healthz"}} 1 {int(t.timestamp())}')
    return "\n".join(lines + ["# EOF", ""])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for tool in ("promtool", "prometheus"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: `make setup` installs Debian's prometheus package")
    work = tmp_path_factory.mktemp("prometheus")
    (work / "probes.om").write_text(_series(), encoding="utf-8")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(work / "probes.om"), str(work / "data")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (work / "prometheus.yml").write_text("global: {}\nscrape_configs: []\n", encoding="utf-8")
    port = _free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=100y",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(work / "prometheus.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (work / "prometheus.log").read_text()
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_availability_outage_windows_and_coverage(prometheus: str) -> None:
    got = availability.measure(prometheus, START, START + dt.timedelta(hours=HOURS))
    assert got["source"] == "prometheus" and got["step_s"] == 60
    # Prometheus still answers for 5 minutes after the last sample (lookback): 25 of the 30 are unknown
    assert got["expected_samples"] == HOURS * 60 + 1
    assert got["samples"] == HOURS * 60 + 1 - (GAP[1] - 5)
    assert got["outages"] == [
        {"start": "2026-10-10T02:10:00+08:00", "end": "2026-10-10T02:17:00+08:00", "minutes": 7.0}
    ]
    assert got["downtime_minutes"] == 7.0
    assert got["availability_pct"] == round(100 * (got["samples"] - 7) / got["samples"], 3)
    assert 90 < got["coverage_pct"] < 95


def test_a_long_period_is_asked_in_chunks(prometheus: str) -> None:
    """Three weeks at one-minute steps are more points than one query may ask for."""
    got = availability.measure(prometheus, START - dt.timedelta(days=10), START + dt.timedelta(days=11))
    assert got["step_s"] == 60 and got["expected_samples"] > availability.MAX_POINTS
    assert got["outages"] and got["outages"][0]["minutes"] == 7.0
    assert got["samples"] == HOURS * 60 + 1 - (GAP[1] - 5) + 5  # and 5 lookback minutes after the end


def test_monthly_report_states_availability(prometheus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    out = tmp_path / "monthly.html"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "monthly",
            "--month",
            "2026-10",
            "--env",
            "lab",
            "--lang",
            "zh",
            "--prometheus",
            prometheus,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "本月网站可用率" in html and "不可用共 7.0 分钟，1 次" in html
    assert "2026-10-10 02:10" in html and "2026-10-10 02:17" in html


def test_unreachable_prometheus_is_stated_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    dead = f"http://127.0.0.1:{_free_port()}"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "monthly",
            "--month",
            "2026-10",
            "--env",
            "lab",
            "--lang",
            "en",
            "--format",
            "md",
            "--prometheus",
            dead,
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"Prometheus (`{dead}`) could not be reached when the report was made" in result.output
    assert "estimated from the inspections" in result.output


def test_unreachable_prometheus_is_worded_in_chinese(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zh report says in Chinese that monitoring was unreachable (not the English error)."""
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    dead = f"http://127.0.0.1:{_free_port()}"
    args = ["report", "monthly", "--month", "2026-10", "--env", "lab", "--prometheus", dead]
    for fmt in ("md", "html"):
        result = CliRunner().invoke(cli, [*args, "--format", fmt])
        assert result.exit_code == 0, result.output
        assert "生成报告时无法连接监控系统（Prometheus" in result.output and dead in result.output
        assert "cannot ask" not in result.output and "Connection refused" not in result.output
