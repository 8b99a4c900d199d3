"""The wait for a physical backup started in the background (roles/db_backup/files/envcredit_async_wait.py),
without the lab: the result file as Ansible's async wrapper writes it (a placeholder with
``started`` while the job runs, then the module's result renamed into place)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from helpers.common import REPO, load_source

TOOL = REPO / "roles" / "db_backup" / "files" / "envcredit_async_wait.py"


tool = load_source(TOOL, "envcredit_async_wait")


def jwrite(path: Path, data: dict[str, Any]) -> None:
    """As the async wrapper writes: a temporary file renamed over the result file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.rename(tmp, path)


def run(argv: list[str]) -> tuple[int, dict[str, Any]]:
    """As the role runs it: ``python3 -c <the file's text> ARGS``."""
    proc = subprocess.run(
        [sys.executable, "-c", TOOL.read_text(encoding="utf-8"), *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}


def test_it_returns_the_jobs_result_once_the_placeholder_is_replaced_and_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j1.1"
    jwrite(path, {"started": True, "finished": False, "ansible_job_id": "j1.1"})
    result = {"rc": 0, "stdout": "", "stderr": "", "delta": "0:00:01.500000", "changed": True}
    later = threading.Timer(0.5, jwrite, (path, result))
    later.start()
    started = time.monotonic()
    rc, out = run([str(path), "30", sys.executable, "-c", "print('read after')"])
    waited = time.monotonic() - started
    later.join()
    assert rc == 0 and out["job"] == result
    assert out["elapsed_s"] == 1.5 and tool.seconds("1:02:03.250000") == 3723.25
    # the command after the job: run at once, its output whole
    assert out["then"] == {"rc": 0, "stdout": "read after\n", "stderr": ""}
    assert not path.exists()
    assert 0.5 <= waited < 10  # it waited for the result, not for the timeout


@pytest.mark.parametrize(
    "result",
    [
        {"rc": 82, "stdout": "", "stderr": "ERROR: [082] WAL segment was not archived", "failed": True},
        # the async wrapper's own result when it stopped the job at its time limit
        {"failed": True, "msg": "Timeout exceeded", "child_pid": 4242},
    ],
)
def test_a_failed_job_is_returned_as_it_is_and_the_command_after_it_does_not_run(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    path = tmp_path / "j2.1"
    jwrite(path, result)
    marker = tmp_path / "ran"
    rc, out = run([str(path), "30", "touch", str(marker)])
    assert rc == 0 and out == {"job": result, "then": None}
    assert not marker.exists() and not path.exists()


def test_no_result_by_the_timeout_is_a_failure_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "j3.1"
    jwrite(path, {"started": True, "finished": False, "ansible_job_id": "j3.1"})
    out = tool.wait(str(path), 0.3, poll_s=0.05)
    assert out["failed"] is True and out["rc"] == -1 and "0.3 s" in out["msg"]


def test_a_result_file_not_written_yet_or_half_written_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "j4.1"
    path.write_text('{"rc": 0, "std', encoding="utf-8")  # not JSON yet
    threading.Timer(0.3, jwrite, (path, {"rc": 0, "stdout": "ok"})).start()
    assert tool.wait(str(path), 10, poll_s=0.05) == {"rc": 0, "stdout": "ok"}
    missing = tmp_path / "j5.1"
    threading.Timer(0.3, jwrite, (missing, {"rc": 1})).start()
    assert tool.wait(str(missing), 10, poll_s=0.05) == {"rc": 1}


def test_without_its_arguments_it_says_how_to_call_it() -> None:
    proc = subprocess.run([sys.executable, str(TOOL)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "usage:" in proc.stderr and proc.stdout == ""
