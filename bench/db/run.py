#!/usr/bin/env python3
"""Database operations on the `bench` data set: opsctl against the bare tools, side by side.

Per database host of the lab (lab-db1 PostgreSQL, lab-db2 MariaDB), on the database
`envcredit_bench` (seeded with `db_seed_size=bench` when it is not there yet, with accounts of
its own so the live `envcredit` grants are never touched):

(a) backup: `opsctl run backup --limit HOST` (store, archive and host directory are throw-away)
    against the bare dump of the same database to the same disk on the host, with the same
    format and compression (PostgreSQL `pg_dump -Fd -j N -Z0` then `zstd -3 -T0` on its files;
    MariaDB `mariadb-dump --single-transaction ... | zstd -3 -T0`). Ratios of the controller wall
    times and of the host-side part (the role's dump task, from the run's events) against the
    bare dump's time measured on the host; the run's task profile (dump, copy, store check).
(b) zstd against gzip on the same uncompressed dump (one plain SQL file): size and time of
    `zstd -3 -T0` (as the role), `zstd -3 -T1`, `gzip -6`, and their decompression.
(c) restore: `opsctl run restore -e target_db=...` (beside; the live database is never
    touched) against the bare `pg_restore -j N` / `mariadb` load of the bare dump.

Rounds alternate which side goes first. A benchmark, not a test: it never fails on a time.
Results: a table on stdout and bench/results/db-<time>.json.

    .venv/bin/python bench/db/run.py [--rounds 1] [--hosts lab-db1,lab-db2] [--db envcredit_bench]
                                     [--skip-restore] [--skip-compress]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENGINE = {"lab-db1": "postgresql", "lab-db2": "mariadb"}
PORT = {"lab-db1": 2224, "lab-db2": 2225}
RUN_AS = {"postgresql": "postgres", "mariadb": "root"}
HOST_DIR = "/var/backups/bench-db"  # throw-away, beside the lab's /var/backups/envcredit (same disk)
JOBS = 2  # pg_dump / pg_restore jobs: the role's defaults on the lab (min(vCPUs, 4) = 2; restore 2)
LEVEL = 3  # the role's zstd level
DUMP_TASK = "Dump the databases, compress, checksum and write the manifest"
MY_DUMP = "mariadb-dump --single-transaction --routines --triggers --events --hex-blob --default-character-set=utf8mb4"


class BenchError(Exception):
    pass


def ssh(host: str, script: str, user: str = "root", timeout: float = 3600) -> str:
    """Run a bash script on the lab host as `user` (set -euo pipefail); its stdout."""
    key = REPO / "var" / "lab" / "ssh" / "id_ed25519"
    argv = [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(PORT[host]),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={REPO / 'var' / 'lab' / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "LogLevel=ERROR",
        "ops@127.0.0.1",
        "sudo",
        "-u",
        user,
        "bash",
        "-c",
        shlex.quote("set -euo pipefail; cd /tmp; " + script),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BenchError(f"{host}: {script[:200]!r} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def timed_on_host(host: str, script: str, user: str = "root") -> tuple[float, float]:
    """(controller wall time, time measured on the host) of a script."""
    wrapped = f's=$(date +%s%N); ( {script} ); e=$(date +%s%N); echo "@@elapsed $(( e - s ))"'
    start = time.perf_counter()
    out = ssh(host, wrapped, user)
    wall = time.perf_counter() - start
    ns = [line.split()[1] for line in out.splitlines() if line.startswith("@@elapsed ")]
    return wall, int(ns[-1]) / 1e9


def sql(host: str, db: str, statement: str) -> str:
    if ENGINE[host] == "postgresql":
        return ssh(host, f"psql -XAtq -v ON_ERROR_STOP=1 -d {db} -c {shlex.quote(statement)}", "postgres").strip()
    return ssh(host, f"mariadb -NB {db} -e {shlex.quote(statement)}").strip()


def size_on_disk(host: str, db: str) -> int:
    if ENGINE[host] == "postgresql":
        return int(sql(host, "postgres", f"SELECT pg_database_size('{db}')"))
    return int(ssh(host, f"du -sb /var/lib/mysql/{db} | cut -f1").strip())


def drop_db(host: str, db: str) -> None:
    if ENGINE[host] == "postgresql":
        ssh(host, f"dropdb --if-exists --force {db}", "postgres")
    else:
        ssh(host, f"mariadb -e 'DROP DATABASE IF EXISTS `{db}`'")


def opsctl(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "opsctl"), *args, "--env", "lab", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(
            f"opsctl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    record: dict[str, Any] = json.loads(proc.stdout)
    return wall, record


def task_profile(archive: Path, record_id: str) -> dict[str, float]:
    """Seconds per task of a run (from its event stream; a loop's task counts once, in total)."""
    out: dict[str, float] = {}
    with (archive / record_id / "events.jsonl").open(encoding="utf-8") as f:
        for line in f:
            ev = json.loads(line)
            data = ev.get("event_data", {})
            if ev.get("event") in ("runner_on_ok", "runner_on_skipped", "runner_on_failed") and "duration" in data:
                name = str(data.get("task", "?"))
                out[name] = out.get(name, 0.0) + float(data["duration"] or 0.0)
    return out


def ensure_seeded(host: str, db: str, env: dict[str, str]) -> dict[str, Any]:
    """``db`` holds the bench data set on ``host`` (seeded now when empty). The system's own
    database comes first, as in `make demo`: the backups dump it (a fresh lab has none)."""
    try:
        sql(host, "envcredit", "SELECT count(*) FROM enterprises")
    except BenchError:
        print(f"{host}: seeding the system's database envcredit first (a fresh lab)...", flush=True)
        opsctl(["run", "seed", "--limit", host, "--reason", "bench-db seed"], env)
    try:
        have = int(sql(host, db, "SELECT count(*) FROM enterprises") or 0)
    except BenchError:
        have = 0
    if have:
        print(f"{host}: {db} already seeded ({have} enterprises)", flush=True)
        return {"seeded_now": False, "enterprises": have}
    print(f"{host}: seeding {db} with the bench data set (a few minutes)...", flush=True)
    wall, _ = opsctl(
        [
            "run",
            "seed",
            "--limit",
            host,
            "--reason",
            "bench-db seed",
            "-e",
            f"db_seed_database={db}",
            "-e",
            "db_seed_size=bench",
            "-e",
            f"db_seed_owner={db}_owner",
            "-e",
            f"db_seed_app_user={db}_app",
        ],
        env,
    )
    return {"seeded_now": True, "seed_s": wall, "enterprises": int(sql(host, db, "SELECT count(*) FROM enterprises"))}


def bare_dump_script(engine: str, db: str, out: str) -> str:
    if engine == "postgresql":
        return f"rm -rf {out}; pg_dump -Fd -Z0 -j {JOBS} -f {out} {db}; zstd -q --rm -{LEVEL} -T0 {out}/*.dat"
    return f"rm -f {out}; {MY_DUMP} {db} | zstd -q -{LEVEL} -T0 -c > {out}"


def bare_restore_script(engine: str, db: str, src: str, into: str) -> str:
    if engine == "postgresql":
        owner = (
            f"$(psql -XAtq -d postgres -c \"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{db}'\")"
        )
        return (
            f"rm -rf {HOST_DIR}/raw-restore; mkdir {HOST_DIR}/raw-restore; "
            f"for f in {src}/*.zst; do zstd -q -d -o {HOST_DIR}/raw-restore/$(basename $f .zst) $f; done; "
            f"createdb -T template0 -E UTF8 -O {owner} {into}; "
            f"pg_restore --exit-on-error -j {JOBS} -d {into} {HOST_DIR}/raw-restore; rm -rf {HOST_DIR}/raw-restore"
        )
    return (
        f"mariadb -e 'CREATE DATABASE `{into}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci'; "
        f"zstd -q -d -c {src} | mariadb --default-character-set=utf8mb4 {into}"
    )


def compress_bench(host: str, db: str) -> dict[str, Any]:
    """zstd against gzip on one uncompressed plain SQL dump of the database."""
    engine = ENGINE[host]
    user = RUN_AS[engine]
    raw = f"{HOST_DIR}/plain.sql"
    dump = f"pg_dump -Fp {db} > {raw}" if engine == "postgresql" else f"{MY_DUMP} {db} > {raw}"
    _, dump_s = timed_on_host(host, dump, user)
    raw_bytes = int(ssh(host, f"stat -c %s {raw}", user))
    out: dict[str, Any] = {"plain_dump_s": dump_s, "plain_bytes": raw_bytes}
    for name, comp, decomp in (
        ("zstd-3-T0", f"zstd -q -{LEVEL} -T0 -c {raw} > {raw}.c", f"zstd -q -d -c {raw}.c > /dev/null"),
        ("zstd-3-T1", f"zstd -q -{LEVEL} -T1 -c {raw} > {raw}.c", f"zstd -q -d -c {raw}.c > /dev/null"),
        ("gzip-6", f"gzip -6 -c {raw} > {raw}.c", f"gzip -d -c {raw}.c > /dev/null"),
    ):
        _, c_s = timed_on_host(host, comp, user)
        size = int(ssh(host, f"stat -c %s {raw}.c", user))
        _, d_s = timed_on_host(host, decomp, user)
        out[name] = {"compress_s": c_s, "bytes": size, "ratio": raw_bytes / size, "decompress_s": d_s}
        ssh(host, f"rm -f {raw}.c", user)
    ssh(host, f"rm -f {raw}", user)
    return out


def bench_host(
    host: str,
    db: str,
    rounds: int,
    store: Path,
    archive: Path,
    env: dict[str, str],
    tmp: Path,
    restore: bool,
    compress: bool,
) -> dict[str, Any]:
    engine = ENGINE[host]
    user = RUN_AS[engine]
    ssh(host, f"install -d -m 0700 -o {user} {HOST_DIR}")
    bare_out = f"{HOST_DIR}/bare." + ("dir" if engine == "postgresql" else "sql.zst")
    # one file per operation: each accepts only the -e keys its catalog entry declares
    varsfile = tmp / f"{host}-backup-vars.yml"
    varsfile.write_text(
        json.dumps(
            {
                "db_backup_databases": [db],
                "db_backup_store_dir": str(store / "lab"),
                "db_backup_host_dir": f"{HOST_DIR}/role",
                "db_backup_retention": False,
            }
        ),
        encoding="utf-8",
    )
    restore_vars = tmp / f"{host}-restore-vars.yml"
    restore_vars.write_text(
        json.dumps(
            {
                "db_backup_store_dir": str(store / "lab"),
                "db_restore_database": db,
                "db_restore_store_dir": str(store / "lab"),
                "db_restore_stage_dir": f"{HOST_DIR}/stage",
            }
        ),
        encoding="utf-8",
    )
    res: dict[str, Any] = {"engine": engine, "database": db, "size_on_disk_bytes": size_on_disk(host, db), "rounds": []}
    for i in range(rounds):
        rnd: dict[str, Any] = {}
        order = ["bare", "opsctl"] if i % 2 == 0 else ["opsctl", "bare"]
        for side in order:
            if side == "bare":
                wall, host_s = timed_on_host(host, bare_dump_script(engine, db, bare_out), user)
                size = int(ssh(host, f"du -sb {bare_out} | cut -f1", user).strip())
                rnd["bare_backup"] = {"wall_s": wall, "host_s": host_s, "bytes": size}
            else:
                wall, rec = opsctl(
                    ["run", "backup", "--limit", host, "--reason", "bench-db", "-e", f"@{varsfile}"], env
                )
                prof = task_profile(archive, rec["id"])
                out = rec["outputs"]["backup"][host]
                rnd["opsctl_backup"] = {
                    "wall_s": wall,
                    "record_duration_s": rec.get("duration_s"),
                    "backup_id": out["backup_id"],
                    "bytes": int(out["total_bytes"]),
                    "dump_task_s": prof.get(DUMP_TASK, 0.0),
                    "tool_s": float(out.get("elapsed_s") or 0.0),
                    "copy_task_s": sum(v for k, v in prof.items() if k.startswith("Copy the backup")),
                    "store_check_s": prof.get("Verify the checksums in the store and commit the backup", 0.0),
                    "other_tasks_s": sum(prof.values()) - prof.get(DUMP_TASK, 0.0),
                    "profile": dict(sorted(prof.items(), key=lambda kv: -kv[1])),
                }
        b, o = rnd["bare_backup"], rnd["opsctl_backup"]
        rnd["ratio_wall"] = o["wall_s"] / b["wall_s"]
        rnd["ratio_host"] = o["dump_task_s"] / b["host_s"]
        rnd["ratio_tool"] = o["tool_s"] / b["host_s"]
        if restore:
            into_role, into_bare = f"{db}_r_role", f"{db}_r_bare"
            for name in (into_role, into_bare):
                drop_db(host, name)
            for side in order:
                if side == "bare":
                    wall, host_s = timed_on_host(host, bare_restore_script(engine, db, bare_out, into_bare), user)
                    rnd["bare_restore"] = {"wall_s": wall, "host_s": host_s}
                else:
                    wall, rec = opsctl(
                        [
                            "run",
                            "restore",
                            "--limit",
                            host,
                            "--yes",
                            "--reason",
                            "bench-db",
                            "-e",
                            f"@{restore_vars}",
                            "-e",
                            f"backup_id={o['backup_id']}",
                            "-e",
                            f"target_db={into_role}",
                        ],
                        env,
                    )
                    prof = task_profile(archive, rec["id"])
                    rnd["opsctl_restore"] = {
                        "wall_s": wall,
                        "restore_task_s": prof.get(
                            "Restore the backup into a new database and compare row counts with the manifest", 0.0
                        ),
                        "stage_copy_s": prof.get("Copy the backup from the store to the host", 0.0),
                        "stage_check_s": prof.get("Check the checksums of the copy on the host", 0.0),
                        "profile": dict(sorted(prof.items(), key=lambda kv: -kv[1])[:8]),
                    }
            for name in (into_role, into_bare):
                drop_db(host, name)
            rnd["ratio_restore_wall"] = rnd["opsctl_restore"]["wall_s"] / rnd["bare_restore"]["wall_s"]
            rnd["ratio_restore_host"] = rnd["opsctl_restore"]["restore_task_s"] / rnd["bare_restore"]["host_s"]
        res["rounds"].append(rnd)
        print(f"{host}: round {i + 1}/{rounds} done", flush=True)
    for key in ("ratio_wall", "ratio_host", "ratio_tool", "ratio_restore_wall", "ratio_restore_host"):
        vals = [r[key] for r in res["rounds"] if key in r]
        if vals:
            res["median_" + key] = statistics.median(vals)
    if compress:
        res["compression"] = compress_bench(host, db)
    ssh(host, f"rm -rf {HOST_DIR}")
    return res


def med(rounds: list[dict[str, Any]], side: str, key: str) -> float:
    vals = [float(r[side][key]) for r in rounds if side in r]
    return statistics.median(vals) if vals else float("nan")


def report(results: dict[str, Any]) -> None:
    for host, r in results["hosts"].items():
        rounds = r["rounds"]
        print(
            f"\n{host} ({r['engine']}), {r['database']} {r['size_on_disk_bytes'] / 1e9:.2f} GB on disk, "
            f"{len(rounds)} round(s), medians"
        )
        print(f"  {'':34} {'wall s':>8} {'host s':>8} {'bytes':>14}")
        print(
            f"  {'bare dump + zstd':34} {med(rounds, 'bare_backup', 'wall_s'):8.1f} "
            f"{med(rounds, 'bare_backup', 'host_s'):8.1f} {med(rounds, 'bare_backup', 'bytes'):14,.0f}"
        )
        print(
            f"  {'opsctl run backup':34} {med(rounds, 'opsctl_backup', 'wall_s'):8.1f} "
            f"{med(rounds, 'opsctl_backup', 'dump_task_s'):8.1f} {med(rounds, 'opsctl_backup', 'bytes'):14,.0f}"
        )
        print(
            f"    of which: copy to the store {med(rounds, 'opsctl_backup', 'copy_task_s'):.1f} s, store sha256 "
            f"check {med(rounds, 'opsctl_backup', 'store_check_s'):.1f} s, every task but the dump "
            f"{med(rounds, 'opsctl_backup', 'other_tasks_s'):.1f} s"
        )
        print(f"  {'  the tool on the host (same disk)':34} {'':8} {med(rounds, 'opsctl_backup', 'tool_s'):8.1f}")
        print(
            f"  ratio backup opsctl/bare: wall {r['median_ratio_wall']:.2f}, dump task {r['median_ratio_host']:.2f}, "
            f"tool on the host {r['median_ratio_tool']:.2f}   (goal <= 1.10)"
        )
        if "median_ratio_restore_wall" in r:
            print(
                f"  {'bare restore (zstd -d + load)':34} {med(rounds, 'bare_restore', 'wall_s'):8.1f} "
                f"{med(rounds, 'bare_restore', 'host_s'):8.1f}"
            )
            print(
                f"  {'opsctl run restore (target_db)':34} {med(rounds, 'opsctl_restore', 'wall_s'):8.1f} "
                f"{med(rounds, 'opsctl_restore', 'restore_task_s'):8.1f}"
            )
            print(
                f"    copy store->host {med(rounds, 'opsctl_restore', 'stage_copy_s'):.1f} s, host sha256 check "
                f"{med(rounds, 'opsctl_restore', 'stage_check_s'):.1f} s"
            )
            print(
                f"  ratio restore opsctl/bare: wall {r['median_ratio_restore_wall']:.2f}, "
                f"restore step {r['median_ratio_restore_host']:.2f}"
            )
        c = r.get("compression")
        if c:
            print(
                f"  compression of one plain dump ({c['plain_bytes'] / 1e6:,.0f} MB, dumped in "
                f"{c['plain_dump_s']:.1f} s):"
            )
            for name in ("zstd-3-T0", "zstd-3-T1", "gzip-6"):
                x = c[name]
                print(
                    f"    {name:10} {x['compress_s']:7.1f} s  {x['bytes'] / 1e6:9,.1f} MB  ratio {x['ratio']:5.1f}  "
                    f"decompress {x['decompress_s']:6.1f} s"
                )
            z, g = c["zstd-3-T0"], c["gzip-6"]
            print(
                f"    zstd/gzip: time {z['compress_s'] / g['compress_s']:.2f}, size {z['bytes'] / g['bytes']:.2f}, "
                f"decompress {z['decompress_s'] / g['decompress_s']:.2f}"
            )


def throwaway_env(tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    """(store, archive, environment) for opsctl runs whose store, archive and locks are thrown away."""
    store, archive = tmp / "store", tmp / "archive"
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        OPSCTL_ARCHIVE=str(archive),
        OPSCTL_LOCKS=str(tmp / "locks"),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
    )
    return store, archive, env


def new_results(benchmark: str, rounds: int) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine_cpus": os.cpu_count(),
        "rounds": rounds,
        "hosts": {},
    }


def write_results(results: dict[str, Any]) -> Path:
    """bench/results/<benchmark>-<time>.json"""
    out = REPO / "bench" / "results" / f"{results['benchmark']}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--hosts", default="lab-db1,lab-db2")
    ap.add_argument("--db", default="envcredit_bench")
    ap.add_argument("--skip-restore", action="store_true")
    ap.add_argument("--skip-compress", action="store_true")
    args = ap.parse_args()
    hosts = [h for h in args.hosts.split(",") if h]
    unknown = [h for h in hosts if h not in ENGINE]
    if unknown or args.db in ("envcredit", ""):
        ap.error(f"hosts must be among {', '.join(ENGINE)} and --db must not be the live envcredit")
    tmp = Path(tempfile.mkdtemp(prefix="bench-db-"))
    store, archive, env = throwaway_env(tmp)
    results = new_results("db", args.rounds)
    try:
        for host in hosts:
            seed = ensure_seeded(host, args.db, env)
            results["hosts"][host] = bench_host(
                host, args.db, args.rounds, store, archive, env, tmp, not args.skip_restore, not args.skip_compress
            )
            results["hosts"][host]["seed"] = seed
    except BenchError as exc:
        print(f"bench-db: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = write_results(results)
    report(results)
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
