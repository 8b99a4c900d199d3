"""The point-in-time restore's pieces that need no lab (issue 19): the recovery window and the
target time of envcredit_dbtool's `pitr-window`, restore's "backup_id or target_time"
requirement, and exit 2 for a run a role refused for its input before changing anything.
tests/test_db_pitr_lab.py restores for real."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from helpers.common import REPO
from orchestrator import operations
from orchestrator.runner import EXIT_BAD_INPUT, refused_input

sys.path.insert(0, str(REPO / "roles" / "db_backup" / "files"))
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # envcredit_dbcommon, the tools' shared code
import envcredit_dbtool as tool  # noqa: E402


def backup(stop: float) -> dict[str, Any]:
    return {"label": f"b{stop}", "timestamp": {"start": stop - 5, "stop": stop}}


def test_the_window_runs_from_the_oldest_backups_end_to_the_newest_archived_commit() -> None:
    info = [{"status": {"code": 0}, "backup": [backup(2000.0), backup(1000.0), backup(3000.0)]}]
    assert tool.recovery_window(info, 5000.0) == (1000.0, 5000.0)
    # nothing archived since the newest backup: its end is still restorable
    assert tool.recovery_window(info, None) == (1000.0, 3000.0)
    assert tool.recovery_window(info, 2500.0) == (1000.0, 3000.0)


@pytest.mark.parametrize(
    ("info", "words"),
    [
        ([], "no stanza"),
        ([{"status": {"code": 99, "message": "\x00\x01garbage"}, "backup": []}], "wrong repository key"),
        ([{"status": {"code": 0}, "backup": []}], "holds no backup"),
    ],
)
def test_an_unreadable_or_empty_repository_is_refused_with_a_reason(info: list[dict[str, Any]], words: str) -> None:
    with pytest.raises(tool.Fail, match=words):
        tool.recovery_window(info, 10.0)


def test_a_target_time_needs_a_zone_and_reads_as_that_zone() -> None:
    when = tool.parse_target_time(" 2026-11-29 10:15:00+08 ")
    assert when.timestamp() == 1795918500.0  # 02:15:00 UTC
    assert tool.beijing(when.timestamp()) == "2026-11-29 10:15:00+08"
    assert tool.parse_target_time("2026-11-29T02:15:00Z").timestamp() == when.timestamp()
    with pytest.raises(tool.Fail, match="has no zone"):
        tool.parse_target_time("2026-11-29 10:15:00")
    with pytest.raises(tool.Fail, match="is not a time"):
        tool.parse_target_time("yesterday")


def test_restore_needs_a_backup_id_or_a_target_time() -> None:
    op = operations.load_catalog()["restore"]
    assert op.missing({}) == ["-e backup_id=... or -e target_time=..."]
    assert op.missing({"backup_id": "latest"}) == op.missing({"target_time": "2026-11-29 10:15:00+08"}) == []
    assert op.missing({"backup_id": "", "target_time": None}) != []
    assert op.input_for("target_time") is not None and op.input_for("backup_id") is not None
    assert {"backup_id", "target_time", "restore_to"} <= set(op.accepted())
    assert "backup_id|target_time" not in op.accepted()


def failure(msg: str) -> dict[str, Any]:
    return {"host": "db1", "task": "t", "msg": msg}


def test_a_run_refused_for_its_input_before_any_change_exits_2() -> None:
    assert EXIT_BAD_INPUT == 2
    assert refused_input({"failures": [failure("bad input: target_time x is before the recovery window a .. b")]})
    assert refused_input({"failures": [failure("bad input: a"), failure("bad input: b")], "changes": []})
    # a change was made, another failure, or no failure at all: an ordinary failed run
    assert not refused_input({"failures": [failure("bad input: a")], "changes": [{"task": "x"}]})
    assert not refused_input({"failures": [failure("bad input: a"), failure("ssh: connection refused")]})
    assert not refused_input({"failures": []})
    assert not refused_input({"failures": [failure("the restore failed: bad input: quoted")]})
