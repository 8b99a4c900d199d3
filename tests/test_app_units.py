"""Application operations without the lab: release artifacts, the release-state module
(run for real by ansible on this machine), the log analysis and its command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers.common import REPO, VENV_BIN
from orchestrator.cli import cli
from orchestrator.errors import BadInput
from orchestrator.loganalysis import analyze
from orchestrator.releases import available, build_release


def test_release_is_reproducible_and_checksummed(tmp_path: Path) -> None:
    a = build_release("1.0.0", out_dir=tmp_path / "a")
    b = build_release("1.0.0", out_dir=tmp_path / "b")
    assert a.tarball.read_bytes() == b.tarball.read_bytes()
    assert hashlib.sha256(a.tarball.read_bytes()).hexdigest() == a.sha256
    line = (tmp_path / "a" / "envcredit-1.0.0.tar.gz.sha256").read_text()
    assert line == f"{a.sha256}  envcredit-1.0.0.tar.gz\n"
    proc = subprocess.run(
        ["sha256sum", "-c", line.split()[1] + ".sha256"],
        cwd=tmp_path / "a",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = subprocess.run(["tar", "-tzf", str(a.tarball)], capture_output=True, text=True, check=True).stdout.split()
    assert "envcredit-1.0.0/VERSION" in names and "envcredit-1.0.0/envcredit_app.py" in names
    assert any(n.startswith("envcredit-1.0.0/migrations/") for n in names)
    a.tarball.write_bytes(a.tarball.read_bytes()[:-10] + b"corrupted!")
    assert [r["verified"] for r in available(tmp_path / "a")] == [False]


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-rf"])
def test_release_version_must_be_a_plain_name(bad: str, tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        build_release(bad, out_dir=tmp_path)


def _module(root: Path, **args: object) -> dict[str, object]:
    argstr = " ".join(f"{k}={v}" for k, v in args.items())
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "-i",
            "localhost,",
            "localhost",
            "-c",
            "local",
            "-o",
            "-M",
            str(REPO / "plugins/modules"),
            "-m",
            "envcredit_release",
            "-a",
            f"root={root} {argstr}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"),
            ANSIBLE_CACHE_PLUGIN="memory",
        ),
    )  # not the checkout's var/facts (ansible.cfg's fact cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout.split("=>", 1)[1]))


def test_retention_never_removes_running_or_previous_and_skips_failed(tmp_path: Path) -> None:
    root = tmp_path / "app"
    for i, v in enumerate(["1", "2", "3", "4-bad", "5", "6"]):
        (root / "releases" / v).mkdir(parents=True)
        os.utime(root / "releases" / v, (1_000_000 + i, 1_000_000 + i))
    assert _module(root, action="switch", version="2")["changed"] is True
    assert _module(root, action="switch", version="6")["previous"] == "2"
    assert _module(root, action="mark_failed", version="4-bad")["failed_releases"] == ["4-bad"]
    assert os.readlink(root / "current") == "releases/6"
    res = _module(root, action="prune", keep=3)
    # kept: current 6, previous 2 (protected), the newest good other one (5); failed 4-bad goes
    assert sorted(res["removed"]) == ["1", "3", "4-bad"]  # type: ignore[arg-type]
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["2", "5", "6"]
    again = _module(root, action="prune", keep=3)
    assert again["changed"] is False
    assert _module(root, action="switch", version="6")["changed"] is False


def _write(path: Path, lines: list[object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines), encoding="utf-8")


def test_analysis_counts_statuses_windows_slow_and_errors(tmp_path: Path) -> None:
    base = tmp_path / "logs"
    _write(
        base / "lab-app1/app/access.log",
        [
            {"ts": "2026-11-28T10:01:00+08:00", "method": "GET", "path": "/", "status": 200, "duration_ms": 10},
            {"ts": "2026-11-28T10:02:00+08:00", "method": "GET", "path": "/x", "status": 500, "duration_ms": 5},
            {"ts": "2026-11-28T10:07:00+08:00", "method": "GET", "path": "/slow", "status": 200, "duration_ms": 900},
            {"ts": "2026-11-28T10:08:00+08:00", "method": "GET", "path": "/nope", "status": 404, "duration_ms": 1},
            "not json",
        ],
    )
    _write(
        base / "lab-app1/app/error.log",
        [
            {
                "ts": "2026-11-28T10:02:00+08:00",
                "level": "error",
                "msg": "unhandled",
                "signature": "RuntimeError at a:b",
            },
            {
                "ts": "2026-11-28T10:03:00+08:00",
                "level": "error",
                "msg": "unhandled",
                "signature": "RuntimeError at a:b",
            },
            {"ts": "2026-11-28T10:03:00+08:00", "level": "info", "msg": "listening"},
        ],
    )
    _write(
        base / "lab-web1/nginx/envcredit-access.log",
        [
            {"ts": "2026-11-28T10:01:00+08:00", "path": "/", "status": 502, "request_time": 0.6},
        ],
    )
    _write(
        base / "lab-db1/postgresql/postgresql-15-main.log",
        [
            '2026-11-28 10:04:00.123 CST [77] envcredit_app@envcredit ERROR:  relation "x1" does not exist',
            '2026-11-28 10:05:00.123 CST [78] envcredit_app@envcredit ERROR:  relation "x2" does not exist',
            "2026-11-28 10:05:00.123 CST [78] LOG:  checkpoint starting: time",
        ],
    )
    res = analyze(base, window_minutes=5, slow_ms=500)
    app = res["sources"]["app"]
    assert app["requests"] == 4 and app["classes"] == {"2xx": 2, "4xx": 1, "5xx": 1}
    assert app["rate_5xx"] == 0.25 and app["slow_requests"] == 1
    assert app["windows"] == {
        "2026-11-28T10:00": {"requests": 2, "4xx": 0, "5xx": 1, "slow": 0, "error_rate": 0.5},
        "2026-11-28T10:05": {"requests": 2, "4xx": 1, "5xx": 0, "slow": 1, "error_rate": 0.0},
    }
    assert app["slowest_endpoints"][0]["path"] == "/slow"
    assert res["sources"]["nginx"]["slow_requests"] == 1 and res["sources"]["nginx"]["status"] == {"502": 1}
    assert [(g["signature"], g["count"]) for g in res["errors"]] == [("app: RuntimeError at a:b", 2)]
    assert [(g["signature"], g["count"]) for g in res["db_errors"]] == [("ERROR: relation '…' does not exist", 2)]
    assert res["unparsed_lines"] == 1


def test_logs_analyze_command_filters_by_time_and_writes_html(tmp_path: Path) -> None:
    base = tmp_path / "logs"
    _write(
        base / "h/app/access.log",
        [
            {"ts": "2026-11-28T10:00:00+08:00", "path": "/", "status": 500, "duration_ms": 1},
            {"ts": "2026-11-28T11:00:00+08:00", "path": "/", "status": 200, "duration_ms": 1},
        ],
    )
    out = tmp_path / "r.html"
    res = CliRunner().invoke(
        cli,
        [
            "logs",
            "analyze",
            str(base),
            "--since",
            "2026-11-28T10:30:00+08:00",
            "--json",
            "--html",
            str(out),
            "--lang",
            "en",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["sources"]["app"]["status"] == {"200": 1}
    assert "Log analysis" in out.read_text(encoding="utf-8")
    res = CliRunner().invoke(cli, ["logs", "analyze", str(base), "--since", "yesterday"])
    assert res.exit_code == 2 and "bad time" in res.output
