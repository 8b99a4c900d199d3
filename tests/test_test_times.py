"""ci/test_times.py: the time table `make test` prints from what its parts left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.common import REPO

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
  <testcase classname="tests.test_db_lab" name="test_backup" time="100.5"/>
  <testcase classname="tests.test_db_lab" name="test_restore" time="50.0"><failure message="x"/></testcase>
  <testcase classname="tests.lab.test_lab_hosts" name="test_names[lab-web1]" time="1.25"/>
  <testcase classname="tests.test_run.TestGroup" name="test_ok" time="2.0"/>
  <testcase classname="tests.test_run" name="test_skip" time="0.5"><skipped message="s"/></testcase>
</testsuite></testsuites>
"""


def test_table_from_parts_pytest_files_and_molecule_scenarios(tmp_path: Path) -> None:
    times = tmp_path / "times"
    times.mkdir()
    (times / "pytest.xml").write_text(JUNIT, encoding="utf-8")
    (times / "pytest-unit.xml").write_text(  # the second lane's report
        '<testsuites><testsuite><testcase classname="tests.test_redact" name="test_a" time="3.0"/>'
        "</testsuite></testsuites>",
        encoding="utf-8",
    )
    # a piece of a part (one lane of "lanes"): shown under it, never added to the total again
    (times / "part-lanes.lab.json").write_text('{"part": "lanes.lab", "seconds": 2400, "rc": 0}', encoding="utf-8")
    (times / "part-setup.json").write_text('{"part": "setup", "seconds": 60.0, "rc": 0}', encoding="utf-8")
    (times / "part-lab.json").write_text('{"part": "lab", "seconds": 30.5, "rc": 0}', encoding="utf-8")
    (times / "part-lanes.json").write_text('{"part": "lanes", "seconds": 2500, "rc": 2}', encoding="utf-8")
    (times / "molecule.json").write_text(
        json.dumps(
            [
                {"name": "role inspect/default", "seconds": 95, "result": "passed"},
                {"name": "role baseline/default", "seconds": 700, "result": "FAILED", "failed": 1},
            ]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "test-times.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "ci" / "test_times.py"), str(times), str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text(encoding="utf-8"))
    assert table["total_s"] == 2590.5 and table["budget_s"] == 2400
    files = {i["name"]: i for i in table["items"] if i["kind"] == "pytest"}
    assert files["tests/test_db_lab.py"] == {
        "kind": "pytest",
        "name": "tests/test_db_lab.py",
        "seconds": 150.5,
        "tests": 2,
        "failed": 1,
        "skipped": 0,
    }
    assert files["tests/lab/test_lab_hosts.py"]["seconds"] == 1.2  # rounded to a tenth
    assert files["tests/test_run.py"]["tests"] == 2 and files["tests/test_run.py"]["skipped"] == 1
    assert files["tests/test_redact.py"]["seconds"] == 3.0  # from the second lane's report
    assert [p["part"] for p in table["parts"]] == ["setup", "lab", "lanes", "lanes.lab"]
    assert [i["name"] for i in table["slowest"]][:3] == [
        "role baseline/default",
        "tests/test_db_lab.py",
        "role inspect/default",
    ]
    # what a person reads
    assert "lanes" in proc.stdout and "41m40s  (FAILED, rc 2)" in proc.stdout
    assert "\n    - lab " in proc.stdout  # the lane, indented under its part
    assert "TOTAL 43m10s (budget 40m00s" in proc.stdout and "OVER BUDGET" in proc.stdout
    assert "slowest ten:" in proc.stdout


def test_missing_inputs_still_give_a_table(tmp_path: Path) -> None:
    """A run that failed in setup left only some parts: the table says what there is."""
    times = tmp_path / "times"
    times.mkdir()
    (times / "part-setup.json").write_text('{"part": "setup", "seconds": 12, "rc": 1}', encoding="utf-8")
    (times / "pytest.xml").write_text("<not xml", encoding="utf-8")
    out = tmp_path / "t.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "ci" / "test_times.py"), str(times), str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["items"] == []
    assert "setup" in proc.stdout and "FAILED, rc 1" in proc.stdout and "OVER BUDGET" not in proc.stdout
