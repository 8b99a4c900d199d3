"""The inspect role's backup judgement (plugins/modules/inspect_backups.py), run as the real
Ansible module on the controller against backup stores laid out like db_backup's.

The newest backup and the newest verified backup are judged separately, each against its own
schedule, so a healthy system (nightly backup, nightly verification) has no finding at 08:30.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from helpers.store import run_module, run_module_raw, write_backup


def _backup(
    store: Path, host: str, hours_ago: float, verified_hours_ago: float | None = None, committed: bool = True
) -> str:
    now = datetime.now(timezone.utc)  # the module judges a moment later: ages are compared to 0.1 h
    ended = now - timedelta(hours=hours_ago)
    bid = ended.strftime("%Y%m%dT%H%M%SZ") + f"-{host}"
    at = "" if verified_hours_ago is None else (now - timedelta(hours=verified_hours_ago)).isoformat()
    write_backup(store, host, bid, ended.isoformat(), verified=None if not at else True, at=at, committed=committed)
    return bid


def judge(store: Path, host: str = "db1", expected: bool = True) -> dict[str, Any]:
    """The module's answer for one host (a list of one entry)."""
    args = {
        "store": str(store), "host": host, "expected": expected,
        "max_age_h": 26, "crit_age_h": 50, "verify_max_age_h": 50, "verify_crit_age_h": 170,
    }  # fmt: skip
    return dict(run_module("inspect_backups", {"hosts": [args]}, store.parent)["hosts"][host])


