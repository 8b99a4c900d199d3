"""The controller's backup store laid out as role db_backup writes it (the rules:
plugins/module_utils/backup_store.py), and the collection's modules run on the controller as
Ansible runs them there."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .common import REPO, VENV_BIN


def write_backup(
    store: Path, host: str, bid: str, ended: str, *, verified: bool | None = None, at: str = "", committed: bool = True
) -> Path:
    """One backup of ``host`` in ``store``: manifest.json as the database tool writes it and, once
    ``committed``, status.json as db_backup_store's commit writes it (``verified`` None until a
    restore test marks it). Not committed: the ``<id>.partial`` copy a failed or unfinished copy
    leaves, manifest.json only."""
    folder = store / host / (bid if committed else f"{bid}.partial")
    folder.mkdir(parents=True)
    manifest = {"backup_id": bid, "host": host, "started": ended, "ended": ended}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if committed:
        mark = None if verified is None else {"ok": verified, "at": at or ended, "record_id": "r"}
        status = {"backup_id": bid, "state": "copied", "record_id": "r", "verified": mark}
        (folder / "status.json").write_text(json.dumps(status), encoding="utf-8")
    return folder


def run_module_raw(name: str, args: dict[str, Any], home: Path) -> subprocess.CompletedProcess[str]:
    """``envcredit.ops.<name>`` run by ``ansible localhost`` with the repository's configuration
    (its collection path); the finished process, whatever its exit code."""
    return subprocess.run(
        [
            str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-o",
            "-m", f"envcredit.ops.{name}", "-a", json.dumps(args),
        ],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0", "HOME": str(home)},
    )  # fmt: skip


def run_module(name: str, args: dict[str, Any], home: Path) -> dict[str, Any]:
    """The module's result (see :func:`run_module_raw`); the module must succeed."""
    proc = run_module_raw(name, args, home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout.split("=>", 1)[1]))
