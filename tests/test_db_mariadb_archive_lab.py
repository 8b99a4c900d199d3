"""The MariaDB archive on the lab, for real (issue 19): the backup operation turns on binary
logging on lab-db2, streams a physical backup (mariadb-backup | zstd | age) to lab-backup1, and
the envcredit-binlog-archive timer ships each closed binary log there, encrypted. The backup
host's archive account can only add files under lab-db2's directory (a forced command): no
shell, no overwrite. Nothing there is readable without the age secret key from the vault.

The marker rows go to a scratch database of this module (created and dropped here).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.common import all_text_under, run_opsctl
from helpers.lab import on_host, unreachable, vault_value

pytestmark = pytest.mark.lab

DB_HOST = "lab-db2"
BACKUP_HOST = "lab-backup1"
ROOT = f"/var/lib/envcredit-archive/{DB_HOST}"
SCRATCH = "envcredit_archive_probe"
IDENTITY = "/root/.envcredit-test-age-identity"


def podman(host: str, script: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return on_host(host, ["sh", "-c", script], stdin=stdin, timeout=300)


def ok(host: str, script: str, stdin: str | None = None) -> str:
    proc = podman(host, script, stdin)
    assert proc.returncode == 0, f"{host}: {script}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def sql(statement: str) -> str:
    return ok(DB_HOST, f"mariadb -N -B -e {json.dumps(statement)}")


@pytest.fixture
def store(lab_archive: Path) -> Iterator[list[str]]:
    root = Path(tempfile.mkdtemp(prefix="envcredit-test-store-"))
    yield ["-e", f"db_backup_store_dir={root}/lab"]
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def identity() -> Iterator[str]:
    """The age secret key on the backup host, only for the test's decryption, removed after."""
    ok(BACKUP_HOST, f"umask 077; cat > {IDENTITY}", stdin=vault_value("vault_lab_archive_age_identity") + "\n")
    try:
        yield IDENTITY
    finally:
        podman(BACKUP_HOST, f"rm -f {IDENTITY}")


@pytest.fixture
def scratch(lab_ready: list[str]) -> Iterator[str]:
    sql(f"DROP DATABASE IF EXISTS {SCRATCH}; CREATE DATABASE {SCRATCH}")
    sql(f"CREATE TABLE {SCRATCH}.marks (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(64)) ENGINE=InnoDB")
    try:
        yield SCRATCH
    finally:
        sql(f"DROP DATABASE IF EXISTS {SCRATCH}")


def backup(store: list[str]) -> dict[str, Any]:
    proc = run_opsctl("run", "backup", "--env", "lab", "--limit", DB_HOST, "--json", *store, timeout=900)
    assert proc.stdout.strip(), proc.stderr
    rec: dict[str, Any] = json.loads(proc.stdout)
    assert proc.returncode == 0, rec.get("failures")
    return rec


def listing(kind: str) -> list[str]:
    return ok(BACKUP_HOST, f"ls -1 {ROOT}/{kind}").split()


