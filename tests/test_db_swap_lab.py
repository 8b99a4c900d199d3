"""The logical restore's swap (envcredit_dbtool.py swap), with the faults that meet it on a real
server: what it reports must be what is live.

- MariaDB, a file the server does not know in the restored database's directory (a stray
  `lost+found`, an editor's backup): the atomic `RENAME TABLE` works, the `DROP DATABASE` of the
  emptied database after it fails. The swap is done, so the tool exits 0 and names what is left;
  before, it failed and the role's rescue reported the live database "unchanged" although the
  restored data was live.
- MariaDB, a `RENAME TABLE` the server refuses (a table with a trigger cannot move to another
  database): exit 1, the live database unchanged, nothing of the swap left (the empty database
  made for the previous data dropped again), no traceback.
- The same refusal through `opsctl run restore` (role db_restore's rescue, which no other test
  reaches): the run fails saying the live database is as it was, the restored copy is dropped,
  nothing named `envcredit_restore_*` or `envcredit_pre_*` is left, the live data unchanged.
- PostgreSQL, a client that reconnects at once whenever its session ends (a connection pool, a
  probe): the renames go through, because both databases refuse new connections until they
  are done; each gets its own setting back afterwards.

Scratch databases of their own on lab-db1 and lab-db2, dropped afterwards; the live `envcredit`
is never touched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.lab import DBTOOL, db_query, on_host, stdout_of
from test_db_faults_lab import opsctl, store  # noqa: F401  (store: a fixture)
from test_db_lab import checksums, store_vars
from test_db_transfer_lab import tools  # noqa: F401  (a fixture: the repository's tool on the hosts)

pytestmark = pytest.mark.lab

PID = os.getpid()
LIVE, NEW, OLD = (f"envcredit_swaptest_{part}_{PID}" for part in ("live", "new", "old"))


def swap(host: str, engine: str, user: str) -> tuple[int, str, str]:
    proc = on_host(
        host,
        ["/usr/bin/python3", DBTOOL, "swap", f"--engine={engine}", f"--live={LIVE}", f"--new={NEW}", f"--old={OLD}"],
        user,
    )
    return proc.returncode, proc.stdout, proc.stderr


def my(statement: str, db: str = "") -> str:
    return db_query("lab-db2", statement, db)


def my_databases() -> set[str]:
    return set(my(f"SHOW DATABASES LIKE 'envcredit_swaptest_%_{PID}'").split())


@pytest.fixture
def my_scratch(tools: None) -> Iterator[str]:
    """LIVE with rows 1..3, NEW with rows 10..11 (same table), on lab-db2; the server's data
    directory. Afterwards every scratch database is gone, stray files included."""
    datadir = my("SELECT @@datadir").rstrip("/")

    def clean() -> None:
        for db in (LIVE, NEW, OLD):
            on_host("lab-db2", ["rm", "-f", f"{datadir}/{db}/stray.txt"])
            my(f"DROP DATABASE IF EXISTS `{db}`")

    clean()
    for db, rows in ((LIVE, "(1),(2),(3)"), (NEW, "(10),(11)")):
        my(
            f"CREATE DATABASE `{db}`; CREATE TABLE `{db}`.events (id INT PRIMARY KEY); INSERT INTO `{db}`.events VALUES {rows}"
        )
    try:
        yield datadir
    finally:
        clean()
        assert not my_databases()


def test_mariadb_swap_done_but_the_emptied_database_cannot_be_dropped(my_scratch: str) -> None:
    # a file MariaDB does not know: DROP DATABASE removes the tables' files and then cannot rmdir
    stdout_of(
        on_host("lab-db2", ["install", "-o", "mysql", "-g", "mysql", "/dev/null", f"{my_scratch}/{NEW}/stray.txt"])
    )
    rc, out, err = swap("lab-db2", "mariadb", "root")
    assert rc == 0, err
    result = json.loads(out)
    assert result["live"] == LIVE and result["previous"] == OLD
    (warning,) = result["warnings"]
    assert "the swap is done" in warning and NEW in warning and "by hand" in warning, warning
    # what it says is what is live: the restored rows under the live name, the previous ones kept
    assert my("SELECT group_concat(id ORDER BY id) FROM events", LIVE) == "10,11"
    assert my("SELECT group_concat(id ORDER BY id) FROM events", OLD) == "1,2,3"
    assert my_databases() == {LIVE, OLD, NEW}  # the emptied one is left, as the warning says
    assert my(f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{NEW}'") == "0"


def test_mariadb_swap_the_server_refuses_leaves_everything_as_it_was(my_scratch: str) -> None:
    # a table with a trigger cannot be renamed into another database: the RENAME TABLE fails
    my("CREATE TRIGGER events_bi BEFORE INSERT ON events FOR EACH ROW SET NEW.id = NEW.id", NEW)
    rc, out, err = swap("lab-db2", "mariadb", "root")
    assert rc == 1, (out, err)
    assert err.startswith("envcredit_dbtool: the swap failed: ") and f"{LIVE} is unchanged" in err, err
    assert "Traceback" not in err and not out
    assert my("SELECT group_concat(id ORDER BY id) FROM events", LIVE) == "1,2,3"
    assert my("SELECT group_concat(id ORDER BY id) FROM events", NEW) == "10,11"
    assert my_databases() == {LIVE, NEW}  # the empty database made for the swap is gone again


def test_a_restore_whose_swap_the_server_refuses_changes_nothing(tools: None, store: Path) -> None:
    host, table = "lab-db2", f"swaptest_trigger_{PID}"
    # a table with a trigger in the live database: MariaDB cannot RENAME it into another database
    my(
        f"CREATE TABLE `{table}` (id INT PRIMARY KEY); "
        f"CREATE TRIGGER `{table}_bi` BEFORE INSERT ON `{table}` FOR EACH ROW SET NEW.id = NEW.id",
        "envcredit",
    )
    try:
        rc, rec = opsctl("backup", "--limit", host, *store_vars(store))
        assert rc == 0, rec.get("failures")
        before = checksums(host)
        rc, rec = opsctl("restore", "--limit", host, "--yes", "-e", "backup_id=latest", *store_vars(store))
        assert rc == 1 and rec["status"] == "failed", rec.get("failures")
        msg = rec["failures"][-1]["msg"]  # the rescue's, after the swap task's own
        assert msg.startswith("the restored copy was not swapped in, envcredit is as it was: "), msg
        assert "Trigger in wrong schema" in msg and "envcredit is unchanged" in msg and "Traceback" not in msg, msg
        done = [c["task"] for c in rec["changes"]]
        assert "Drop the restored database that could not be swapped in" in done, done
        assert checksums(host) == before
        left = my(
            r"SHOW DATABASES WHERE `Database` LIKE 'envcredit\_restore\_%' OR `Database` LIKE 'envcredit\_pre\_%'"
        )
        assert not left, left
    finally:
        my(f"DROP TABLE IF EXISTS `{table}`", "envcredit")


def pg(statement: str, db: str = "postgres") -> str:
    return db_query("lab-db1", statement, db)


RECONNECT = "envcredit-test-reconnect"


@pytest.fixture
def pg_scratch(tools: None) -> Iterator[None]:
    def clean() -> None:
        on_host("lab-db1", ["systemctl", "stop", RECONNECT])
        on_host("lab-db1", ["systemctl", "reset-failed", RECONNECT])
        for db in (LIVE, NEW, OLD):
            stdout_of(on_host("lab-db1", ["dropdb", "--if-exists", "--force", db], "postgres"))

    clean()
    for db, rows in ((LIVE, "(1),(2),(3)"), (NEW, "(10),(11)")):
        stdout_of(on_host("lab-db1", ["createdb", "-T", "template0", db], "postgres"))
        pg(f"CREATE TABLE events (id INT PRIMARY KEY); INSERT INTO events VALUES {rows}", db)
    try:
        yield
    finally:
        clean()


def test_postgres_swap_goes_through_a_client_that_reconnects_at_once(pg_scratch: None) -> None:
    # a client that is back within a few milliseconds whenever its session is ended
    started = on_host(
        "lab-db1",
        [
            "systemd-run",
            f"--unit={RECONNECT}",
            "--uid=postgres",
            "bash",
            "-c",
            f"while :; do psql -XAtq -d {LIVE} -c 'SELECT pg_sleep(600)' >/dev/null 2>&1; sleep 0.01; done",
        ],
    )
    assert started.returncode == 0, started.stdout + started.stderr
    deadline = time.monotonic() + 30
    while pg(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{LIVE}'") == "0":
        assert time.monotonic() < deadline, "the reconnecting client never connected"
        time.sleep(0.2)
    rc, out, err = swap("lab-db1", "postgresql", "postgres")
    assert rc == 0, err
    assert json.loads(out) == {"live": LIVE, "previous": OLD, "warnings": []}
    assert pg("SELECT string_agg(id::text, ',' ORDER BY id) FROM events", LIVE) == "10,11"
    assert pg("SELECT string_agg(id::text, ',' ORDER BY id) FROM events", OLD) == "1,2,3"
    # both take connections again (the client is back on the live name: the restored data)
    allow = pg(
        f"SELECT string_agg(datname || '=' || datallowconn, ',' ORDER BY datname) FROM pg_database WHERE datname IN ('{LIVE}', '{OLD}')"
    )
    assert allow == f"{LIVE}=true,{OLD}=true", allow
    deadline = time.monotonic() + 30
    while pg(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{LIVE}'") == "0":
        assert time.monotonic() < deadline, "the client could not connect to the live name again"
        time.sleep(0.2)
