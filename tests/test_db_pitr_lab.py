"""Point-in-time restore of PostgreSQL on the lab, for real (issue 19): lab-db1's cluster comes
back to a given second from the pgBackRest repository on lab-backup1, into a side cluster and in
place, while a writer keeps committing.

The story of the issue: with writes running, a marked row at T1, a table dropped at T2 (T1 + 34 s);
restore to T1 + 30 s. The marked row and the table are there, nothing written after T1 + 30 s is.
The control host's backup store is an empty directory throughout (`rm -rf var/backups` does not
matter: the restore reads the repository on the backup host alone).

The probe data lives in a scratch database of this module (created and dropped here); an in-place
restore takes the whole cluster back about a minute, which no other test depends on.
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

from helpers.lab import PODMAN_ENV, lab_run, on_host, stdout_of, unreachable

pytestmark = pytest.mark.lab

HOST = "lab-db1"
SCRATCH = "envcredit_pitr_probe"
SIDE_PORT = 5433
BEIJING = timezone(timedelta(hours=8))


def psql(sql: str, db: str = SCRATCH, port: int = 5432, check: bool = True) -> str:
    proc = subprocess.run(
        ["podman", "exec", "-u", "postgres", HOST, "psql", "-p", str(port), "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db,
         "-c", sql],
        capture_output=True, text=True, timeout=60, env=PODMAN_ENV, check=False,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def repository_backups() -> list[str]:
    """The labels of lab-db1's backups in the repository on lab-backup1."""
    proc = subprocess.run(
        ["podman", "exec", "-u", "pgbackrest", "lab-backup1", "pgbackrest", f"--stanza={HOST}", "--output=json", "info"],
        capture_output=True, text=True, timeout=60, env=PODMAN_ENV, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return []
    return [b["label"] for b in json.loads(proc.stdout)[0].get("backup", [])]


DATA_PARENT = "/var/lib/postgresql/15"
# On lab-db1, ahead of /usr/bin in sudo's secure_path: pgBackRest itself, except that a restore into
# the live cluster's path (the in-place swap: no --pg1-path, which the side cluster's restore names)
# goes to 20 s before the target it was given: the in-place restore then ends elsewhere than the
# side cluster's rehearsal, and its row check fails (a fault between the rehearsal and the swap,
# which nothing natural produces on demand).
FAULT = "/usr/local/bin/pgbackrest"
FAULT_SCRIPT = """#!/bin/bash
live=1
for a in "$@"; do case "$a" in --pg1-path=*) live=0;; esac; done
if [[ $live == 1 && " $* " == *" restore "* ]]; then
  args=()
  for a in "$@"; do
    case "$a" in
      --target=*) t=$(date -d "${a#--target=}" +%s)
                  args+=("--target=$(date -u -d "@$((t - 20))" '+%Y-%m-%d %H:%M:%S+00')");;
      *) args+=("$a");;
    esac
  done
  exec /usr/bin/pgbackrest "${args[@]}"
fi
exec /usr/bin/pgbackrest "$@"
"""


@contextlib.contextmanager
def in_place_restore_goes_elsewhere() -> Iterator[None]:
    stdout_of(on_host(HOST, ["sh", "-c", f"cat > {FAULT} && chmod 0755 {FAULT}"], stdin=FAULT_SCRIPT))
    try:
        yield
    finally:
        stdout_of(on_host(HOST, ["rm", "-f", FAULT]))


def history_files() -> list[str]:
    """The timeline history files of lab-db1 in the repository on lab-backup1."""
    out = stdout_of(on_host("lab-backup1", ["pgbackrest", f"--stanza={HOST}", "repo-ls", "--recurse", "archive"],
                            user="pgbackrest"))  # fmt: skip
    return sorted(line for line in out.split() if line.endswith(".history"))


def beijing(when: datetime) -> str:
    return when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S+08")


@pytest.fixture
def store(lab_archive: Path) -> Iterator[list[str]]:
    # an empty logical store: the point-in-time restore must not need the control host's backups
    with tempfile.TemporaryDirectory(prefix="envcredit-test-store-") as root:
        yield ["-e", f"db_backup_store_dir={root}/lab", "-e", f"db_restore_store_dir={root}/lab"]


@pytest.fixture
def writer(lab_ready: list[str]) -> Iterator[None]:
    """A scratch database with a table to drop and a writer committing a row every 0.2 s."""
    psql(f"DROP DATABASE IF EXISTS {SCRATCH}", db="postgres")
    psql(f"CREATE DATABASE {SCRATCH}", db="postgres")
    psql("CREATE TABLE writes (at timestamptz NOT NULL DEFAULT clock_timestamp()); CREATE TABLE victim (n int)")
    psql("INSERT INTO victim SELECT generate_series(1, 100)")
    loop = (
        f"while :; do psql -XAtq -d {SCRATCH} -c 'INSERT INTO writes DEFAULT VALUES' >/dev/null 2>&1; sleep 0.2; done"
    )
    proc = subprocess.Popen(
        ["podman", "exec", "-u", "postgres", HOST, "bash", "-c", loop],
        env=PODMAN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.kill()
        subprocess.run(["podman", "exec", HOST, "pkill", "-f", "INSERT INTO writes"], env=PODMAN_ENV, check=False)
        psql(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)", db="postgres", check=False)


def test_restore_to_a_point_in_time_into_a_side_cluster_then_in_place(store: list[str], writer: None) -> None:
    # a backup in the repository to start from: tests/test_db_pgbackrest_lab.py's, run before
    # this module in `make test`, or one taken here (the first is a full one)
    if not repository_backups():
        lab_run("backup", "--limit", HOST, *store, timeout=900)
    assert repository_backups()

    marker = "pitr-marker-" + uuid.uuid4().hex
    psql("CREATE TABLE marks (note text, at timestamptz DEFAULT clock_timestamp())")
    t1 = datetime.fromtimestamp(
        float(psql(f"INSERT INTO marks (note) VALUES ('{marker}') RETURNING extract(epoch FROM at)")), UTC
    )
    time.sleep(34)  # past the target (T1 + 30 s)
    psql("DROP TABLE victim")  # T2 = T1 + 34 s
    target = t1 + timedelta(seconds=30)
    time.sleep(2)
    assert int(psql(f"SELECT count(*) FROM writes WHERE at > '{target.isoformat()}'")) > 0  # the writer runs

    # Into the side cluster: the live cluster is not touched (the table stays dropped there).
    rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={beijing(target)}", "-e", "restore_to=side", "--yes",
                  *store, timeout=900)  # fmt: skip
    side = rec["outputs"]["restore"][HOST]
    assert side["target_time"] == beijing(target) and side["live_replaced"] is False
    assert side["restored_into"] == f"side cluster 15/pitr (port {SIDE_PORT})"
    assert psql("SELECT note FROM marks", port=SIDE_PORT) == marker
    assert psql("SELECT count(*) FROM victim", port=SIDE_PORT) == "100"
    assert psql(f"SELECT count(*) FROM writes WHERE at > '{target.isoformat()}'", port=SIDE_PORT) == "0"
    # the writes just before the target are there (the restore did not stop at the backup)
    assert (
        int(
            psql(
                f"SELECT count(*) FROM writes WHERE at > '{(target - timedelta(seconds=5)).isoformat()}'",
                port=SIDE_PORT,
            )
        )
        > 0
    )
    assert psql("SELECT to_regclass('victim') IS NULL") == "t"  # live: still dropped
    timeline = psql("SELECT timeline_id FROM pg_control_checkpoint()", db="postgres")

    # In place, the restore into the live path ending elsewhere than the side cluster's rehearsal
    # (after the live data directory was moved aside): the rows are checked while the replay is
    # paused at the target, so the check fails before any promotion; the previous data directory
    # comes back and the cluster runs on it, on its timeline, nothing committed lost, and no new
    # timeline reaches the repository (the in-place restore below, to the same target, still works).
    committed = datetime.now(UTC)
    time.sleep(1)
    rows_before = psql(f"SELECT count(*) FROM writes WHERE at < '{committed.isoformat()}'")
    aside = ["find", DATA_PARENT, "-maxdepth", "1", "-name", "main.pre_*"]
    kept_before = stdout_of(on_host(HOST, aside))
    histories = history_files()
    with in_place_restore_goes_elsewhere():
        rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={beijing(target)}", "-e",
                      f"db_restore_database={SCRATCH}", "--yes", *store, rc=1, timeout=900)  # fmt: skip
    assert rec["status"] == "failed"
    # the fault where it was meant to be (the check at the target), then the rollback's own message
    first = rec["failures"][0]
    assert first["task"] == "Require the expected rows (or, without an expectation, a database with tables)", first
    assert "differ from the side cluster's" in first["msg"], first
    msg = rec["failures"][-1]["msg"]
    assert msg.startswith(
        "the point-in-time restore in place failed; the previous data directory is back and the cluster runs as before"
    ), msg
    done = {c["task"] for c in rec["changes"]}
    assert {"Keep the data directory aside", "Put the previous data directory back"} <= done, done
    assert "Resume the replay paused at the target (it ends the recovery)" not in done
    assert psql("SELECT to_regclass('victim') IS NULL") == "t"  # the live state: still dropped
    assert psql("SELECT note FROM marks") == marker
    assert psql(f"SELECT count(*) FROM writes WHERE at < '{committed.isoformat()}'") == rows_before
    time.sleep(2)  # the writer goes on on the previous data directory
    assert psql(f"SELECT count(*) FROM writes WHERE at > '{datetime.now(UTC) - timedelta(seconds=30)}'") != "0"
    assert psql("SELECT timeline_id FROM pg_control_checkpoint()", db="postgres") == timeline
    assert history_files() == histories, "the rolled-back restore left a timeline in the repository"
    kept = stdout_of(on_host(HOST, aside))
    assert kept == kept_before, f"a data directory left aside after the rollback: {kept}"

    # In place: the same target, the live cluster replaced after the rehearsal in the side cluster.
    # (the writer goes on: its rows from before this run and after the target must be gone)
    before_in_place = datetime.now(UTC)
    rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={beijing(target)}", "-e", "db_restore_drop_previous=true",
                  "--yes", *store, timeout=900)  # fmt: skip
    live = rec["outputs"]["restore"][HOST]
    assert live["live_replaced"] is True and live["restored_into"] == "/var/lib/postgresql/15/main"
    assert psql("SELECT note FROM marks") == marker
    assert psql("SELECT count(*) FROM victim") == "100"
    assert (
        psql(f"SELECT count(*) FROM writes WHERE at > '{target.isoformat()}' AND at < '{before_in_place.isoformat()}'")
        == "0"
    )
    # the side cluster is gone and WAL archiving goes on, on the new timeline
    assert "pitr" not in subprocess.run(["podman", "exec", HOST, "pg_lsclusters"], capture_output=True, text=True,
                                        env=PODMAN_ENV, check=True).stdout  # fmt: skip
    assert psql("SELECT timeline_id > 1 FROM pg_control_checkpoint()", db="postgres") == "t"


