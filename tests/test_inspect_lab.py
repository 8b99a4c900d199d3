"""The daily inspection on the lab with injected conditions, the report (zh/en, md/json/html,
screenshotted in headless Chromium) and the disk forecast over real inspections while a file grows."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helpers.common import REPO, run_opsctl

pytestmark = pytest.mark.lab

PORTS = {
    "lab-web1": 2221,
    "lab-app1": 2222,
    "lab-app2": 2223,
    "lab-db1": 2224,
    "lab-db2": 2225,
    "lab-mon1": 2226,
    "lab-backup1": 2227,
}
TAG = "opsctl-test-" + uuid.uuid4().hex[:6]


def sh(host: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root on a lab host over SSH (ops + sudo)."""
    cmd = [
        "ssh",
        "-i",
        str(REPO / "var/lab/ssh/id_ed25519"),
        "-p",
        str(PORTS[host]),
        "-o",
        f"UserKnownHostsFile={REPO / 'var/lab/known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "ops@127.0.0.1",
        "sudo bash -s",
    ]
    proc = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def injected(tmp_path: Path, lab_archive: Path) -> Iterator[dict[str, object]]:
    """A stopped (enabled) service on lab-app2, an expiring certificate on lab-web1, a stale backup."""
    unit = f"{TAG}.service"
    sh(
        "lab-app2",
        f"""
cat > /etc/systemd/system/{unit} <<'EOF2'
[Unit]
Description=opsctl test service (stopped on purpose)
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
EOF2
systemctl daemon-reload && systemctl enable {unit} >/dev/null 2>&1""",
    )
    cert = f"/etc/ssl/{TAG}/expiring.pem"
    sh(
        "lab-web1",
        f"""mkdir -p /etc/ssl/{TAG} && openssl req -x509 -newkey rsa:2048 -nodes -days 3 \
 -subj /CN=expiring.lab -keyout /etc/ssl/{TAG}/expiring.key -out {cert} 2>/dev/null""",
    )
    store = tmp_path / "backups"
    folder = store / "lab-db1" / "20261101T020000Z-lab-db1"
    folder.mkdir(parents=True)
    ended = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).isoformat()
    # The db_backup store's layout: manifest.json + status.json (verified by backup-verify).
    (folder / "manifest.json").write_text(
        json.dumps({"backup_id": folder.name, "host": "lab-db1", "started": ended, "ended": ended}), encoding="utf-8"
    )
    (folder / "status.json").write_text(json.dumps({"verified": {"ok": True, "at": ended}}), encoding="utf-8")
    extra = tmp_path / "extra.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "inspect_services": ["nginx", "envcredit", "postgresql", "mariadb", TAG],
                "inspect_tls_cert_paths": [cert],
                "inspect_backup_store": str(store),
                # the lab's root filesystem is the machine's: a low threshold stands in for a full disk
                "inspect_disk_warn_pct": 1,
                "inspect_disk_crit_pct": 2,
            }
        ),
        encoding="utf-8",
    )
    try:
        yield {"unit": unit, "cert": cert, "extra": extra, "archive": lab_archive}
    finally:
        sh(
            "lab-app2",
            f"systemctl disable --now {unit} >/dev/null 2>&1; rm -f /etc/systemd/system/{unit};"
            " systemctl daemon-reload",
            check=False,
        )
        sh("lab-web1", f"rm -rf /etc/ssl/{TAG}", check=False)


