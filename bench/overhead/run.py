#!/usr/bin/env python3
"""Overhead of `opsctl run` (ansible-runner + recording) against bare `ansible-playbook`.

Runs the same playbook on the same hosts, alternating the two commands so that
drift on the machine hits both equally, and prints the median wall time of
each and their ratio. Goal: ratio <= 1.05. This is a benchmark, not a test:
it never fails on a time.

    .venv/bin/python bench/overhead/run.py [--rounds 5] [--op inspect] [--env lab] [--limit PATTERN]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--op", default="inspect")
    ap.add_argument("--env", default="lab")
    ap.add_argument("--limit", default=None)
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from orchestrator.operations import get_environment, get_operation

    playbook = REPO / "playbooks" / get_operation(args.op).playbook
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        env = dict(os.environ, OPSCTL_ARCHIVE=str(Path(tmp) / "archive"), OPSCTL_LOCKS=str(Path(tmp) / "locks"),
                   ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        limit = ["--limit", args.limit] if args.limit else []
        vault = get_environment(args.env).vault_password_file
        vault_opt = ["--vault-password-file", str(vault)] if vault else []
        bare = [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / args.env), *vault_opt,
                str(playbook), *limit]
        ops = [str(BIN / "opsctl"), "run", args.op, "--env", args.env, "--reason", "benchmark", *limit]
        # One warm-up of each (SSH control masters, fact cache, page cache).
        timed(bare, env)
        timed(ops, env)
        t_bare: list[float] = []
        t_ops: list[float] = []
        for i in range(args.rounds):
            pair = [(bare, t_bare), (ops, t_ops)]
            if i % 2:
                pair.reverse()
            for cmd, sink in pair:
                sink.append(timed(cmd, env))
        ratios = [o / b for o, b in zip(t_ops, t_bare, strict=True)]
    mb, mo = statistics.median(t_bare), statistics.median(t_ops)
    print(f"operation {args.op} on {args.env}, {args.rounds} alternated rounds")
    print(f"  ansible-playbook  median {mb:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in t_bare)}")
    print(f"  opsctl run        median {mo:6.2f} s   runs: {', '.join(f'{t:.2f}' for t in t_ops)}")
    print(f"  ratio opsctl/bare median {statistics.median(ratios):.3f} (per-round: "
          f"{', '.join(f'{r:.3f}' for r in ratios)})   goal <= 1.05")


if __name__ == "__main__":
    main()
