#!/usr/bin/python3
"""Wait for a job Ansible started in the background (``async``, ``poll: 0``) and print its result.

    envcredit_async_wait.py RESULTS_FILE TIMEOUT_S [COMMAND ...]

Run by role db_backup's tasks/physical_wait.yml as ``python3 -c <this file's text>`` on the host
that runs the physical backup: one round trip that returns within 0.2 s of the job's end, not one
``async_status`` poll a second and a clean-up. Ansible's async wrapper keeps a placeholder with
the key ``started`` in RESULTS_FILE while the job runs and replaces it (renamed into place) with
the module's result when it ends, or with ``{"failed": true, "msg": "Timeout exceeded"}`` when
it stopped the job at its time limit. Prints one JSON object:

    {"job": the job's result (the command module's: rc, stdout, stderr, delta, ...),
     "then": {"rc", "stdout", "stderr"} of COMMAND, run at once when the job ended with rc 0,
             or null,
     "elapsed_s": the job's own time in seconds (its "delta", H:MM:SS.ffffff; absent without)}

RESULTS_FILE is removed. No result after TIMEOUT_S seconds: "job" says so (rc -1, failed).
Exit 0 in every case: the caller reads "job" and "then".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

POLL_S = 0.2


def wait(path: str, timeout_s: float, poll_s: float = POLL_S) -> dict[str, Any]:
    """The job's result once RESULTS_FILE holds it (no ``started`` key), or a failure at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with open(path, encoding="utf-8") as f:
                result = json.load(f)
            if isinstance(result, dict) and "started" not in result:
                return result
        except (OSError, ValueError):
            pass  # not written yet
        if time.monotonic() > deadline:
            return {"failed": True, "rc": -1, "msg": f"no result from the background job after {timeout_s:g} s"}
        time.sleep(poll_s)


def seconds(delta: str) -> float:
    """The command module's ``delta`` (``H:MM:SS.ffffff``) in seconds."""
    hours, minutes, secs = delta.split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(secs), 3)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: envcredit_async_wait.py RESULTS_FILE TIMEOUT_S [COMMAND ...]", file=sys.stderr)
        return 2
    path, timeout_s, command = argv[0], float(argv[1]), argv[2:]
    result = wait(path, timeout_s)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    then = None
    if command and result.get("rc") == 0:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        then = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    out: dict[str, Any] = {"job": result, "then": then}
    if isinstance(result.get("delta"), str):
        out["elapsed_s"] = seconds(result["delta"])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
