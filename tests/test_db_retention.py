"""Retention rules of the backup store (plugins/modules/db_backup_store.py), without the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.common import COLLECTIONS, REPO, load_source


store = load_source(REPO / "plugins" / "modules" / "db_backup_store.py", "db_backup_store")


def b(started: str, verified: bool = False) -> tuple[str, dict[str, Any], dict[str, Any]]:
    bid = started.replace("-", "").replace(":", "")[:15] + "Z-h"
    return bid, {"started": started + "+00:00"}, {"verified": {"ok": True} if verified else None}


def plan(
    backups: list[Any],
    last: int = 0,
    daily: int = 0,
    weekly: int = 0,
    monthly: int = 0,
    protect: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    newest_first = sorted(backups, key=lambda x: x[1]["started"], reverse=True)
    keep, remove = store.retention_plan(newest_first, last, daily, weekly, monthly, protect or [])
    return keep, remove


def ids(*items: Any) -> list[str]:
    return sorted(i[0] for i in items)


def test_keep_last_keeps_the_newest_n() -> None:
    bs = [b(f"2026-03-0{d}T01:00:00") for d in range(1, 6)]
    keep, remove = plan(bs, last=2)
    assert keep == ids(bs[3], bs[4])
    assert sorted(remove) == ids(*bs[:3])


def test_daily_weekly_monthly_keep_the_newest_of_each_bucket() -> None:
    same_day = [b("2026-03-10T01:00:00"), b("2026-03-10T13:00:00")]
    older = [b("2026-03-02T01:00:00"), b("2026-02-15T01:00:00"), b("2026-01-20T01:00:00")]
    bs = same_day + older
    assert plan(bs, daily=1)[0] == ids(same_day[1])  # the newest of the newest day
    assert plan(bs, daily=2)[0] == ids(same_day[1], older[0])
    assert plan(bs, weekly=2)[0] == ids(same_day[1], older[0])  # ISO weeks 11 and 10
    assert plan(bs, monthly=3)[0] == ids(same_day[1], older[1], older[2])


def test_the_newest_verified_backup_is_never_removed() -> None:
    bs = [
        b("2026-01-01T01:00:00"),
        b("2026-02-01T01:00:00", verified=True),
        b("2026-03-01T01:00:00", verified=True),
        b("2026-04-01T01:00:00"),
    ]
    keep, remove = plan(bs, last=1)
    assert keep == ids(bs[2], bs[3])
    assert sorted(remove) == ids(bs[0], bs[1])


def test_without_any_verified_backup_the_newest_one_stays_even_with_zero_counts() -> None:
    bs = [b("2026-01-01T01:00:00"), b("2026-02-01T01:00:00")]
    keep, remove = plan(bs)
    assert keep == ids(bs[1]) and remove == [bs[0][0]]


def test_protected_ids_stay() -> None:
    bs = [b("2026-01-01T01:00:00"), b("2026-02-01T01:00:00"), b("2026-03-01T01:00:00")]
    keep, _ = plan(bs, last=1, protect=[bs[0][0]])
    assert keep == ids(bs[0], bs[2])


def test_list_ignores_partial_and_unreadable_backups(tmp_path: Path) -> None:
    for name, started in (
        ("20260101T010000Z-h", "2026-01-01T01:00:00+00:00"),
        ("20260201T010000Z-h", "2026-02-01T01:00:00+00:00"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"started": started}))
        (tmp_path / name / "status.json").write_text("{}")
    (tmp_path / "20260301T010000Z-h.partial").mkdir()
    (tmp_path / "20260401T010000Z-h").mkdir()  # no manifest: not a backup
    (tmp_path / "20260401T010000Z-h" / "manifest.json").write_text("{not json")
    listed = [x[0] for x in store.list_backups(str(tmp_path))]
    assert listed == ["20260201T010000Z-h", "20260101T010000Z-h"]


@pytest.mark.parametrize("verified", [True, False])
def test_every_new_backup_failing_removes_nothing_new(verified: bool) -> None:
    """When the newest backups are all gone (failed runs leave nothing), the last good one stays."""
    bs = [b("2026-01-01T01:00:00", verified=verified)]
    keep, remove = plan(bs)
    assert keep == ids(bs[0]) and remove == []


def _module(tmp_path: Path, args: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(REPO / "plugins" / "modules" / "db_backup_store.py"), str(path)],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(COLLECTIONS)},
    )  # fmt: skip
    return proc.returncode, json.loads(proc.stdout)


def test_the_state_of_a_physical_backup_is_written_private_and_whole(tmp_path: Path) -> None:
    """action=state: <store>/<host>/<name> replaced at once (no .tmp left), mode 0600, in a host
    directory of mode 0700 made when missing; any other name is refused and nothing is written."""
    store = tmp_path / "store"
    args = {"action": "state", "store": str(store), "host": "lab-db1", "name": "pgbackrest.json"}
    rc, out = _module(tmp_path, {**args, "data": {"stanza": "lab-db1", "note": "韶关"}})
    assert rc == 0 and out["changed"], out
    path = store / "lab-db1" / "pgbackrest.json"
    assert json.loads(path.read_text(encoding="utf-8")) == {"stanza": "lab-db1", "note": "韶关"}
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    rc, _ = _module(tmp_path, {**args, "data": {"stanza": "lab-db1"}})
    assert rc == 0 and json.loads(path.read_text(encoding="utf-8")) == {"stanza": "lab-db1"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["pgbackrest.json"]
    rc, out = _module(tmp_path, {**args, "name": "../escape.json", "data": {}})
    assert rc != 0 and "must be one of" in out["msg"]
    assert not (store / "escape.json").exists() and not (tmp_path / "escape.json").exists()
