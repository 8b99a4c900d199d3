"""Fixtures and hooks only; the helpers are in ``tests/helpers/``, imported explicitly.

``opsctl_home`` builds a small, real repository layout in a temporary directory
(:mod:`helpers.home`); runs against it are real ansible-runner / ansible-playbook runs on
this machine. ``lab_ready`` and ``lab_archive`` are the running lab's (:mod:`helpers.lab`).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from helpers.common import REPO, VENV_BIN, run_opsctl
from helpers.home import build_home, home_env
from helpers.lab import LAB_HOSTS, hold_the_lab, lab_ansible_env

# Property-based tests (tests/test_prop_*.py): derandomized, so every run (CI included) tries the
# same examples and a failure is reproduced by running the test again; no example database (failing
# examples are not saved: derandomized runs find them again; Hypothesis still keeps caches in
# .hypothesis/, which git ignores through the .gitignore Hypothesis writes there); no per-example
# deadline (a busy 2-core machine must not turn slowness into a failure). HYPOTHESIS_PROFILE=explore
# searches afresh with random seeds (each test keeps its own max_examples), for new counterexamples.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Modules that change the lab for good (hardening) run after every other test.
RUN_LAST = ("test_baseline_lab_apply.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in RUN_LAST)  # stable: keeps the order otherwise


@pytest.fixture
def opsctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = build_home(tmp_path / "home")
    env = home_env(home)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # nor this machine's signers (the Makefile names the lab timers' file) or key
    for key in ("OPSCTL_VAULT_PASSWORD_FILE", "OPSCTL_ALLOWED_SIGNERS", "OPSCTL_SIGNING_KEY"):
        monkeypatch.delenv(key, raising=False)
    yield home


@pytest.fixture(scope="session")
def lab_ready() -> Iterator[list[str]]:
    """The running lab (started by `make lab`, which `make pytest` depends on), held by this
    session alone (:func:`helpers.lab.hold_the_lab`).

    Fails, never skips, when the lab is down: a lab test that silently skips proves nothing.
    Yields the lab's base hosts (fleet hosts excluded).
    """
    key = REPO / "var" / "lab" / "ssh" / "id_ed25519"
    if not key.is_file():
        pytest.fail("the lab is not running: start it with `make lab`")
    with hold_the_lab(REPO / "var" / "lab" / "tests.lock"):
        yield from _lab_checked()


def _lab_checked() -> Iterator[list[str]]:
    """The self-check, the ping and the seed, then the lab's base hosts (lab_ready's body)."""
    # Names and tier ports first: when the hosts cannot reach each other, every lab
    # test fails with the one reason instead of each in its own way.
    check = subprocess.run(
        [str(REPO / "lab" / "lab.sh"), "check"], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    if check.returncode != 0:
        pytest.fail(f"the lab's self-check fails:\n{check.stderr}")
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "-i",
            str(REPO / "inventories" / "lab"),
            "all:!fleet",
            "-m",
            "ansible.builtin.ping",
            "-o",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        check=False,
        env=lab_ansible_env(),
    )
    if proc.returncode != 0:
        pytest.fail(f"the lab does not answer (start it with `make lab`):\n{proc.stdout}\n{proc.stderr}")
    # The system's data set comes first: the seed owns the `envcredit` database (it loads
    # only into empty tables), so it must run before anything else (e.g. the application's
    # install) puts rows there. Idempotent: a seeded lab is left as it is.
    archive = tempfile.mkdtemp(prefix="opsctl-seed-archive-")
    seed = run_opsctl(
        "run",
        "seed",
        "--env",
        "lab",
        "--reason",
        "test session",
        timeout=900,
        env={"OPSCTL_ARCHIVE": archive, "OPSCTL_LOCKS": archive + "-locks"},
    )
    if seed.returncode != 0:
        pytest.fail(f"seeding the lab databases failed:\n{seed.stdout[-3000:]}\n{seed.stderr[-3000:]}")
    yield LAB_HOSTS


@pytest.fixture
def lab_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab_ready: list[str]) -> Path:
    """A fresh archive and lock directory for one lab test; the real repository and inventory."""
    archive = tmp_path / "archive"
    for key in ("OPSCTL_HOME", "OPSCTL_CATALOG", "OPSCTL_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(archive))
    monkeypatch.setenv("OPSCTL_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return archive