def _findings(result: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """check -> (severity, age in hours rounded down to the hour: the run takes a moment)."""
    return {
        f["check"]: (f["severity"], None if f["value"] is None else float(int(f["value"]))) for f in result["findings"]
    }


def test_a_healthy_night_has_no_finding(tmp_path: Path) -> None:
    """02:00 backup, 03:00 verification, inspection at 08:30: the day before's backup is older."""
    store = tmp_path / "backups"
    _backup(store, "db1", 30.5, verified_hours_ago=29.5)
    newest = _backup(store, "db1", 6.5, verified_hours_ago=5.5)
    result = judge(store)
    assert result["findings"] == []
    assert result["backup"]["newest"]["id"] == newest == result["backup"]["newest_verified"]["id"]


def test_last_verification_two_nights_ago_is_no_finding_but_a_missed_backup_is(tmp_path: Path) -> None:
    store = tmp_path / "backups"
    _backup(store, "db1", 40, verified_hours_ago=39)  # verified 39 h ago: within the verify margin
    result = judge(store)
    assert _findings(result) == {"backup": ("warning", 40.0)}  # the nightly backup did not run


@pytest.mark.parametrize(
    ("backup_h", "verified_h", "want"),
    [
        (2, None, {"backup_verify": ("warning", None)}),  # never verified
        (2, 60, {"backup_verify": ("warning", 60.0)}),  # verification missed twice
        (2, 200, {"backup_verify": ("critical", 200.0)}),  # a week without a proven restore
        (60, 61, {"backup": ("critical", 60.0), "backup_verify": ("warning", 61.0)}),
    ],
)
def test_each_age_against_its_own_schedule(
    tmp_path: Path, backup_h: float, verified_h: float | None, want: dict[str, tuple[str, Any]]
) -> None:
    store = tmp_path / "backups"
    if verified_h is not None and verified_h > backup_h:
        # the age judged is the verified backup's own (taken verified_h ago, proven soon after)
        _backup(store, "db1", verified_h, verified_hours_ago=verified_h - 0.5)
        _backup(store, "db1", backup_h)
    else:
        _backup(store, "db1", backup_h, verified_hours_ago=verified_h)
    assert _findings(judge(store)) == want


def test_no_backup_at_all_is_critical_only_where_expected(tmp_path: Path) -> None:
    store = tmp_path / "backups"
    store.mkdir()
    assert _findings(judge(store)) == {"backup": ("critical", None)}
    assert judge(store, host="web1", expected=False)["findings"] == []
    # no store at all: backups are not set up in this environment, nothing to judge
    assert judge(tmp_path / "nowhere")["findings"] == []


def test_a_failed_copy_is_no_backup(tmp_path: Path) -> None:
    """A night whose copy failed its checksums (or never finished) leaves ``<id>.partial``, and a
    folder without status.json was never committed: neither is the newest backup, so the missed
    night is a finding instead of a fresh backup."""
    store = tmp_path / "backups"
    kept = _backup(store, "db1", 30.5, verified_hours_ago=29.5)
    _backup(store, "db1", 6.5, committed=False)
    uncommitted = store / "db1" / "20991231T000000Z-db1"
    uncommitted.mkdir()
    (uncommitted / "manifest.json").write_text('{"ended": "2099-12-31T00:00:00+00:00"}', encoding="utf-8")
    result = judge(store)
    assert result["backup"]["count"] == 1 and result["backup"]["newest"]["id"] == kept
    assert _findings(result) == {"backup": ("warning", 30.0)}


def test_a_failed_restore_test_is_not_a_verified_backup(tmp_path: Path) -> None:
    store = tmp_path / "backups"
    now = datetime.now(timezone.utc)
    write_backup(store, "db1", "b1", (now - timedelta(hours=2)).isoformat(), verified=False)
    result = judge(store)
    assert result["backup"]["verified_count"] == 0 and result["backup"]["newest_verified"] is None
    assert _findings(result) == {"backup_verify": ("warning", None)}


def test_every_host_of_a_play_in_one_call_is_judged_as_one_at_a_time(tmp_path: Path) -> None:
    """The inspect role reads the store once for the play (``hosts``): each host gets the answer
    that a call of its own gives, with its own thresholds and expectation."""
    store = tmp_path / "backups"
    _backup(store, "db1", 6.5, verified_hours_ago=5.5)
    _backup(store, "db2", 40, verified_hours_ago=39)
    store.mkdir(exist_ok=True)
    one = {
        "db1": judge(store, "db1"),
        "db2": judge(store, "db2"),
        "db3": judge(store, "db3"),  # expected, none
        "web1": judge(store, "web1", expected=False),
    }
    entries = [
        {"store": str(store), "host": h, "expected": h != "web1", "max_age_h": 26, "crit_age_h": 50,
         "verify_max_age_h": 50, "verify_crit_age_h": 170}
        for h in one
    ]  # fmt: skip
    together = run_module("inspect_backups", {"hosts": entries}, tmp_path)
    assert set(together["hosts"]) == set(one)
    for host, alone in one.items():
        assert together["hosts"][host]["backup"]["count"] == alone["backup"]["count"], host
        assert _findings(together["hosts"][host]) == _findings(alone), host
    assert _findings(together["hosts"]["db2"]) == {"backup": ("warning", 40.0)}
    assert _findings(together["hosts"]["db3"]) == {"backup": ("critical", None)}
    # each entry's own thresholds: db2's 40 h is critical where 30 h is the limit
    entries[1] = dict(entries[1], crit_age_h=30)
    strict = run_module("inspect_backups", {"hosts": entries}, tmp_path)
    assert _findings(strict["hosts"]["db2"]) == {"backup": ("critical", 40.0)}
    assert _findings(strict["hosts"]["db1"]) == {}


def test_a_host_named_twice_or_no_host_is_refused(tmp_path: Path) -> None:
    entry = {"store": str(tmp_path), "host": "db1"}
    proc = run_module_raw("inspect_backups", {"hosts": [entry, dict(entry, expected=True)]}, tmp_path)
    assert proc.returncode != 0 and "named more than once: db1" in proc.stdout
    proc = run_module_raw("inspect_backups", {"store": str(tmp_path), "host": "db1"}, tmp_path)
    assert proc.returncode != 0 and "missing required arguments: hosts" in proc.stdout
