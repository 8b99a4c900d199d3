"""One test session per lab: `lab_ready` holds the lab's lock (helpers.lab.hold_the_lab)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.lab import hold_the_lab


def test_a_second_session_on_one_lab_stops_naming_the_first_and_the_lab_is_free_again_after(tmp_path: Path) -> None:
    lock = tmp_path / "tests.lock"
    with hold_the_lab(lock):
        # flock belongs to an open file description: a second open of the file is a second session
        with (
            pytest.raises(
                pytest.fail.Exception, match=rf"another test session \(pid {os.getpid()}\) is using this lab"
            ),
            hold_the_lab(lock),
        ):
            pass
    with hold_the_lab(lock):
        pass
    assert lock.read_text(encoding="utf-8") == str(os.getpid())
