"""Backup faults on the lab, for real: a backup that cannot start leaves nothing behind.

Each test has its own store and archive; the live databases are only read.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import run_opsctl
from test_db_transfer_lab import on_host, stdout_of

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
