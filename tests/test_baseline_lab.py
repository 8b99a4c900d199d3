"""Baseline check on the lab (issue 8), read-only: `opsctl run baseline-check --env lab`
(normal and --check) changes nothing, reports every control of every host with a status
and a reason, treats what cannot act in a container as not applicable (never passed),
applies waivers, and `opsctl report baseline` renders the record.

The lab hosts are not hardened here (other engineers use them): the full apply flow is
tests/test_baseline_lab_apply.py, enabled with OPSCTL_BASELINE_LAB=1.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from helpers.common import run_opsctl

pytestmark = pytest.mark.lab

CONTROLS = [
    "SSH-01",
    "SSH-02",
    "SSH-03",
    "SSH-04",
    "SSH-05",
    "SSH-06",
    "ACC-01",
    "ACC-02",
    "ACC-03",
    "ACC-04",
    "ACC-05",
    "ACC-06",
    "AUD-01",
    "AUD-02",
    "AUD-03",
    "KRN-01",
    "NET-01",
    "SRV-01",
    "SRV-02",
    "SRV-03",
]
CONTAINER_NA = {"AUD-01", "AUD-02", "KRN-01", "SRV-03"}


def _run_json(*args: str) -> dict[str, Any]:
    proc = run_opsctl(*args, "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout[-3000:]
    return json.loads(proc.stdout)


def test_baseline_check_is_read_only_and_complete(lab_archive: Path, lab_ready: list[str], tmp_path: Path) -> None:
    # Lynis (about 30 s a host) runs in the apply flow (test_baseline_lab_apply.py: before and
    # after, the same tasks as here); these passes check the controls alone.
    quick = ["-e", "baseline_lynis=false"]
    for extra in (quick, ["--check", *quick]):
        rec = _run_json("run", "baseline-check", "--env", "lab", "--limit", "all:!fleet", *extra)
        assert rec["status"] == "successful"
        assert rec["changes"] == [], "baseline-check is read-only"
        assert sum(h["changed"] for h in rec["hosts"].values()) == 0
        results = rec["outputs"]["baseline"]
        assert sorted(results) == lab_ready
        for host, res in results.items():
            controls = {c["id"]: c for c in res["controls"]}
            assert list(controls) == CONTROLS, host
            assert res["container"] is True and res["action"] == "check"
            for c in controls.values():
                assert c["status"] in ("pass", "fail", "waived", "not_applicable"), (host, c)
                assert c["reason"] and c["ref"].startswith("8.1."), (host, c)
                assert c["zh"] and c["en"]
            for cid in CONTAINER_NA:
                assert controls[cid]["status"] == "not_applicable", (host, controls[cid])
                assert "container" in controls[cid]["reason"]
            # the lab hosts run with NET_ADMIN: the firewall control is evaluated, never
            # "not applicable" (before `baseline` it fails, after it passes)
            assert controls["NET-01"]["status"] in ("pass", "fail", "waived"), controls["NET-01"]
            # the lab image already forbids root login (sshd_config.d drop-in)
            assert controls["SSH-02"]["status"] == "pass"
            assert res["summary"]["failed"] == sum(1 for c in controls.values() if c["status"] == "fail")
            assert res["lynis"] == {"installed": False, "message": "lynis not run (baseline_lynis: false)"}

    html = tmp_path / "baseline.zh.html"
    proc = run_opsctl("report", "baseline", "--env", "lab", "--lang", "zh", "--format", "html", "--out", str(html))
    assert proc.returncode == 0, proc.stderr
    text = html.read_text(encoding="utf-8")
    assert "安全基线合规证据报告" in text and "不适用" in text and rec["id"] in text
    proc = run_opsctl("report", "baseline", "--env", "lab", "--lang", "en", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == len(lab_ready) * len(CONTROLS)
    assert {r["record_id"] for r in rows} == {rec["id"]}


def test_waivers_turn_failures_into_waived(lab_archive: Path, lab_ready: list[str], tmp_path: Path) -> None:
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(
        "baseline_waivers:\n"
        "  - {control: SSH-04, hosts: [lab-app1], approved_by: test officer, reason: legacy client,"
        " until: '2099-12-31', ticket: CHG-T1}\n"
        "  - {control: SSH-05, groups: [db], approved_by: test officer, reason: expired one, until: '2000-01-01'}\n"
        "  - {control: SSH-02, groups: [app], approved_by: test officer, reason: never hides a pass,"
        " until: '2099-12-31'}\n",
        encoding="utf-8",
    )
    rec = _run_json(
        "run",
        "baseline-check",
        "--env",
        "lab",
        "--limit",
        "lab-app1:lab-app2:lab-db1",
        "-e",
        f"@{waivers}",
        "-e",
        "baseline_lynis=false",
    )  # Lynis: the test above
    res = rec["outputs"]["baseline"]
    ctl = {h: {c["id"]: c for c in r["controls"]} for h, r in res.items()}
    assert ctl["lab-app1"]["SSH-04"]["status"] == "waived"
    assert ctl["lab-app1"]["SSH-04"]["waiver"]["approved_by"] == "test officer"
    assert ctl["lab-app2"]["SSH-04"]["status"] == "fail"  # the waiver names lab-app1 only
    assert ctl["lab-db1"]["SSH-05"]["status"] == "fail"
    assert "waiver expired on 2000-01-01" in ctl["lab-db1"]["SSH-05"]["reason"]
    assert ctl["lab-app1"]["SSH-02"]["status"] == "pass"
