#!/usr/bin/env python3
"""Fan-out: the project's ansible.cfg against stock settings over the lab's fleet hosts.

Runs the same read-only playbook (default playbooks/inspect.yml) over the `fleet` group
(`make lab SCALE=20` first; at least --min-hosts hosts) with

* project: the repository's ansible.cfg (forks 20, pipelining, ControlPersist, fact cache);
* stock:   forks 5, no pipelining, no fact cache (`gathering = implicit`), stock ssh_args;
* project + free: the project's settings with `strategy = free` (each host runs through its
  tasks without waiting for the others; skipped with --no-free);
* project + Mitogen: the project's settings with Mitogen's `mitogen_linear` strategy
  (PyPI `mitogen`, in requirements.txt; skipped with --no-mitogen or when not installed),

rotating the order every round so drift on the machine hits all of them, and prints the
median wall time of each, the seconds per host, and the medians of the per-round ratios
of each variant to the project's time; --sizes 5,20,50 repeats it on the first N hosts so
the growth with the fleet is visible. A benchmark, not a test: it never
fails on a time. Results also go to bench/results/fanout-<time>.json (git-ignored).

    .venv/bin/python bench/fanout/run.py [--rounds 5] [--playbook playbooks/inspect.yml]
                                         [--limit fleet] [--min-hosts 20] [--sizes 5,20,50]
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
collections_path = {repo}/collections:{repo}/.venv/collections
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
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def fleet_hosts(limit: str, env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        [str(BIN / "ansible"), "-i", str(REPO / "inventories" / "lab"), limit, "--list-hosts"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return [line.strip() for line in proc.stdout.splitlines()[1:] if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--playbook", default="playbooks/inspect.yml")
    ap.add_argument("--limit", default="fleet")
    ap.add_argument("--min-hosts", type=int, default=20)
    ap.add_argument(
        "--sizes",
        default="",
        help="comma-separated host counts (e.g. 5,20,50): each measured on the first N hosts of --limit",
    )
    ap.add_argument("--no-mitogen", action="store_true", help="skip the project + Mitogen variant")
    ap.add_argument("--no-free", action="store_true", help="skip the project + strategy free variant")
    args = ap.parse_args()

    base = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_VAULT_PASSWORD_FILE=str(REPO / "lab" / "lab-only-vault-password"),
    )
    project_env = dict(base, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    hosts = fleet_hosts(args.limit, project_env)
    sizes = sorted({int(n) for n in args.sizes.split(",") if n.strip()} or {len(hosts)})
    if len(hosts) < max(args.min_hosts, sizes[-1]):
        need = max(args.min_hosts, sizes[-1])
        sys.exit(
            f"{len(hosts)} host(s) match {args.limit!r}, need {need}: start them with "
            f"`make lab SCALE={need}` (or lower --min-hosts / --sizes)"
        )
    variants: list[tuple[str, dict[str, str]]] = []
    runs: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        (Path(tmp) / "cp").mkdir()
        cfg = Path(tmp) / "stock.cfg"
        cfg.write_text(STOCK_CFG.format(repo=REPO, tmp=tmp), encoding="utf-8")
        variants.append(("project", project_env))
        variants.append(("stock", dict(base, ANSIBLE_CONFIG=str(cfg))))
        if not args.no_free:
            variants.append(("project+free", dict(project_env, ANSIBLE_STRATEGY="free")))
        strategy_dir = mitogen_strategy_dir()
        if strategy_dir and not args.no_mitogen:
            variants.append(
                (
                    "project+mitogen",
                    dict(project_env, ANSIBLE_STRATEGY_PLUGINS=strategy_dir, ANSIBLE_STRATEGY="mitogen_linear"),
                )
            )
        for size in sizes:
            limit = args.limit if size == len(hosts) else f"{args.limit}[0:{size - 1}]"
            cmd = [
                str(BIN / "ansible-playbook"),
                "-i",
                str(REPO / "inventories" / "lab"),
                str(REPO / args.playbook),
                "--limit",
                limit,
            ]
            # One warm-up of each (SSH control masters, fact cache, page cache): steady state is
            # what a day of operations sees.
            for _, env in variants:
                timed(cmd, env)
            times: dict[str, list[float]] = {name: [] for name, _ in variants}
            for i in range(args.rounds):
                # Rotate the order every round so drift on the machine hits every variant alike.
                k = i % len(variants)
                for name, env in variants[k:] + variants[:k]:
                    times[name].append(timed(cmd, env))
            runs.append(summarize(size, times))
    result: dict[str, object] = {
        "benchmark": "fanout",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "playbook": args.playbook,
        "hosts": len(hosts),
        "rounds": args.rounds,
        "sizes": runs,
    }
    out = REPO / "bench" / "results" / f"fanout-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    labels = {
        "project": "project ansible.cfg",
        "stock": "stock settings",
        "project+free": "project + free",
        "project+mitogen": "project + Mitogen",
    }
    print(f"{args.playbook} over {args.limit}, {args.rounds} rotated rounds per size")
    for run in runs:
        size = int(str(run["hosts"]))
        print(f" {size} host(s)")
        medians: dict[str, float] = run["median_s"]  # type: ignore[assignment]
        series: dict[str, list[float]] = run["runs_s"]  # type: ignore[assignment]
        for name, med in medians.items():
            print(
                f"  {labels[name]:<20} median {med:6.2f} s  {med / size:5.3f} s/host   runs: "
                f"{', '.join(f'{t:.2f}' for t in series[name])}"
            )
        ratios: dict[str, float] = run["median_ratio_over_project"]  # type: ignore[assignment]
        for name, ratio in ratios.items():
            print(f"  ratio {name}/project  median {ratio:.2f}")
    print(f"  (results: {out})")


def summarize(size: int, times: dict[str, list[float]]) -> dict[str, object]:
    """Medians, seconds per host and the medians of the per-round ratios to the project's time."""
    proj = times["project"]
    return {
        "hosts": size,
        "runs_s": times,
        "median_s": {name: statistics.median(series) for name, series in times.items()},
        "median_s_per_host": {name: statistics.median(series) / size for name, series in times.items()},
        "median_ratio_over_project": {
            name: statistics.median([t / p for t, p in zip(series, proj, strict=True)])
            for name, series in times.items()
            if name != "project"
        },
    }


def mitogen_strategy_dir() -> str | None:
    """The strategy plugins of Mitogen for Ansible (PyPI `mitogen`), when installed."""
    try:
        import ansible_mitogen
    except ImportError:
        return None
    return str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")


if __name__ == "__main__":
    main()