def _report(*args: str) -> str:
    proc = run_opsctl("report", "inspect", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_injected_conditions_become_findings_in_the_report(injected: dict, tmp_path: Path) -> None:
    proc = run_opsctl(
        "run",
        "inspect",
        "--env",
        "lab",
        "--limit",
        "lab-web1:lab-app2:lab-db1",
        "-e",
        f"@{injected['extra']}",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    rec = json.loads(proc.stdout)
    assert rec["changes"] == [] and sum(h["changed"] for h in rec["hosts"].values()) == 0
    out = rec["outputs"]["inspect"]
    assert sorted(out) == ["lab-app2", "lab-db1", "lab-web1"]
    # the real state is read, not invented
    assert any(s["name"] == "nginx" and s["active"] for s in out["lab-web1"]["services"])
    assert any(
        d["engine"] == "postgresql" and d["status"] == "ok" and d["databases"] for d in out["lab-db1"]["databases"]
    )
    assert out["lab-app2"]["backup"]["status"] == "not_applicable"
    # Each host runs only its role's services, and the read-only probe started none
    # (connecting to a socket-activated MariaDB would start it on every host).
    role = {"lab-web1": "nginx", "lab-app2": "envcredit", "lab-db1": "postgresql"}
    for host, state in out.items():
        running = {s["name"] for s in state["services"] if s["active"]}
        assert running <= {role[host]}, f"{host} runs {running - {role[host]}}, which is not its role's"
        assert {d["engine"] for d in state["databases"] if d["status"] == "ok"} <= {"postgresql"} & {role[host]}
        active = sh(host, "systemctl is-active mariadb.service mariadb.socket || true").stdout.split()
        assert active == ["inactive", "inactive"], (host, active)

    data = json.loads(_report("--latest", "--format", "json", "--lang", "en"))
    found = {(f["host"], f["check"]): f for f in data["findings"]}
    svc = found[("lab-app2", "service")]
    assert svc["severity"] == "critical" and svc["target"] == TAG and svc["action"]
    cert = found[("lab-web1", "certificate")]
    assert cert["severity"] == "critical" and cert["target"] == injected["cert"] and 2 < cert["value"] <= 3
    backup = found[("lab-db1", "backup")]
    assert backup["severity"] == "critical" and backup["value"] >= 72
    assert found[("lab-web1", "disk")]["severity"] == "critical"
    assert data["overall"] == "critical"

    for lang, words in (
        ("en", ["Daily inspection report", "Recommended action", "TLS certificate"]),
        ("zh", ["日常巡检报告", "建议措施", "网站证书", "服务状态", "数据库备份"]),
    ):
        md = _report("--record", rec["id"], "--format", "md", "--lang", lang)
        for word in words + [TAG, injected["cert"]]:
            assert word in md, (lang, word)

    html_path = tmp_path / "inspect.zh.html"
    _report("--record", rec["id"], "--lang", "zh", "--out", str(html_path))
    html = html_path.read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in html and "<svg" in html and "严重" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no external assets
    _screenshot(html_path, tmp_path)


def _screenshot(html: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(chromium).exists(), "chromium is not installed (the Makefile's apt step installs it)"
    png = tmp_path / "inspect.png"
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chr'}",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 30_000, "the screenshot is (nearly) blank"
    shutil.copy(png, REPO / "var" / "inspect-report-screenshot.png") if os.environ.get("KEEP_SCREENSHOT") else None


def test_disk_forecast_over_real_inspections_while_a_file_grows(lab_archive: Path) -> None:
    grow = f"/tmp/{TAG}.fill"
    try:
        for step in range(3):
            sh("lab-app2", f"head -c {(step + 1) * 200}M /dev/zero > {grow}")
            proc = run_opsctl("run", "inspect", "--env", "lab", "--limit", "lab-app2")
            assert proc.returncode == 0, proc.stderr + proc.stdout
    finally:
        sh("lab-app2", f"rm -f {grow}", check=False)
    data = json.loads(_report("--latest", "--env", "lab", "--format", "json", "--history", "3"))
    assert data["history"]["runs"] == 3
    row = next(r for r in data["forecasts"]["disk"] if r["host"] == "lab-app2" and r["mount"] == "/tmp")
    assert row["status"] == "ok" and row["slope_pct_per_day"] > 0 and row["points"] == 3
    assert row["days_left"] < 3  # a growth of ~1 %/10 s fills the disk within the day
    forecast = [f for f in data["findings"] if f["check"] == "disk_forecast" and f["target"] == "/tmp"]
    assert forecast and forecast[0]["severity"] == "critical" and forecast[0]["forecast"] is True
    # the current usage itself is far from any threshold: the finding comes from the forecast only
    assert not [f for f in data["findings"] if f["check"] == "disk" and f["target"] == "/tmp"]