def test_physical_backup_and_binary_logs_reach_the_backup_host_encrypted(
    store: list[str], scratch: str, identity: str, lab_archive: Path
) -> None:
    rec = backup(store)
    out = rec["outputs"]["backup"][DB_HOST]
    assert out["backup_id"]  # the logical dump stays
    archive = out["mariadb_archive"]
    base = archive["base"]
    assert archive["backup_host"] == BACKUP_HOST
    assert base["id"] == out["backup_id"] and base["binlog_file"].startswith("mariadb-bin.")
    assert base["size"] > 100_000 and len(base["sha256"]) == 64

    # `backups list` shows the archive and its recovery window, from the store the run wrote.
    listed = run_opsctl("backups", "list", "--store", store[1].split("=", 1)[1].rsplit("/", 1)[0], "--host", DB_HOST)
    assert f"lab/{DB_HOST}: mariadb-backup + binary logs on {BACKUP_HOST} (age), " in listed.stdout, listed.stdout
    assert "restorable from " in listed.stdout

    # On the backup host: the base and its metadata, owned by the archive account, encrypted.
    bases = listing("base")
    assert f"{base['id']}.xbs.zst.age" in bases and f"{base['id']}.json.age" in bases
    # its starting binary log in an empty marker, for the backup host's retention (no key there)
    assert f"{base['id']}.binlog.{base['binlog_file']}.age" in bases
    data = f"{ROOT}/base/{base['id']}.xbs.zst.age"
    assert ok(BACKUP_HOST, f"stat -c '%U %a' {data}").split() == ["dbarchive", "600"]
    assert ok(BACKUP_HOST, f"sha256sum {data}").split()[0] == base["sha256"]
    for name in (
        f"base/{base['id']}.xbs.zst.age",
        f"base/{base['id']}.json.age",
        f"binlog/{listing('binlog')[0]}",
        f"dump/{out['backup_id']}.tar.age",
    ):
        assert ok(BACKUP_HOST, f"head -c 21 {ROOT}/{name}") == "age-encryption.org/v1"
        assert podman(BACKUP_HOST, f"age -d {ROOT}/{name} >/dev/null").returncode != 0  # no key, no data
        assert podman(BACKUP_HOST, f"zstd -t {ROOT}/{name}").returncode != 0
        assert podman(BACKUP_HOST, f"grep -c -a -e envcredit -e InnoDB {ROOT}/{name}").stdout.strip() == "0"

    # The logical dump is there too, encrypted on the control host: a tar of the backup directory.
    dump = f"{ROOT}/dump/{out['backup_id']}.tar.age"
    assert out["dump_archive"]["file"] == dump and int(out["dump_archive"]["size"]) > 0
    assert ok(BACKUP_HOST, f"head -c 21 {dump}") == "age-encryption.org/v1"
    assert podman(BACKUP_HOST, f"age -d {dump} >/dev/null").returncode != 0
    members = ok(BACKUP_HOST, f"age -d -i {identity} {dump} | tar -tf -").split()
    assert f"{out['backup_id']}/manifest.json" in members, members

    # With the key: the metadata matches the record, and the stream unpacks to a backup.
    meta = json.loads(ok(BACKUP_HOST, f"age -d -i {identity} {ROOT}/base/{base['id']}.json.age"))
    assert (meta["binlog_file"], meta["binlog_pos"], meta["sha256"]) == (
        base["binlog_file"],
        base["binlog_pos"],
        base["sha256"],
    )
    unpacked = ok(
        BACKUP_HOST,
        f"d=$(mktemp -d) && age -d -i {identity} {data} | zstd -dq | mbstream -x -C $d && ls $d; rm -rf $d",
    ).split()
    assert "ibdata1" in unpacked and SCRATCH in unpacked

    # A committed row reaches the backup host through the timer's own service, encrypted.
    mark = f"mark-{uuid.uuid4().hex[:12]}"
    sql(f"INSERT INTO {SCRATCH}.marks (note) VALUES ('{mark}')")
    before = set(listing("binlog"))
    ok(DB_HOST, "systemctl start envcredit-binlog-archive.service")
    assert ok(DB_HOST, "systemctl is-active envcredit-binlog-archive.timer").strip() == "active"
    new = sorted(set(listing("binlog")) - before)
    assert new, "the archiving service sent no binary log"
    decoded = ok(
        BACKUP_HOST,
        f"f=$(mktemp) && age -d -i {identity} -o $f {ROOT}/binlog/{new[-1]} && "
        f"mariadb-binlog --base64-output=decode-rows -v $f; rm -f $f",
    )
    assert mark in decoded
    # Nothing new: the next run sends nothing (and closes no empty binary log).
    again = json.loads(
        ok(DB_HOST, "runuser -u mysql -- python3 /usr/local/lib/envcredit/envcredit_mariadb_archive.py binlogs")
    )
    assert again["sent"] == [] and again["flushed"] is False

    # Secrets stay out of the record.
    for key in ("vault_lab_archive_age_identity", "vault_lab_mariadb_archive_password"):
        assert vault_value(key) not in all_text_under(lab_archive / rec["id"])


