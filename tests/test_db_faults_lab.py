"""Backup faults on the lab, for real: a backup that cannot start leaves nothing behind.

Each test has its own store and archive; the live databases are only read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import VENV_BIN, run_opsctl
from test_db_transfer_lab import checksums, on_host, stdout_of, tools  # noqa: F401  (tools: a fixture)

pytestmark = pytest.mark.lab


def opsctl(*args: str) -> tuple[int, dict[str, Any]]:
    proc = run_opsctl("run", *args, "--env", "lab", "--json", timeout=600)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def store(lab_archive: Path) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="envcredit-test-store-"))
    (root / "lab").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def intact(backup: Path) -> bool:
    manifest = json.loads((backup / "manifest.json").read_text())
    return all(hashlib.sha256((backup / f["path"]).read_bytes()).hexdigest() == f["sha256"]
               for f in manifest["files"])


@pytest.mark.parametrize("host", ["lab-db1", "lab-db2"])
def test_not_enough_free_space_is_refused_before_starting(store: Path, host: str) -> None:
    vars_ = ["-e", f"db_backup_store_dir={store / 'lab'}"]
    rc, rec = opsctl("backup", "--limit", host, *vars_)
    assert rc == 0, rec.get("failures")
    previous = rec["outputs"]["backup"][host]["backup_id"]
    # A reserve larger than any disk: the free-space check must refuse before anything is written.
    rc, rec = opsctl("backup", "--limit", host, "-e", "db_backup_min_free_mb=100000000", *vars_)
    assert rc != 0
    msg = " ".join(f["msg"] for f in rec["failures"])
    assert "not enough free space" in msg, msg
    assert "backup" not in rec["outputs"]
    assert [p.name for p in (store / "lab" / host).iterdir()] == [previous]
    assert intact(store / "lab" / host / previous)
    on_host_dir = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
    assert ".partial" not in on_host_dir and previous in on_host_dir
    listed = run_opsctl("backups", "list", "--store", str(store), "--host", host, "--json")
    assert [r["backup_id"] for r in json.loads(listed.stdout)] == [previous]


def test_server_killed_mid_backup_leaves_nothing_partial(tools: None, store: Path) -> None:
    """MariaDB (lab-db2, which the application does not use) is killed while the backup runs.

    The backup is held mid-way by a table lock from another session (so the kill cannot come too
    early or too late), the server is killed with SIGKILL and started again."""
    host = "lab-db2"
    vars_ = ["-e", f"db_backup_store_dir={store / 'lab'}"]
    rc, rec = opsctl("backup", "--limit", host, *vars_)
    assert rc == 0, rec.get("failures")
    previous = rec["outputs"]["backup"][host]["backup_id"]
    before = checksums(host)
    holder = on_host(host, ["systemd-run", "--unit=envcredit-test-lock", "--collect", "mariadb", "envcredit", "-e",
                            "LOCK TABLES ratings WRITE; SELECT SLEEP(120)"])
    assert holder.returncode == 0, holder.stdout + holder.stderr
    backup = subprocess.Popen(
        [str(VENV_BIN / "opsctl"), "run", "backup", "--limit", host, *vars_,
         "--env", "lab", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = stdout_of(on_host(host, ["mariadb", "-NB", "-e",
                                             "SELECT count(*) FROM information_schema.processlist "
                                             "WHERE state LIKE 'Waiting for table metadata lock'"]))
            if state.strip() not in ("", "0"):
                break
            assert backup.poll() is None, backup.communicate()
            time.sleep(1)
        else:
            pytest.fail("the backup never reached the locked table")
        partial = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
        assert ".partial" in partial  # really mid-backup
        killed = on_host(host, ["systemctl", "kill", "--signal=KILL", "mariadb.service"])
        assert killed.returncode == 0, killed.stdout
        out, err = backup.communicate(timeout=300)
    finally:
        if backup.poll() is None:
            backup.kill()
        on_host(host, ["systemctl", "stop", "envcredit-test-lock"])
        on_host(host, ["systemctl", "start", "mariadb.service"])
        deadline = time.monotonic() + 120
        while on_host(host, ["mariadb", "-NB", "-e", "SELECT 1"]).returncode != 0 and time.monotonic() < deadline:
            time.sleep(2)
    assert backup.returncode != 0
    rec = json.loads(out)
    assert rec["failures"], rec
    assert [p.name for p in (store / "lab" / host).iterdir()] == [previous]
    assert intact(store / "lab" / host / previous)
    left = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
    assert ".partial" not in left
    assert checksums(host) == before
