"""A database host destroyed and rebuilt from the backup host alone, for real (issue 19): the
lab host is removed and made again from the image (`lab/lab.sh recreate`: OS and packages, no
data), the control host's var/backups is gone, and `opsctl run rebuild-db` brings the newest
archived state back (PostgreSQL: pgBackRest; MariaDB: the encrypted physical backup and binary
logs on lab-backup1), with a row written just before the host was lost, the same row counts,
archiving going on and the application hosts let in again. A host that holds the database is
refused before anything is touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.common import REPO
from helpers.lab import db_query, lab_run, on_host

pytestmark = pytest.mark.lab

SCRATCH = "envcredit_rebuild_probe"
TOOL = "/usr/local/lib/envcredit/envcredit_dbtool.py"
ARCHIVE_TOOL = "/usr/local/lib/envcredit/envcredit_mariadb_archive.py"


def podman(host: str, *argv: str, user: str = "root", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return on_host(host, list(argv), user, timeout)


def counts(host: str) -> dict[str, int]:
    engine = "postgresql" if host == "lab-db1" else "mariadb"
    proc = podman(host, "python3", TOOL, "counts", f"--engine={engine}", "--db=envcredit",
                  user="postgres" if host == "lab-db1" else "root")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout)["tables"])


def archived_binlogs() -> set[str]:
    proc = podman("lab-backup1", "sh", "-c", "ls /var/lib/envcredit-archive/lab-db2/binlog 2>/dev/null")
    return set(proc.stdout.split())


def physical_backup_exists(host: str) -> bool:
    if host == "lab-db1":
        proc = podman("lab-backup1", "pgbackrest", f"--stanza={host}", "--output=json", "info", user="pgbackrest")
        return proc.returncode == 0 and bool(json.loads(proc.stdout)[0].get("backup"))
    proc = podman("lab-backup1", "sh", "-c", f"ls /var/lib/envcredit-archive/{host}/base 2>/dev/null")
    return any(n.endswith(".json.age") for n in proc.stdout.split())


def archive_now(host: str) -> None:
    """What the archiving does by itself within a minute, done now: the marked row reaches lab-backup1."""
    if host == "lab-db1":
        db_query(host, "SELECT pg_switch_wal()")
        wal = db_query(host, "SELECT pg_walfile_name(pg_current_wal_lsn())")
        for _ in range(60):  # the segment before the current one is archived
            last = db_query(host, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
            if last and last[-24:] >= _previous(wal):
                return
            time.sleep(1)
        pytest.fail(f"lab-db1 did not archive its WAL up to {wal}")
    proc = podman(host, "python3", ARCHIVE_TOOL, "binlogs", user="mysql")
    assert proc.returncode == 0, proc.stderr


def _previous(wal: str) -> str:
    """The WAL segment file name before ``wal`` (timeline, log, segment: 8 hex digits each)."""
    tli, log, seg = int(wal[:8], 16), int(wal[8:16], 16), int(wal[16:], 16)
    if seg == 0:
        log, seg = log - 1, 0xFF
    else:
        seg -= 1
    return f"{tli:08X}{log:08X}{seg:08X}"


@pytest.fixture
def no_store(lab_archive: Path) -> Iterator[Path]:
    """The control host's var/backups removed for the test (put back afterwards)."""
    store = REPO / "var" / "backups"
    aside = REPO / "var" / f"backups.aside-{uuid.uuid4().hex[:8]}"
    if store.exists():
        store.rename(aside)
    try:
        yield store
    finally:
        if aside.exists():
            if store.exists():
                shutil.rmtree(store)
            aside.rename(store)


