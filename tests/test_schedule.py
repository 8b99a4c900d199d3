"""Schedules: unit files from schedules/schedules.yml; a scheduled run's record; timers on a lab host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers.common import REPO, only, run_opsctl
from orchestrator.archive import Archive
from orchestrator.errors import BadInput
from orchestrator.operations import get_environment, load_catalog
from orchestrator.records import login_user
from orchestrator.schedules import Timer, install_script, load


def test_the_config_file_defines_the_four_timers() -> None:
    timers = {t.name: t for t in load(REPO / "schedules" / "schedules.yml")}
    assert timers["inspection"].on_calendar == "*-*-* 08:30:00"
    assert timers["backup"].on_calendar == "*-*-* 02:00:00"
    assert timers["patch-scan"].operation == "patch-scan" and timers["patch-scan"].on_calendar.startswith("Mon")
    assert timers["backup-verify"].on_calendar == "*-*-* 03:00:00"
    svc = timers["inspection"].service_text()
    assert "Environment=OPSCTL_LAUNCH=scheduled" in svc
    assert "Environment=OPSCTL_OPERATOR=timer:inspection" in svc
    assert "opsctl run inspect --env production --standard-change" in svc
    # every scheduled operation is a standard change of production: none is refused at night
    assert all(t.standard_change and t.command()[-1] == "--standard-change" for t in timers.values() if t.operation)
    # the SLA clocks are checked every 15 minutes (warnings at 50 %, 80 %, breach); a breach, which
    # the check notifies itself, is no failure of the timer; "%" is doubled for systemd
    check = timers["incident-check"]
    assert check.command()[1:] == ["incident", "check"] and check.on_calendar == "*-*-* *:00/15:00"
    assert "SuccessExitStatus=1" in check.service_text() and "SuccessExitStatus" not in svc
    assert "warns at 50 %% and 80 %%" in check.service_text() and "50 % " not in check.service_text()
    assert "OnCalendar=*-*-* 08:30:00" in timers["inspection"].timer_text()
    # a failed run tells the on-call team (OnFailure= starts the notify template with the timer's name)
    assert "OnFailure=envcredit-ops-notify-failure@inspection.service" in svc
    failure = timers["backup"].failure_text()
    # the controller's vault key, store and channel come from its own file, never from git
    assert all("EnvironmentFile=-/etc/envcredit-ops/opsctl.env" in unit for unit in (svc, failure))
    assert "opsctl notify scheduled-failure --timer %i --unit envcredit-ops-%i.service --env production" in failure
    script = install_script(list(timers.values()))
    assert script.count("cat > /etc/systemd/system/envcredit-ops-notify-failure@.service") == 1


@pytest.mark.parametrize("env", ["lab", "staging", "production"])
def test_the_policies_standard_changes_are_catalog_operations(env: str) -> None:
    environment = get_environment(env)
    catalog = load_catalog()
    assert set(environment.standard_changes) == {"inspect", "patch-scan", "backup", "backup-verify", "restore-drill"}
    for name, change in environment.standard_changes.items():
        assert environment.standard_change(catalog[name]) == change  # known, not high risk there
        with pytest.raises(BadInput, match="does not match the ticket pattern"):
            environment.check_ticket(change)  # a standard change id is not a ticket: --standard-change runs it


def test_bad_config_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "s.yml"
    bad.write_text("timers:\n  x:\n    operation: inspect\n    on_calendar: '$(reboot)'\n", encoding="utf-8")
    with pytest.raises(BadInput):
        load(bad)


def _timers(home: Path, **ops: str) -> list[Timer]:
    path = home / "schedules.yml"
    body = "".join(f"  {name}:\n    operation: {op}\n    on_calendar: daily\n" for name, op in ops.items())
    path.write_text(f"defaults:\n  env: production\ntimers:\n{body}", encoding="utf-8")
    return load(path)


def test_a_run_started_like_the_service_is_a_standard_change_in_production(opsctl_home: Path) -> None:
    timer = only(_timers(opsctl_home, nightly="backup"))
    assert timer.standard_change
    proc = run_opsctl(*timer.command()[1:], env=timer.environment())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ticket: STD-BACKUP-2026 (standard change)" in proc.stdout
    archive = Archive(opsctl_home / "var" / "archive")
    full = archive.get(archive.list()[0]["id"])
    assert full["status"] == "successful" and full["environment"] == "production"
    assert full["launch"]["type"] == "scheduled"
    assert full["ticket"] == "STD-BACKUP-2026" and full["change_type"] == "standard"
    # the account the service runs as is the operator; the timer is whom it ran for
    assert full["operator"]["user"] == login_user()
    assert full["operator"]["on_behalf_of"] == "timer:nightly"
    assert full["operator"]["on_behalf_of_source"] == "OPSCTL_OPERATOR"
    assert sorted(p.name for p in (opsctl_home / "markers").iterdir()) == ["node1.txt", "node2.txt"]


def test_timers_not_listed_as_standard_changes(opsctl_home: Path) -> None:
    # a read-only operation still runs with a reason ...
    timer = only(_timers(opsctl_home, probe="slow"))
    assert not timer.standard_change and timer.command()[-2:] == ["--reason", "scheduled"]
    # ... a changing one would be refused every night: refused at install, naming the policy
    with pytest.raises(
        BadInput,
        match=r"'change' changes things and is not a standard change in 'production'"
        r".*standard_changes in inventories/production/\.opsctl\.yml",
    ):
        _timers(opsctl_home, nightly="change")


@pytest.mark.lab
def test_timers_installed_listed_and_removed_on_a_lab_host(lab_archive: Path) -> None:
    host = "lab-app2"
    try:
        proc = run_opsctl("schedule", "install", "--target", host, "--env", "lab", "--json")
        assert proc.returncode == 0, proc.stderr
        res = json.loads(proc.stdout)
        names = {r["timer"] for r in res["timers"]}
        assert names == {
            f"envcredit-ops-{n}.timer"
            for n in ("inspection", "backup", "patch-scan", "backup-verify", "restore-drill", "incident-check")
        }
        assert all(r["active"] == "active" and r["enabled"] == "enabled" for r in res["timers"]), res
        assert "envcredit-ops-inspection.timer" in res["list_timers"]
        listed = json.loads(run_opsctl("schedule", "list", "--target", host, "--json").stdout)
        assert {r["timer"] for r in listed["timers"]} == names
        # the host's own systemd agrees, and the service runs opsctl as the timer
        unit = _ssh(
            host,
            "systemctl list-timers --all --no-pager 'envcredit-ops-*'; systemctl cat envcredit-ops-inspection.service",
        )
        assert "envcredit-ops-backup.timer" in unit and "OPSCTL_OPERATOR=timer:inspection" in unit
        assert "--env lab --standard-change" in unit
        assert "OnFailure=envcredit-ops-notify-failure@inspection.service" in unit
        # systemd reads "%%" as "%" and the 15-minute calendar as such
        shown = _ssh(
            host,
            "systemctl show -P Description envcredit-ops-incident-check.service; "
            "systemctl show -P TimersCalendar envcredit-ops-incident-check.timer",
        )
        assert "warns at 50 % and 80 %" in shown and ":00/15" in shown, shown
        template = _ssh(host, "systemctl cat envcredit-ops-notify-failure@backup.service")
        assert (
            "opsctl notify scheduled-failure --timer backup --unit envcredit-ops-backup.service" in template
            or "--timer %i --unit envcredit-ops-%i.service" in template
        )
    finally:
        proc = run_opsctl("schedule", "remove", "--target", host, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["timers"] == []
    left = _ssh(host, "ls /etc/systemd/system | grep -c envcredit-ops- || true; systemctl list-timers --all --no-pager")
    assert left.splitlines()[0] == "0" and "envcredit-ops" not in left


def _ssh(host: str, command: str) -> str:
    port = {"lab-app2": 2223}[host]
    proc = subprocess.run(
        [
            "ssh",
            "-i",
            str(REPO / "var/lab/ssh/id_ed25519"),
            "-p",
            str(port),
            "-o",
            f"UserKnownHostsFile={REPO / 'var/lab/known_hosts'}",
            "-o",
            "BatchMode=yes",
            "ops@127.0.0.1",
            f"sudo bash -c {json.dumps(command)}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
