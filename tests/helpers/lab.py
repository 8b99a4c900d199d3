"""The running lab: ad-hoc commands on its hosts, ``opsctl run --env lab``, unreachable hosts."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .common import REPO, VENV_BIN, allowed_signers_line, run_opsctl, ssh_keygen

LAB_HOSTS = ["lab-app1", "lab-app2", "lab-backup1", "lab-db1", "lab-db2", "lab-mon1", "lab-web1"]
LAB_VAULT_PASSWORD_FILE = REPO / "lab" / "lab-only-vault-password"

# `opsctl run` options of the tests about the logical dumps: without the physical part of
# backup, backup-verify and a restore's safety backup (pgBackRest on lab-db1: set-up, check,
# physical backup, about 35 s a run; the MariaDB archive on lab-db2, about 20 s), which
# tests/test_db_pgbackrest_lab.py and tests/test_db_mariadb_archive_lab.py prove on their own.
LOGICAL_ONLY = ("--skip-tags", "pgbackrest,mariadb_archive")


def lab_ansible_env(**extra: str) -> dict[str, str]:
    """The environment of an ad-hoc ansible command against the lab (the repository's config and vault key)."""
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_VAULT_PASSWORD_FILE=str(LAB_VAULT_PASSWORD_FILE),
        **extra,
    )


def lab_run(op: str, *args: str, rc: int = 0, timeout: float = 600) -> dict[str, Any]:
    """``opsctl run OP --env lab ARGS --json``; the change record it prints. Fails the test unless it exits ``rc``."""
    proc = run_opsctl("run", op, "--env", "lab", *args, "--json", timeout=timeout)
    assert proc.returncode == rc, f"rc {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return dict(json.loads(proc.stdout))


#: Where role db_backup installs its tool on the database hosts.
DBTOOL = "/usr/local/lib/envcredit/envcredit_dbtool.py"


def seed_with_repository_dbtool() -> None:
    """The seeded database on both engines (`opsctl run seed`: changes nothing when it is there,
    records kept out of the test's archive) and this repository's version of role db_backup's
    tool on the database hosts (with the code it shares with the transfer tool, installed
    beside it), for the tests that read checksums and row counts with it."""
    seed = run_opsctl(
        "run",
        "seed",
        "--env",
        "lab",
        "--json",
        timeout=600,
        env={"OPSCTL_ARCHIVE": str(REPO / "var" / "test-db-seed-archive")},  # this checkout's: a second lab runs beside
    )
    assert seed.returncode == 0, seed.stdout[-3000:] + seed.stderr
    for src, dest, mode in (
        (REPO / "roles" / "db_backup" / "files" / "envcredit_dbtool.py", DBTOOL, "0755"),
        (
            REPO / "plugins" / "module_utils" / "envcredit_dbcommon.py",
            str(Path(DBTOOL).with_name("envcredit_dbcommon.py")),
            "0644",
        ),
    ):
        copy = subprocess.run(
            [
                str(VENV_BIN / "ansible"), "-i", str(REPO / "inventories" / "lab"), "db", "-e", "ansible_become=true",
                "-m", "ansible.builtin.copy", "-a", json.dumps({"src": str(src), "dest": dest, "mode": mode}),
            ],
            capture_output=True, text=True, timeout=120, cwd=REPO, check=False, env=lab_ansible_env(),
        )  # fmt: skip
        assert copy.returncode == 0, copy.stdout + copy.stderr


def newest_record(archive: Path) -> dict[str, Any]:
    """The newest change record in ``archive`` (for runs whose output is not JSON)."""
    from orchestrator.archive import Archive

    arch = Archive(archive)
    return arch.get(arch.list()[0]["id"])


LAB_SSH_PORTS = {
    "lab-web1": 2221,
    "lab-app1": 2222,
    "lab-app2": 2223,
    "lab-db1": 2224,
    "lab-db2": 2225,
    "lab-mon1": 2226,
    "lab-backup1": 2227,
}