@pytest.mark.parametrize("host", ["lab-db1", "lab-db2"])
def test_a_destroyed_database_host_is_rebuilt_from_the_backup_host_alone(host: str, no_store: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="envcredit-test-store-") as root:
        if not physical_backup_exists(host):  # another lab test's, or one taken here (into a throwaway store)
            lab_run("backup", "--limit", host, "-e", f"db_backup_store_dir={root}/lab", timeout=900)
    assert physical_backup_exists(host)

    # A marked row committed just before the host is lost, archived like the timers do.
    marker = "rebuild-" + uuid.uuid4().hex
    db_query(host, f"DROP DATABASE IF EXISTS {SCRATCH}")
    db_query(host, f"CREATE DATABASE {SCRATCH}")
    db_query(host, "CREATE TABLE marks (note VARCHAR(80))", db=SCRATCH)
    db_query(host, f"INSERT INTO marks VALUES ('{marker}')", db=SCRATCH)
    before = counts(host)
    assert before, "the seeded database has no table"
    archive_now(host)
    binlogs_before = archived_binlogs()

    # The host is destroyed and made again, empty; var/backups is gone.
    recreate = subprocess.run([str(REPO / "lab" / "lab.sh"), "recreate", host], capture_output=True, text=True,
                              timeout=600, cwd=REPO, check=False)  # fmt: skip
    assert recreate.returncode == 0, recreate.stderr[-3000:]
    assert "envcredit" not in db_query(
        host, "SELECT datname FROM pg_database" if host == "lab-db1" else "SHOW DATABASES"
    )
    assert not no_store.exists()

    # Rebuilding two hosts at once is refused before any host is touched.
    lab_run("rebuild-db", "--yes", rc=2, timeout=300)

    try:
        rec = lab_run("rebuild-db", "--limit", host, "--yes", timeout=1800)
        assert rec["status"] == "successful"
        out = rec["outputs"]["rebuild"][host]
        assert {k: int(v) for k, v in out["tables"].items()} == before
        assert counts(host) == before
        assert db_query(host, "SELECT note FROM marks", db=SCRATCH) == marker
        assert not no_store.exists(), "the rebuild wrote into the control host's store"

        # The application hosts reach the database again (the lab's tier check: it connects
        # from lab-app1 and lab-app2 once the service listens beyond loopback).
        check = subprocess.run([str(REPO / "lab" / "lab.sh"), "check"], capture_output=True, text=True, timeout=300,
                               cwd=REPO, check=False)  # fmt: skip
        assert check.returncode == 0, check.stderr[-2000:]
        port = "5432" if host == "lab-db1" else "3306"
        listening = podman(host, "ss", "-Hltn", f"( sport = :{port} )").stdout
        assert any(not a.startswith(("127.", "[::1]")) for a in (ln.split()[3] for ln in listening.splitlines()))

        # Archiving goes on from the rebuilt host.
        if host == "lab-db1":
            proc = podman(host, "pgbackrest", f"--stanza={host}", "check", user="postgres", timeout=300)
            assert proc.returncode == 0, proc.stderr
        else:
            assert podman(host, "systemctl", "is-active", "envcredit-binlog-archive.timer").stdout.strip() == "active"
            db_query(host, f"INSERT INTO marks VALUES ('{marker}-after')", db=SCRATCH)
            archive_now(host)
            new = archived_binlogs() - binlogs_before
            assert new, "the rebuilt host archived no binary log"
            # numbered after what the backup host held: no name written twice, none skipped
            assert min(new) > max(binlogs_before)

        # The lost host's key is gone from the backup host: only the rebuilt host's is let in.
        if host == "lab-db1":
            own = podman(host, "cat", "/var/lib/postgresql/.ssh/id_ed25519.pub").stdout.split()[1]
            keys = podman("lab-backup1", "cat", "/var/lib/pgbackrest/.ssh/authorized_keys").stdout.splitlines()
            mine = [k for k in keys if k.endswith(f" postgres@{host}")]
        else:
            own = podman(host, "cat", "/etc/mysql/envcredit-archive/id_ed25519.pub").stdout.split()[1]
            keys = podman("lab-backup1", "cat", "/var/lib/envcredit-archive/.ssh/authorized_keys").stdout.splitlines()
            mine = [k for k in keys if f'--host {host}"' in k]
        assert len(mine) == 1 and own in mine[0], keys

        # Once the host holds the database, a second rebuild is refused before anything is touched.
        again = lab_run("rebuild-db", "--limit", host, "--yes", rc=2, timeout=600)
        assert "holds the database envcredit" in json.dumps(again)
        assert not again["changes"], again["changes"]
        assert db_query(host, f"SELECT count(*) FROM marks WHERE note = '{marker}'", db=SCRATCH) == "1"
    finally:
        podman(host, *(["psql", "-XAtqc", f"DROP DATABASE IF EXISTS {SCRATCH}"] if host == "lab-db1"
                       else ["mariadb", "-e", f"DROP DATABASE IF EXISTS {SCRATCH}"]),
               user="postgres" if host == "lab-db1" else "root")  # fmt: skip