def test_a_target_outside_the_recovery_window_is_refused_naming_it(store: list[str], lab_ready: list[str]) -> None:
    future = beijing(datetime.now(UTC) + timedelta(days=1))
    rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={future}", "--yes", *store, rc=2)
    assert rec["status"] == "failed" and rec["changes"] == []
    msg = rec["failures"][0]["msg"]
    assert msg.startswith(f"bad input: target_time {future} is after") and " .. " in msg, msg
    rec = lab_run("restore", "--limit", HOST, "-e", "target_time=2026-11-29 10:15:00", "--yes", *store, rc=2)
    assert "has no zone" in rec["failures"][0]["msg"]


def test_a_wrong_repository_key_is_refused_before_anything_is_touched(store: list[str], lab_ready: list[str]) -> None:
    conf = "/etc/pgbackrest/pgbackrest.conf"
    podman = ["podman", "exec", "-i", "lab-backup1"]
    original = subprocess.run([*podman, "cat", conf], capture_output=True, text=True, env=PODMAN_ENV, check=True).stdout
    assert "repo1-cipher-pass=" in original
    wrong = "\n".join(
        "repo1-cipher-pass=" + "x" * 40 if ln.startswith("repo1-cipher-pass=") else ln for ln in original.splitlines()
    )
    try:
        subprocess.run(
            [*podman, "sh", "-c", f"cat > {conf}"], input=wrong + "\n", text=True, env=PODMAN_ENV, check=True
        )
        target = beijing(datetime.now(UTC) - timedelta(seconds=30))
        rec = lab_run("restore", "--limit", HOST, "-e", f"target_time={target}", "-e", "restore_to=side", "--yes",
                      *store, rc=1)  # fmt: skip
        assert rec["changes"] == [], [c["task"] for c in rec["changes"]]
        msg = rec["failures"][0]["msg"]
        assert "cannot be read" in msg and "wrong repository key" in msg, msg
        clusters = subprocess.run(["podman", "exec", HOST, "pg_lsclusters", "-h"], capture_output=True, text=True,
                                  env=PODMAN_ENV, check=True).stdout  # fmt: skip
        assert " pitr " not in clusters and " main " in clusters and "online" in clusters
    finally:
        subprocess.run([*podman, "sh", "-c", f"cat > {conf}"], input=original, text=True, env=PODMAN_ENV, check=True)


