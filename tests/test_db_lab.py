"""Database operations on the lab, for real: seed, backup, verify, restore, retention.

Each test uses its own backup store (a temporary directory) and archive, so tests
do not depend on each other or on backups left by engineers. Tests that change
the live database put back the same data (a restore of the seeded data set).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.common import REPO, run_opsctl
from helpers.lab import DBTOOL as TOOL
from helpers.lab import LOGICAL_ONLY, host_command, lab_ansible_env, on_host, seed_with_repository_dbtool

pytestmark = pytest.mark.lab

ENGINE = {"lab-db1": "postgresql", "lab-db2": "mariadb"}
RUN_AS = {"lab-db1": "postgres", "lab-db2": "root"}


def tool(host: str, *args: str) -> dict[str, Any]:
    proc = on_host(host, ["/usr/bin/python3", TOOL, args[0], f"--engine={ENGINE[host]}", *args[1:]], RUN_AS[host])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def sql(host: str, statement: str) -> None:
    argv = (
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", "envcredit", "-c", statement]
        if ENGINE[host] == "postgresql"
        else ["mariadb", "envcredit", "-e", statement]
    )
    proc = on_host(host, argv, RUN_AS[host])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def checksums(host: str, db: str = "envcredit") -> dict[str, str]:
    return tool(host, "checksum", f"--db={db}")["tables"]  # type: ignore[no-any-return]


def opsctl(*args: str) -> tuple[int, dict[str, Any]]:
    proc = run_opsctl("run", *args, *LOGICAL_ONLY, "--env", "lab", "--json", timeout=600)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def store(lab_archive: Path) -> Iterator[Path]:
    """A fresh backup store root for one test (<root>/lab/<host>/<id>).

    Not under pytest's tmp_path: a concurrent pytest session may prune that base directory
    while a run is still copying into it."""
    root = Path(tempfile.mkdtemp(prefix="envcredit-test-store-"))
    (root / "lab").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def reseed(host: str) -> None:
    """Put the seeded data set back (after a failed test left the live tables changed)."""
    if ENGINE[host] == "postgresql":
        sql(host, "TRUNCATE behaviour_events, ratings, enterprises, indicators, publications RESTART IDENTITY")
    else:
        sql(
            host,
            "SET FOREIGN_KEY_CHECKS=0; TRUNCATE behaviour_events; TRUNCATE ratings; TRUNCATE enterprises; "
            "TRUNCATE indicators; TRUNCATE publications",
        )
    proc = run_opsctl("run", "seed", "--env", "lab", "--limit", host, "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:]


def store_vars(store: Path) -> list[str]:
    return ["-e", f"db_backup_store_dir={store / 'lab'}", "-e", f"db_restore_store_dir={store / 'lab'}"]


@pytest.fixture(scope="module")
def seeded(lab_ready: list[str]) -> None:
    seed_with_repository_dbtool()


def test_round_trip_both_engines(seeded: None, store: Path) -> None:
    before = {h: checksums(h) for h in ENGINE}
    assert all({"enterprises", "ratings", "behaviour_events"} <= set(c) for c in before.values())
    rc, rec = opsctl("backup", *store_vars(store))
    assert rc == 0, rec.get("failures")
    out = rec["outputs"]["backup"]
    for host in ENGINE:
        b = out[host]
        assert b["engine"] == ENGINE[host]
        assert b["files"] and all(len(f["sha256"]) == 64 for f in b["files"])
        assert b["databases"][0]["tables"]["enterprises"] == 400
        assert b["databases"][0]["dump_jobs"] == 1  # a small database: parallel jobs would not pay
        assert (store / "lab" / host / b["backup_id"] / "status.json").is_file()
    # Destroy data, then restore the latest backup in place of the live database.
    try:
        for host in ENGINE:
            sql(host, "DELETE FROM behaviour_events WHERE id % 3 = 0")
            sql(host, "UPDATE enterprises SET name = 'X' WHERE id < 10")
            assert checksums(host) != before[host]
        rc, rec = opsctl(
            "restore", "--yes", "-e", "backup_id=latest", "-e", "db_restore_drop_previous=true", *store_vars(store)
        )
        assert rc == 0, rec.get("failures") or rec.get("error")
    finally:
        for host in ENGINE:
            if checksums(host) != before[host]:
                reseed(host)
    for host in ENGINE:
        assert rec["outputs"]["restore"][host]["live_replaced"] is True
        assert rec["outputs"]["restore"][host]["warnings"] == []  # the swap left nothing behind
        assert checksums(host) == before[host], host
        # the safety backup of the damaged data was taken first: two backups in the store now
        assert len([p for p in (store / "lab" / host).iterdir() if not p.name.endswith(".partial")]) == 2


def test_corrupt_backup_refused_before_touching_live(seeded: None, store: Path) -> None:
    rc, rec = opsctl("backup", "--limit", "lab-db1", *store_vars(store))
    assert rc == 0, rec.get("failures")
    bid = rec["outputs"]["backup"]["lab-db1"]["backup_id"]
    victim = next(p for p in sorted((store / "lab" / "lab-db1" / bid).rglob("*.zst")))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    sql("lab-db1", "UPDATE indicators SET weight = weight WHERE id = 1")
    before = checksums("lab-db1")
    rc, rec = opsctl("restore", "--yes", "--limit", "lab-db1", "-e", f"backup_id={bid}", *store_vars(store))
    assert rc != 0
    msg = " ".join(f["msg"] for f in rec["failures"])
    assert "corrupt" in msg and "sha256 mismatch" in msg, msg
    assert not rec["changes"] or all(
        c["task"] != "Swap the databases (live -> previous, restored -> live)" for c in rec["changes"]
    )
    assert checksums("lab-db1") == before
    assert len(list((store / "lab" / "lab-db1").iterdir())) == 1  # no safety backup either: nothing touched


def test_nonexistent_backup_id_refused(seeded: None, store: Path) -> None:
    before = checksums("lab-db2")
    rc, rec = opsctl(
        "restore", "--yes", "--limit", "lab-db2", "-e", "backup_id=20000101T000000Z-nope", *store_vars(store)
    )
    assert rc != 0
    assert "not found" in " ".join(f["msg"] for f in rec["failures"])
    assert rec["changes"] == []
    assert checksums("lab-db2") == before


def test_retention_keeps_the_newest_verified_backup(seeded: None, store: Path) -> None:
    rc, rec = opsctl("backup", "--limit", "lab-db2", *store_vars(store))
    assert rc == 0, rec.get("failures")
    real = store / "lab" / "lab-db2" / rec["outputs"]["backup"]["lab-db2"]["backup_id"]
    # Three older backups (copies with older dates); the middle one is the verified one.
    olds = []
    for day, verified in (("20260101", False), ("20260201", True), ("20260301", False)):
        bid = f"{day}T010000Z-lab-db2"
        dest = store / "lab" / "lab-db2" / bid
        shutil.copytree(real, dest)
        manifest = json.loads((dest / "manifest.json").read_text())
        manifest.update(backup_id=bid, started=f"{day[:4]}-{day[4:6]}-{day[6:]}T01:00:00+00:00")
        (dest / "manifest.json").write_text(json.dumps(manifest))
        status = json.loads((dest / "status.json").read_text())
        status.update(backup_id=bid, verified={"ok": True, "at": "2026-03-02T00:00:00+00:00"} if verified else None)
        (dest / "status.json").write_text(json.dumps(status))
        olds.append(bid)
    shutil.rmtree(real)
    keep = [
        "-e",
        "db_backup_keep_last=1",
        "-e",
        "db_backup_keep_daily=0",
        "-e",
        "db_backup_keep_weekly=0",
        "-e",
        "db_backup_keep_monthly=0",
    ]
    # Every new backup fails: nothing is removed.
    bad = store.parent / "bad.yml"
    bad.write_text("db_backup_databases: [no_such_db]\n")
    rc, rec = opsctl("backup", "--limit", "lab-db2", "-e", f"@{bad}", *keep, *store_vars(store))
    assert rc != 0
    assert sorted(p.name for p in (store / "lab" / "lab-db2").iterdir()) == olds
    # A good backup: retention keeps it and the newest verified one, removes the rest.
    rc, rec = opsctl("backup", "--limit", "lab-db2", *keep, *store_vars(store))
    assert rc == 0, rec.get("failures")
    new = rec["outputs"]["backup"]["lab-db2"]["backup_id"]
    assert sorted(rec["outputs"]["backup"]["lab-db2"]["retention_removed"]) == [olds[0], olds[2]]
    assert sorted(p.name for p in (store / "lab" / "lab-db2").iterdir()) == sorted([olds[1], new])
    listed = run_opsctl("backups", "list", "--store", str(store), "--host", "lab-db2", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["backup_id"] for r in rows] == [new, olds[1]]
    assert [r["verification"] for r in rows] == ["unverified", "verified"]


LOAD_DB = "envcredit_load"
LOAD_SETUP = {
    "postgresql": f"dropdb --if-exists --force {LOAD_DB}; createdb {LOAD_DB}; psql -XAtq -v ON_ERROR_STOP=1 -d {LOAD_DB} "
    "-c 'CREATE TABLE t (id bigserial PRIMARY KEY, v text)' "
    "-c 'INSERT INTO t (v) SELECT repeat(md5(g::text), 6) FROM generate_series(1, 300000) g'",
    "mariadb": f"mariadb -e 'DROP DATABASE IF EXISTS {LOAD_DB}; CREATE DATABASE {LOAD_DB}; "
    f"USE {LOAD_DB}; CREATE TABLE t (id bigint AUTO_INCREMENT PRIMARY KEY, v text) ENGINE=InnoDB; "
    "INSERT INTO t (v) SELECT REPEAT(MD5(seq), 6) FROM seq_1_to_300000'",
}
# One session inserting a row every few ms, each in its own transaction, for about a minute.
LOAD_WRITER = {
    "postgresql": f"psql -XAtq -d {LOAD_DB} -c 'DO $$ BEGIN FOR i IN 1..8000 LOOP "
    "INSERT INTO t (v) VALUES (i::text); COMMIT; PERFORM pg_sleep(0.005); END LOOP; END $$'",
    "mariadb": f"printf '%s\\n' 'DELIMITER //' 'BEGIN NOT ATOMIC DECLARE i INT DEFAULT 0; WHILE i < 8000 DO "
    "INSERT INTO t (v) VALUES (i); DO SLEEP(0.005); SET i = i + 1; END WHILE; END//' "
    f"| mariadb {LOAD_DB}",
}


def load_rows(host: str) -> int:
    argv = (
        ["psql", "-XAtq", "-d", LOAD_DB, "-c", "SELECT count(*) FROM t"]
        if ENGINE[host] == "postgresql"
        else ["mariadb", "-NB", LOAD_DB, "-e", "SELECT count(*) FROM t"]
    )
    proc = on_host(host, argv, RUN_AS[host])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(proc.stdout.strip())


def test_backup_taken_under_write_load_verifies_on_both_engines(seeded: None, store: Path) -> None:
    """Rows are inserted and committed all through the backup. PostgreSQL's counts share the
    dump's snapshot (tolerance 0); MariaDB's cannot, so the manifest carries the measured number
    of rows written meanwhile, and backup-verify (a real restore into a scratch database) passes."""
    writers = []
    try:
        for host, engine in ENGINE.items():
            setup = on_host(host, ["bash", "-c", LOAD_SETUP[engine]], RUN_AS[host])
            assert setup.returncode == 0, setup.stdout + setup.stderr
        for host, engine in ENGINE.items():
            writers.append(
                subprocess.Popen(
                    host_command(host, ["bash", "-c", LOAD_WRITER[engine]], RUN_AS[host]),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=REPO,
                    env=lab_ansible_env(),
                )
            )
        before = {h: load_rows(h) for h in ENGINE}
        for _ in range(60):  # until both writers are seen writing
            if all(load_rows(h) > before[h] for h in ENGINE):
                break
        else:
            pytest.fail("the writers never wrote")
        varsfile = store / "load-vars.yml"
        varsfile.write_text(json.dumps({"db_backup_databases": [LOAD_DB]}), encoding="utf-8")
        rc, rec = opsctl("backup", "-e", f"@{varsfile}", *store_vars(store))
        assert rc == 0, rec.get("failures") or rec.get("error")
        manifests = {
            h: json.loads(
                (store / "lab" / h / rec["outputs"]["backup"][h]["backup_id"] / "manifest.json").read_text(
                    encoding="utf-8"
                )
            )
            for h in ENGINE
        }
        assert all(load_rows(h) > m["databases"][0]["tables"]["t"] for h, m in manifests.items()), (
            "the writers stopped before the backup ended: nothing was tested"
        )
        assert manifests["lab-db1"]["databases"][0]["count_tolerance"] == 0
        assert manifests["lab-db2"]["databases"][0]["count_tolerance"] > 0
        rc, rec = opsctl(
            "backup-verify", "-e", "backup_id=latest", "-e", f"db_restore_database={LOAD_DB}", *store_vars(store)
        )
        assert rc == 0, rec.get("failures") or rec.get("error")
        for host in ENGINE:
            status = json.loads(
                (store / "lab" / host / manifests[host]["backup_id"] / "status.json").read_text(encoding="utf-8")
            )
            assert status["verified"] and status["verified"]["ok"] is True, status
    finally:
        for w in writers:
            w.kill()
            w.wait()
        on_host("lab-db1", ["dropdb", "--if-exists", "--force", LOAD_DB], "postgres")
        on_host(
            "lab-db2", ["bash", "-c", f"pkill -f 'mariadb {LOAD_DB}'; mariadb -e 'DROP DATABASE IF EXISTS {LOAD_DB}'"]
        )
