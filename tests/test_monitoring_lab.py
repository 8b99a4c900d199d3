"""Unattended operations end to end on the lab (issue 17): the monitoring role on lab-mon1
(Prometheus, Alertmanager, blackbox, exporters), the controller's `opsctl alerts serve`
(lab/alerts-receiver.sh, started by `lab/lab.sh up`), and the lab's notification channel: a
capture receiver on 127.0.0.1:9096 that this module starts (the lab policy's Apprise
`json://` URL), standing in for the on-call phone.

nginx stopped on lab-web1 -> the blackbox probe fails -> EnvcreditSiteDown fires ->
Alertmanager posts to the receiver -> an outage incident is opened (reported_at = the
alert's start) -> a zh-CN message naming it reaches the capture receiver; nginx started ->
the alert resolves -> the incident's recovery is recorded.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from helpers.common import REPO, run_opsctl
from helpers.lab import PODMAN_ENV, lab_run, lab_timers_key
from orchestrator.releases import build_release

pytestmark = pytest.mark.lab

PROMETHEUS = "http://127.0.0.1:9090"
CAPTURE_PORT = 9096
ARCHIVE = REPO / "var" / "archive"  # the receiver records where `opsctl incident list` reads


class Capture(ThreadingHTTPServer):
    """The lab's notification channel: keeps every message Apprise posts (json://)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(inner) -> None:  # noqa: N802, N805
                body = inner.rfile.read(int(inner.headers.get("Content-Length") or 0))
                with self.lock:
                    self.messages.append({"at": time.monotonic(), **json.loads(body or b"{}")})
                inner.send_response(200)
                inner.end_headers()

            def log_message(inner, *args: Any) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", CAPTURE_PORT), Handler)

    def waiting_for(self, predicate: Any, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = next((m for m in self.messages if predicate(m)), None)
            if found:
                return found
            time.sleep(1)
        return None


def query(expr: str) -> list[dict[str, Any]]:
    url = PROMETHEUS + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return list(json.loads(resp.read())["data"]["result"])


def all_targets_scraped() -> bool:
    """True once Prometheus has scraped every active target at least once (health not 'unknown')."""
    with urllib.request.urlopen(PROMETHEUS + "/api/v1/targets?state=active", timeout=10) as resp:
        targets = json.loads(resp.read())["data"]["activeTargets"]
    return bool(targets) and all(t["health"] != "unknown" for t in targets)


FILL_DIR = "/srv/lab-fill"  # lab.sh's FILL_MOUNTS


def fill_disk(steps: int = 11, mb: int = 2, every_s: float = 10) -> None:
    for i in range(steps):
        podman_exec("lab-app1", "dd", "if=/dev/zero", f"of={FILL_DIR}/fill-{i}", "bs=1M", f"count={mb}", "status=none")
        time.sleep(every_s)


def podman_exec(host: str, *argv: str) -> None:
    subprocess.run(["podman", "exec", host, *argv], check=True, env=PODMAN_ENV, capture_output=True, timeout=60)


def incidents() -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "opsctl"), "incident", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "OPSCTL_ARCHIVE"},
    )
    return list(json.loads(proc.stdout))


@pytest.fixture(scope="module")
def monitored(lab_ready: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    """Monitoring applied, the receiver running, the capture channel listening, the site probed up."""
    # The site must be whole first (nginx and the application): an earlier test leaves it so;
    # alone, this module installs a release built from app/.
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=5) as resp:
            healthy = resp.status == 200
    except OSError:
        healthy = False
    if not healthy:
        out = tmp_path_factory.mktemp("releases")
        build_release("9.8.0-monitoring", out_dir=out)
        lab_run("site-app", "-e", "app_version=9.8.0-monitoring", "-e", f"app_deploy_artifact_dir={out}", timeout=900)
    rec = lab_run("monitoring", timeout=900)
    assert rec["status"] == "successful"
    subprocess.run([str(REPO / "lab" / "alerts-receiver.sh"), "start"], check=True, timeout=60)
    capture = Capture()
    thread = threading.Thread(target=capture.serve_forever, daemon=True)
    thread.start()
    # every target scraped at least once (Prometheus spreads first scrapes over the interval, so
    # the site's probes can be in while a node exporter is not yet), every probe of the site up,
    # and no site alert left from before (it would hide a new one)
    deadline = time.monotonic() + 240
    while not (
        all_targets_scraped()
        and [r["value"][1] for r in query('min(probe_success{job="site"})')] == ["1"]
        and not query('ALERTS{alertname="EnvcreditSiteDown"}')
    ):
        assert time.monotonic() < deadline, "Prometheus never saw the whole site up"
        time.sleep(2)
    # A disk filling up on lab-app1 (a 32 MB tmpfs of lab.sh), 2 MB every 10 s to 22 MB, beside
    # the other tests; test_a_filling_disk_... (last) asserts the forecast it raises.
    podman_exec("lab-app1", "sh", "-c", f"rm -f {FILL_DIR}/fill-*")
    filler = threading.Thread(target=fill_disk, daemon=True)
    filler.start()
    try:
        yield capture
    finally:
        capture.shutdown()
        capture.server_close()
        filler.join(timeout=180)
        podman_exec("lab-app1", "sh", "-c", f"rm -f {FILL_DIR}/fill-*")