def test_the_database_hosts_key_can_only_add_files_under_its_own_directory(lab_ready: list[str]) -> None:
    """What the mysql account's key can do on the backup host: no shell, no overwrite, no way out."""
    ssh = (
        "runuser -u mysql -- ssh -i /etc/mysql/envcredit-archive/id_ed25519 -o BatchMode=yes "
        "-o UserKnownHostsFile=/etc/mysql/envcredit-archive/known_hosts dbarchive@lab-backup1"
    )
    shell = podman(DB_HOST, f"{ssh} 'id; cat /etc/shadow' </dev/null")
    assert shell.returncode == 2 and "bad request" in shell.stderr and "uid=" not in shell.stdout
    existing = listing("binlog")[0]
    overwrite = podman(DB_HOST, f"echo junk | {ssh} 'put binlog {existing}'")
    assert overwrite.returncode == 3 and "exists already" in overwrite.stderr
    escape = podman(DB_HOST, f"echo junk | {ssh} 'put base ../../lab-db1/base/x'")
    assert escape.returncode == 2
    assert podman(BACKUP_HOST, "ls /var/lib/envcredit-archive/lab-db1/base/x").returncode != 0
    # Its own files come back as they are (encrypted), for a restore.
    got = podman(DB_HOST, f"{ssh} 'get binlog {existing}' </dev/null | head -c 21")
    assert got.stdout == "age-encryption.org/v1"


def test_backup_host_unreachable_the_backup_fails_clearly_and_the_binary_logs_catch_up(
    store: list[str], scratch: str
) -> None:
    """The backup host down during the night's backup: the run fails naming it, the logical dump
    is still taken and stored, the binary logs wait on the database host (kept
    db_backup_mariadb_binlog_keep_days) and reach the backup host once it is back, without help."""
    with unreachable(BACKUP_HOST):
        proc = run_opsctl("run", "backup", "--env", "lab", "--limit", DB_HOST, "--json", *store, timeout=900)
        rec = json.loads(proc.stdout)
        assert proc.returncode == 1, rec.get("failures")
        assert any(BACKUP_HOST in (f.get("msg") or "") or f.get("unreachable") for f in rec["failures"]), rec[
            "failures"
        ]
        assert list(Path(store[1].split("=", 1)[1], DB_HOST).glob("*/manifest.json")), "no logical dump in the store"
        # the timer's run fails too (the unit says so to systemd, hence to the node exporter)
        sql(f"INSERT INTO {SCRATCH}.marks (note) VALUES ('while-unreachable')")
        podman(DB_HOST, "systemctl start envcredit-binlog-archive.service")
        assert ok(DB_HOST, "systemctl is-failed envcredit-binlog-archive.service || true").strip() == "failed"
        # what the alert EnvcreditBinlogArchivingFailing reads, where the monitoring role put the exporter
        if podman(DB_HOST, "systemctl -q is-active prometheus-node-exporter").returncode == 0:
            metrics = ok(DB_HOST, "curl -s localhost:9100/metrics")
            assert (
                'node_systemd_unit_state{name="envcredit-binlog-archive.service",state="failed",type="oneshot"} 1'
                in metrics
            )
        sql("FLUSH BINARY LOGS")
        closed = [r.split("\t")[0] for r in sql("SHOW BINARY LOGS").splitlines()][:-1]
    # back: the next timer run ships every closed log the backup host lacks
    ok(
        DB_HOST,
        "systemctl reset-failed envcredit-binlog-archive.service; systemctl start envcredit-binlog-archive.service",
    )
    assert ok(DB_HOST, "systemctl is-active envcredit-binlog-archive.service || true").strip() in {"inactive", "active"}
    stored = set(listing("binlog"))
    missing = [n for n in closed if n + ".age" not in stored]
    assert not missing, f"not archived after the backup host came back: {missing}"


