"""The monitoring role's backup textfile (plugins/modules/monitoring_backup_metrics.py), run
as the real Ansible module on the controller against backup stores laid out like db_backup's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.store import run_module, write_backup


def _backup(store: Path, host: str, bid: str, ended: str, verified: bool = False, committed: bool = True) -> None:
    write_backup(store, host, bid, ended, verified=True if verified else None, committed=committed)


def metrics(store: Path, hosts: str) -> dict[str, Any]:
    return run_module("monitoring_backup_metrics", {"store": str(store), "hosts": hosts.split(",")}, store.parent)


def test_newest_and_newest_verified_per_host(tmp_path: Path) -> None:
    store = tmp_path / "backups"
    _backup(store, "db1", "a", "2026-11-27T02:00:00+00:00", verified=True)
    _backup(store, "db1", "b", "2026-11-28T02:00:00+00:00")
    result = metrics(store, "db1,db2")
    lines = result["content"].splitlines()
    assert "envcredit_backup_store_present 1" in lines
    assert 'envcredit_backup_newest_timestamp_seconds{host="db1"} 1795831200' in lines
    assert 'envcredit_backup_verified_newest_timestamp_seconds{host="db1"} 1795744800' in lines
    assert 'envcredit_backup_count{host="db1"} 2' in lines
    # a host without any backup: 0, so its age is huge and the alert fires
    assert 'envcredit_backup_newest_timestamp_seconds{host="db2"} 0' in lines
    assert 'envcredit_backup_verified_count{host="db2"} 0' in lines
    assert result["changed"] is False


def test_same_store_same_text_and_no_store(tmp_path: Path) -> None:
    store = tmp_path / "backups"
    _backup(store, "db1", "a", "2026-11-28T02:00:00+00:00", verified=True)
    assert metrics(store, "db1")["content"] == metrics(store, "db1")["content"]
    missing = metrics(tmp_path / "nowhere", "db1")
    assert missing["content"].splitlines()[-1] == "envcredit_backup_store_present 0"
    assert "envcredit_backup_newest_timestamp_seconds" not in missing["content"]


def test_a_failed_copy_keeps_the_backup_age_growing(tmp_path: Path) -> None:
    """The copy of the night that failed its checksums stays as ``<id>.partial``: it is no backup,
    so the newest backup's time stays the night before and the age alert can fire."""
    store = tmp_path / "backups"
    _backup(store, "db1", "a", "2026-11-27T02:00:00+00:00", verified=True)
    _backup(store, "db1", "b", "2026-11-28T02:00:00+00:00", committed=False)
    lines = metrics(store, "db1")["content"].splitlines()
    assert 'envcredit_backup_newest_timestamp_seconds{host="db1"} 1795744800' in lines
    assert 'envcredit_backup_count{host="db1"} 1' in lines