def archive_failures() -> int:
    return int(psql("SELECT failed_count FROM pg_stat_archiver", db="postgres"))


def wal_queues(failed_before: int) -> str:
    """A segment switched out now; archive_command fails on it (it stays queued in pg_wal).
    Returns the segment's name."""
    segment = psql("SELECT pg_walfile_name(pg_switch_wal())", db="postgres")
    deadline = time.monotonic() + 60
    while archive_failures() <= failed_before:
        assert time.monotonic() < deadline, "archive_command did not fail"
        time.sleep(2)
    return segment


def wal_catches_up(segment: str) -> None:
    """The queued segments are archived without anyone's help (a switch wakes the archiver)."""
    deadline = time.monotonic() + 180
    while psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", db="postgres") < segment:
        assert time.monotonic() < deadline, "the queued WAL was not archived once the repository was back"
        psql("SELECT pg_switch_wal()", db="postgres")
        time.sleep(5)


def test_backup_host_unreachable_the_backup_fails_clearly_and_the_wal_catches_up(
    store: list[str], writer: None
) -> None:
    with unreachable("lab-backup1"):
        failed_before = archive_failures()
        rec = lab_run("backup", "--limit", HOST, *store, rc=1, timeout=900)
        assert any("lab-backup1" in (f.get("msg") or "") or f.get("unreachable") for f in rec["failures"]), rec[
            "failures"
        ]
        # the logical dump of the night is still taken and stored
        assert list(Path(store[1].split("=", 1)[1], HOST).glob("*/manifest.json")), "no logical dump in the store"
        # WAL archiving fails and the segments queue in pg_wal
        segment = wal_queues(failed_before)
    wal_catches_up(segment)


