"""The patch compliance report (issue 4) without the lab: data, CSV, HTML/Markdown, CLI errors,
and the os_patch role's filters (backup manifests, targets, kept versions)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import BadInput
from orchestrator.patches import build_patches
from helpers.common import load_source
from helpers.store import write_backup
from orchestrator.reports.patches import render_patches

REPO = Path(__file__).resolve().parent.parent

RECORD = {
    "id": "20261128T000000000Z-abcdef",
    "environment": "lab",
    "status": "successful",
    "started": "2026-11-28T00:00:00.000Z",
    "targets": ["h1", "h2", "h3"],
    "operator": {"user": "ops"},
    "outputs": {
        "patch_scan": {
            "h1": {
                "os": "Debian 12",
                "updates": [
                    {
                        "name": "agent",
                        "current": "1.0",
                        "candidate": "1.1",
                        "security": True,
                        "held": False,
                        "excluded": False,
                    },
                    {
                        "name": "=cmd",
                        "current": "1",
                        "candidate": "2",
                        "security": False,
                        "held": True,
                        "excluded": False,
                    },
                ],
                "held": [{"name": "=cmd", "version": "1", "candidate": "2"}],
                "reboot_required": False,
                "last_patch": "2026-11-01T10:00:00",
            },
            "h2": {"os": "Debian 12", "updates": [], "held": [], "reboot_required": True, "last_patch": None},
        }
    },
}


def test_build_patches_compliance() -> None:
    data = build_patches(RECORD)
    hosts = {h["host"]: h for h in data["hosts"]}
    assert hosts["h1"]["compliant"] is False and hosts["h1"]["problems"] == ["security_pending"]
    assert hosts["h1"]["pending"] == 1 and hosts["h1"]["security"] == 1
    assert hosts["h2"]["compliant"] is False and hosts["h2"]["problems"] == ["reboot_pending"]
    assert data["summary"]["compliant"] == 0 and data["summary"]["not_scanned"] == ["h3"]


def test_csv_and_templates() -> None:
    data = build_patches(RECORD)
    rows = list(csv.DictReader(io.StringIO(render_patches("csv", "en", data))))
    assert [(r["host"], r["package"]) for r in rows] == [("h1", "agent"), ("h1", "'=cmd"), ("h2", "")]
    for lang in ("zh", "en"):
        html = render_patches("html", lang, data)
        assert "h3" in html and "agent" in html and "=cmd" in html
        assert "| h1 |" in render_patches("md", lang, data)
    assert json.loads(render_patches("json", "en", data))["summary"]["hosts"] == 2
    with pytest.raises(BadInput):
        render_patches("pdf", "en", data)


def test_cli_without_a_scan_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    result = CliRunner().invoke(cli, ["report", "patches", "--env", "lab", "--format", "json"])
    assert result.exit_code == 2 and "patch-scan" in result.output


def _filters() -> ModuleType:
    return load_source(REPO / "roles/os_patch/filter_plugins/os_patch.py", "os_patch_filters")


def test_backup_status_filter(tmp_path: Path) -> None:
    """The newest verified backup of the host, in any environment's folder of the store; a
    backup whose restore test failed, another host's, a copy that never committed and a damaged
    folder do not count."""
    f = _filters()
    now = datetime.now(UTC)
    store = tmp_path / "backups"
    assert f.os_patch_backup_status(str(store), "db1", 24) == {
        "ok": False, "newest": None, "age_h": None, "backup_id": None, "checked": 0,
    }  # fmt: skip
    write_backup(store / "lab", "db1", "old", (now - timedelta(hours=30)).isoformat(), verified=True)
    write_backup(store / "lab", "db1", "failed", now.isoformat(), verified=False)
    write_backup(store / "lab", "db2", "other", now.isoformat(), verified=True)
    write_backup(store / "lab", "db1", "copying", now.isoformat(), committed=False)
    (store / "lab" / "db1" / "broken").mkdir()
    (store / "lab" / "db1" / "broken" / "manifest.json").write_text("not json", encoding="utf-8")
    status = f.os_patch_backup_status(str(store), "db1", 24)
    assert status["ok"] is False and status["backup_id"] == "old" and 29.9 < status["age_h"] < 30.1, status
    assert status["checked"] == 2  # old and failed
    write_backup(store / "prod", "db1", "fresh", (now - timedelta(hours=1)).isoformat(), verified=True)
    status = f.os_patch_backup_status(str(store), "db1", 24)
    assert status["ok"] is True and status["backup_id"] == "fresh" and status["checked"] == 3
    # one environment's store named directly
    assert f.os_patch_backup_status(str(store / "lab"), "db1", 24)["backup_id"] == "old"


def test_target_and_kept_filters() -> None:
    f = _filters()
    ups = [
        {"name": "a", "current": "1", "security": True},
        {"name": "b", "current": "1", "security": False},
        {"name": "h", "current": "1", "held": True},
        {"name": "x", "current": "1", "excluded": True},
    ]
    assert f.os_patch_targets(ups, "all") == ["a", "b"]
    assert f.os_patch_targets(ups, "security") == ["a"]
    # update-stack's filter: names or shell patterns; held/excluded stay out even when named.
    ups.append({"name": "nginx-common", "current": "1", "security": True})
    assert f.os_patch_targets(ups, "all", ["nginx*", "h", "b"]) == ["b", "nginx-common"]
    assert f.os_patch_targets(ups, "security", ["nginx*", "b"]) == ["nginx-common"]
    assert f.os_patch_targets(ups, "all", []) == ["a", "b", "nginx-common"]
    kept = f.os_patch_kept(ups, [{"name": "h", "version": "1"}], {"h": "1", "x": "2"})
    assert kept == [
        {"name": "h", "before": "1", "after": "1", "unchanged": True},
        {"name": "x", "before": "1", "after": "2", "unchanged": False},
    ]
    assert f.os_patch_free_mb("Mounted on Avail\n/ 1234M\n/var 99M\n") == {"/": 1234, "/var": 99}


def test_report_times_are_beijing_time() -> None:
    """The scan record says 00:00 UTC; the report (whose footer says Beijing time) shows 08:00."""
    data = build_patches(RECORD)
    for lang in ("zh", "en"):
        for fmt in ("html", "md"):
            text = render_patches(fmt, lang, data)
            assert "2026-11-28 08:00" in text, (lang, fmt)
            assert "2026-11-28 00:00" not in text, (lang, fmt)


def test_a_filed_csv_names_its_scan_record_and_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each CSV row carries the seq and hash of the patch-scan record it comes from and the
    chain's HEAD (issue 18): `records verify-export` checks the filed CSV, and fails once the
    record it names is rewritten."""
    from helpers.records import commit_record

    from orchestrator.archive import Archive

    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    archive = Archive(tmp_path / "archive")
    scan = commit_record(archive, op="patch-scan", hosts=["h1", "h2"], outputs=RECORD["outputs"])
    commit_record(archive, op="backup")  # a later record: HEAD is not the scan
    out = tmp_path / "patches.csv"
    result = CliRunner().invoke(cli, ["report", "patches", "--env", "lab", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    head = archive.head()
    assert head is not None and rows
    assert {
        (r["record_id"], r["record_seq"], r["record_hash"], r["archive_head_seq"], r["archive_head_hash"]) for r in rows
    } == {(scan["id"], str(scan["seq"]), scan["hash"], str(head["seq"]), head["hash"])}
    check = CliRunner().invoke(cli, ["records", "verify-export", str(out)])
    assert check.exit_code == 0 and "1 record(s)" in check.output, check.output
    body = archive.root / scan["id"] / "record.json"
    body.write_text(body.read_text(encoding="utf-8").replace(scan["hash"], "f" * 64), encoding="utf-8")
    check = CliRunner().invoke(cli, ["records", "verify-export", str(out)])
    assert check.exit_code != 0 and scan["id"] in check.output, check.output