def test_a_full_backup_host_refuses_the_file_and_keeps_nothing_of_it(lab_ready: list[str]) -> None:
    """The backup host's disk full (a real 32 MiB file system of the lab, /srv/lab-fill): the
    receiver (the program the database host's forced command runs) refuses with exit 4 and leaves
    no partial file; what was stored before stays."""
    root = "/srv/lab-fill/archive"
    receiver = f"python3 /usr/local/lib/envcredit/envcredit_archive_receive.py --root {root} --host {DB_HOST}"
    # the request comes as the forced command's SSH_ORIGINAL_COMMAND
    ok(BACKUP_HOST, f"rm -rf {root} /srv/lab-fill/ballast; install -d -o dbarchive -m 0750 {root}")
    try:
        small = podman(
            BACKUP_HOST,
            f"head -c 4096 /dev/urandom | runuser -u dbarchive -- env SSH_ORIGINAL_COMMAND='put binlog a.age' {receiver}",
        )
        assert small.returncode == 0, small.stderr
        # fill the file system to about 1 MiB free, then send 4 MiB
        ok(
            BACKUP_HOST,
            "fallocate -l $(( $(df -B1 --output=avail /srv/lab-fill | tail -1) - 1048576 )) /srv/lab-fill/ballast",
        )
        full = podman(
            BACKUP_HOST,
            f"head -c 4194304 /dev/urandom | runuser -u dbarchive -- env SSH_ORIGINAL_COMMAND='put binlog b.age' {receiver}",
        )
        assert full.returncode == 4, (full.returncode, full.stderr)
        assert "full" in full.stderr
        left = ok(BACKUP_HOST, f"ls -A {root}/{DB_HOST}/binlog").split()
        assert left == ["a.age"], left
    finally:
        podman(BACKUP_HOST, f"rm -rf {root} /srv/lab-fill/ballast")


def test_the_archives_retention_on_the_backup_host_keeps_the_newest_bases_and_their_binary_logs(
    store: list[str], scratch: str
) -> None:
    """envcredit-archive-prune (daily timer on lab-backup1, as the archive account, without the
    key): its service runs in its sandbox; with one base kept, the older complete bases go with
    every file of theirs, and so do the binary logs before the kept base's starting one."""

    def complete() -> list[str]:
        return sorted(n[: -len(".json.age")] for n in listing("base") if n.endswith(".json.age"))

    while len(complete()) < 2:
        backup(store)
    ok(BACKUP_HOST, "systemctl start envcredit-archive-prune.service")  # the timer's service, keep 2
    assert len(complete()) >= 2
    prune = (
        "runuser -u dbarchive -- python3 /usr/local/lib/envcredit/envcredit_archive_prune.py "
        f"--root /var/lib/envcredit-archive --host {DB_HOST} --keep-bases 1 --keep-dumps 100"
    )
    plan = json.loads(ok(BACKUP_HOST, prune + " --dry-run"))["hosts"][DB_HOST]
    newest = complete()[-1]
    assert plan["bases"]["kept"][-1] == newest and complete()[:-1] == sorted(plan["bases"]["removed"]), plan
    marker = [n for n in listing("base") if n.startswith(newest + ".binlog.")]
    assert len(marker) == 1, listing("base")
    start = marker[0][len(newest + ".binlog.") : -len(".age")]
    assert plan["binlogs"]["from"] == start
    json.loads(ok(BACKUP_HOST, prune))
    assert complete() == [newest]
    left = listing("base")
    assert not [n for n in left for b in plan["bases"]["removed"] if n.startswith(b + ".")], left
    logs = sorted(n[: -len(".age")] for n in listing("binlog"))
    assert logs and logs[0] == start, (start, logs[:3])
