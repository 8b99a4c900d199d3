#!/usr/bin/env python3
"""Physical backups and point-in-time restore on the `bench` data set: opsctl against the bare
tools, side by side; and the recovery point objective measured under writes.

Per database host of the lab (lab-db1 PostgreSQL with pgBackRest, lab-db2 MariaDB with
mariadb-backup and binary logs; both to lab-backup1, encrypted), with `envcredit_bench` seeded
(bench/db/run.py's seed, when missing) so the instance holds the bench data set:

(a) physical backup: the role's physical-backup task in `opsctl run backup --limit HOST` (its
    time from the run's events) against the bare command doing the same on the same hosts
    (PostgreSQL: `pgbackrest --stanza=HOST --type=full backup` on the repository host, the role's
    type forced to full; MariaDB: `mariadb-backup --stream=xbstream | zstd | age | ssh` to the
    archive receiver, as mysql with the role's account and key). Also the whole run's wall time
    against the bare logical dump plus the bare physical backup (the same work, by hand).
(b) point-in-time restore into the side cluster/instance: `opsctl run restore -e target_time=T
    -e restore_to=side` (wall) against the bare commands (PostgreSQL: pg_createcluster, pgbackrest
    restore --type=time, start, wait for the promotion, drop; MariaDB: fetch, age, zstd, mbstream,
    mariadb-backup --prepare, mariadb-binlog up to T, a side mariadbd, replay, stop).
(c) recovery point objective (--rpo): a writer commits a row every 0.1 s inside the database
    host and prints each commit once it returned; the host is killed (`podman kill`), made again
    empty (`lab/lab.sh recreate`) and rebuilt from the backup host (`opsctl run rebuild-db`);
    the seconds of acknowledged commits that did not come back. `--rpo-samples N` kills each host
    N times, after 45 s plus a random part of a minute of writes (the archiving runs each minute,
    so a kill lands anywhere in its cycle); the median and the worst sample are reported.

Rounds alternate which side goes first. A benchmark, not a test: it never fails on a time.
Results: a table on stdout and bench/results/db-pitr-<time>.json.

    .venv/bin/python bench/db/pitr.py [--rounds 1] [--hosts lab-db1,lab-db2] [--rpo [--rpo-samples N]]
    .venv/bin/python bench/db/pitr.py --rounds 0 --rpo --rpo-samples 3      (the RPO alone)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as dbbench  # noqa: E402  (bench/db/run.py: ssh, sql, opsctl, task_profile, seed)

REPO = dbbench.REPO
ENGINE = dbbench.ENGINE
BEIJING = timezone(timedelta(hours=8))
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf")}
BENCH_DB = "envcredit_bench"
ARCHIVE_CFG = "/etc/envcredit/mariadb-archive.json"
PG_BARE_SIDE = "benchside"
PG_BARE_PORT = 5434
MY_BARE_DIR = "/var/lib/mysql-benchside"
MY_BARE_SOCKET = "/run/mysqld/mysqld-benchside.sock"


def podman(*argv: str, timeout: float = 3600) -> str:
    proc = subprocess.run(
        ["podman", *argv], capture_output=True, text=True, timeout=timeout, env=PODMAN_ENV, check=False
    )
    if proc.returncode != 0:
        raise dbbench.BenchError(f"podman {' '.join(argv)[:200]}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def on_backup_host(script: str, user: str) -> float:
    """Seconds a script takes on lab-backup1 (measured there)."""
    out = podman("exec", "-u", user, "lab-backup1", "bash", "-c",
                 f's=$(date +%s%N); ( set -euo pipefail; {script} ) >&2; e=$(date +%s%N); echo $(( e - s ))')  # fmt: skip
    return int(out.split()[-1]) / 1e9


def beijing(ts: float) -> str:
    return datetime.fromtimestamp(ts, BEIJING).strftime("%Y-%m-%d %H:%M:%S+08")


# ----------------------------------------------------------------------------- (a) backup


def bare_physical(host: str) -> float:
    if ENGINE[host] == "postgresql":
        return on_backup_host(f"pgbackrest --stanza={host} --type=full backup", "pgbackrest")
    cfg = json.loads(dbbench.ssh(host, f"cat {ARCHIVE_CFG}"))
    name = f"benchbare-{int(time.time())}.age"
    ssh_cmd = (
        f"ssh -i {cfg['key']} -o BatchMode=yes -o UserKnownHostsFile={cfg['known_hosts']} -p {cfg['port']} "
        f"{cfg['target']} put base {name}"
    )
    script = (
        f"d=$(mktemp -d); mariadb-backup --defaults-extra-file={cfg['defaults_file']} --backup --stream=xbstream "
        f"--target-dir=$d 2>/dev/null | zstd -q -c -{cfg.get('level', 3)} -T0 | age -r {cfg['recipient']} | {ssh_cmd} >/dev/null; "
        f"rm -rf $d"
    )
    _, seconds = dbbench.timed_on_host(host, script, "mysql")
    return seconds


def opsctl_backup(host: str, env: dict[str, str], archive: Path, store: Path) -> dict[str, float]:
    args = [
        "run",
        "backup",
        "--limit",
        host,
        "-e",
        f"db_backup_store_dir={store}/lab",
    ]
    if ENGINE[host] == "postgresql":
        args += ["-e", "db_backup_pgbackrest_type=full"]
    wall, rec = dbbench.opsctl(args, env)
    profile = dbbench.task_profile(archive, rec["id"])
    out = rec["outputs"]["backup"][host]
    # the physical backup runs in the background beside the logical one: its own time on the host
    # (pgBackRest's command; MariaDB: the tool's base step, as the bare side does only the base)
    physical = (
        float(out["pgbackrest"]["elapsed_s"])
        if ENGINE[host] == "postgresql"
        else float(out["mariadb_archive"]["seconds"]["base"])
    )
    return {
        "wall_s": wall,
        "physical_task_s": physical,
        "dump_task_s": profile.get(dbbench.DUMP_TASK, 0.0),
    }


def bare_logical(host: str) -> float:
    engine = ENGINE[host]
    user = dbbench.RUN_AS[engine]
    dbbench.ssh(host, f"install -d -m 0700 -o {user} {dbbench.HOST_DIR}")
    out = f"{dbbench.HOST_DIR}/bare." + ("dir" if engine == "postgresql" else "sql.zst")
    # what the role dumps (db_backup_databases: envcredit); the physical backup has the whole instance
    _, seconds = dbbench.timed_on_host(host, dbbench.bare_dump_script(engine, "envcredit", out), user)
    dbbench.ssh(host, f"rm -rf {out}", user)
    return seconds


# ----------------------------------------------------------------------------- (b) restore


def bare_pitr(host: str, target: float) -> float:
    if ENGINE[host] == "postgresql":
        version = dbbench.sql(host, "postgres", "SELECT current_setting('server_version_num')::int / 10000")
        data = f"/var/lib/postgresql/{version}/{PG_BARE_SIDE}"
        script = (
            f"pg_dropcluster --stop {version} {PG_BARE_SIDE} 2>/dev/null || true; "
            f"pg_createcluster {version} {PG_BARE_SIDE} --port {PG_BARE_PORT} --start-conf manual >/dev/null; "
            f"find {data} -mindepth 1 -delete; "
            f"runuser -u postgres -- pgbackrest --stanza={host} --pg1-path={data} --type=time "
            f"--target='{beijing(target)}' --target-action=promote --archive-mode=off restore; "
            f"systemctl start postgresql@{version}-{PG_BARE_SIDE}; "
            f"until [ \"$(runuser -u postgres -- psql -p {PG_BARE_PORT} -XAtc 'SELECT pg_is_in_recovery()' 2>/dev/null)\" = f ]; "
            f"do sleep 0.5; done; "
            f"pg_dropcluster --stop {version} {PG_BARE_SIDE}"
        )
        _, seconds = dbbench.timed_on_host(host, script)
        return seconds
    cfg = json.loads(dbbench.ssh(host, f"cat {ARCHIVE_CFG}"))
    ident = "/run/benchside.identity"
    subprocess.run(["podman", "exec", "-i", host, "sh", "-c", f"umask 077; cat > {ident}"],
                   input=vault("vault_lab_archive_age_identity") + "\n", text=True, env=PODMAN_ENV, check=True)  # fmt: skip
    ssh_get = (
        f"ssh -i {cfg['key']} -o BatchMode=yes -o UserKnownHostsFile={cfg['known_hosts']} -p {cfg['port']} "
        f"{cfg['target']}"
    )
    # the newest complete base that ended before the target, and its binary log position
    status = json.loads(
        dbbench.ssh(host, "python3 /usr/local/lib/envcredit/envcredit_mariadb_archive.py status", "mysql")
    )
    base = [b for b in status["timeline"] if float(b["stored_at"]) <= target][-1]["id"]
    script = f"""
        systemctl stop envcredit-benchside 2>/dev/null || true; systemctl reset-failed envcredit-benchside 2>/dev/null || true
        d={MY_BARE_DIR}; rm -rf $d $d.binlogs; mkdir -p $d $d.binlogs
        meta=$({ssh_get} get base {base}.json.age | age -d -i {ident})
        file=$(echo "$meta" | python3 -c 'import json,sys; print(json.load(sys.stdin)["binlog_file"])')
        pos=$(echo "$meta" | python3 -c 'import json,sys; print(json.load(sys.stdin)["binlog_pos"])')
        data=$(echo "$meta" | python3 -c 'import json,sys; print(json.load(sys.stdin)["file"])')
        {ssh_get} get base $data | age -d -i {ident} | zstd -dq -c | mbstream -x -C $d
        mariadb-backup --prepare --target-dir=$d 2>/dev/null
        for n in $({ssh_get} list binlog | python3 -c 'import json,sys; print(" ".join(sorted(e["name"][:-4] for e in json.load(sys.stdin))))'); do
            [ "$n" \\< "$file" ] && continue
            {ssh_get} get binlog $n.age | age -d -i {ident} > $d.binlogs/$n
        done
        : > $d.sql
        if [ -n "$(ls -A $d.binlogs)" ]; then
            TZ=UTC mariadb-binlog --start-position=$pos --stop-datetime='{time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(target))}' \
                $(ls $d.binlogs/* | sort) > $d.sql
        fi
        chown -R mysql:mysql $d
        systemd-run --unit=envcredit-benchside --property=User=mysql /usr/sbin/mariadbd --no-defaults --datadir=$d \
            --port=3308 --bind-address=127.0.0.1 --socket={MY_BARE_SOCKET} --skip-log-bin >/dev/null 2>&1
        until mariadb-admin --socket={MY_BARE_SOCKET} ping >/dev/null 2>&1; do sleep 0.5; done
        mariadb --socket={MY_BARE_SOCKET} -e "source $d.sql"
        systemctl stop envcredit-benchside
        rm -rf $d $d.binlogs $d.sql {ident}
    """
    _, seconds = dbbench.timed_on_host(host, script)
    return seconds


def vault(key: str) -> str:
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.lab import vault_value

    return str(vault_value(key))


def mark_and_target(host: str) -> float:
    """A commit now, archived; the target a moment after it (inside the recovery window)."""
    if ENGINE[host] == "postgresql":
        # recovery to a time stops at the first commit after it, which must be archived (as the
        # tool's pitr-window does): a commit after the target, then `pgbackrest check`
        target = time.time()
        time.sleep(1.5)
        dbbench.sql(host, "postgres", "SELECT txid_current()")
        dbbench.ssh(host, f"pgbackrest --stanza={host} check", "postgres")
        return target
    # a write (the archiving flushes only when the GTID moved), archived; the target after it
    dbbench.ssh(host, "mariadb -e 'CREATE DATABASE IF NOT EXISTS envcredit_bench_mark; CREATE TABLE IF NOT EXISTS "
                      "envcredit_bench_mark.m (at DOUBLE); INSERT INTO envcredit_bench_mark.m VALUES (UNIX_TIMESTAMP(NOW(6)))'")  # fmt: skip
    time.sleep(1.5)
    target = time.time()
    time.sleep(1.5)
    dbbench.ssh(host, "python3 /usr/local/lib/envcredit/envcredit_mariadb_archive.py binlogs >/dev/null", "mysql")
    return target


def opsctl_pitr(host: str, target: float, env: dict[str, str]) -> dict[str, float]:
    wall, rec = dbbench.opsctl(
        ["run", "restore", "--limit", host, "-e", f"target_time={beijing(target)}", "-e", "restore_to=side",
         "-e", "db_restore_database=envcredit", "--yes"], env)  # fmt: skip
    out = rec["outputs"]["restore"][host]
    # the side instance stays up for the investigation (restore_to=side): stop it, as the bare side does
    if ENGINE[host] == "postgresql":
        version = dbbench.sql(host, "postgres", "SELECT current_setting('server_version_num')::int / 10000")
        dbbench.ssh(host, f"pg_dropcluster --stop {version} pitr")
    else:
        dbbench.ssh(host, "systemctl stop envcredit-mariadb-pitr 2>/dev/null || true; rm -rf /var/lib/mysql-pitr")
    return {"wall_s": wall, "restore_s": float(out.get("restore_seconds") or 0)}


# ----------------------------------------------------------------------------- (c) RPO


def rpo(host: str, env: dict[str, str], writes_s: float) -> dict[str, Any]:
    """Seconds of acknowledged commits lost when the host is killed after ``writes_s`` seconds of
    writes and rebuilt from the backup host."""
    # A table of this sample's own: ids restart with a new table, and a rebuild that lost the
    # whole sample (its CREATE TABLE too) must not find an earlier sample's rows.
    tag = f"{int(time.time())}_{random.randrange(1 << 16):04x}"
    table = f"envcredit_rpo_probe.writes_{tag}" if ENGINE[host] == "mariadb" else f"rpo_writes_{tag}"
    if ENGINE[host] == "postgresql":
        dbbench.sql(host, "envcredit", f"CREATE TABLE {table} (id serial PRIMARY KEY, at double precision)")
        insert = (
            f'psql -XAtq -d envcredit -c "INSERT INTO {table} (at) VALUES (extract(epoch FROM clock_timestamp())) '
            'RETURNING id, at"'
        )
        writer = f"while :; do runuser -u postgres -- {insert} || exit; sleep 0.1; done"
    else:
        dbbench.ssh(host, "mariadb -e 'CREATE DATABASE IF NOT EXISTS envcredit_rpo_probe; CREATE TABLE "
                          f"{table} (id INT AUTO_INCREMENT PRIMARY KEY, at DOUBLE)'")  # fmt: skip
        insert = (
            f'mariadb -N -B -e "INSERT INTO {table} (at) VALUES (UNIX_TIMESTAMP(NOW(6))); '
            f'SELECT LAST_INSERT_ID(), at FROM {table} WHERE id = LAST_INSERT_ID()"'
        )
        writer = f"while :; do {insert} || exit; sleep 0.1; done"
    proc = subprocess.Popen(
        ["podman", "exec", host, "bash", "-c", writer], stdout=subprocess.PIPE, text=True, env=PODMAN_ENV
    )
    acked: list[tuple[int, float]] = []
    deadline = time.monotonic() + writes_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        parts = line.replace("|", "\t").split()
        if len(parts) == 2:
            acked.append((int(parts[0]), float(parts[1])))
    killed_at = time.time()
    podman("kill", "-s", "KILL", host)
    proc.kill()
    for line in proc.stdout:  # commits printed before the kill
        parts = line.replace("|", "\t").split()
        if len(parts) == 2:
            acked.append((int(parts[0]), float(parts[1])))
    subprocess.run([str(REPO / "lab" / "lab.sh"), "recreate", host], check=True, capture_output=True, cwd=REPO)
    wall, _ = dbbench.opsctl(["run", "rebuild-db", "--limit", host, "--yes"], env)
    query = f"SELECT coalesce(max(id), 0), coalesce(max(at), 0) FROM {table}"
    try:
        if ENGINE[host] == "postgresql":
            got = dbbench.sql(host, "envcredit", query)
        else:
            got = dbbench.ssh(host, f"mariadb -N -B -e '{query}'")
        table_restored = True
    except dbbench.BenchError:  # the table's creation was lost as well: every commit of the sample
        got, table_restored = "0 0", False
    max_id, max_at = got.replace("|", "\t").split()
    last_id, last_at = acked[-1]
    lost = [a for a in acked if a[0] > int(max_id)]
    if ENGINE[host] == "postgresql":
        dbbench.sql(host, "envcredit", f"DROP TABLE IF EXISTS {table}")
    else:
        dbbench.ssh(host, "mariadb -e 'DROP DATABASE IF EXISTS envcredit_rpo_probe'")
    # seconds of acknowledged commits lost: from the newest restored commit (or, with none
    # restored, from the first acknowledged one: at least that much) to the newest acknowledged
    newest_kept = float(max_at) if int(max_id) else acked[0][1]
    return {
        "acked_commits": len(acked),
        "lost_commits": len(lost),
        "rpo_s": round(last_at - newest_kept, 2) if lost else 0.0,
        "table_restored": table_restored,
        "kill_after_last_ack_s": round(killed_at - last_at, 2),
        "rebuild_wall_s": round(wall, 1),
        "last_acked_id": last_id,
        "restored_max_id": int(max_id),
    }


# ----------------------------------------------------------------------------- main


def med(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def bench_host(
    host: str, rounds: int, env: dict[str, str], archive: Path, store: Path, rpo_samples: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": []}
    for r in range(rounds):
        row: dict[str, Any] = {}
        for side in ("opsctl", "bare") if r % 2 == 0 else ("bare", "opsctl"):
            if side == "opsctl":
                row["opsctl_backup"] = opsctl_backup(host, env, archive, store)
            else:
                row["bare_physical_s"] = bare_physical(host)
                row["bare_logical_s"] = bare_logical(host)
        for side in ("opsctl", "bare") if r % 2 == 0 else ("bare", "opsctl"):
            target = mark_and_target(host)
            if side == "opsctl":
                row["opsctl_pitr"] = opsctl_pitr(host, target, env)
            else:
                row["bare_pitr_s"] = bare_pitr(host, target)
        out["rounds"].append(row)
        print(f"{host} round {r + 1}: {json.dumps(row)}", flush=True)
    rs = out["rounds"]
    if rs:
        out["physical_ratio"] = med([x["opsctl_backup"]["physical_task_s"] / x["bare_physical_s"] for x in rs])
        out["backup_wall_ratio"] = med(
            [x["opsctl_backup"]["wall_s"] / (x["bare_physical_s"] + x["bare_logical_s"]) for x in rs]
        )
        out["pitr_wall_ratio"] = med([x["opsctl_pitr"]["wall_s"] / x["bare_pitr_s"] for x in rs])
        out["pitr_host_ratio"] = med([x["opsctl_pitr"]["restore_s"] / x["bare_pitr_s"] for x in rs])
    # The kill falls anywhere in the archiving's cycle (PostgreSQL's archive_timeout and the
    # binary-log timer are both a minute): each sample writes 45 s plus a random part of a minute.
    samples = []
    for n in range(rpo_samples):
        sample = rpo(host, env, 45 + random.uniform(0, 60))
        samples.append(sample)
        print(f"{host} RPO sample {n + 1}/{rpo_samples}: {json.dumps(sample)}", flush=True)
    if samples:
        values = [x["rpo_s"] for x in samples]
        out["rpo"] = {"samples": samples, "median_s": med(values), "max_s": max(values)}
    return out


def report(results: dict[str, Any]) -> None:
    print("\nhost     physical backup: role task / bare | backup wall / bare dump+physical | "
          "PITR side: wall / bare | restore part / bare | RPO (s, commits lost / acked)")  # fmt: skip
    for host, r in results["hosts"].items():
        rp = r.get("rpo")
        rpo_text = (
            f"median {rp['median_s']} max {rp['max_s']} over {len(rp['samples'])}: "
            + ", ".join(f"{x['rpo_s']} ({x['lost_commits']} / {x['acked_commits']})" for x in rp["samples"])
            if rp
            else "-"
        )
        ratios = [r.get(k) for k in ("physical_ratio", "backup_wall_ratio", "pitr_wall_ratio", "pitr_host_ratio")]
        cells = [f"{v:.3f}" if v is not None else "-" for v in ratios]
        print(f"{host:8} {cells[0]:>33} | {cells[1]:>32} | {cells[2]:>22} | {cells[3]:>20} | {rpo_text}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1, help="backup and PITR rounds per host (0: none)")
    ap.add_argument("--hosts", default="lab-db1,lab-db2")
    ap.add_argument("--rpo", action="store_true", help="also kill each host under writes and rebuild it (minutes)")
    ap.add_argument("--rpo-samples", type=int, default=1, metavar="N", help="with --rpo: kills per host (default 1)")
    args = ap.parse_args()
    if args.rounds < 0 or args.rpo_samples < 1:
        ap.error("--rounds must be 0 or more and --rpo-samples 1 or more")
    hosts = [h for h in args.hosts.split(",") if h]
    if [h for h in hosts if h not in ENGINE]:
        ap.error(f"hosts must be among {', '.join(ENGINE)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-pitr-"))
    store, archive, env = dbbench.throwaway_env(tmp)
    results = dbbench.new_results("db-pitr", args.rounds)
    try:
        for host in hosts:
            # the RPO alone (--rounds 0) writes into the system's database: no bench data set
            seed = dbbench.ensure_seeded(host, BENCH_DB if args.rounds else "envcredit", env)
            results["hosts"][host] = bench_host(
                host, args.rounds, env, archive, store, args.rpo_samples if args.rpo else 0
            )
            results["hosts"][host]["seed"] = seed
    except dbbench.BenchError as exc:
        print(f"bench-db-pitr: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = dbbench.write_results(results)
    report(results)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
