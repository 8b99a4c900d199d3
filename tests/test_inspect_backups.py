"""The inspect role's backup judgement (plugins/modules/inspect_backups.py), run as the real
Ansible module on the controller against backup stores laid out like db_backup's.

The newest backup and the newest verified backup are judged separately, each against its own
schedule, so a healthy system (nightly backup, nightly verification) has no finding at 08:30.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from helpers.common import REPO, VENV_BIN


def _backup(store: Path, host: str, hours_ago: float, verified_hours_ago: float | None = None) -> str:
    now = datetime.now(timezone.utc)  # the module judges a moment later: ages are compared to 0.1 h
    ended = now - timedelta(hours=hours_ago)
    bid = ended.strftime("%Y%m%dT%H%M%SZ") + f"-{host}"
    folder = store / host / bid
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"backup_id": bid, "host": host, "ended": ended.isoformat()}), encoding="utf-8"
    )
    if verified_hours_ago is not None:
        at = (now - timedelta(hours=verified_hours_ago)).isoformat()
        (folder / "status.json").write_text(json.dumps({"verified": {"ok": True, "at": at}}), encoding="utf-8")
    return bid


def judge(store: Path, host: str = "db1", expected: bool = True) -> dict[str, Any]:
    args = (
        f"store={store} host={host} expected={expected} max_age_h=26 crit_age_h=50"
        " verify_max_age_h=50 verify_crit_age_h=170"
    )
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-o",
            "-M",
            str(REPO / "plugins" / "modules"),
            "-m",
            "inspect_backups",
            "-a",
            args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0", "HOME": str(store.parent)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout.split("=>", 1)[1]))


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
