"""``opsctl backups``: the store as listed for engineers and auditors, without the lab.

The store's layout is the one the db_backup role writes (``<env>/<host>/<id>/manifest.json``
and ``status.json``); each backup here differs in one thing a reader relies on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.backups import list_repositories, Backup, get_backup, human_age, human_size, list_backups, store_root
from orchestrator.cli import cli
from orchestrator.errors import BadInput, NotFound

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _backup(root: Path, env: str, host: str, bid: str, started: str, dbs: list[str], verified: Any = None) -> Path:
    path = root / env / host / bid
    path.mkdir(parents=True)
    manifest = {
        "engine": "postgresql",
        "server_version": "15.8",
        "databases": [{"name": d} for d in dbs],
        "total_bytes": 2048,
        "started": started,
        "ended": started,
        "record_id": f"rec-{bid}",
        "files": [{"path": f"{d}.dump.zst", "bytes": 1024, "sha256": "0" * 64} for d in dbs],
    }
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    status: dict[str, Any] = {"stored": True}
    if verified is not None:
        status["verified"] = verified
    (path / "status.json").write_text(json.dumps(status), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "backups"
    ok = {"ok": True, "at": "2026-12-01T03:10:00+08:00", "record_id": "rec-verify-1"}
    _backup(root, "lab", "lab-db1", "20261130T180000Z-pg", "2026-11-30T18:00:00+00:00", ["envcredit"], ok)
    failed = {"ok": False, "at": "2026-12-01T03:20:00+08:00", "record_id": "rec-verify-2"}
    _backup(root, "lab", "lab-db1", "20261129T180000Z-pg", "2026-11-29T18:00:00+00:00", ["envcredit"], failed)
    _backup(root, "lab", "lab-db2", "20261130T190000Z-my", "2026-11-30T19:00:00+00:00", ["envcredit_audit"])
    _backup(root, "prod", "db1", "20261130T170000Z-pg", "2026-11-30T17:00:00+00:00", ["envcredit", "extra"], ok)
    # never listed: a copy in progress, a folder without status, an unreadable manifest, a stray file
    _backup(root, "lab", "lab-db1", "20261201T000000Z-pg.partial", "2026-12-01T00:00:00+00:00", ["envcredit"], ok)
    (_backup(root, "lab", "lab-db1", "nostatus", "2026-12-01T00:00:00+00:00", ["envcredit"]) / "status.json").unlink()
    bad = _backup(root, "lab", "lab-db1", "badmanifest", "2026-12-01T00:00:00+00:00", ["envcredit"], ok)
    (bad / "manifest.json").write_text("[1, 2]", encoding="utf-8")
    (root / "lab" / "lab-db1" / "README").write_text("not a backup", encoding="utf-8")
    return root


def test_list_is_complete_backups_newest_first(store: Path) -> None:
    ids = [b.backup_id for b in list_backups(store)]
    assert ids == ["20261130T190000Z-my", "20261130T180000Z-pg", "20261130T170000Z-pg", "20261129T180000Z-pg"]


def test_order_is_by_start_time_not_by_name_and_utf8_is_read(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    _backup(root, "lab", "h", "a-manual", "2026-11-30T20:00:00+00:00", ["环境信用"])
    _backup(root, "lab", "h", "z-nightly", "2026-11-30T18:00:00+00:00", ["envcredit"])
    undated = _backup(root, "lab", "h", "m-undated", "", ["envcredit"])
    manifest = json.loads((undated / "manifest.json").read_text(encoding="utf-8"))
    del manifest["started"]
    (undated / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert [b.backup_id for b in list_backups(root)] == ["a-manual", "z-nightly", "m-undated"]
    assert list_backups(root, db="环境信用")[0].databases == ["环境信用"]


def test_skipped_entries_do_not_hide_the_rest(tmp_path: Path) -> None:
    """Many folders in one host: copies in progress and other databases' backups mixed in
    (whatever order the file system lists them) never stop the listing early."""
    root = tmp_path / "backups"
    for i in range(12):
        _backup(
            root, "lab", "h", f"b{i:02d}", f"2026-11-{i + 1:02d}T00:00:00+00:00", ["envcredit"] if i % 2 else ["other"]
        )
        _backup(root, "lab", "h", f"c{i:02d}.partial", "2026-11-01T00:00:00+00:00", ["envcredit"])
        broken = _backup(root, "lab", "h", f"d{i:02d}", "2026-11-01T00:00:00+00:00", ["envcredit"])
        (broken / ("status.json" if i % 2 else "manifest.json")).unlink()
    assert len(list_backups(root)) == 12
    assert [b.backup_id for b in list_backups(root, db="envcredit")] == [f"b{i:02d}" for i in range(11, 0, -2)]
    for env in ("a", "b", "m", "y", "z"):
        _backup(root, env, "h", f"x-{env}", "2026-11-01T00:00:00+00:00", ["envcredit"])
        _backup(root, "lab", env, f"x-h-{env}", "2026-11-01T00:00:00+00:00", ["envcredit"])
    assert [b.env for b in list_backups(root, env="m")] == ["m"]
    assert [b.host for b in list_backups(root, env="lab", host="m")] == ["m"]


def test_verification_status_is_what_the_status_file_says(store: Path) -> None:
    status = {b.backup_id: b.verification for b in list_backups(store)}
    assert status == {
        "20261130T190000Z-my": "unverified",
        "20261130T180000Z-pg": "verified",
        "20261130T170000Z-pg": "verified",
        "20261129T180000Z-pg": "FAILED",
    }
    failed = get_backup("20261129T180000Z-pg", store).to_dict(NOW)
    assert failed["verification"] == "FAILED"
    assert (failed["verified_at"], failed["verify_record_id"]) == ("2026-12-01T03:20:00+08:00", "rec-verify-2")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"env": "prod"}, ["20261130T170000Z-pg"]),
        ({"env": "lab", "host": "lab-db2"}, ["20261130T190000Z-my"]),
        ({"host": "lab-db1"}, ["20261130T180000Z-pg", "20261129T180000Z-pg"]),
        ({"db": "extra"}, ["20261130T170000Z-pg"]),
        ({"db": "envcredit_audit", "env": "prod"}, []),
        ({"env": "staging"}, []),
    ],
)
def test_filters(store: Path, filters: dict[str, str], expected: list[str]) -> None:
    assert [b.backup_id for b in list_backups(store, **filters)] == expected


def test_bad_environment_and_missing_store(store: Path, tmp_path: Path) -> None:
    for env in ("", "../lab"):
        with pytest.raises(BadInput, match="invalid environment"):
            list_backups(store, env=env)
    assert list_backups(tmp_path / "nowhere") == []
    with pytest.raises(NotFound) as err:
        get_backup("nope", store)
    assert str(err.value) == f"no backup 'nope' in {store}"


def test_to_dict_fields_and_age(store: Path) -> None:
    b = get_backup("20261130T180000Z-pg", store)
    d = b.to_dict(NOW)
    assert d["env"] == "lab" and d["host"] == "lab-db1" and d["path"] == str(store / "lab" / "lab-db1" / b.backup_id)
    assert (d["engine"], d["server_version"], d["databases"], d["total_bytes"]) == (
        "postgresql",
        "15.8",
        ["envcredit"],
        2048,
    )
    assert d["age_s"] == 8 * 3600 and d["record_id"] == "rec-20261130T180000Z-pg"
    assert d["files"] == [{"path": "envcredit.dump.zst", "bytes": 1024, "sha256": "0" * 64}]
    assert (d["started"], d["ended"]) == ("2026-11-30T18:00:00+00:00", "2026-11-30T18:00:00+00:00")
    assert set(d) == {
        "env",
        "host",
        "backup_id",
        "path",
        "engine",
        "server_version",
        "databases",
        "total_bytes",
        "started",
        "ended",
        "age_s",
        "record_id",
        "verification",
        "verified_at",
        "verify_record_id",
        "files",
    }
    assert Backup("lab", "h", "x", Path("x"), {}, {}).to_dict(NOW)["files"] == []
    undated = Backup("lab", "h", "x", Path("x"), {"started": "yesterday"}, {})
    assert undated.started is None and undated.age_s(NOW) is None and undated.verification == "unverified"
    assert Backup("lab", "h", "x", Path("x"), {}, {"verified": {}}).verification == "unverified"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "?"),
        (0, "0m"),
        (3540, "59m"),
        (3599, "59m"),
        (3600, "1.0h"),
        (4141, "1.2h"),
        (2 * 86400 - 1, "48.0h"),
        (2 * 86400, "2.0d"),
        (177_121, "2.1d"),
    ],
)
def test_human_age(seconds: float | None, text: str) -> None:
    assert human_age(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "?"),
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0KB"),
        (1536 * 1024, "1.5MB"),
        (3 * 1024**3, "3.0GB"),
        (5 * 1024**4, "5120.0GB"),
    ],
)
def test_human_size(size: int | None, text: str) -> None:
    assert human_size(size) == text


def test_store_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSCTL_BACKUPS", raising=False)
    monkeypatch.setenv("OPSCTL_DATA", str(tmp_path / "data"))
    assert store_root() == (tmp_path / "data").resolve() / "backups"
    monkeypatch.setenv("OPSCTL_BACKUPS", str(tmp_path / "elsewhere"))
    assert store_root() == (tmp_path / "elsewhere").resolve()
    monkeypatch.setenv("OPSCTL_BACKUPS", str(tmp_path / "store"))
    _backup(tmp_path / "store", "lab", "h", "b1", "2026-11-30T18:00:00+00:00", ["envcredit"])
    assert [b.backup_id for b in list_backups()] == ["b1"]  # the default root is the store_root()
    with pytest.raises(NotFound, match=f"no backup 'b2' in {tmp_path / 'store'}"):
        get_backup("b2")


def test_cli_list_and_show(store: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["backups", "list", "--store", str(store), "--json"])
    assert result.exit_code == 0, result.output
    listed = {d["backup_id"]: d["verification"] for d in json.loads(result.stdout)}
    assert listed["20261129T180000Z-pg"] == "FAILED" and len(listed) == 4
    result = runner.invoke(cli, ["backups", "list", "--store", str(store), "--env", "lab", "--host", "lab-db1"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert set(lines) == {"20261130T180000Z-pg", "20261129T180000Z-pg"}
    assert "FAILED 2026-12-01 03:20 (UTC+8)" in lines["20261129T180000Z-pg"]
    assert "verified 2026-12-01 03:10 (UTC+8)" in lines["20261130T180000Z-pg"]
    result = runner.invoke(cli, ["backups", "list", "--store", str(store), "--env", "staging"])
    assert result.exit_code == 0 and result.stdout.strip() == "no backups"
    result = runner.invoke(cli, ["backups", "list", "--store", str(store), "--env", "a/b"])
    assert result.exit_code == 2 and "invalid environment" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(cli, ["backups", "show", "20261130T190000Z-my", "--store", str(store)])
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == {"stored": True}
    result = runner.invoke(cli, ["backups", "show", "nope", "--store", str(store)])
    assert result.exit_code == 2 and "no backup 'nope'" in result.stderr


def test_list_shows_the_pgbackrest_repository_and_its_recovery_window(store: Path) -> None:
    state = {
        "stanza": "lab-db1",
        "repo_host": "lab-backup1",
        "cipher": "aes-256-cbc",
        "record_id": "20261130T020000Z-abc",
        "earliest_restorable": 1795991812,  # 2026-11-30 06:36:52 UTC+8
        "last_archived": 1796000000.5,  # 2026-11-30 08:53:20 UTC+8
        "backups": [
            {"label": "20261130-063647F", "type": "full", "start": 1795991807, "stop": 1795991812},
            {"label": "20261130-063647F_20261130-063942I", "type": "incr", "start": 1795991982, "stop": 1795991986},
            {"label": "20261130-063647F_20261130-070000I", "type": "incr", "start": 1795993200, "stop": 1795993205},
        ],
    }
    (store / "lab" / "lab-db1" / "pgbackrest.json").write_text(json.dumps(state), encoding="utf-8")
    (store / "staging").mkdir(exist_ok=True)
    result = CliRunner().invoke(cli, ["backups", "list", "--store", str(store), "--env", "lab"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    heading = "point-in-time recovery (physical backups on the backup host, as the newest backup run read them):"
    line = lines[lines.index(heading) + 1]
    assert line == (
        "  lab/lab-db1: pgBackRest on lab-backup1 (aes-256-cbc), 1 full, 2 incr; "
        "restorable from 2026-11-30 06:36:52 (UTC+8) to at least 2026-11-30 08:53:20 (UTC+8)"
    )
    # the newest backup's end when nothing was archived after it; other environments are not shown
    state["last_archived"] = None
    (store / "lab" / "lab-db1" / "pgbackrest.json").write_text(json.dumps(state), encoding="utf-8")
    result = CliRunner().invoke(cli, ["backups", "list", "--store", str(store)])
    assert result.output.count("lab/lab-db1: pgBackRest on lab-backup1") == 1
    assert "to at least 2026-11-30 07:00:05 (UTC+8)" in result.output
    # a host's directory holding only the repository state is not a backup
    assert all("pgbackrest.json" not in b.backup_id for b in list_backups(store))


def test_list_shows_the_mariadb_archive_and_its_recovery_window(store: Path) -> None:
    """The MariaDB archive's state (role db_backup, mariadb_archive.yml) is listed the same way."""
    (store / "lab" / "lab-db2").mkdir(parents=True, exist_ok=True)
    state = {
        "tool": "mariadb-backup + binary logs",
        "repo_host": "lab-backup1",
        "cipher": "age",
        "record_id": "20261130T020000Z-def",
        "earliest_restorable": 1795991812,  # 2026-11-30 06:36:52 UTC+8
        "last_archived": 1796000000.5,  # 2026-11-30 08:53:20 UTC+8
        "binlogs": 12,
        "backups": [
            {"label": "20261130T223647Z-lab-db2", "type": "full", "stop": 1795991812},
            {"label": "20261130T230000Z-lab-db2", "type": "full", "stop": 1795993205},
        ],
    }
    (store / "lab" / "lab-db2" / "mariadb-archive.json").write_text(json.dumps(state), encoding="utf-8")
    result = CliRunner().invoke(cli, ["backups", "list", "--store", str(store), "--host", "lab-db2"])
    assert result.exit_code == 0, result.output
    assert (
        "  lab/lab-db2: mariadb-backup + binary logs on lab-backup1 (age), 2 full; "
        "restorable from 2026-11-30 06:36:52 (UTC+8) to at least 2026-11-30 08:53:20 (UTC+8)"
    ) in result.output.splitlines()
    repo = list_repositories(store, host="lab-db2")[0]
    assert repo.to_dict()["tool"] == "mariadb-backup + binary logs"
    assert all("mariadb-archive.json" not in b.backup_id for b in list_backups(store))
