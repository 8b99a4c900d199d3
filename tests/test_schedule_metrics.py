"""The timers' runs as Prometheus metrics (issue 17: "a scheduled run that failed or did not
run"): read from the change records, served by the receiver at GET /metrics with its token,
judged by the EnvcreditScheduledRunFailed/Missed rules (their promtool tests are in
roles/monitoring/files/rules-tests)."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from orchestrator import alerts as alerts_mod
from orchestrator.archive import Archive
from orchestrator.incidents import IncidentRegister
from orchestrator.records import RecordBuilder, RunMeta, iso, new_record_id
from orchestrator.schedule_metrics import collect, interval_seconds, render
from orchestrator.schedules import Timer

TOKEN = "metrics-token-0123456789abcdef"
T0 = datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc)


def timer(name: str = "backup", operation: str = "backup", on_calendar: str = "*-*-* 02:00:00") -> Timer:
    return Timer(
        name=name,
        operation=operation,
        on_calendar=on_calendar,
        env="production",
        description=name,
        repo="/opt/envcredit-ops",
        user="root",
        timeout_s=7200,
    )


def record(
    archive: Archive,
    when: datetime,
    *,
    op: str = "backup",
    status: str = "successful",
    launch: str = "scheduled",
    by: str | None = "timer:backup",
    env: str = "production",
    check: bool = False,
) -> dict[str, Any]:
    run_id = new_record_id(when)
    meta = RunMeta(
        id=run_id,
        operation=op,
        playbook=f"playbooks/{op}.yml",
        environment=env,
        inventory=f"inventories/{env}",
        started=iso(when),
        launch=launch,
        check_mode=check,
        operator={"user": "root", "host": "ctl", **({"on_behalf_of": by} if by else {})},
        ticket="STD-BACKUP-2026",
        change_type="standard",
    )
    pending = archive.begin(run_id, meta)
    rec = RecordBuilder().finish(
        meta, status=status, rc=0 if status == "successful" else 2, ended=iso(when + timedelta(minutes=5))
    )
    return archive.commit(pending, rec)


@pytest.mark.parametrize(
    ("expr", "seconds"),
    [
        ("*-*-* 02:00:00", 86400),
        ("Mon *-*-* 07:00:00", 7 * 86400),
        ("daily", 86400),
        ("weekly", 7 * 86400),
        ("*-*-01 03:00:00", 31 * 86400),
        ("*-*-* *:00:00", 3600),
        ("*-*-* *:*:00", 60),
        ("08:30", 86400),
        ("*-06-30 00:00:00", 366 * 86400),
        ("hourly", 3600),
    ],
)
def test_interval_of_calendar_expressions(expr: str, seconds: int) -> None:
    assert interval_seconds(expr) == seconds


def test_newest_run_and_newest_success_per_timer_and_environment(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    ok = record(archive, T0)
    record(archive, T0 + timedelta(hours=1), by="timer:other")  # another timer's run
    record(archive, T0 + timedelta(hours=2), launch="manual", by=None)  # an engineer's run
    record(archive, T0 + timedelta(hours=3), check=True)  # a check-mode run is no success
    failed = record(archive, T0 + timedelta(days=1), status="failed")
    lab = record(archive, T0 + timedelta(hours=4), env="lab")
    runs = {(r.timer.name, r.env): r for r in collect(archive, [timer(), timer("inspection", "inspect")])}
    assert sorted(runs) == [("backup", "lab"), ("backup", "production")]  # inspection never ran: absent
    prod = runs[("backup", "production")]
    assert prod.last_id == failed["id"] and prod.last_status == "failed"
    assert prod.last_end == datetime.fromisoformat(failed["ended"]).timestamp()
    assert prod.success_end == datetime.fromisoformat(ok["ended"]).timestamp()
    assert runs[("backup", "lab")].last_id == lab["id"]
    text = render(list(runs.values()))
    labels = '{timer="backup",operation="backup",env="production"}'
    assert f"envcredit_scheduled_run_last_timestamp_seconds{labels} {prod.last_end:.3f}" in text
    assert f"envcredit_scheduled_run_last_success_timestamp_seconds{labels} {prod.success_end:.3f}" in text
    assert f"envcredit_scheduled_run_interval_seconds{labels} 86400.000" in text
    assert (
        'envcredit_scheduled_run_last_status{timer="backup",operation="backup",env="production",status="failed"} 1.000'
        in text
    )
    assert 'status="successful"} 0.000' in text
    assert text.count("# TYPE ") == 4 and text.endswith("\n")


def test_a_timer_that_never_succeeded_has_no_success_sample(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    record(archive, T0, status="refused")
    (runs,) = collect(archive, [timer()])
    assert runs.last_status == "refused" and runs.success_end is None
    assert "envcredit_scheduled_run_last_success_timestamp_seconds{" not in render([runs])


def test_receiver_serves_the_metrics_with_its_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(tmp_path / "archive")
    record(archive, T0)
    schedules = tmp_path / "schedules.yml"
    schedules.write_text("timers:\n  backup: {operation: backup, on_calendar: '*-*-* 02:00:00'}\n", encoding="utf-8")
    monkeypatch.setenv("OPSCTL_SCHEDULES", str(schedules))
    server = alerts_mod.make_server("127.0.0.1:0", alerts_mod.Processor(IncidentRegister(archive), "production"), TOKEN)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert 'envcredit_scheduled_run_last_success_timestamp_seconds{timer="backup"' in resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)  # no token
        assert err.value.code == 401
        schedules.write_text("timers: [broken\n", encoding="utf-8")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(
                urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"}), timeout=10
            )
        assert err.value.code == 500
    finally:
        server.shutdown()
        server.server_close()


def test_the_receivers_systemd_unit_for_the_control_host(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import cli

    result = CliRunner().invoke(
        cli,
        ["alerts", "unit", "--listen", "127.0.0.1:9095", "--token-file", "/etc/envcredit/alerts.token", "--env", "lab"],
    )
    assert result.exit_code == 0, result.output
    unit = result.output
    assert "Type=exec" in unit and "Restart=on-failure" in unit and "WantedBy=multi-user.target" in unit
    assert "EnvironmentFile=-/etc/envcredit-ops/opsctl.env" in unit
    assert (
        "/.venv/bin/opsctl alerts serve --env lab --listen 127.0.0.1:9095 --token-file /etc/envcredit/alerts.token"
    ) in unit
    bad = CliRunner().invoke(cli, ["alerts", "unit", "--listen", "nope", "--token-file", "x"])
    assert bad.exit_code == 2 and "HOST:PORT" in bad.output
    bad = CliRunner().invoke(
        cli, ["alerts", "unit", "--listen", "127.0.0.1:1", "--token-file", "x", "--env", "nowhere"]
    )
    assert bad.exit_code == 2
