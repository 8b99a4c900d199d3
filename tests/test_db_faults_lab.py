"""Backup faults on the lab, for real: a backup that cannot start leaves nothing behind.

Each test has its own store and archive; the live databases are only read. The PostgreSQL
kill test backs up a scratch database of its own (created and dropped here), never envcredit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.common import VENV_BIN, run_opsctl
from helpers.lab import LOGICAL_ONLY, on_host, stdout_of
from test_db_transfer_lab import DBTOOL, checksums, tools  # noqa: F401  (tools: a fixture)

pytestmark = pytest.mark.lab


def opsctl(*args: str) -> tuple[int, dict[str, Any]]:
    proc = run_opsctl("run", *args, *LOGICAL_ONLY, "--env", "lab", "--json", timeout=600)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def store(lab_archive: Path) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="envcredit-test-store-"))
    (root / "lab").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def intact(backup: Path) -> bool:
    manifest = json.loads((backup / "manifest.json").read_text())
    return all(hashlib.sha256((backup / f["path"]).read_bytes()).hexdigest() == f["sha256"] for f in manifest["files"])


@pytest.mark.parametrize("host", ["lab-db1", "lab-db2"])
def test_not_enough_free_space_is_refused_before_starting(store: Path, host: str) -> None:
    vars_ = ["-e", f"db_backup_store_dir={store / 'lab'}"]
    rc, rec = opsctl("backup", "--limit", host, *vars_)
    assert rc == 0, rec.get("failures")
    previous = rec["outputs"]["backup"][host]["backup_id"]
    # A reserve larger than any disk: the free-space check must refuse before anything is written.
    rc, rec = opsctl("backup", "--limit", host, "-e", "db_backup_min_free_mb=100000000", *vars_)
    assert rc != 0
    msg = " ".join(f["msg"] for f in rec["failures"])
    assert "not enough free space" in msg, msg
    assert "backup" not in rec["outputs"]
    assert [p.name for p in (store / "lab" / host).iterdir()] == [previous]
    assert intact(store / "lab" / host / previous)
    on_host_dir = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
    assert ".partial" not in on_host_dir and previous in on_host_dir
    listed = run_opsctl("backups", "list", "--store", str(store), "--host", host, "--json")
    assert [r["backup_id"] for r in json.loads(listed.stdout)] == [previous]


def test_server_killed_mid_backup_leaves_nothing_partial(tools: None, store: Path) -> None:
    """MariaDB (lab-db2, which the application does not use) is killed while the backup runs.

    The backup is held mid-way by a table lock from another session (so the kill cannot come too
    early or too late), the server is killed with SIGKILL and started again."""
    host = "lab-db2"
    vars_ = ["-e", f"db_backup_store_dir={store / 'lab'}"]
    rc, rec = opsctl("backup", "--limit", host, *vars_)
    assert rc == 0, rec.get("failures")
    previous = rec["outputs"]["backup"][host]["backup_id"]
    before = checksums(host)
    holder = on_host(
        host,
        [
            "systemd-run",
            "--unit=envcredit-test-lock",
            "--collect",
            "mariadb",
            "envcredit",
            "-e",
            "LOCK TABLES ratings WRITE; SELECT SLEEP(120)",
        ],
    )
    assert holder.returncode == 0, holder.stdout + holder.stderr
    backup = subprocess.Popen(
        [str(VENV_BIN / "opsctl"), "run", "backup", "--limit", host, *vars_, *LOGICAL_ONLY, "--env", "lab", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = stdout_of(
                on_host(
                    host,
                    [
                        "mariadb",
                        "-NB",
                        "-e",
                        "SELECT count(*) FROM information_schema.processlist "
                        "WHERE state LIKE 'Waiting for table metadata lock'",
                    ],
                )
            )
            if state.strip() not in ("", "0"):
                break
            assert backup.poll() is None, backup.communicate()
            time.sleep(1)
        else:
            pytest.fail("the backup never reached the locked table")
        partial = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
        assert ".partial" in partial  # really mid-backup
        killed = on_host(host, ["systemctl", "kill", "--signal=KILL", "mariadb.service"])
        assert killed.returncode == 0, killed.stdout
        out, err = backup.communicate(timeout=300)
    finally:
        if backup.poll() is None:
            backup.kill()
        on_host(host, ["systemctl", "stop", "envcredit-test-lock"])
        on_host(host, ["systemctl", "start", "mariadb.service"])
        deadline = time.monotonic() + 120
        while on_host(host, ["mariadb", "-NB", "-e", "SELECT 1"]).returncode != 0 and time.monotonic() < deadline:
            time.sleep(2)
    assert backup.returncode != 0
    rec = json.loads(out)
    assert rec["failures"], rec
    assert [p.name for p in (store / "lab" / host).iterdir()] == [previous]
    assert intact(store / "lab" / host / previous)
    left = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
    assert ".partial" not in left
    assert checksums(host) == before


PG_UNIT = "postgresql@15-main.service"  # the cluster itself (postgresql.service is only an umbrella)
PG_SCRATCH = f"envcredit_pgkill_{os.getpid()}"


def psql(db: str, statement: str, host: str = "lab-db1") -> str:
    return stdout_of(on_host(host, ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", statement], "postgres"))


def postgres_healthy(host: str = "lab-db1", timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = on_host(host, ["psql", "-XAtq", "-d", "postgres", "-c", "SELECT 1"], "postgres")
        if probe.returncode == 0 and probe.stdout.strip() == "1":
            return True
        time.sleep(2)
    return False


@pytest.fixture
def pg_scratch(tools: None, lab_archive: Path) -> Iterator[str]:
    """A scratch database on lab-db1 with data in `public` and one table in a schema `hold`
    (the backup tool counts the rows of `public` only; pg_dump dumps every schema, so a lock
    on hold.blocker stops pg_dump itself, not the tool before it).

    Teardown always brings PostgreSQL back (started, answering) and drops the scratch database."""
    host = "lab-db1"
    on_host(host, ["dropdb", "--if-exists", "--force", PG_SCRATCH], "postgres")
    stdout_of(on_host(host, ["createdb", "-T", "template0", "-E", "UTF8", PG_SCRATCH], "postgres"))
    psql(
        PG_SCRATCH,
        "CREATE TABLE events (id INTEGER PRIMARY KEY, note TEXT NOT NULL); "
        "INSERT INTO events SELECT g, repeat('韶关', 50) || g FROM generate_series(1, 20000) g; "
        "CREATE SCHEMA hold; CREATE TABLE hold.blocker (id INTEGER PRIMARY KEY); "
        "INSERT INTO hold.blocker VALUES (1)",
    )
    try:
        yield PG_SCRATCH
    finally:
        on_host(host, ["systemctl", "stop", "envcredit-test-pglock"])
        on_host(host, ["systemctl", "start", PG_UNIT])
        healthy = postgres_healthy(host)
        on_host(host, ["dropdb", "--if-exists", "--force", PG_SCRATCH], "postgres")
        assert healthy, f"PostgreSQL on {host} did not come back after the test"


def test_postgres_killed_mid_backup_leaves_nothing_partial(pg_scratch: str, store: Path, tmp_path: Path) -> None:
    """PostgreSQL (lab-db1) is killed with SIGKILL while pg_dump runs.

    pg_dump is held mid-way by an ACCESS EXCLUSIVE lock another session keeps on hold.blocker
    (so the kill comes neither too early nor too late); the whole cluster is killed, then started
    again (crash recovery) by the fixture. The run must fail, list no partial backup, and leave the
    previous backup intact and the data as it was."""
    host = "lab-db1"
    extra = tmp_path / "vars.yml"
    extra.write_text(
        json.dumps({"db_backup_store_dir": str(store / "lab"), "db_backup_databases": [pg_scratch]}), encoding="utf-8"
    )
    vars_ = ["-e", f"@{extra}"]
    rc, rec = opsctl("backup", "--limit", host, *vars_)
    assert rc == 0, rec.get("failures")
    previous = rec["outputs"]["backup"][host]["backup_id"]
    assert [d["name"] for d in rec["outputs"]["backup"][host]["databases"]] == [pg_scratch]
    before = stdout_of(
        on_host(host, ["/usr/bin/python3", DBTOOL, "checksum", "--engine=postgresql", f"--db={pg_scratch}"], "postgres")
    )
    holder = on_host(
        host,
        [
            "systemd-run",
            "--unit=envcredit-test-pglock",
            "--collect",
            "--uid=postgres",
            "psql",
            "-Xq",
            "-d",
            pg_scratch,
            "-c",
            "BEGIN",
            "-c",
            "LOCK TABLE hold.blocker IN ACCESS EXCLUSIVE MODE",
            "-c",
            "SELECT pg_sleep(300)",
        ],
    )
    assert holder.returncode == 0, holder.stdout + holder.stderr
    deadline = time.monotonic() + 60
    while psql(
        "postgres",
        "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' "
        "AND mode = 'AccessExclusiveLock' AND granted AND database = "
        f"(SELECT oid FROM pg_database WHERE datname = '{pg_scratch}')",
    ) in ("", "0"):
        assert time.monotonic() < deadline, "the lock holder never got its lock"
        time.sleep(1)
    backup = subprocess.Popen(
        [str(VENV_BIN / "opsctl"), "run", "backup", "--limit", host, *vars_, *LOGICAL_ONLY, "--env", "lab", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            waiting = psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' "
                f"AND datname = '{pg_scratch}' AND wait_event_type = 'Lock'",
            )
            if waiting not in ("", "0"):
                break
            assert backup.poll() is None, backup.communicate()
            time.sleep(1)
        else:
            pytest.fail("pg_dump never reached the locked table")
        partial = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
        assert ".partial" in partial  # really mid-backup, pg_dump running
        killed = on_host(host, ["systemctl", "kill", "--signal=KILL", PG_UNIT])
        assert killed.returncode == 0, killed.stdout
        out, err = backup.communicate(timeout=300)
    finally:
        if backup.poll() is None:
            backup.kill()
            backup.communicate()
        on_host(host, ["systemctl", "stop", "envcredit-test-pglock"])
        on_host(host, ["systemctl", "start", PG_UNIT])
    assert postgres_healthy(host), f"PostgreSQL on {host} did not come back"
    assert backup.returncode != 0, out[-2000:]
    rec = json.loads(out)
    assert rec["status"] == "failed", rec["status"]
    assert rec["failures"], rec
    assert "backup" not in rec["outputs"]
    assert [p.name for p in (store / "lab" / host).iterdir()] == [previous]
    assert intact(store / "lab" / host / previous)
    listed = run_opsctl("backups", "list", "--store", str(store), "--host", host, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["backup_id"] for r in json.loads(listed.stdout)] == [previous]
    left = stdout_of(on_host(host, ["ls", "-1", "/var/backups/envcredit"]))
    assert ".partial" not in left
    after = stdout_of(
        on_host(host, ["/usr/bin/python3", DBTOOL, "checksum", "--engine=postgresql", f"--db={pg_scratch}"], "postgres")
    )
    assert json.loads(after) == json.loads(before)
