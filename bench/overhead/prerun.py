#!/usr/bin/env python3
"""What `opsctl run` does before ansible-playbook starts, measured alone (issue 21).

Each round starts a fresh Python process per variant that does exactly the steps on the
critical path before the playbook starts -- import the orchestrator, load the catalog and
the environment's policy, hash the files for the record, resolve the target hosts, and
decrypt the inventory's vault values (in a thread, as `Runner.run` does) -- and reports its
wall and CPU time. With `--baseline DIR` the same steps run with `PYTHONPATH=DIR` (another
version of the `orchestrator` package, e.g. `git archive <commit> orchestrator | tar -x -C DIR`),
alternated in the same rounds, so the change is measured side by side. The playbook's own
time is left out: this is the fixed cost opsctl adds to every run, which the whole-run
benchmark (run.py) can only see through the playbook's noise on a busy machine.

    .venv/bin/python bench/overhead/prerun.py [--rounds 15] [--baseline DIR]

Uses the throw-away home of run.py --local (5 local hosts, a vault-encrypted group_vars file).
Never fails on a time; it prints medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, REPO, build_local_home, timed  # noqa: E402

STEPS = """\
import time
from concurrent.futures import ThreadPoolExecutor
from orchestrator import runner
from orchestrator.operations import get_environment, get_operation, load_catalog
op = get_operation("bench", load_catalog())
env = get_environment("bench")
with ThreadPoolExecutor(max_workers=1) as pool:
    secrets = pool.submit(runner._vault_secrets, env)
    runner.file_hashes(op, env)
    hosts = runner.resolve_targets(op, env, None)
    values = secrets.result()
assert hosts and values, (hosts, values)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--baseline", help="another orchestrator package (a directory holding it), alternated")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prerun-") as tmp:
        home = build_local_home(Path(tmp), 5)
        env = dict(
            os.environ,
            OPSCTL_HOME=str(home),
            OPSCTL_CATALOG=str(home / "catalog.yml"),
            OPSCTL_ARCHIVE=str(home / "var" / "archive"),
        )
        variants = {"this checkout": dict(env, PYTHONPATH=str(REPO))}
        if args.baseline:
            variants["baseline"] = dict(env, PYTHONPATH=str(Path(args.baseline).resolve()))
        cmd = [str(BIN / "python"), "-c", STEPS]
        for venv in variants.values():  # warm-up (page cache, the target cache of this checkout)
            timed(cmd, venv, Path(tmp))
        walls: dict[str, list[float]] = {k: [] for k in variants}
        cpus: dict[str, list[float]] = {k: [] for k in variants}
        names = list(variants)
        for i in range(args.rounds):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                wall, cpu = timed(cmd, variants[name], Path(tmp))
                walls[name].append(wall)
                cpus[name].append(cpu)
    print(f"before the playbook starts: {args.rounds} rounds, order rotated, {os.cpu_count()} cores")
    for name in names:
        print(
            f"  {name:14} wall median {statistics.median(walls[name]):.3f} s   "
            f"cpu median {statistics.median(cpus[name]):.3f} s"
        )
    if args.baseline:
        diff = [a - b for a, b in zip(walls["this checkout"], walls["baseline"], strict=True)]
        cdiff = [a - b for a, b in zip(cpus["this checkout"], cpus["baseline"], strict=True)]
        print(
            f"  this checkout - baseline: wall {statistics.median(diff):+.3f} s, cpu {statistics.median(cdiff):+.3f} s "
            "(medians of the per-round differences)"
        )


if __name__ == "__main__":
    main()