def test_prometheus_scrapes_every_host_and_loads_the_rules(monitored: Capture) -> None:
    up = {r["metric"]["instance"]: r["value"][1] for r in query('up{job="node", instance=~"lab-.*"}')}
    assert up == dict.fromkeys(
        ["lab-app1", "lab-app2", "lab-backup1", "lab-db1", "lab-db2", "lab-mon1", "lab-web1"], "1"
    ), up
    assert {r["metric"]["job"] for r in query("up == 1")} >= {"node", "site", "app_health", "postgres", "mysqld"}
    with urllib.request.urlopen(PROMETHEUS + "/api/v1/rules", timeout=10) as resp:
        rules = {r["name"] for g in json.loads(resp.read())["data"]["groups"] for r in g["rules"]}
    assert {"EnvcreditSiteDown", "EnvcreditDiskFullIn3Days", "EnvcreditBackupTooOld"} <= rules


def test_site_down_opens_an_outage_and_tells_the_on_call_person(monitored: Capture) -> None:
    before = {i["id"] for i in incidents()}
    stopped = datetime.now(timezone.utc)
    t0 = time.monotonic()
    podman_exec("lab-web1", "systemctl", "stop", "nginx")
    try:
        msg = monitored.waiting_for(
            lambda m: "网站无法访问" in m.get("message", "") and "新故障" in m.get("title", ""), timeout=240
        )
        assert msg is not None, f"no notification within 4 minutes; got {monitored.messages}"
        elapsed = msg["at"] - t0
        new = [i for i in incidents() if i["id"] not in before]
        assert len(new) == 1, new
        inc = new[0]
        assert inc["severity"] == "outage"
        text = json.dumps(msg, ensure_ascii=False)
        assert inc["id"] in text and "北京时间" in text
        # reported_at is the alert's start: after nginx stopped (one evaluation of slack), before now
        reported = datetime.fromisoformat(inc["reported_at"])
        assert stopped - timedelta(seconds=30) <= reported <= datetime.now(timezone.utc), (stopped, reported)
        print(f"failure to notification: {elapsed:.0f} s")
        assert elapsed < 180, f"the notification took {elapsed:.0f} s"
    finally:
        podman_exec("lab-web1", "systemctl", "start", "nginx")
    # the alert resolves: the recovery is recorded on the same incident
    deadline = time.monotonic() + 240
    while True:
        state = next(i for i in incidents() if i["id"] == inc["id"])
        if state.get("recovered_at"):
            break
        assert time.monotonic() < deadline, f"no recovery recorded: {state}"
        time.sleep(3)
    subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "opsctl"),
            "incident",
            "resolve",
            inc["id"],
            "--cause",
            "lab test: nginx stopped on purpose",
        ],
        check=False,
        timeout=60,
        cwd=REPO,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "OPSCTL_ARCHIVE"},
    )


# -- the timers under production's policy ------------------------------------------------------

STRICT = "lab-strict"  # inventories/lab-strict: the lab's hosts, production's policy (tickets, leases)


