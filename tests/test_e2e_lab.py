"""End to end on the lab: `opsctl run ping|inspect --env lab` through the real CLI process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.common import run_opsctl
from helpers.lab import unreachable
from orchestrator.archive import Archive

pytestmark = pytest.mark.lab


def _run_json(*args: str) -> dict:
    proc = run_opsctl(*args, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def test_ping_records_every_lab_host(lab_archive: Path, lab_ready: list[str]) -> None:
    rec = _run_json("run", "ping", "--env", "lab", "--limit", "all:!fleet")
    assert rec["status"] == "successful" and rec["rc"] == 0
    assert sorted(rec["hosts"]) == lab_ready == rec["targets"]
    assert all(h["failed"] == 0 and h["unreachable"] == 0 and h["changed"] == 0 for h in rec["hosts"].values())
    assert rec["changes"] == []
    facts = rec["outputs"]["ping"]
    assert sorted(facts) == lab_ready
    for host, f in facts.items():
        assert "Debian" in json.dumps(f), (host, f)
    assert rec["inventory"] == "inventories/lab"
    assert any(f["path"] == "inventories/lab/hosts.yml" for f in rec["files"]["inventory"])
    assert rec["source"]["commit"]


def test_inspect_is_read_only_and_reports_metrics(lab_archive: Path, lab_ready: list[str]) -> None:
    for extra in ([], ["--check"]):
        rec = _run_json("run", "inspect", "--env", "lab", "--limit", "all:!fleet", *extra)
        assert rec["status"] == "successful"
        assert sorted(rec["hosts"]) == lab_ready
        assert rec["changes"] == [], "inspect is read-only: no task may change anything"
        assert sum(h["changed"] for h in rec["hosts"].values()) == 0
        results = rec["outputs"]["inspect"]
        assert sorted(results) == lab_ready
    archive = Archive(lab_archive)
    assert archive.verify().ok
    assert len(archive.list(op="inspect", env="lab")) == 2
    assert len(archive.list(host="lab-db1")) == 2


def test_unreachable_host_is_a_failed_run_with_a_record(lab_archive: Path, lab_ready: list[str]) -> None:
    # sshd stopped on the host: it drops out as unreachable.
    with unreachable("lab-web1"):
        proc = run_opsctl("run", "ping", "--env", "lab", "--limit", "lab-web1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rec = Archive(lab_archive).get(Archive(lab_archive).list()[0]["id"])
    assert rec["status"] == "failed"
    assert rec["hosts"]["lab-web1"]["unreachable"] == 1
    assert rec["failures"] and rec["failures"][0]["unreachable"] is True
