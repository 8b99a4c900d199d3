#!/usr/bin/python3
"""MariaDB physical backups and binary-log archiving to the backup host, encrypted (stdlib only).

Runs on the MariaDB host as the ``mysql`` account (it reads the data directory and the binary
logs), configured by a JSON file (``--config``, written by the db_backup role):

    target, port, key, known_hosts   the archive account on the backup host (ssh; its forced
                                     command is envcredit_archive_receive.py)
    recipient                        the age public key; the secret key (identity) is in the
                                     vault and only comes to a host for a restore
    defaults_file                    [client] user/password of the physical-backup account
    state                            this script's own state (the binary log position it saw)
    level                            zstd level

Commands (each prints one JSON object on stdout; errors go to stderr with a non-zero exit):

    base --id ID     mariadb-backup --backup --stream=xbstream | zstd | age -> base/ID.xbs.zst.age,
                     then base/ID.json.age (the metadata: the binary log position at the backup,
                     sizes, sha256 of the stored file). A base counts only once its metadata is
                     stored: an interrupted upload leaves a file no restore will take.
    binlogs          close the current binary log if it holds anything new (FLUSH BINARY LOGS),
                     then send every closed binary log the backup host lacks, each encrypted
                     (binlog/NAME.age). Run every minute by envcredit-binlog-archive.timer: the
                     recovery point is at most about a minute behind.
    status           what the backup host holds for this host (bases with their metadata file
                     present or not, binary logs), and the free space there.

Exit status: 0 done, 2 bad input, 3 the backup host refused or is unreachable, 4 its disk is
full, 1 anything else.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
POSITION = re.compile(r"binlog position: filename '([^']+)', position '(\d+)'(?:, GTID of the last change '([^']*)')?")
SUFFIX = ".xbs.zst.age"


class ArchiveError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def load_config(path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"cannot read the configuration {path}: {exc}", 2) from exc
    missing = [k for k in ("target", "key", "known_hosts", "recipient", "defaults_file", "state") if not cfg.get(k)]
    if missing:
        raise ArchiveError(f"the configuration {path} lacks {', '.join(missing)}", 2)
    return dict(cfg)


def ssh_argv(cfg: dict[str, Any], request: str) -> list[str]:
    return [
        "ssh",
        "-i",
        str(cfg["key"]),
        "-p",
        str(cfg.get("port", 22)),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={cfg['known_hosts']}",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "ServerAliveInterval=15",
        str(cfg["target"]),
        request,
    ]


def remote_error(stderr: bytes, rc: int) -> ArchiveError:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    detail = text[-1] if text else f"ssh exit {rc}"
    # The receiver's exit codes: 4 disk full; ssh's own 255: unreachable.
    if rc == 4:
        return ArchiveError(f"backup host: {detail}", 4)
    if rc == 255:
        return ArchiveError(f"the backup host is unreachable: {detail}", 3)
    return ArchiveError(f"the backup host refused: {detail}", 3)


def remote_json(cfg: dict[str, Any], request: str) -> Any:
    proc = subprocess.run(ssh_argv(cfg, request), capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise remote_error(proc.stderr, proc.returncode)
    return json.loads(proc.stdout)


def send(cfg: dict[str, Any], kind: str, name: str, source: Any) -> dict[str, Any]:
    """Encrypt ``source`` (a readable binary pipe or file) with age and store it as KIND/NAME;
    returns the receiver's answer, checked against the sha256 and size of what was sent."""
    age = subprocess.Popen(
        ["age", "-r", str(cfg["recipient"])], stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    ssh = subprocess.Popen(
        ssh_argv(cfg, f"put {kind} {name}"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert age.stdout is not None and ssh.stdin is not None
    digest, size = hashlib.sha256(), 0
    broken = False
    while chunk := age.stdout.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        try:
            ssh.stdin.write(chunk)
        except BrokenPipeError:
            broken = True
            break
    age.stdout.close()  # a receiver that stopped early: age (and what feeds it) gets SIGPIPE
    out, err = ssh.communicate()  # closes ssh's stdin: the receiver commits what it got
    age_err = age.stderr.read() if age.stderr else b""
    if age.wait() != 0 and not broken:
        raise ArchiveError(f"age failed: {age_err.decode('utf-8', 'replace').strip()}")
    if ssh.returncode != 0:
        raise remote_error(err, ssh.returncode)
    answer = dict(json.loads(out))
    if answer.get("sha256") != digest.hexdigest() or answer.get("size") != size:
        raise ArchiveError(f"{kind}/{name}: the backup host stored {answer}, {size} bytes were sent")
    return answer


def sql(cfg: dict[str, Any], statement: str) -> list[list[str]]:
    proc = subprocess.run(
        ["mariadb", f"--defaults-extra-file={cfg['defaults_file']}", "-N", "-B", "-e", statement],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise ArchiveError(f"MariaDB refused {statement!r}: {proc.stderr.strip()}")
    return [line.split("\t") for line in proc.stdout.splitlines() if line]


def cmd_base(cfg: dict[str, Any], backup_id: str) -> dict[str, Any]:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,100}$", backup_id):
        raise ArchiveError(f"bad backup id {backup_id!r}", 2)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="envcredit-mbk-") as tmp, open(Path(tmp) / "log", "w+b") as log:
        mbk = subprocess.Popen(
            [
                "mariadb-backup",
                f"--defaults-extra-file={cfg['defaults_file']}",
                "--backup",
                "--stream=xbstream",
                f"--target-dir={tmp}",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
        )
        zstd = subprocess.Popen(
            ["zstd", "-q", "-c", f"-{int(cfg.get('level', 3))}", "-T0"],
            stdin=mbk.stdout,
            stdout=subprocess.PIPE,
        )
        assert mbk.stdout is not None
        mbk.stdout.close()
        try:
            stored = send(cfg, "base", backup_id + SUFFIX, zstd.stdout)
        finally:
            zstd.wait()
            mbk.wait()
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    if mbk.returncode != 0:
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise ArchiveError(f"mariadb-backup failed (exit {mbk.returncode}): {tail}")
    if zstd.returncode != 0:
        raise ArchiveError(f"zstd failed (exit {zstd.returncode})")
    found = POSITION.search(text)
    if not found:
        raise ArchiveError("mariadb-backup did not print the binary log position (is log_bin on?)")
    meta = {
        "id": backup_id,
        "file": backup_id + SUFFIX,
        "size": stored["size"],
        "sha256": stored["sha256"],
        "started": started,
        "finished": time.time(),
        "binlog_file": found.group(1),
        "binlog_pos": int(found.group(2)),
        "gtid": found.group(3) or "",
        "server": sql(cfg, "SELECT VERSION()")[0][0],
    }
    with tempfile.TemporaryFile() as buf:
        buf.write(json.dumps(meta, sort_keys=True).encode())
        buf.seek(0)
        send(cfg, "base", backup_id + ".json.age", buf)
    return meta


def load_state(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def cmd_binlogs(cfg: dict[str, Any]) -> dict[str, Any]:
    """One run at a time (the timer's, a backup's): a lock beside the state file."""
    state_path = Path(cfg["state"])
    with open(state_path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return ship_binlogs(cfg, state_path)


def ship_binlogs(cfg: dict[str, Any], state_path: Path) -> dict[str, Any]:
    state = load_state(state_path)
    if not sql(cfg, "SHOW MASTER STATUS"):
        raise ArchiveError("binary logging is off (log_bin): nothing to archive", 2)
    # Anything committed since the last flush moves the GTID position (the byte position moves
    # by itself: the server adds a checkpoint event to a new log a moment after the flush).
    gtid = (sql(cfg, "SELECT @@gtid_binlog_pos") or [[""]])[0][0]
    flushed = False
    if gtid != state.get("gtid_at_flush"):
        sql(cfg, "FLUSH BINARY LOGS")
        state["gtid_at_flush"] = gtid
        flushed = True
    logs = [r[0] for r in sql(cfg, "SHOW BINARY LOGS")]
    closed = logs[:-1]
    base_dir = Path(sql(cfg, "SELECT @@log_bin_basename")[0][0]).parent
    stored = {e["name"] for e in remote_json(cfg, "list binlog")}
    sent = []
    for name in closed:
        if name + ".age" in stored:
            continue
        with open(base_dir / name, "rb") as src:
            send(cfg, "binlog", name + ".age", src)
        sent.append(name)
    state["shipped_at"] = time.time()
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, state_path)
    return {"flushed": flushed, "sent": sent, "current": logs[-1] if logs else None}


def cmd_status(cfg: dict[str, Any]) -> dict[str, Any]:
    bases = remote_json(cfg, "list base")
    names = {b["name"] for b in bases}
    out = []
    for b in bases:
        if b["name"].endswith(SUFFIX):
            bid = b["name"][: -len(SUFFIX)]
            out.append({"id": bid, "size": b["size"], "complete": bid + ".json.age" in names})
    return {"bases": out, "binlogs": remote_json(cfg, "list binlog"), "space": remote_json(cfg, "df")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("/etc/envcredit/mariadb-archive.json"))
    sub = parser.add_subparsers(dest="cmd", required=True)
    base = sub.add_parser("base")
    base.add_argument("--id", required=True)
    sub.add_parser("binlogs")
    sub.add_parser("status")
    opts = parser.parse_args(argv)
    try:
        cfg = load_config(opts.config)
        if opts.cmd == "base":
            result = cmd_base(cfg, opts.id)
        elif opts.cmd == "binlogs":
            result = cmd_binlogs(cfg)
        else:
            result = cmd_status(cfg)
    except ArchiveError as exc:
        print(f"envcredit-mariadb-archive: {exc}", file=sys.stderr)
        return exc.code
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        print(f"envcredit-mariadb-archive: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
