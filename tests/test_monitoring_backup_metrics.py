"""The monitoring role's backup textfile (plugins/modules/monitoring_backup_metrics.py), run
as the real Ansible module on the controller against backup stores laid out like db_backup's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from helpers.common import REPO, VENV_BIN


def _backup(store: Path, host: str, bid: str, ended: str, verified: bool = False) -> None:
    folder = store / host / bid
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"backup_id": bid, "ended": ended}), encoding="utf-8")
    if verified:
        (folder / "status.json").write_text(json.dumps({"verified": {"ok": True}}), encoding="utf-8")


def metrics(store: Path, hosts: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-o",
            "-M",
            str(REPO / "plugins" / "modules"),
            "-m",
            "monitoring_backup_metrics",
            "-a",
            json.dumps({"store": str(store), "hosts": hosts.split(",")}),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0", "HOME": str(store.parent)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout.split("=>", 1)[1]))


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