REPOSITORY = "/var/lib/pgbackrest"  # lab.sh VOLUMES: a file system of its own on lab-backup1


def test_a_full_repository_fails_the_backup_clearly_keeps_every_backup_and_the_wal_catches_up(
    store: list[str], writer: None
) -> None:
    """The repository's file system full (a real ext4 file system of the lab, filled with a
    ballast file): the backup fails naming it, the repository keeps every backup it had and
    lists nothing partial, WAL queues on the database host and is archived once there is room."""
    mounted = stdout_of(on_host("lab-backup1", ["findmnt", "-n", "-o", "TARGET,FSTYPE", "--target", REPOSITORY]))
    assert mounted.split() == [REPOSITORY, "ext4"], mounted
    before = repository_backups()
    assert before, "no backup of lab-db1 in the repository yet (tests/test_db_pgbackrest_lab.py takes them)"
    ballast = f"{REPOSITORY}/ballast"
    fill = f"fallocate -l $(( $(df -B1 --output=avail {REPOSITORY} | tail -1) - 65536 )) {ballast}"
    stdout_of(on_host("lab-backup1", ["sh", "-c", fill]))
    try:
        failed_before = archive_failures()
        rec = lab_run("backup", "--limit", HOST, *store, rc=1, timeout=900)
        # refused before pgBackRest starts (its room against the newest backup's size), and the
        # run fails once the logical backup is stored; when the set-up runs first, its stanza
        # check stops on the WAL it cannot archive (a failure of its own, rescued) and the role
        # names the full repository all the same
        *before_it, failure = rec["failures"]
        assert [f["task"] for f in before_it] in ([], ["Stop with pgBackRest's message"]), before_it
        assert all(f["host"] == HOST for f in rec["failures"]), rec["failures"]
        assert failure["task"] == "Fail the physical backup with the reason it did not start", failure
        assert failure["msg"].startswith(f"the pgBackRest repository on lab-backup1 ({REPOSITORY}) "), failure["msg"]
        assert " MiB free" in failure["msg"] and "make room there" in failure["msg"], failure["msg"]
        print(f"{failure['task']}: {failure['msg']}")
        # the logical dump of the night is still taken and stored
        assert list(Path(store[1].split("=", 1)[1], HOST).glob("*/manifest.json")), "no logical dump in the store"
        # nothing expired, nothing partial listed
        assert repository_backups() == before
        segment = wal_queues(failed_before)
    finally:
        on_host("lab-backup1", ["rm", "-f", ballast])
    wal_catches_up(segment)
    check = on_host("lab-backup1", ["pgbackrest", f"--stanza={HOST}", "check"], user="pgbackrest", timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert repository_backups() == before


def annotations() -> dict[str, dict[str, str]]:
    proc = subprocess.run(
        ["podman", "exec", "-u", "pgbackrest", "lab-backup1", "pgbackrest", f"--stanza={HOST}", "--output=json", "info"],
        capture_output=True, text=True, timeout=60, env=PODMAN_ENV, check=True,
    )  # fmt: skip
    return {b["label"]: b.get("annotation") or {} for b in json.loads(proc.stdout)[0].get("backup", [])}


def annotate(label: str, value: str) -> None:
    subprocess.run(
        ["podman", "exec", "-u", "pgbackrest", "lab-backup1", "pgbackrest", f"--stanza={HOST}", f"--set={label}",
         f"--annotation=verified={value}", "annotate"],
        capture_output=True, text=True, timeout=60, env=PODMAN_ENV, check=True,
    )  # fmt: skip


def test_the_drill_marks_what_it_restored_and_the_retention_never_expires_the_newest_verified_backup(
    store: list[str], lab_ready: list[str]
) -> None:
    """pgBackRest keeps db_backup_pgbackrest_retention_full (2) full backups, and never fewer than
    it takes to keep the newest backup set a restore drill verified."""
    if not [b for b in repository_backups() if b.endswith("F")]:
        lab_run("backup", "--limit", HOST, "-e", "db_backup_pgbackrest_type=full", *store, timeout=900)
    # the weekly drill restores the newest state and marks the backup set it came from
    rec = lab_run("restore-drill", "--limit", HOST, timeout=900)
    assert rec["outputs"]["restore_drill"][HOST]["tables"]
    marked = [label for label, ann in annotations().items() if "verified" in ann]
    assert marked and marked[-1] == repository_backups()[-1], annotations()
    for label in marked[:-1]:
        annotate(label, "")  # only the newest verified one counts
    verified = marked[-1]
    full = verified.split("_")[0]
    try:
        # two full backups later, a retention of 2 alone would expire the verified set's full
        for _ in range(2):
            rec = lab_run("backup", "--limit", HOST, "-e", "db_backup_pgbackrest_type=full", *store, timeout=900)
        after = repository_backups()
        assert verified in after and full in after, after
        assert len([b for b in after if b.endswith("F")]) >= 3
        assert rec["outputs"]["backup"][HOST]["pgbackrest"]["verified_set"] == verified
        assert int(rec["outputs"]["backup"][HOST]["pgbackrest"]["retention_full"]) >= 3
    finally:
        annotate(verified, "")  # the next backups go back to the plain retention
    rec = lab_run("backup", "--limit", HOST, "-e", "db_backup_pgbackrest_type=full", *store, timeout=900)
    after = repository_backups()
    assert full not in after and len([b for b in after if b.endswith("F")]) == 2, after
