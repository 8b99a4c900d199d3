"""OS patching on the lab (issue 4): patch-scan, patch, holds, reboots, rolling stop, report.

The local repository (lab/localrepo) offers envcredit-agent 1.1 (security),
envcredit-kernel-stub 1.1 (sets reboot-required) and envcredit-held 1.1 (held at 1.0).
Every test puts its hosts at the baseline first and restores it afterwards. Only app and
web hosts are patched; the database hosts are only scanned (read-only).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.common import run_opsctl
from helpers.lab import lab_run, newest_record, unreachable
from orchestrator.archive import Archive
from helpers.os_lab import pid1_start, restore_baseline, shell, versions

pytestmark = pytest.mark.lab

PATCHED = "lab-app1:lab-app2:lab-web1"
BASELINE = {"envcredit-agent": "1.0 install", "envcredit-kernel-stub": "1.0 install", "envcredit-held": "1.0 hold"}


@pytest.fixture
def baseline(lab_ready: list[str]) -> Iterator[None]:
    restore_baseline("all:!fleet")
    yield
    restore_baseline(PATCHED)


def test_patch_scan_lists_the_local_repository_updates(lab_archive: Path, lab_ready: list[str], baseline: None) -> None:
    before = versions("all:!fleet")
    for extra in ([], ["--check"]):
        rec = lab_run("patch-scan", "--limit", "all:!fleet", *extra)
        assert rec["status"] == "successful"
        assert rec["changes"] == [], "patch-scan is read-only"
        scans = rec["outputs"]["patch_scan"]
        assert sorted(scans) == lab_ready
        for host, scan in scans.items():
            ups = {u["name"]: u for u in scan["updates"] if u["name"].startswith("envcredit-")}
            assert sorted(ups) == ["envcredit-agent", "envcredit-held", "envcredit-kernel-stub"], (host, scan)
            assert (ups["envcredit-agent"]["current"], ups["envcredit-agent"]["candidate"]) == ("1.0", "1.1")
            assert ups["envcredit-agent"]["security"] is True
            assert ups["envcredit-kernel-stub"]["security"] is False
            assert ups["envcredit-held"]["held"] is True and ups["envcredit-agent"]["held"] is False
            assert {"name": "envcredit-held", "version": "1.0", "candidate": "1.1"} in scan["held"]
            assert scan["reboot_required"] is False
            assert scan["security"] >= 1 and scan["pending"] >= 2
            assert scan["last_patch"], "the baseline install is a patch date"
    assert versions("all:!fleet") == before, "the scan changed packages"

    # The compliance report renders the newest scan (every host has a security update pending).
    proc = run_opsctl("report", "patches", "--env", "lab", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["record"]["id"] == rec["id"]
    assert data["summary"]["hosts"] == len(lab_ready) and data["summary"]["compliant"] == 0
    assert all(h["security"] >= 1 and not h["compliant"] for h in data["hosts"])
    proc = run_opsctl("report", "patches", "--env", "lab", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    agent = [r for r in rows if r["package"] == "envcredit-agent"]
    assert sorted(r["host"] for r in agent) == lab_ready
    assert all(r["current"] == "1.0" and r["candidate"] == "1.1" and r["security"] == "True" for r in agent)
    for lang, word in (("en", "Held packages"), ("zh", "锁定的软件包")):
        proc = run_opsctl("report", "patches", "--env", "lab", "--format", "html", "--lang", lang)
        assert proc.returncode == 0 and word in proc.stdout and "envcredit-held 1.0" in proc.stdout
    assert run_opsctl("report", "patches", "--env", "staging").returncode == 2


def test_patch_applies_updates_keeps_holds_and_reboots_only_where_needed(
    lab_archive: Path, lab_ready: list[str], baseline: None
) -> None:
    # lab-app2 already has the kernel stub (its reboot done): it needs only the agent, no reboot.
    shell("lab-app2", "apt-get install -y -q envcredit-kernel-stub=1.1 && rm -f /run/reboot-required*")
    boots = pid1_start(PATCHED)

    # All three in one batch (the rolling order is the subject of the unreachable-host test).
    rec = lab_run("patch", "--limit", "web:app", "--ticket", "CHG-4", "-e", "os_patch_serial=3")
    assert rec["status"] == "successful", rec.get("failures")
    out = rec["outputs"]["patch"]
    assert sorted(out) == ["lab-app1", "lab-app2", "lab-web1"]
    for host in ("lab-app1", "lab-web1"):
        pk = {p["name"]: (p["before"], p["after"]) for p in out[host]["packages"]}
        assert pk == {"envcredit-agent": ("1.0", "1.1"), "envcredit-kernel-stub": ("1.0", "1.1")}, out[host]
        assert out[host]["reboot"] == {"policy": "auto", "required": True, "done": True, "pending": False}
    pk2 = {p["name"]: (p["before"], p["after"]) for p in out["lab-app2"]["packages"]}
    assert pk2 == {"envcredit-agent": ("1.0", "1.1")}
    assert out["lab-app2"]["reboot"]["done"] is False and out["lab-app2"]["reboot"]["required"] is False
    for host in out:
        assert {"name": "envcredit-held", "before": "1.0", "after": "1.0", "unchanged": True} in out[host]["kept"]
    assert out["lab-web1"]["checks"]["after"] == {"services": {"nginx": "active"}, "health_status": 200}

    now = versions(PATCHED)
    for host in ("lab-app1", "lab-app2", "lab-web1"):
        assert now[host] == {
            "envcredit-agent": "1.1 install",
            "envcredit-kernel-stub": "1.1 install",
            "envcredit-held": "1.0 hold",
        }, host
    after = pid1_start(PATCHED)
    assert after["lab-app1"] != boots["lab-app1"] and after["lab-web1"] != boots["lab-web1"], "not rebooted"
    assert after["lab-app2"] == boots["lab-app2"], "lab-app2 needed no reboot but was rebooted"

    # Nothing left to do: a second run changes nothing.
    again = lab_run("patch", "--limit", "web:app", "-e", "os_patch_serial=3")
    assert again["status"] == "successful" and again["changes"] == []
    assert all(h["packages"] == [] and h["reboot"]["done"] is False for h in again["outputs"]["patch"].values())
    assert Archive(lab_archive).verify().ok


def test_security_scope_and_no_reboot_policy(lab_archive: Path, lab_ready: list[str], baseline: None) -> None:
    rec = lab_run("patch", "--limit", "lab-app1", "-e", "os_patch_scope=security", "-e", "os_patch_reboot=never")
    pk = {p["name"]: (p["before"], p["after"], p["security"]) for p in rec["outputs"]["patch"]["lab-app1"]["packages"]}
    assert pk == {"envcredit-agent": ("1.0", "1.1", True)}
    assert versions("lab-app1")["lab-app1"]["envcredit-kernel-stub"] == "1.0 install"
    # All updates, reboot forbidden: the reboot stays pending and is reported so.
    boot = pid1_start("lab-app1")
    rec = lab_run("patch", "--limit", "lab-app1", "-e", "os_patch_reboot=never")
    reboot = rec["outputs"]["patch"]["lab-app1"]["reboot"]
    assert reboot == {"policy": "never", "required": True, "done": False, "pending": True}
    assert pid1_start("lab-app1") == boot
    scan = lab_run("patch-scan", "--limit", "lab-app1")
    assert scan["outputs"]["patch_scan"]["lab-app1"]["reboot_required"] is True


def test_unreachable_host_stops_the_rolling_update(lab_archive: Path, lab_ready: list[str], baseline: None) -> None:
    # Hosts go one at a time in sorted order: lab-app1, lab-app2 (unreachable), lab-web1.
    with unreachable("lab-app2"):
        proc = run_opsctl(
            "run", "patch", "--env", "lab", "--limit", "web:app", "-e", "os_patch_reboot=never", timeout=600
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = newest_record(lab_archive)
    assert rec["status"] == "failed"
    assert rec["hosts"]["lab-app2"]["unreachable"] == 1
    assert sorted(rec["outputs"]["patch"]) == ["lab-app1"]
    assert "lab-web1" not in rec["hosts"] or rec["hosts"]["lab-web1"]["ok"] == 0
    assert rec["targets"] == ["lab-app1", "lab-app2", "lab-web1"]
    now = versions(PATCHED)
    assert now["lab-app1"]["envcredit-agent"] == "1.1 install"
    assert now["lab-web1"] == BASELINE and now["lab-app2"] == BASELINE, "hosts after the failure were touched"


def test_backup_precheck_blocks_patching_without_a_fresh_verified_backup(
    lab_archive: Path, tmp_path: Path, lab_ready: list[str], baseline: None
) -> None:
    # The database hosts are not patched in tests: the check is pointed at an app host instead.
    # The db_backup store's layout: <env>/<host>/<backup id>/manifest.json + status.json.
    store = tmp_path / "backups"

    def stored_backup(backup_id: str, ended: str, verified: bool) -> None:
        folder = store / "lab" / "lab-app1" / backup_id
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(
            json.dumps({"backup_id": backup_id, "host": "lab-app1", "started": ended, "ended": ended}), encoding="utf-8"
        )
        (folder / "status.json").write_text(json.dumps({"verified": {"ok": verified, "at": ended}}), encoding="utf-8")

    stored_backup("old", "2020-01-01T00:00:00+00:00", verified=True)
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(
        json.dumps(
            {
                "os_patch_backup_check": True,
                "os_patch_backup_groups": ["app"],
                "os_patch_backup_store": str(store),
                "os_patch_backup_max_age_h": 6,
                "os_patch_reboot": "never",
                "os_patch_backup_fresh": False,
            }
        ),
        encoding="utf-8",
    )
    proc = run_opsctl("run", "patch", "--env", "lab", "--limit", "lab-app1", "-e", f"@{vars_file}", timeout=600)
    assert proc.returncode == 1, proc.stdout
    rec = newest_record(lab_archive)
    assert any("no verified backup" in str(f["msg"]) for f in rec["failures"]), rec["failures"]
    assert versions("lab-app1")["lab-app1"] == BASELINE

    from datetime import UTC, datetime

    stored_backup("fresh-unverified", datetime.now(UTC).isoformat(), verified=False)
    proc = run_opsctl("run", "patch", "--env", "lab", "--limit", "lab-app1", "-e", f"@{vars_file}", timeout=600)
    assert proc.returncode == 1, "an unverified backup must not satisfy the pre-check"
    stored_backup("fresh", datetime.now(UTC).isoformat(), verified=True)
    rec = lab_run("patch", "--limit", "lab-app1", "-e", f"@{vars_file}")
    assert [p["name"] for p in rec["outputs"]["patch"]["lab-app1"]["packages"]] == [
        "envcredit-agent",
        "envcredit-kernel-stub",
    ]


def test_database_host_without_a_verified_backup_gets_a_fresh_one_first(
    lab_archive: Path, lab_ready: list[str], tmp_path: Path
) -> None:
    """os_patch_backup_fresh: no verified backup young enough -> backup + backup-verify, then patch."""
    restore_baseline("lab-db1")
    store = tmp_path / "backups"
    (store / "lab").mkdir(parents=True)
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(
        json.dumps(
            {
                "os_patch_backup_check": True,
                "os_patch_backup_store": str(store),
                "os_patch_backup_max_age_h": 6,
                "db_backup_store_dir": str(store / "lab"),
                "db_restore_store_dir": str(store / "lab"),
                "os_patch_reboot": "never",
                "os_patch_only": ["envcredit-agent"],
            }
        ),
        encoding="utf-8",
    )
    try:
        check = lab_run("patch", "--limit", "lab-db1", "-e", f"@{vars_file}", "--check")
        assert check["status"] == "successful"
        assert not list((store / "lab").rglob("manifest.json")), "check mode takes no backup"

        rec = lab_run("patch", "--limit", "lab-db1", "-e", f"@{vars_file}")
        backup = rec["outputs"]["patch"]["lab-db1"]["backup"]
        assert backup["ok"] is True and backup["fresh"] is True and backup["age_h"] < 1, backup
        manifests = list((store / "lab" / "lab-db1").rglob("manifest.json"))
        assert len(manifests) == 1
        status = json.loads((manifests[0].parent / "status.json").read_text(encoding="utf-8"))
        assert status["verified"]["ok"] is True, "the fresh backup was verified by restoring it"
        assert versions("lab-db1")["lab-db1"]["envcredit-agent"] == "1.1 install"

        # A second patch run finds that backup young enough and takes none.
        lab_run("patch", "--limit", "lab-db1", "-e", f"@{vars_file}")
        assert len(list((store / "lab" / "lab-db1").rglob("manifest.json"))) == 1
    finally:
        restore_baseline("lab-db1")
