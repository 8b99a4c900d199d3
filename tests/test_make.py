"""The make targets an engineer starts with expand to complete commands (`make -n`: nothing runs).

`make demo` once expanded `--version ''` (an undefined DEMO_VERSION) and failed on a fresh
machine after seeding; `make test-nightly` uses the same release. An empty quoted argument
or an unexpanded variable in the commands is such a failure waiting for the lab.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("target", ["demo", "test-nightly"])
def test_target_commands_have_no_empty_arguments(target: str) -> None:
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    commands = [line for line in proc.stdout.splitlines() if "opsctl" in line]
    assert any("releases build --version '1.0.0'" in line for line in commands), commands
    empty = [line for line in commands if re.search(r"(?:=|\s)''(?:\s|$)", line)]
    assert empty == [], empty


@pytest.mark.parametrize(("env", "trusted"), [("lab", True), ("staging", False), ("production", False)])
def test_the_lab_timers_key_is_trusted_only_by_targets_for_the_lab(env: str, trusted: bool) -> None:
    """What a recipe's opsctl gets as OPSCTL_ALLOWED_SIGNERS (a one-line recipe added with --eval)."""
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", f"ENV={env}",
         "--eval", 'envcredit-print-signers: ; @echo "[$$OPSCTL_ALLOWED_SIGNERS]"', "envcredit-print-signers"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "OPSCTL_ALLOWED_SIGNERS"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = f"[{REPO}/var/signing/lab-allowed_signers]" if trusted else "[]"
    assert proc.stdout.strip() == expected


def _make_value(expression: str) -> str:
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", f"envcredit-print: ; @echo '{expression}'", "envcredit-print"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_two_lab_lanes_split_the_lab_tests_between_the_two_labs() -> None:
    """`make test` runs LAB2_TESTS on the second lab (lab/lab2.sh) and every other lab test on the
    first: each named file is a lab test file that exists (pytest would stop on a missing one, but a
    file without the lab mark would silently run nowhere), and the first lab's lane ignores exactly them."""
    second = _make_value("$(LAB2_TESTS)").split()
    assert second and len(second) == len(set(second)), second
    for name in second:
        path = REPO / name
        assert path.is_file(), name
        assert "pytestmark = pytest.mark.lab" in path.read_text(encoding="utf-8"), f"{name} is not a lab test file"
    first = _make_value("$(LAB_LANE_TESTS)").split()
    assert first[:2] == ["-m", "lab"]
    assert sorted(first[2:]) == sorted(f"--ignore={name}" for name in second)
