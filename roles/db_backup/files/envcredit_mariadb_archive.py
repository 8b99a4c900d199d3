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
                     stored: an interrupted upload leaves a file no restore will take. Then the
                     empty marker base/ID.binlog.FILE.age: the base's starting binary log, readable
                     without the key (the backup host's retention, envcredit_archive_prune.py).
    backup --id ID   a backup's physical part in one run: base, then binlogs, then status;
                     prints {"base": ..., "binlogs": ..., "status": ..., "seconds": each step's}
    mark-verified --base ID
                     the empty marker base/ID.verified.age: a restore drill restored that base
                     (kept by the retention, with every newer base). Refused (2) when ID is not a
                     complete base on the backup host; done already is not an error.
    binlogs          close the current binary log if it holds anything new (FLUSH BINARY LOGS),
                     then send every closed binary log the backup host lacks, each encrypted
                     (binlog/NAME.age). Run every minute by envcredit-binlog-archive.timer: the
                     recovery point is at most about a minute behind.
    status           what the backup host holds for this host (bases with their metadata file
                     present or not, their starting binary log and verified mark, binary logs),
                     and the free space there.

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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The backup tool (installed beside this one by the role) parses and shows target times.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import envcredit_dbcommon  # noqa: E402
import envcredit_dbtool as dbtool  # noqa: E402

CHUNK = 1 << 20
POSITION = re.compile(r"binlog position: filename '([^']+)', position '(\d+)'(?:, GTID of the last change '([^']*)')?")
SUFFIX = ".xbs.zst.age"
# A base's id (cmd_base): no dot, so ``<id>.`` starts exactly that base's files.
BASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,100}$")


class ArchiveError(Exception):
    def __init__(self, message: str, code: int = 1, remote_rc: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        # the receiver's (or ssh's) own exit status, when the backup host answered
        self.remote_rc = remote_rc


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
        return ArchiveError(f"backup host: {detail}", 4, remote_rc=rc)
    if rc == 255:
        return ArchiveError(f"the backup host is unreachable: {detail}", 3, remote_rc=rc)
    return ArchiveError(f"the backup host refused: {detail}", 3, remote_rc=rc)


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


def cmd_base(cfg: dict[str, Any], backup_id: str, new_timeline: bool = False) -> dict[str, Any]:
    if not BASE_ID.match(backup_id):
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
        # the first base after an in-place point-in-time restore: older bases and binary logs
        # belong to the history that restore discarded, no restore starts from them any more
        "timeline_start": new_timeline,
    }
    if new_timeline:
        # seen by `status` without the key (its content is empty, encrypted like the rest)
        with tempfile.TemporaryFile() as empty:
            send(cfg, "base", backup_id + ".timeline.age", empty)
    with tempfile.TemporaryFile() as buf:
        buf.write(json.dumps(meta, sort_keys=True).encode())
        buf.seek(0)
        send(cfg, "base", backup_id + ".json.age", buf)
    # The starting binary log in the name of an empty marker: the backup host's retention reads
    # it without the key (the binary logs before it are only needed by older bases).
    with tempfile.TemporaryFile() as empty:
        send(cfg, "base", f"{backup_id}.binlog.{meta['binlog_file']}.age", empty)
    return meta


def cmd_mark_verified(cfg: dict[str, Any], base_id: str) -> dict[str, Any]:
    """The empty marker base/ID.verified.age (a restore drill restored that base): the backup
    host's retention keeps the newest verified base and every newer one. ``marked`` is false
    when the marker was there already (a second drill of the same base)."""
    if not BASE_ID.match(base_id):
        raise ArchiveError(f"bad backup id {base_id!r}", 2)
    found = [b for b in cmd_status_bases(cfg) if b["id"] == base_id]
    if not found or not found[0]["complete"]:
        state = "incomplete (no metadata stored)" if found else "not there"
        raise ArchiveError(
            f"base {base_id} is not a complete base on the backup host ({state}): not marked verified", 2
        )
    if found[0]["verified"]:
        return {"base": base_id, "verified": True, "marked": False}
    try:
        with tempfile.TemporaryFile() as empty:
            send(cfg, "base", base_id + ".verified.age", empty)
    except ArchiveError as exc:
        if exc.remote_rc != 3:  # 3: the receiver has that name already (another run marked it)
            raise
        return {"base": base_id, "verified": True, "marked": False}
    return {"base": base_id, "verified": True, "marked": True}


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
    # Everything committed before this moment is in a closed log once this run is done.
    archived_until = time.time()
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
    return {"flushed": flushed, "sent": sent, "current": logs[-1] if logs else None, "archived_until": archived_until}


def cmd_backup(cfg: dict[str, Any], backup_id: str) -> dict[str, Any]:
    """A backup's whole physical part in one run (one task, started in the background while the
    logical dump runs): the base, the binary logs up to now (the recovery window reaches this
    run) and what the backup host then holds."""
    out: dict[str, Any] = {"seconds": {}}
    for step, run in (
        ("base", lambda: cmd_base(cfg, backup_id)),
        ("binlogs", lambda: cmd_binlogs(cfg)),
        ("status", lambda: cmd_status(cfg)),
    ):
        started = time.monotonic()
        out[step] = run()
        out["seconds"][step] = round(time.monotonic() - started, 3)
    return out


def current_timeline(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The complete bases (cmd_status_bases) a restore can start from, oldest first: from the
    newest one that starts a timeline (an in-place restore's) on; older ones belong to the
    history that restore discarded."""
    complete = sorted((b for b in found if b["complete"]), key=lambda b: float(b["stored_at"]))
    starts = [i for i, b in enumerate(complete) if b["timeline_start"]]
    return complete[starts[-1] :] if starts else complete


def cmd_status(cfg: dict[str, Any]) -> dict[str, Any]:
    """What the backup host holds, and the complete bases of the current timeline (from the
    newest one that starts a timeline), oldest first: a restore can start from those."""
    found = cmd_status_bases(cfg)
    current = current_timeline(found)
    return {
        "bases": found,
        "timeline": current,
        "earliest_restorable": current[0]["stored_at"] if current else None,
        "binlogs": remote_json(cfg, "list binlog"),
        "space": remote_json(cfg, "df"),
    }


# ----------------------------------------------------------------------------- restore


def fetch(cfg: dict[str, Any], kind: str, name: str, identity: Path) -> subprocess.Popen[bytes]:
    """``get KIND NAME`` from the backup host, decrypted: a process whose stdout is the plaintext."""
    ssh = subprocess.Popen(ssh_argv(cfg, f"get {kind} {name}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    age = subprocess.Popen(
        ["age", "-d", "-i", str(identity)], stdin=ssh.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert ssh.stdout is not None
    ssh.stdout.close()
    age.envcredit_ssh = ssh  # type: ignore[attr-defined]
    return age


def finish(proc: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a ``fetch`` pipeline; a wrong key or a missing file is a clear error."""
    err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
    ssh: subprocess.Popen[bytes] = proc.envcredit_ssh  # type: ignore[attr-defined]
    ssh_err = ssh.stderr.read() if ssh.stderr else b""
    if ssh.wait() != 0:
        raise remote_error(ssh_err, ssh.returncode)
    if proc.wait() != 0:
        if "no identity matched" in err:
            raise ArchiveError(f"the age key does not open {what}: wrong archive key (db_backup_archive_age_identity)")
        raise ArchiveError(f"cannot decrypt {what}: {err}")


def read_plain(cfg: dict[str, Any], kind: str, name: str, identity: Path) -> bytes:
    proc = fetch(cfg, kind, name, identity)
    data = proc.stdout.read() if proc.stdout else b""
    finish(proc, f"{kind}/{name}")
    return data


def bases(cfg: dict[str, Any], identity: Path) -> list[dict[str, Any]]:
    """The complete bases of the current timeline (current_timeline), oldest first, each with
    its metadata, decrypted."""
    out = [
        json.loads(read_plain(cfg, "base", b["id"] + ".json.age", identity))
        for b in current_timeline(cmd_status_bases(cfg))
    ]
    return sorted(out, key=lambda m: m["finished"])


def cmd_carry_binlog(previous: Path, datadir: Path, basename: str) -> dict[str, Any]:
    """After an in-place restore: the newest binary log of the data directory kept aside, and an
    index naming it, in the restored data directory, so the server goes on numbering after it
    (a name the backup host already holds is never written again)."""
    index = previous / f"{basename}.index"
    try:
        names = [ln.strip() for ln in index.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise ArchiveError(f"cannot read {index}: {exc}", 2) from exc
    if not names:
        return {"carried": None}
    last = Path(names[-1]).name
    shutil.copy2(previous / last, datadir / last)
    (datadir / f"{basename}.index").write_text(f"./{last}\n", encoding="utf-8")
    return {"carried": last}


def cmd_status_bases(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The bases on the backup host, read without the key (bases_of)."""
    return bases_of(remote_json(cfg, "list base"))


def bases_of(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bases in a listing of base/ (the receiver's ``list base``: name, size, mtime), read
    without the key: complete (metadata stored; its time, about the end of the backup), starting
    a timeline (an in-place restore's), its starting binary log (the marker ID.binlog.FILE.age;
    None for a base from before the markers), verified (ID.verified.age). Markers are no bases.
    The backup host's retention (envcredit_archive_prune.py) reads its directory with this too."""
    mtimes = {b["name"]: b["mtime"] for b in listed}
    out = []
    for b in listed:
        if b["name"].endswith(SUFFIX):
            bid = b["name"][: -len(SUFFIX)]
            binlog = [
                n[len(bid) + 8 : -4]
                for n in sorted(mtimes)
                if n.startswith(bid + ".binlog.") and n.endswith(".age") and len(n) > len(bid) + 12
            ]
            out.append(
                {
                    "id": bid,
                    "size": b["size"],
                    "complete": bid + ".json.age" in mtimes,
                    "stored_at": mtimes.get(bid + ".json.age"),
                    "timeline_start": bid + ".timeline.age" in mtimes,
                    "binlog_file": binlog[0] if binlog else None,
                    "verified": bid + ".verified.age" in mtimes,
                }
            )
    return out


def utc_text(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def cmd_window(cfg: dict[str, Any], identity: Path, target_text: str, archived_until: float) -> dict[str, Any]:
    """The recovery window (the oldest complete base's end .. what the archived binary logs
    reach) and where ``target_text`` lies in it, with the base a restore to it starts from. The
    backup host is read first (with the key): a wrong key or an unreachable host is said before
    anything else. The output has the shape of envcredit_dbtool.py pitr-window's."""
    found = bases(cfg, identity)
    if not found:
        raise ArchiveError(
            "the backup host holds no complete physical backup of this host: take one first (opsctl run backup)"
        )
    earliest, latest = float(found[0]["finished"]), float(archived_until)
    out: dict[str, Any] = {
        "earliest": earliest,
        "latest": latest,
        "window": f"{dbtool.beijing(earliest)} .. {dbtool.beijing(latest)}",
        "bases": len(found),
    }
    try:
        target = latest - 1 if target_text.strip() == "latest" else dbtool.parse_target_time(target_text).timestamp()
    except envcredit_dbcommon.Fail as exc:
        return {**out, "within": False, "reason": str(exc)}
    out.update(target=target, target_beijing=dbtool.beijing(target))
    if target < earliest:
        out.update(
            within=False, reason=f"target_time {dbtool.beijing(target)} is before the recovery window {out['window']}"
        )
    elif target >= latest:
        out.update(
            within=False,
            reason=f"target_time {dbtool.beijing(target)} is after the newest archived binary log: the recovery window is "
            f"{out['window']}",
        )
    else:
        out.update(within=True, reason="", base=[b for b in found if float(b["finished"]) <= target][-1]["id"])
    return out


def run_checked(argv: list[str], what: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    kw.setdefault("stdout", subprocess.PIPE)
    proc = subprocess.run(argv, stderr=subprocess.PIPE, check=False, **kw)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
        raise ArchiveError(f"{what} failed (exit {proc.returncode}): {tail}")
    return proc


def cmd_restore(
    cfg: dict[str, Any], identity: Path, base_id: str, target: float, datadir: Path, carry_newest: bool = False
) -> dict[str, Any]:
    """The base ``base_id`` unpacked and prepared into ``datadir`` (which must not exist), then
    the binary logs from its position up to ``target`` (epoch seconds, exclusive) written to
    ``datadir``/../<name>.binlog.sql for the caller to apply once an instance runs on it.
    ``carry_newest`` (a host rebuilt from nothing, whose own logs are gone): the newest archived
    binary log and an index naming it go into ``datadir`` too, so a server started on it with
    binary logging goes on numbering after it (a name the backup host holds is never written again)."""
    started = time.time()
    if datadir.exists():
        raise ArchiveError(f"{datadir} exists: remove the earlier side instance first", 2)
    meta = json.loads(read_plain(cfg, "base", base_id + ".json.age", identity))
    datadir.mkdir(mode=0o700, parents=True)
    proc = fetch(cfg, "base", meta["file"], identity)
    zstd = subprocess.Popen(["zstd", "-dq", "-c"], stdin=proc.stdout, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    mbs = subprocess.run(["mbstream", "-x", "-C", str(datadir)], stdin=zstd.stdout, capture_output=True, check=False)
    zstd.wait()
    finish(proc, f"base/{meta['file']}")
    if zstd.returncode != 0 or mbs.returncode != 0:
        raise ArchiveError(f"unpacking {meta['file']} failed: {mbs.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    run_checked(["mariadb-backup", "--prepare", f"--target-dir={datadir}"], "mariadb-backup --prepare")
    unpacked = time.time()
    # The binary logs from the base's position on, decrypted next to the data directory.
    names = sorted(e["name"][:-4] for e in remote_json(cfg, "list binlog") if e["name"].endswith(".age"))
    needed = [n for n in names if n >= meta["binlog_file"]]
    if needed and needed[0] != meta["binlog_file"]:
        raise ArchiveError(f"the binary log {meta['binlog_file']} (the base's position) is not on the backup host")
    work = datadir.parent / (datadir.name + ".binlogs")
    work.mkdir(mode=0o700, exist_ok=True)
    files = []
    for name in needed:
        path = work / name
        path.write_bytes(read_plain(cfg, "binlog", name + ".age", identity))
        files.append(str(path))
    sql_out = datadir.parent / (datadir.name + ".binlog.sql")
    if files:
        with open(sql_out, "wb") as out:
            run_checked(
                [
                    "mariadb-binlog",
                    f"--start-position={meta['binlog_pos']}",
                    f"--stop-datetime={utc_text(target)}",
                    *files,
                ],
                "mariadb-binlog",
                env={**os.environ, "TZ": "UTC"},
                stdout=out,
            )
    else:
        sql_out.write_bytes(b"")
    carried = None
    if carry_newest and names:
        carried = names[-1]
        newest = work / carried
        data = newest.read_bytes() if carried in needed else read_plain(cfg, "binlog", carried + ".age", identity)
        (datadir / carried).write_bytes(data)
        (datadir / (carried.rsplit(".", 1)[0] + ".index")).write_text(f"./{carried}\n", encoding="utf-8")
    for f in files:
        Path(f).unlink()
    work.rmdir()
    return {
        "base": base_id,
        "base_finished": meta["finished"],
        "binlog_start": [meta["binlog_file"], meta["binlog_pos"]],
        "binlogs": needed,
        "replay_sql": str(sql_out),
        "carried": carried,
        "unpack_seconds": round(unpacked - started, 3),
        "seconds": round(time.time() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("/etc/envcredit/mariadb-archive.json"))
    sub = parser.add_subparsers(dest="cmd", required=True)
    base = sub.add_parser("base")
    base.add_argument("--id", required=True)
    base.add_argument("--new-timeline", action="store_true")
    backup = sub.add_parser("backup", help="base, then binlogs, then status (a backup's physical part)")
    backup.add_argument("--id", required=True)
    carry = sub.add_parser("carry-binlog")
    carry.add_argument("--previous", type=Path, required=True)
    carry.add_argument("--datadir", type=Path, required=True)
    carry.add_argument("--basename", default="mariadb-bin")
    mark = sub.add_parser("mark-verified")
    mark.add_argument("--base", required=True)
    sub.add_parser("binlogs")
    sub.add_parser("status")
    window = sub.add_parser("window")
    window.add_argument("--identity", type=Path, required=True)
    window.add_argument("--target", required=True, help="'2026-11-29 10:15:00+08' or latest")
    window.add_argument("--archived-until", type=float, required=True, help="epoch seconds (binlogs' answer)")
    restore = sub.add_parser("restore")
    restore.add_argument("--identity", type=Path, required=True)
    restore.add_argument("--base", required=True)
    restore.add_argument("--target", type=float, required=True, help="epoch seconds")
    restore.add_argument("--datadir", type=Path, required=True)
    restore.add_argument(
        "--carry-newest", action="store_true", help="the newest archived binary log and its index into the datadir"
    )
    opts = parser.parse_args(argv)
    try:
        cfg = load_config(opts.config)
        if opts.cmd == "base":
            result = cmd_base(cfg, opts.id, opts.new_timeline)
        elif opts.cmd == "backup":
            result = cmd_backup(cfg, opts.id)
        elif opts.cmd == "carry-binlog":
            result = cmd_carry_binlog(opts.previous, opts.datadir, opts.basename)
        elif opts.cmd == "mark-verified":
            result = cmd_mark_verified(cfg, opts.base)
        elif opts.cmd == "binlogs":
            result = cmd_binlogs(cfg)
        elif opts.cmd == "window":
            result = cmd_window(cfg, opts.identity, opts.target, opts.archived_until)
        elif opts.cmd == "restore":
            result = cmd_restore(cfg, opts.identity, opts.base, opts.target, opts.datadir, opts.carry_newest)
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
