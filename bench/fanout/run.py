#!/usr/bin/env python3
"""Fan-out: the project's ansible.cfg against stock settings over the lab's fleet hosts.

Runs the same read-only playbook (default playbooks/inspect.yml) over the `fleet` group
(`make lab SCALE=20` first; at least --min-hosts hosts) with

* project: the repository's ansible.cfg (forks 20, pipelining, ControlPersist, fact cache);
* stock:   forks 5, no pipelining, no fact cache (`gathering = implicit`), stock ssh_args,

alternating the two so drift on the machine hits both, and prints the median wall time of
each and the median of the per-round ratios stock/project. A benchmark, not a test: it never
fails on a time. Results also go to bench/results/fanout-<time>.json (git-ignored).

    .venv/bin/python bench/fanout/run.py [--rounds 5] [--playbook playbooks/inspect.yml]
                                         [--limit fleet] [--min-hosts 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

STOCK_CFG = """\
[defaults]
inventory = {repo}/inventories/lab
roles_path = {repo}/roles
collections_path = {repo}/.venv/collections
collections_scan_sys_path = true
forks = 5
interpreter_python = auto_silent
host_key_checking = true
retry_files_enabled = false
gathering = implicit
fact_caching = memory

[ssh_connection]
pipelining = false
control_path_dir = {tmp}/cp
"""


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def fleet_hosts(limit: str, env: dict[str, str]) -> list[str]:
    proc = subprocess.run([str(BIN / "ansible"), "-i", str(REPO / "inventories" / "lab"), limit, "--list-hosts"],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    return [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--playbook", default="playbooks/inspect.yml")
    ap.add_argument("--limit", default="fleet")
    ap.add_argument("--min-hosts", type=int, default=20)
    args = ap.parse_args()

    base = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                ANSIBLE_VAULT_PASSWORD_FILE=str(REPO / "lab" / "lab-only-vault-password"))
    project_env = dict(base, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    hosts = fleet_hosts(args.limit, project_env)
    if len(hosts) < args.min_hosts:
        sys.exit(f"{len(hosts)} host(s) match {args.limit!r}, need {args.min_hosts}: start them with "
                 f"`make lab SCALE={args.min_hosts}` (or lower --min-hosts)")
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        (Path(tmp) / "cp").mkdir()
        cfg = Path(tmp) / "stock.cfg"
        cfg.write_text(STOCK_CFG.format(repo=REPO, tmp=tmp), encoding="utf-8")
        stock_env = dict(base, ANSIBLE_CONFIG=str(cfg))
        cmd = [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / "lab"),
               str(REPO / args.playbook), "--limit", args.limit]
        # One warm-up of each (SSH control masters, fact cache, page cache): steady state is
        # what a day of operations sees.
        timed(cmd, project_env)
        timed(cmd, stock_env)
        t_proj: list[float] = []
        t_stock: list[float] = []
        for i in range(args.rounds):
            pair = [(project_env, t_proj), (stock_env, t_stock)]
            if i % 2:
                pair.reverse()
            for env, sink in pair:
                sink.append(timed(cmd, env))
    ratios = [s / p for s, p in zip(t_stock, t_proj, strict=True)]
    result = {
        "benchmark": "fanout", "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "playbook": args.playbook, "hosts": len(hosts), "rounds": args.rounds,
        "project_s": t_proj, "stock_s": t_stock,
        "median_project_s": statistics.median(t_proj), "median_stock_s": statistics.median(t_stock),
        "median_ratio_stock_over_project": statistics.median(ratios),
    }
    out = REPO / "bench" / "results" / f"fanout-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{args.playbook} over {len(hosts)} host(s) ({args.limit}), {args.rounds} alternated rounds")
    print(f"  project ansible.cfg  median {result['median_project_s']:6.2f} s   runs: "
          f"{', '.join(f'{t:.2f}' for t in t_proj)}")
    print(f"  stock settings       median {result['median_stock_s']:6.2f} s   runs: "
          f"{', '.join(f'{t:.2f}' for t in t_stock)}")
    print(f"  ratio stock/project  median {result['median_ratio_stock_over_project']:.2f}   (results: {out})")


if __name__ == "__main__":
    main()
