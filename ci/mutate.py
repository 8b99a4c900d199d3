#!/usr/bin/env python3
"""Mutation testing of the code an auditor relies on (``make mutate``; not part of ``make test``).

    ci/mutate.py [--modules a,b] [--max-children N] [--keep] [--list]

mutmut (3.x, pinned in requirements.txt) changes one thing at a time in the modules below
(``<`` for ``<=``, ``and`` for ``or``, a constant, a dropped argument...) and runs the non-lab
tests that reach the changed function against each change. A change no test notices is a
*surviving* mutant: a bug the tests would let through. Every module's score (killed / tested)
is printed; tests/MUTATION.md keeps the scores and the reasons for each surviving mutant
(killed by a new test, or equivalent: no behaviour changed).

How it runs:

* One mutmut run per module, one after the other, each in a scratch copy of the repository's
  tracked files (as they are in the work tree) in ``var/mutate/<module>/``; mutmut writes its
  ``mutants/`` there, so nothing in the repository's own folders is touched and ``var/`` keeps
  it out of git, ruff, mypy and pytest.
* The database tools run on the hosts as top-level scripts and the tests import them as such
  (``import envcredit_dbtool``); mutmut names a mutant after its file's path, so the scratch copy
  has the tools (and their shared ``envcredit_dbcommon``) at its top level and a ``conftest.py``
  that imports those copies first (the tests' own ``sys.path`` lines then find them loaded).
* Each module has its own test selection (below, ``-m "not lab"``): mutmut runs it once to
  record which tests reach which function, then only those against each mutant. The selections
  leave out the slow tests (property tests, real ansible-runner runs), which a mutant would
  otherwise pay for again and again.
* Only the named functions of a module are counted where the module holds more than the part
  an auditor relies on (runner.py: the request and policy checks and exit codes; the database
  tools: checksums and CSV validation).
* ``nice -n 15`` and at most ``--max-children`` (default 2) test processes.

mutmut's output goes to ``var/mutate/<module>.log``; the scores (with every surviving mutant's
key, for ``mutmut show KEY`` in ``var/mutate/<module>/``) to ``var/mutate/scores.json``.

Exit status: 0 when the run finished (whatever the scores), 2 on bad input, else mutmut's.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "var" / "mutate"
MUTMUT = Path(sys.executable).parent / "mutmut"

#: (path in the scratch copy, path in the repository) of the tools laid at the top level.
TOOLS = {
    "envcredit_dbtool.py": "roles/db_backup/files/envcredit_dbtool.py",
    "envcredit_transfer.py": "roles/db_transfer/files/envcredit_transfer.py",
    "envcredit_dbcommon.py": "plugins/module_utils/envcredit_dbcommon.py",
}

PRELOAD = '''\
"""Written by ci/mutate.py: import the (mutated) top-level copies of the database tools first."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import envcredit_dbcommon  # noqa: E402,F401
import envcredit_dbtool  # noqa: E402,F401
import envcredit_transfer  # noqa: E402,F401
'''


@dataclass(frozen=True)
class Module:
    name: str
    source: str  # the file in the scratch copy
    tests: tuple[str, ...]
    #: mutmut's function keys counted (fnmatch on ``x_name`` / ``xǁClassǁmethod``); empty: all.
    functions: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return self.source[: -len(".py")].replace("/", ".")

    def patterns(self) -> list[str]:
        return [f"{self.dotted}.{f}__mutmut_*" for f in self.functions] or [f"{self.dotted}.*"]


E = "tests/test_edges.py"  # issue 22's edges, fast, across the modules

# Each module's own fast tests. Left out for time: the property tests (tests/test_prop_*.py, 5-9 s
# per test, run again for every mutant they reach) and the tests that start ansible-runner (a
# record of a real run, opsctl run end to end); tests/MUTATION.md says what that costs.
MODULES = (
    Module("backups", "orchestrator/backups.py", ("tests/test_backups.py", E)),
    Module("lock", "orchestrator/lock.py", ("tests/test_cli_ops.py", "-k", "lock")),
    Module(
        "dbtool-checksum",
        "envcredit_dbtool.py",
        ("tests/test_db_tool.py", E),
        ("x_load_manifest", "x_verify_files", "x_cmd_check", "x_compare_counts"),
    ),
    Module("dbcommon-sha256", "envcredit_dbcommon.py", ("tests/test_db_tool.py", E), ("x_sha256",)),
    Module("workdays", "orchestrator/workdays.py", ("tests/test_workdays.py", E)),
    Module("redact", "orchestrator/redact.py", ("tests/test_redact.py", E)),
    Module("verify", "orchestrator/archive/verify.py", ("tests/test_archive.py", "tests/test_signing.py", E)),
    Module("chain", "orchestrator/archive/chain.py", ("tests/test_archive.py", E)),
    Module(
        "runner-policy",
        "orchestrator/runner.py",
        (
            "tests/test_cli_ops.py",
            "tests/test_run.py",
            E,
            "-k",
            "parse_extra_vars or bad_input or reason or tags or bad_extra or run_policy",
        ),
        (
            "x_read_input_file",
            "x__valid_name",
            "x__count_values",
            "x_load_vars_file",
            "x_parse_extra_vars",
            "x_check_limit",
            "x_clean_request",
            "x_needs_confirmation",
            "x_resolve_ticket",
            "x_check_policy",
            "x_check_approval",
            "x__declared_secrets",
            "x_check_inputs",
        ),
    ),
    Module(
        "transfer-csv",
        "envcredit_transfer.py",
        ("tests/test_db_transfer_tool.py",),
        ("x_csv_field", "x_csv_line", "x_parse_csv", "xǁColumnǁ*", "x_classify", "x_read_csv", "x_validate"),
    ),
    Module("incidents", "orchestrator/incidents.py", ("tests/test_incidents.py", "tests/test_alerts.py", E)),
    Module(
        "records",
        "orchestrator/records.py",
        (
            "tests/test_archive.py",
            "tests/test_cli_records.py",
            # test_records.py without the tests of its real ansible-runner run (its module fixture);
            # --deselect matches node ids by prefix: no other test's name may start with these
            "tests/test_records.py",
            *(
                f"--deselect=tests/test_records.py::{t}"
                for t in (
                    "test_run_succeeded",
                    "test_recap",
                    "test_counted_recap_matches_stats",
                    "test_changes_with_diffs",
                    "test_failures_ignored_flagged",
                    "test_outputs_from_set_stats",
                    "test_metadata_fields",
                    "test_secret_never_reaches_the_archive",
                    "test_progress",
                    "test_build_from_events_equals_incremental",
                )
            ),
        ),
    ),
)


def copy_tree(dest: Path) -> None:
    """The repository's tracked files as they are in the work tree, plus the tools at the top level."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in listed:
        rel = raw.decode()
        src = REPO / rel
        if not rel or not src.is_file() or src.is_symlink():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    for top, origin in TOOLS.items():
        shutil.copy2(REPO / origin, dest / top)
    (dest / "conftest.py").write_text(PRELOAD, encoding="utf-8")


def write_config(dest: Path, module: Module) -> None:
    also = sorted(p.name for p in dest.iterdir() if p.name not in {"orchestrator", *TOOLS, "mutants"})
    lines = [
        "",
        "[tool.mutmut]",
        "# written by ci/mutate.py",
        f"source_paths = {json.dumps(['orchestrator', *TOOLS])}",
        f"only_mutate = {json.dumps([module.source])}",
        f"also_copy = {json.dumps(also)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(list(module.tests), ensure_ascii=False)}",
        'pytest_add_cli_args = ["-m", "not lab", "-p", "no:cacheprovider", "-q"]',
        "use_git_change_detection = false",
    ]
    with (dest / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def results(dest: Path) -> dict[str, str]:
    """mutant key -> status (killed, survived, no tests, timeout, ...), from ``mutmut results --all``."""
    proc = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], cwd=dest, capture_output=True, text=True, check=False
    )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        found = re.match(r"\s*(\S+): (.+)$", line)
        if found:
            out[found.group(1)] = found.group(2).strip()
    return out


def score(module: Module, statuses: dict[str, str]) -> dict[str, object]:
    """Killed / tested. A timeout (mutmut stops a mutant whose tests take 15 times their usual
    time) is counted apart: a loop the mutant made, or only a machine too busy; the score counts
    it as not killed, ``with_timeouts`` as killed."""
    mine = {k: v for k, v in statuses.items() if any(fnmatch.fnmatch(k, p) for p in module.patterns())}
    counts: dict[str, int] = {}  # "not checked": not run yet (a run stopped early)
    for status in mine.values():
        counts[status] = counts.get(status, 0) + 1
    killed, timeouts = counts.get("killed", 0), counts.get("timeout", 0)
    tested = killed + timeouts + counts.get("survived", 0) + counts.get("no tests", 0)
    return {
        "module": module.name,
        "source": module.source,
        "mutants": len(mine),
        "tested": tested,
        "killed": killed,
        "timeouts": timeouts,
        "score": round(100 * killed / tested, 1) if tested else None,
        "with_timeouts": round(100 * (killed + timeouts) / tested, 1) if tested else None,
        "statuses": counts,
        "survived": sorted(k for k, v in mine.items() if v in ("survived", "no tests")),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modules", default="", help="comma-separated names (default: all); --list shows them")
    ap.add_argument("--max-children", type=int, default=2, help="test processes at once (default 2)")
    ap.add_argument("--keep", action="store_true", help="reuse the scratch copy and mutmut's earlier results")
    ap.add_argument("--work", type=Path, default=WORK, help="scratch folder, one sub-folder per module (var/mutate)")
    ap.add_argument(
        "--scores-only", action="store_true", help="print the scores of the last runs in --work, run nothing"
    )
    ap.add_argument("--list", action="store_true", help="print the modules and their tests, then exit")
    a = ap.parse_args()
    if a.list:
        for m in MODULES:
            print(f"{m.name:<16} {m.source:<34} {' '.join(m.tests)}")
        return 0
    names = [n for n in a.modules.split(",") if n]
    unknown = sorted(set(names) - {m.name for m in MODULES})
    if unknown:
        print(f"mutate: unknown module(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    if a.max_children < 1:
        print("mutate: --max-children must be at least 1", file=sys.stderr)
        return 2
    if not MUTMUT.exists():
        print(f"mutate: {MUTMUT} is missing: run make venv", file=sys.stderr)
        return 2
    modules = [m for m in MODULES if not names or m.name in names]
    root: Path = a.work.resolve()
    env = {**os.environ, "HYPOTHESIS_PROFILE": "ci", "PYTHONDONTWRITEBYTECODE": "1"}
    table: list[dict[str, object]] = []
    for module in modules:
        work = root / module.name
        started = time.monotonic()
        rc = 0
        if not a.scores_only:
            if not (a.keep and work.is_dir()):
                copy_tree(work)
                write_config(work, module)
            cmd = ["nice", "-n", "15", str(MUTMUT), "run", "--max-children", str(a.max_children), *module.patterns()]
            log = root / f"{module.name}.log"
            print(f"mutate: {module.name} ({module.source}; {' '.join(module.tests)}), log {log}", flush=True)
            with log.open("w", encoding="utf-8") as fh:
                rc = subprocess.run(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
        elif not (work / "mutants").is_dir():
            print(f"mutate: {module.name}: no earlier run in {work}")
            continue
        row = score(module, results(work))
        row["minutes"] = round((time.monotonic() - started) / 60, 1)
        row["mutmut_exit"] = rc
        table.append(row)
        shown = "-" if row["score"] is None else f"{row['score']}%"
        print(
            f"mutate: {module.name}: {row['killed']}/{row['tested']} killed ({shown}) in {row['minutes']} min",
            flush=True,
        )
        scores = root / "scores.json"
        scores.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"\n{'module':<16} {'mutants':>7} {'tested':>6} {'killed':>6} {'timeout':>7} {'score':>7} {'min':>5}  survived"
    )
    for row in table:
        shown = "-" if row["score"] is None else f"{row['score']}%"
        print(
            f"{row['module']:<16} {row['mutants']:>7} {row['tested']:>6} {row['killed']:>6} {row['timeouts']:>7} "
            f"{shown:>7} {row['minutes']:>5}  {len(row['survived'])}"  # type: ignore[arg-type]
        )
    print(f"each surviving mutant's key: {root / 'scores.json'} (mutmut show KEY in {root}/<module>)")
    return max((int(r["mutmut_exit"]) for r in table), default=0)  # type: ignore[call-overload]


if __name__ == "__main__":
    sys.exit(main())
