"""pgBackRest on the lab, for real (issue 19): the backup operation archives lab-db1's WAL and
takes full/incremental physical backups into the repository on lab-backup1 (its repository
host, over SSH), encrypted there; backup-verify runs `pgbackrest check` and `verify`.

The marker rows go to a scratch database of this module (created and dropped here), never
envcredit. Each test has its own logical backup store and archive.
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
from typing import Any

import pytest

from helpers.common import run_opsctl
from helpers.lab import on_host, stdout_of

pytestmark = pytest.mark.lab

DB_HOST = "lab-db1"
REPO_HOST = "lab-backup1"
STANZA = "lab-db1"
REPO_PATH = "/var/lib/pgbackrest"
SCRATCH = "envcredit_pgbackrest_probe"


def psql(statement: str, db: str = SCRATCH) -> str:
    return stdout_of(
        on_host(DB_HOST, ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", statement], "postgres")
    )


def opsctl(*args: str) -> tuple[int, dict[str, Any]]:
    proc = run_opsctl("run", *args, "--env", "lab", "--json", timeout=900)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def repo_info(*extra: str) -> subprocess.CompletedProcess[str]:
    return on_host(REPO_HOST, ["pgbackrest", f"--stanza={STANZA}", "--output=json", *extra, "info"], "pgbackrest")


@pytest.fixture
def store(lab_archive: Path) -> Iterator[list[str]]:
    root = Path(tempfile.mkdtemp(prefix="envcredit-test-store-"))
    yield ["-e", f"db_backup_store_dir={root}/lab", "-e", f"db_restore_store_dir={root}/lab"]
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(lab_ready: list[str]) -> Iterator[str]:
    psql(f"DROP DATABASE IF EXISTS {SCRATCH}", db="postgres")
    psql(f"CREATE DATABASE {SCRATCH}", db="postgres")
    try:
        yield SCRATCH
    finally:
        psql(f"DROP DATABASE IF EXISTS {SCRATCH}", db="postgres")


def test_backup_archives_wal_takes_encrypted_full_and_incremental_backups_and_verifies_them(
    store: list[str], scratch: str
) -> None:
    rc, rec = opsctl("backup", "--limit", DB_HOST, "-e", "db_backup_pgbackrest_type=full", *store)
    assert rc == 0, rec.get("failures")
    full = rec["outputs"]["backup"][DB_HOST]["pgbackrest"]
    assert (full["type"], full["stanza"], full["repo_host"]) == ("full", STANZA, REPO_HOST)
    assert full["label"].endswith("F") and full["label"] in full["backups"]
    assert rec["outputs"]["backup"][DB_HOST]["backup_id"]  # the logical dump stays

    marker = "pgbackrest-marker-" + uuid.uuid4().hex
    psql("CREATE TABLE probe (note text)")
    psql(f"INSERT INTO probe SELECT '{marker}' FROM generate_series(1, 50)")
    # The marker is plain text on the database host (so the search below can find it), looked
    # for before the backup's checkpoint may remove or recycle its WAL segment ...
    data_dir = psql("SHOW data_directory", db="postgres")
    found = on_host(DB_HOST, ["grep", "-rlF", marker, f"{data_dir}/pg_wal"])
    assert found.returncode == 0 and "pg_wal/" in found.stdout, found.stdout
    rc, rec = opsctl("backup", "--limit", DB_HOST, *store)  # the default type: incremental
    assert rc == 0, rec.get("failures")
    incr = rec["outputs"]["backup"][DB_HOST]["pgbackrest"]
    assert incr["type"] == "incr" and incr["label"].startswith(full["label"]) and incr["label"].endswith("I")
    assert {full["label"], incr["label"]} <= set(incr["backups"])

    # `opsctl backups list` shows the repository and its recovery window beside the dumps
    root = store[1].split("=", 1)[1].rsplit("/", 1)[0]
    listed = run_opsctl("backups", "list", "--store", root, "--env", "lab")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("  lab/lab-db1: pgBackRest on "))
    assert (
        line.startswith("  lab/lab-db1: pgBackRest on lab-backup1 (aes-256-cbc), ")
        and " incr; restorable from " in line
    )
    assert line.endswith("(UTC+8)") and " to at least " in line, line

    # WAL archiving is on, through pgBackRest.
    assert psql("SHOW archive_mode", db="postgres") == "on"
    assert psql("SHOW archive_command", db="postgres") == f"pgbackrest --stanza={STANZA} archive-push %p"

    # ... and in no file of the repository on the backup host (it was found in pg_wal above).
    absent = on_host(REPO_HOST, ["grep", "-rlF", marker, REPO_PATH])
    assert absent.returncode == 1 and REPO_PATH + "/" not in absent.stdout, absent.stdout
    # Every backup and WAL file there is OpenSSL-encrypted (not merely compressed).
    headers = stdout_of(
        on_host(
            REPO_HOST,
            [
                "python3",
                "-c",
                "import json,pathlib,sys; fs=[p for d in ('backup','archive') for p in pathlib.Path(sys.argv[1], d).rglob('*')"
                " if p.is_file() and not p.is_symlink()]; print(json.dumps(sorted({p.open('rb').read(8).decode('latin-1') for p in fs})"
                " + [len(fs)]))",
                REPO_PATH,
            ],
        )
    )
    *magics, count = json.loads(headers)
    assert magics == ["Salted__"] and count >= 10, headers

    # Without the passphrase the repository cannot even be listed; with it, both backups are there.
    # (pgBackRest's message quotes the ciphertext, so only its status code is read)
    blind = on_host(
        REPO_HOST,
        [
            "sh",
            "-c",
            f"pgbackrest --config=/dev/null --repo1-path={REPO_PATH} --stanza={STANZA} --output=json info"
            ' | grep -ao \'"status":{"code":[0-9]*\' | head -n 1',
        ],
        "pgbackrest",
    )
    assert stdout_of(blind) == '"status":{"code":99', blind.stdout[-600:]
    info = json.loads(stdout_of(repo_info()))[0]
    assert info["status"]["code"] == 0 and info["cipher"] == "aes-256-cbc"
    assert {full["label"], incr["label"]} <= {b["label"] for b in info["backup"]}

    # backup-verify also runs `pgbackrest check` and `pgbackrest verify`, changing nothing there.
    rc, rec = opsctl("backup-verify", "--limit", DB_HOST, "-e", "backup_id=latest", *store)
    assert rc == 0, rec.get("failures")
    assert rec["outputs"]["backup_verify"][DB_HOST]["pgbackrest"] == {
        "stanza": STANZA,
        "repo_host": REPO_HOST,
        "status": "verified",
    }

    # Least privilege on the backup host: the repository account has no sudo, its key is restricted.
    groups = stdout_of(on_host(REPO_HOST, ["id", "-nG", "pgbackrest"])).split()
    assert "sudo" not in groups and "root" not in groups, groups
    keys = stdout_of(on_host(REPO_HOST, ["cat", f"{REPO_PATH}/.ssh/authorized_keys"]))
    assert keys.startswith("restrict ssh-ed25519 ") and len(keys.splitlines()) == 1, keys


def _tasks_run(archive: Path, record_id: str) -> set[str]:
    """The names of the tasks that ran on a host (started) in a run, from its archived events."""
    names: set[str] = set()
    with (archive / record_id / "events.jsonl").open(encoding="utf-8") as events:
        for line in events:
            event = json.loads(line)
            if event.get("event") in ("runner_on_ok", "runner_on_failed"):
                names.add(str(event.get("event_data", {}).get("task", "")))
    return names


def test_the_set_up_runs_only_when_its_inputs_or_stamps_changed(lab_archive: Path, store: list[str]) -> None:
    stamp = "/var/lib/envcredit-setup/db_backup-pgbackrest-lab-db1.sha256"
    set_up = "Install pgBackRest on the database host and the backup host"
    rc, rec = opsctl("backup", "--limit", DB_HOST, "-e", "db_backup_setup=always", *store)
    assert rc == 0, rec.get("failures")
    assert set_up in _tasks_run(lab_archive, rec["id"])
    stamps = {host: stdout_of(on_host(host, ["cat", stamp])) for host in (DB_HOST, REPO_HOST)}
    assert stamps[DB_HOST] == stamps[REPO_HOST] and len(stamps[DB_HOST]) == 64, stamps

    # Nothing changed: the set-up is left out, the backup is taken all the same. The tools are
    # checked in one round trip and copied only when one differs: here the tool's mode.
    tool = "/usr/local/lib/envcredit/envcredit_dbtool.py"
    install = "Install the files that are missing or differ"
    assert on_host(DB_HOST, ["chmod", "0777", tool]).returncode == 0
    rc, rec = opsctl("backup", "--limit", DB_HOST, *store)
    assert rc == 0, rec.get("failures")
    ran = _tasks_run(lab_archive, rec["id"])
    assert (
        set_up not in ran
        and "Start the pgBackRest backup in the background (runs on the repository host; expires by the retention)"
        in ran
    )
    assert install in ran and stdout_of(on_host(DB_HOST, ["stat", "-c", "%a %U", tool])) == "755 root"
    assert rec["outputs"]["backup"][DB_HOST]["pgbackrest"]["label"]

    # A stamp gone from the backup host (a host recreated): it runs again.
    assert on_host(REPO_HOST, ["rm", "-f", stamp]).returncode == 0
    rc, rec = opsctl("backup", "--limit", DB_HOST, "-e", "db_backup_pgbackrest_type=diff", *store)
    assert rc == 0, rec.get("failures")
    ran = _tasks_run(lab_archive, rec["id"])
    assert set_up in ran and install not in ran  # the tools were as they must be
    assert stdout_of(on_host(REPO_HOST, ["cat", stamp])) == stamps[DB_HOST]  # the type is per run, not an input
    # A stamp that differs (what an input changed makes it): it runs again and writes the digest.
    assert on_host(DB_HOST, ["sh", "-c", f"echo {'0' * 64} > {stamp}"]).returncode == 0
    rc, rec = opsctl("backup", "--limit", DB_HOST, *store)
    assert rc == 0, rec.get("failures")
    assert set_up in _tasks_run(lab_archive, rec["id"])
    assert stdout_of(on_host(DB_HOST, ["cat", stamp])) == stamps[DB_HOST]


def test_archive_timeout_holds_from_the_start_after_a_restart(scratch: str) -> None:
    """PostgreSQL 15's checkpointer starts during the server's startup recovery and then sleeps a
    whole checkpoint_timeout (5 min) before it first looks at archive_timeout: for that long after
    each start, WAL with commits in it stayed on the host (found by the RPO bench: a host killed
    a minute after a rebuild lost every commit since). The role's drop-in runs a CHECKPOINT once
    the server is up; after a restart, a segment with writes is archived within archive_timeout
    (10 s here, set for this test, so that 5 minutes without the drop-in cannot pass for it)."""
    dropin = "/etc/systemd/system/postgresql@.service.d/envcredit-checkpoint-on-start.conf"
    assert "CHECKPOINT" in stdout_of(on_host(DB_HOST, ["cat", dropin]))
    unit = stdout_of(on_host(DB_HOST, ["systemctl", "list-units", "--plain", "--no-legend", "postgresql@*"])).split()[0]
    before = psql("SELECT setting FROM pg_settings WHERE name = 'archive_timeout'", db="postgres")
    psql("CREATE TABLE ticks (at timestamptz DEFAULT clock_timestamp())")
    psql("ALTER SYSTEM SET archive_timeout = 10", db="postgres")
    try:
        stdout_of(on_host(DB_HOST, ["systemctl", "restart", unit]))
        segment = psql("SELECT pg_walfile_name(pg_current_wal_lsn())", db="postgres")
        deadline = time.monotonic() + 45
        while psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", db="postgres")[8:] < segment[8:]:
            assert time.monotonic() < deadline, f"{segment} not archived within 45 s of the restart"
            psql("INSERT INTO ticks DEFAULT VALUES")
            time.sleep(1)
    finally:
        psql(f"ALTER SYSTEM SET archive_timeout = {before}", db="postgres")
        psql("SELECT pg_reload_conf()", db="postgres")