@contextlib.contextmanager
def unreachable(*hosts: str) -> Iterator[None]:
    """Lab hosts that refuse SSH for a while (sshd stopped, its sessions ended, the
    controller's kept-open connections to them closed), started again afterwards.

    Operations accept no ``ansible_*`` extra var, so a test cannot point a host at a dead
    port with ``-e ansible_port=1``; this is the real thing instead."""
    env = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf")}
    try:
        for host in hosts:
            # '^sshd: ops': the sessions only, not this very shell (its command line holds the words)
            subprocess.run(
                [
                    "podman",
                    "exec",
                    host,
                    "sh",
                    "-c",
                    "systemctl stop ssh.socket ssh.service 2>/dev/null; pkill -f '^sshd: ops' || true",
                ],
                check=True,
                env=env,
                capture_output=True,
                timeout=60,
            )
            for cp in (Path.home() / ".ansible" / "cp", Path("/tmp/envcredit-cp")):
                subprocess.run(
                    [
                        "ssh",
                        "-o",
                        f"ControlPath={cp}/%C",
                        "-p",
                        str(LAB_SSH_PORTS[host]),
                        "-O",
                        "exit",
                        "ops@127.0.0.1",
                    ],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        yield
    finally:
        for host in hosts:
            subprocess.run(
                ["podman", "exec", host, "systemctl", "start", "ssh.service"],
                check=True,
                env=env,
                capture_output=True,
                timeout=60,
            )


def host_command(host: str, argv: list[str], user: str = "root") -> list[str]:
    """The `ansible` command line that runs argv on a lab host over the inventory's SSH connection
    (for a process left running in the background: it ends with the connection when killed)."""
    return [
        str(VENV_BIN / "ansible"),
        "-i",
        str(REPO / "inventories" / "lab"),
        host,
        "-o",
        "-e",
        "ansible_become=true",
        "--become-user",
        user,
        "-m",
        "ansible.builtin.command",
        "-a",
        json.dumps({"argv": argv}),
    ]


PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf")}
LOCALE = ("-e", "LANG=C.UTF-8", "-e", "LC_ALL=C.UTF-8")


def on_host(
    host: str, argv: list[str], user: str = "root", timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command on a lab host as ``user`` and wait for it: its exit code, stdout and stderr as
    written; ``stdin``, when given, is its standard input. `podman exec` (the lab's hosts are
    containers): about 0.1 s a command, where an ad-hoc `ansible` over SSH took 1.5 s of the
    controller's CPU, dozens of times in a lab run."""
    return subprocess.run(
        # the locale an SSH session would have: the clients print UTF-8 (mariadb: '?' without it)
        ["podman", "exec", *(["-i"] if stdin is not None else []), *LOCALE, "-u", user, "-w", "/", host, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=PODMAN_ENV,
    )


def stdout_of(proc: subprocess.CompletedProcess[str]) -> str:
    """The stripped stdout of a command run by `on_host`; fails the test unless it exited 0."""
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc.stdout.strip()


def vault_value(key: str) -> str:
    """A value of the lab's vault (to prove it never reaches a record, or to decrypt a backup)."""
    text = subprocess.run(
        [
            str(VENV_BIN / "ansible-vault"),
            "view",
            "--vault-password-file",
            str(LAB_VAULT_PASSWORD_FILE),
            str(REPO / "inventories" / "lab" / "group_vars" / "all" / "vault.yml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    value = str(yaml.safe_load(text)[key])
    assert len(value) >= 8
    return value


#: The lab controller's timers key and the allowed-signers file naming it. The timers sign
#: the records they file in this checkout's archive (var/archive, where the lab's receiver
#: reads them), so the public half must outlive the test and the lab (`lab.sh down` removes
#: var/lab, not the archive): var/signing, kept. It is a key of this machine, never in
#: security/allowed_signers; the Makefile hands the file to opsctl (OPSCTL_ALLOWED_SIGNERS),
#: so `make demo` and `make verify-records` verify the timers' records after `make test`.
LAB_SIGNING_DIR = REPO / "var" / "signing"
LAB_TIMERS_KEY = LAB_SIGNING_DIR / "lab-timers-key"
LAB_ALLOWED_SIGNERS = LAB_SIGNING_DIR / "lab-allowed_signers"


def lab_timers_key() -> tuple[Path, Path]:
    """(private key, allowed-signers file) of the lab's timers, made once and then reused."""
    LAB_SIGNING_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not LAB_TIMERS_KEY.is_file() or not LAB_TIMERS_KEY.with_suffix(".pub").is_file():
        LAB_TIMERS_KEY.unlink(missing_ok=True)
        LAB_TIMERS_KEY.with_suffix(".pub").unlink(missing_ok=True)
        ssh_keygen(LAB_TIMERS_KEY, "timers@lab")
    line = allowed_signers_line("timers@lab", LAB_TIMERS_KEY)
    # appended, never replaced: records signed by an earlier key of this machine keep verifying
    have = LAB_ALLOWED_SIGNERS.read_text(encoding="utf-8") if LAB_ALLOWED_SIGNERS.is_file() else ""
    if line not in have.splitlines(keepends=True):
        with LAB_ALLOWED_SIGNERS.open("a", encoding="utf-8") as fh:
            fh.write(line)
    return LAB_TIMERS_KEY, LAB_ALLOWED_SIGNERS


def db_query(host: str, statement: str, db: str = "") -> str:
    """One statement on a lab database host, its stripped output; fails the test unless it worked.
    lab-db1: psql as postgres (``db`` default postgres); lab-db2: mariadb as root (no default
    database unless ``db``)."""
    if host == "lab-db1":
        argv = ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db or "postgres", "-c", statement]
        return stdout_of(on_host(host, argv, "postgres"))
    return stdout_of(on_host(host, ["mariadb", "-N", "-B", *([db] if db else []), "-e", statement]))


@contextlib.contextmanager
def hold_the_lab(lock: Path) -> Iterator[None]:
    """An exclusive lock on this lab while the block runs (a test session).

    Two test sessions on one lab break each other in ways that look like defects (two backups of
    one host in one second, a restore finding another run's rows), so a second one stops at once,
    naming the first one's pid. The second lab (lab/lab2.sh) runs from a copy of the checkout: its
    own var/lab, its own lock. (orchestrator.lock.flock_file waits instead; a waiting test session
    would hide the mistake.)"""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            pytest.fail(
                f"another test session (pid {holder}) is using this lab; lab tests run one session at a time per lab"
            )
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