def timer_command(name: str, env_file: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment systemd would give the timer's service (its unit text,
    as `opsctl schedule install` writes it, for the lab under production's policy)."""
    from orchestrator.schedules import ENV_FILE, load

    (timer,) = [t for t in load(REPO / "schedules" / "schedules.yml", env=STRICT) if t.name == name]
    unit = timer.service_text()
    env = {
        k: v
        for line in unit.splitlines()
        if line.startswith("Environment=")
        for k, _, v in [line.removeprefix("Environment=").partition("=")]
    }
    assert f"EnvironmentFile=-{ENV_FILE}" in unit
    (exec_start,) = [line.removeprefix("ExecStart=") for line in unit.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(exec_start), {**env, **env_file}


def run_timer(name: str, env_file: dict[str, str]) -> dict[str, Any]:
    argv, env = timer_command(name, env_file)
    full = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")} | env
    proc = subprocess.run(
        [*argv, "--json"], capture_output=True, text=True, timeout=900, cwd=REPO, env=full, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(proc.stdout))


def test_timers_run_as_standard_changes_under_production_policy_and_are_watched(
    monitored: Capture, tmp_path: Path
) -> None:
    store = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(store)], check=True)
    # The timers' own signing key, allowed on this machine (not in security/allowed_signers). Kept
    # in var/signing: their records stay in the archive, which must verify after the test.
    key, signers = lab_timers_key()
    # what /etc/envcredit-ops/opsctl.env holds on a controller
    env_file = {"OPSCTL_STORE": str(store), "OPSCTL_SIGNING_KEY": str(key), "OPSCTL_ALLOWED_SIGNERS": str(signers)}

    # 02:00 backup, 03:00 verification, 08:30 inspection: the timers' own commands
    backup = run_timer("backup", env_file)
    for rec in [backup]:
        assert rec["status"] == "successful" and rec["environment"] == STRICT
        assert rec["ticket"] == "STD-BACKUP-2026" and rec["change_type"] == "standard"
        assert rec["launch"] == {"type": "scheduled"} and rec["operator"]["on_behalf_of"] == "timer:backup"
        assert rec["leases"]["hosts"] == rec["targets"] and rec["leases"]["took_over"] == []
        assert (ARCHIVE / rec["id"] / "record.sig").is_file()  # signed with the timers' key
    verify = run_timer("backup-verify", env_file)
    assert verify["status"] == "successful" and verify["change_type"] == "standard"
    # Sunday 04:00: the restore drill, the newest state on the backup host into lab-db1's side
    # cluster (pgBackRest) and lab-db2's side instance (MariaDB archive), counted and measured,
    # then dropped (issue 19)
    drill = run_timer("restore-drill", env_file)
    assert drill["status"] == "successful" and drill["ticket"] == "STD-RESTOREDRILL-2026", drill.get("failures")
    for db_host in ("lab-db1", "lab-db2"):
        result = drill["outputs"]["restore_drill"][db_host]
        assert result["live_replaced"] is False and result["restore_seconds"] > 0, result
        assert result["tables"]["enterprises"] > 0 and "dropped after the count" in result["restored_into"]
    inspection = run_timer("inspection", env_file)
    assert inspection["status"] == "successful" and inspection["ticket"] == "STD-INSPECT-2026"
    backup_findings = [
        f
        for res in inspection["outputs"]["inspect"].values()
        for f in res.get("findings") or []
        if f.get("check") in ("backup", "backup_verify")
    ]
    assert backup_findings == [], backup_findings  # a healthy night: no backup alarm in the morning
    # every lease was released
    refs = subprocess.run(
        ["git", "-C", str(store), "for-each-ref", "refs/leases"], capture_output=True, text=True, check=True
    )
    assert refs.stdout == ""

    # the same backup without its standard change is refused here (production's policy)
    argv, env = timer_command("backup", env_file)
    argv = [a for a in argv if a != "--standard-change"] + ["--reason", "scheduled"]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")} | env,
    )
    assert proc.returncode == 2 and "requires --ticket" in proc.stderr, proc.stderr

    # Prometheus sees the timers' runs through the controller's receiver
    ended = datetime.fromisoformat(backup["ended"]).timestamp()
    deadline = time.monotonic() + 120
    expr = f'envcredit_scheduled_run_last_success_timestamp_seconds{{timer="backup",env="{STRICT}"}}'
    while True:
        got = [float(r["value"][1]) for r in query(expr)]
        if got and got[0] >= ended - 1:
            break
        assert time.monotonic() < deadline, f"Prometheus never saw the backup timer's run: {got}"
        time.sleep(3)
    assert [
        r["value"][1] for r in query(f'envcredit_scheduled_run_interval_seconds{{timer="backup",env="{STRICT}"}}')
    ] == ["86400"]

    # The archive the timers filed into still verifies, their signatures included, with this
    # machine's allowed signers as the Makefile hands them to opsctl (`make demo` verifies it).
    verified = run_opsctl(
        "records", "verify", env={"OPSCTL_ARCHIVE": str(ARCHIVE), "OPSCTL_ALLOWED_SIGNERS": str(signers)}
    )
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-2000:]
    assert "timers@lab" in verified.stdout, verified.stdout[-3000:]


def test_a_filling_disk_raises_the_forecast_warning_before_it_is_full(monitored: Capture) -> None:
    """predict_linear over the fill of lab-app1's tmpfs: the 3-day forecast (EnvcreditDiskFullIn3Days)
    becomes pending (then firing after its `for:`) while the file system still has room."""
    where = 'instance="lab-app1",mountpoint="/srv/lab-fill"'
    deadline = time.monotonic() + 300
    while True:
        with urllib.request.urlopen(PROMETHEUS + "/api/v1/alerts", timeout=10) as resp:
            alerts = [
                a
                for a in json.loads(resp.read())["data"]["alerts"]
                if a["labels"].get("alertname") == "EnvcreditDiskFullIn3Days"
                and a["labels"].get("instance") == "lab-app1"
                and a["labels"].get("mountpoint") == FILL_DIR
            ]
        if alerts:
            break
        assert time.monotonic() < deadline, query(f"node_filesystem_avail_bytes{{{where}}}")
        time.sleep(5)
    assert alerts[0]["state"] in ("pending", "firing")
    assert alerts[0]["annotations"]["summary_zh"] == f"磁盘预计 3 天内写满：lab-app1 {FILL_DIR}"
    (avail,) = [float(r["value"][1]) for r in query(f"node_filesystem_avail_bytes{{{where}}}")]
    (size,) = [float(r["value"][1]) for r in query(f"node_filesystem_size_bytes{{{where}}}")]
    assert 0 < avail < 0.4 * size, (avail, size)  # warned before it is full
    assert not [a for a in query('ALERTS{alertname="EnvcreditDiskFullIn1Day",instance="lab-app1"}')]
