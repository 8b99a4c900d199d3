"""Point-in-time restore of MariaDB on the lab, for real (issue 19): lab-db2 comes back to a
given second from the encrypted archive on lab-backup1 (a physical backup and the binary logs
after it), into a side instance and in place, while a writer keeps committing.

The story of the issue: with writes running, a marked row at T1, a table dropped at T2 (T1 + 34 s);
restore to T1 + 30 s. The marked row and the table are there, nothing written after T1 + 30 s is.
The control host's backup store is an empty directory throughout: the restore reads the backup
host alone. The probe data lives in a scratch database of this module (created and dropped here).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from helpers.lab import PODMAN_ENV, lab_run, on_host

pytestmark = pytest.mark.lab

HOST = "lab-db2"
SCRATCH = "envcredit_mpitr_probe"
SIDE_SOCKET = "/run/mysqld/mysqld-pitr.sock"
ARCHIVE_TOOL = "/usr/local/lib/envcredit/envcredit_mariadb_archive.py"
BASES = f"/var/lib/envcredit-archive/{HOST}/base"
BEIJING = timezone(timedelta(hours=8))


def beijing(when: datetime) -> str:
    return when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S+08")


def podman(host: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return on_host(host, list(argv), stdin=stdin)


def sql(statement: str, socket: str = "", check: bool = True) -> str:
    argv = ["podman", "exec", HOST, "mariadb", "-N", "-B", *([f"--socket={socket}"] if socket else []), "-e", statement]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=PODMAN_ENV, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def complete_bases() -> list[str]:
    proc = podman("lab-backup1", "sh", "-c", f"ls {BASES} 2>/dev/null")
    return [n[: -len(".json.age")] for n in proc.stdout.split() if n.endswith(".json.age")]


@pytest.fixture
def store(lab_archive: Path) -> Iterator[list[str]]:
    with tempfile.TemporaryDirectory(prefix="envcredit-test-store-") as root:
        yield ["-e", f"db_backup_store_dir={root}/lab", "-e", f"db_restore_store_dir={root}/lab"]


@pytest.fixture
def writer(lab_ready: list[str]) -> Iterator[None]:
    """A scratch database with a table to drop and a writer committing a row every 0.2 s."""
    sql(f"DROP DATABASE IF EXISTS {SCRATCH}; CREATE DATABASE {SCRATCH}")
    sql(
        f"CREATE TABLE {SCRATCH}.writes (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6));"
        f"CREATE TABLE {SCRATCH}.victim (n INT); INSERT INTO {SCRATCH}.victim SELECT seq FROM {SCRATCH}.seq_1_to_100;"
        f"CREATE TABLE {SCRATCH}.marks (note VARCHAR(80), at DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6))"
    )
    loop = f"while :; do mariadb -e 'INSERT INTO {SCRATCH}.writes () VALUES ()' >/dev/null 2>&1; sleep 0.2; done"
    proc = subprocess.Popen(
        ["podman", "exec", HOST, "bash", "-c", loop],
        env=PODMAN_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.kill()
        subprocess.run(["podman", "exec", HOST, "pkill", "-f", "INSERT INTO " + SCRATCH], env=PODMAN_ENV, check=False)
        sql(f"DROP DATABASE IF EXISTS {SCRATCH}", check=False)


def test_restore_to_a_point_in_time_into_a_side_instance_then_in_place(store: list[str], writer: None) -> None:
    # a physical backup to start from: tests/test_db_mariadb_archive_lab.py's, or one taken here
    if not complete_bases():
        lab_run("backup", "--limit", HOST, *store, timeout=900)
    assert complete_bases()
    kept_before = previous_data_dirs()  # another test's in-place restore may have kept one

    marker = "pitr-marker-" + uuid.uuid4().hex
    sql(f"INSERT INTO {SCRATCH}.marks (note) VALUES ('{marker}')")
    t1 = datetime.strptime(sql(f"SELECT at FROM {SCRATCH}.marks"), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    time.sleep(34)  # past the target (T1 + 30 s) by more than the restore's 1 s granularity (MariaDB)
    sql(f"DROP TABLE {SCRATCH}.victim")  # T2 = T1 + 34 s
    target = t1 + timedelta(seconds=30)
    cut = target.strftime("%Y-%m-%d %H:%M:%S.%f")
    time.sleep(2)
    assert int(sql(f"SELECT count(*) FROM {SCRATCH}.writes WHERE at > '{cut}'")) > 0  # the writer runs

    # Into the side instance: the live one is not touched (the table stays dropped there).
    rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={beijing(target)}", "-e", "restore_to=side", "--yes",
                  *store, timeout=900)  # fmt: skip
    side = rec["outputs"]["restore"][HOST]
    assert side["target_time"] == beijing(target) and side["live_replaced"] is False
    assert side["restored_into"] == f"side instance /var/lib/mysql-pitr (port 3307, socket {SIDE_SOCKET})"
    assert side["binlogs"], "no binary log was replayed"
    assert sql(f"SELECT note FROM {SCRATCH}.marks", socket=SIDE_SOCKET) == marker
    assert sql(f"SELECT count(*) FROM {SCRATCH}.victim", socket=SIDE_SOCKET) == "100"
    # nothing after the target (the binary log's times are whole seconds: the target's second is out)
    assert sql(f"SELECT count(*) FROM {SCRATCH}.writes WHERE at >= '{cut}'", socket=SIDE_SOCKET) == "0"
    # the writes just before the target are there (the restore did not stop at the backup)
    near = (target - timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert int(sql(f"SELECT count(*) FROM {SCRATCH}.writes WHERE at > '{near}'", socket=SIDE_SOCKET)) > 0
    assert (
        sql(f"SELECT count(*) FROM information_schema.tables WHERE table_schema='{SCRATCH}' AND table_name='victim'")
        == "0"
    )
    # the side instance listens on 127.0.0.1 only and writes no binary log
    assert sql("SELECT @@bind_address, @@log_bin", socket=SIDE_SOCKET).split() == ["127.0.0.1", "0"]

    # In place, MariaDB failing to start on the restored data (after the side instance's rehearsal
    # passed, the live data directory moved aside and the restored one put in its place): the
    # previous data directory comes back and MariaDB runs on it, nothing committed is lost.
    committed = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    time.sleep(1)
    rows_before = sql(f"SELECT count(*) FROM {SCRATCH}.writes WHERE at < '{committed}'")
    with first_start_fails():
        rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={beijing(target)}", "--yes", *store, rc=1,
                      timeout=900)  # fmt: skip
    assert rec["status"] == "failed"
    # the fault where it was meant to be, then the rollback's own message
    assert rec["failures"][0]["task"] == "Start MariaDB on the restored data", rec["failures"]
    msg = rec["failures"][-1]["msg"]
    assert msg.startswith(
        "the point-in-time restore in place failed; the previous data directory is back and MariaDB runs as before"
    ), msg
    done = {c["task"] for c in rec["changes"]}
    assert {"Keep the live data directory aside", "Put the previous data directory back"} <= done, done
    assert (
        sql(f"SELECT count(*) FROM information_schema.tables WHERE table_schema='{SCRATCH}' AND table_name='victim'")
        == "0"
    )  # the live state: still dropped
    assert sql(f"SELECT note FROM {SCRATCH}.marks") == marker
    assert sql(f"SELECT count(*) FROM {SCRATCH}.writes WHERE at < '{committed}'") == rows_before
    time.sleep(2)  # the writer goes on on the previous data directory
    recent = (datetime.now(UTC) - timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert sql(f"SELECT count(*) FROM {SCRATCH}.writes WHERE at > '{recent}'") != "0"
    assert previous_data_dirs() == kept_before, "a data directory left aside after the rollback"
    # the archiving was held during the swap and runs again; nothing of the rolled-back instance
    # was shipped: no archived binary log after the live one
    assert "Hold the binary-log archiving while the data directory is swapped" in done, done
    assert podman(HOST, "systemctl", "is-active", "envcredit-binlog-archive.timer").stdout.strip() == "active"
    shipping = podman(HOST, "runuser", "-u", "mysql", "--", "python3", ARCHIVE_TOOL, "binlogs")  # the closed ones
    assert shipping.returncode == 0, shipping.stderr
    current = sql("SHOW MASTER STATUS").split()[0]
    shipped = podman("lab-backup1", "ls", f"/var/lib/envcredit-archive/{HOST}/binlog").stdout.split()
    assert shipped and all(name.removesuffix(".age") < current for name in shipped), (current, shipped[-3:])

    # In place: the same target; the live data directory is replaced after the rehearsal.
    before_in_place = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={beijing(target)}", "-e", "db_restore_drop_previous=true",
                  "--yes", *store, timeout=900)  # fmt: skip
    live = rec["outputs"]["restore"][HOST]
    assert live["live_replaced"] is True and live["restored_into"] == "/var/lib/mysql"
    assert live["new_timeline_base"], "no physical backup started the new timeline"
    assert sql(f"SELECT note FROM {SCRATCH}.marks") == marker
    assert sql(f"SELECT count(*) FROM {SCRATCH}.victim") == "100"
    assert sql(f"SELECT count(*) FROM {SCRATCH}.writes WHERE at >= '{cut}' AND at < '{before_in_place}'") == "0"
    # binary logging goes on after the previous numbering and reaches the backup host
    assert sql("SELECT @@log_bin") == "1"
    shipped = json.loads(
        subprocess.run(
            ["podman", "exec", HOST, "runuser", "-u", "mysql", "--", "python3", ARCHIVE_TOOL, "binlogs"],
            capture_output=True, text=True, timeout=120, env=PODMAN_ENV, check=True,
        ).stdout
    )  # fmt: skip
    assert shipped["current"] > side["binlogs"][-1]
    # the side instance is gone; the previous data directory was dropped on request
    assert subprocess.run(["podman", "exec", HOST, "test", "-e", SIDE_SOCKET], env=PODMAN_ENV, check=False).returncode
    assert previous_data_dirs() == kept_before


# A drop-in on lab-db2 that makes the next start of mariadb.service fail, once (the check runs as
# root, "+": the unit runs as mysql). In an in-place restore that is the start on the restored data
# (nothing else in the run starts the live unit; the side instance is a unit of its own), and the
# rollback's start then works: a fault between the side instance's rehearsal and the swap, which
# nothing natural produces on demand.
FAULT_DROPIN = "/etc/systemd/system/mariadb.service.d/zz-envcredit-test-fault.conf"
FAULT_ONCE = "/run/envcredit-test-mariadb-start-fails"


@contextlib.contextmanager
def first_start_fails() -> Iterator[None]:
    dropin = f"[Service]\nExecStartPre=+/bin/sh -c 'if [ -e {FAULT_ONCE} ]; then rm -f {FAULT_ONCE}; exit 1; fi'\n"
    script = (
        f"mkdir -p $(dirname {FAULT_DROPIN}) && cat > {FAULT_DROPIN} && touch {FAULT_ONCE} && systemctl daemon-reload"
    )
    proc = podman(HOST, "sh", "-c", script, stdin=dropin)
    assert proc.returncode == 0, proc.stderr
    try:
        yield
    finally:
        proc = podman(HOST, "sh", "-c", f"rm -f {FAULT_DROPIN} {FAULT_ONCE} && systemctl daemon-reload")
        assert proc.returncode == 0, proc.stderr


def previous_data_dirs() -> set[str]:
    """The previous data directories an in-place restore kept in /var/lib (``mysql.pre_<time>``)."""
    ls = subprocess.run(["podman", "exec", HOST, "ls", "/var/lib"], capture_output=True, text=True, env=PODMAN_ENV,
                        check=True).stdout  # fmt: skip
    return {name for name in ls.split() if "pre_" in name}


def test_a_target_outside_the_window_or_a_wrong_key_is_refused_before_anything_is_touched(
    store: list[str], lab_ready: list[str]
) -> None:
    future = beijing(datetime.now(UTC) + timedelta(days=1))
    rec = lab_run(
        "restore", "--limit", HOST, "-e", f"target_time={future}", "-e", "restore_to=side", "--yes", *store, rc=2
    )
    assert rec["status"] == "failed"
    msg = rec["failures"][0]["msg"]
    assert msg.startswith(f"bad input: target_time {future} is after") and " .. " in msg, msg
    # A base on the backup host that the vault's key does not open (encrypted to another key):
    # the restore reads every base's metadata first, so it stops there, before anything is touched.
    other = podman(HOST, "age-keygen").stdout
    recipient = next(line.split(": ", 1)[1] for line in other.splitlines() if line.startswith("# public key: "))
    fake = f"{BASES}/20000101T000000Z-{HOST}"
    made = podman(
        "lab-backup1", "sh", "-c", f"echo '{{}}' | age -r {recipient} > {fake}.json.age && touch {fake}.xbs.zst.age"
    )
    assert made.returncode == 0, made.stderr
    try:
        target = beijing(datetime.now(UTC) - timedelta(seconds=20))
        rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={target}", "-e", "restore_to=side", "--yes",
                      *store, rc=1)  # fmt: skip
        msg = rec["failures"][0]["msg"]
        assert "the age key does not open base/20000101T000000Z" in msg and "wrong archive key" in msg, msg
        assert rec["changes"] == [], [c["task"] for c in rec["changes"]]
        assert podman(HOST, "test", "-e", "/run/envcredit-pitr.identity").returncode != 0  # the key was removed
        assert podman(HOST, "test", "-e", "/var/lib/mysql-pitr.binlog.sql").returncode != 0
    finally:
        podman("lab-backup1", "sh", "-c", f"rm -f {fake}.json.age {fake}.xbs.zst.age")
