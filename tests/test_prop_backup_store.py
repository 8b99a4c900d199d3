"""The backup store read by one set of rules: the collection's module_utils/backup_store.py (the
modules db_backup_store, inspect_backups, monitoring_backup_metrics) and the controller's
orchestrator/backups.py (``opsctl backups list``) give the same backups, in the same order, with
the same verification, whatever the store holds (properties, hypothesis)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.common import REPO, load_source
from orchestrator.backups import list_backups


rules = load_source(REPO / "plugins" / "module_utils" / "backup_store.py", "backup_store")

# What a backup folder may hold: every state role db_backup leaves, and damaged files.
VERIFIED = st.sampled_from(
    [
        None,
        {"ok": True, "at": "2026-11-28T03:00:00+00:00"},
        {"ok": False, "at": "2026-11-28T03:00:00+00:00"},
        {},
        {"ok": "yes"},  # not what backup-verify writes: not verified
        True,  # a hand-edited status.json: not what backup-verify writes either
        "verified",
    ]
)
DAMAGED = st.sampled_from([None, "{broken", "[1, 2]"])  # missing, not JSON, not an object
STARTED = st.sampled_from(
    ["2026-11-27T02:00:00+00:00", "2026-11-28T02:00:00+00:00", "2026-11-28T02:00:00+08:00", "", "昨天"]
)
FOLDER = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["20261127T020000Z", "20261128T020000Z", "20261128T180000Z", "manual-1", "x"]),
        "partial": st.booleans(),
        "started": STARTED,
        # mostly whole folders, so that most examples hold several backups to tell apart
        "manifest": st.one_of(st.just("ok"), st.just("ok"), st.just("ok"), DAMAGED),
        "status": st.one_of(VERIFIED.map(lambda v: {"verified": v}), VERIFIED.map(lambda v: {"verified": v}), DAMAGED),
    }
)


def _write(hostdir: Path, folder: dict[str, Any]) -> None:
    path = hostdir / (folder["id"] + (".partial" if folder["partial"] else ""))
    path.mkdir(parents=True)
    manifest = folder["manifest"]
    if manifest == "ok":
        manifest = json.dumps({"backup_id": folder["id"], "started": folder["started"], "ended": folder["started"]})
    if manifest is not None:
        (path / "manifest.json").write_text(manifest, encoding="utf-8")
    status = folder["status"]
    if isinstance(status, dict):
        status = json.dumps(status)
    if status is not None:
        (path / "status.json").write_text(status, encoding="utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FOLDER, max_size=6, unique_by=lambda f: (f["id"], f["partial"])))
def test_the_modules_and_opsctl_read_the_same_backups(folders: list[dict[str, Any]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="envcredit-store-"))
    try:
        hostdir = root / "lab" / "lab-db1"
        hostdir.mkdir(parents=True)
        for folder in folders:
            _write(hostdir, folder)
        theirs = [(b.backup_id, b.verification == "verified") for b in list_backups(root, env="lab", host="lab-db1")]
        ours = [(bid, rules.is_verified(status)) for bid, _, status in rules.list_backups(str(hostdir))]
        assert ours == theirs
        # never a partial copy nor an uncommitted folder
        assert all(not bid.endswith(".partial") and (hostdir / bid / "status.json").is_file() for bid, _ in ours)
        # the summary the inspection and the metrics report agrees with the list
        summary = rules.summary(str(root / "lab"), "lab-db1")
        assert summary["count"] == len(ours) and summary["verified_count"] == sum(v for _, v in ours)
        assert (summary["newest"] is None) == (not ours)
        assert (summary["newest_verified"] is None) == (not any(v for _, v in ours))
    finally:
        shutil.rmtree(root)


def test_a_host_without_a_folder_has_no_summary(tmp_path: Path) -> None:
    assert rules.summary(str(tmp_path), "lab-db1") is None
    (tmp_path / "lab-db1").mkdir()
    assert rules.summary(str(tmp_path), "lab-db1") == {
        "count": 0,
        "verified_count": 0,
        "newest": None,
        "newest_verified": None,
    }
