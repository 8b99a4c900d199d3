"""Schedules: unit files from schedules/schedules.yml; a scheduled run's record; timers on a lab host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_opsctl
from orchestrator.archive import Archive
from orchestrator.errors import BadInput
from orchestrator.schedules import load


def test_the_config_file_defines_the_four_timers() -> None:
    timers = {t.name: t for t in load(REPO / "schedules" / "schedules.yml")}
    assert timers["inspection"].on_calendar == "*-*-* 08:30:00"
    assert timers["backup"].on_calendar == "*-*-* 02:00:00"
    assert timers["patch-scan"].operation == "patch-scan" and timers["patch-scan"].on_calendar.startswith("Mon")
    assert timers["backup-verify"].on_calendar == "*-*-01 04:00:00"
    svc = timers["inspection"].service_text()
    assert "Environment=OPSCTL_LAUNCH=scheduled" in svc
    assert "Environment=OPSCTL_OPERATOR=timer:inspection" in svc
    assert "opsctl run inspect --env production --reason scheduled" in svc
    assert "OnCalendar=*-*-* 08:30:00" in timers["inspection"].timer_text()


def test_bad_config_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "s.yml"
    bad.write_text("timers:\n  x:\n    operation: inspect\n    on_calendar: '$(reboot)'\n", encoding="utf-8")
    with pytest.raises(BadInput):
        load(bad)


def test_a_run_started_like_the_service_is_recorded_as_scheduled(opsctl_home: Path) -> None:
    timer = load(REPO / "schedules" / "schedules.yml", env="test")[0]
    proc = run_opsctl("run", "ok", "--env", "test", "--reason", "scheduled", env=timer.environment())
    assert proc.returncode == 0, proc.stderr
    rec = Archive(opsctl_home / "var" / "archive").list()[0]
    full = Archive(opsctl_home / "var" / "archive").get(rec["id"])
    assert full["launch"]["type"] == "scheduled"
    assert full["operator"]["on_behalf_of"] == f"timer:{timer.name}"
    assert full["reason"] == "scheduled"


@pytest.mark.lab
def test_timers_installed_listed_and_removed_on_a_lab_host(lab_archive: Path) -> None:
    host = "lab-app2"
    try:
        proc = run_opsctl("schedule", "install", "--target", host, "--env", "lab", "--json")
        assert proc.returncode == 0, proc.stderr
        res = json.loads(proc.stdout)
        names = {r["timer"] for r in res["timers"]}
        assert names == {f"envcredit-ops-{n}.timer" for n in ("inspection", "backup", "patch-scan", "backup-verify")}
        assert all(r["active"] == "active" and r["enabled"] == "enabled" for r in res["timers"]), res
        assert "envcredit-ops-inspection.timer" in res["list_timers"]
        listed = json.loads(run_opsctl("schedule", "list", "--target", host, "--json").stdout)
        assert {r["timer"] for r in listed["timers"]} == names
        # the host's own systemd agrees, and the service runs opsctl as the timer
        unit = _ssh(host, "systemctl list-timers --all --no-pager 'envcredit-ops-*'; "
                          "systemctl cat envcredit-ops-inspection.service")
        assert "envcredit-ops-backup.timer" in unit and "OPSCTL_OPERATOR=timer:inspection" in unit
        assert "--env lab --reason scheduled" in unit
    finally:
        proc = run_opsctl("schedule", "remove", "--target", host, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["timers"] == []
    left = _ssh(host, "ls /etc/systemd/system | grep -c envcredit-ops- || true; systemctl list-timers --all --no-pager")
    assert left.splitlines()[0] == "0" and "envcredit-ops" not in left


def _ssh(host: str, command: str) -> str:
    port = {"lab-app2": 2223}[host]
    proc = subprocess.run(
        ["ssh", "-i", str(REPO / "var/lab/ssh/id_ed25519"), "-p", str(port),
         "-o", f"UserKnownHostsFile={REPO / 'var/lab/known_hosts'}", "-o", "BatchMode=yes",
         "ops@127.0.0.1", f"sudo bash -c {json.dumps(command)}"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
