#!/usr/bin/env python3
"""CI driver behind `make ci-plan` and `make ci-apply`.

    ci/plan.py plan  --env staging --base REF [--ops a,b] [--files f1,f2] [--out DIR]
    ci/plan.py apply --env staging --base REF [--ticket CHG-1] [--ops a,b] [--out DIR] [--plan PLAN.json]

1. the operations the change touches: `git diff --name-only BASE...HEAD` mapped by
   orchestrator.changes (or --ops naming them, or --files standing for the diff);
2. each one through `opsctl run OP --env ENV --diff --json --yes` -- with `--check` for a plan.
   `--yes`: in a pipeline the merge request review and the manual gate are the confirmation;
   operations that need inputs (`requires` in the catalog) are skipped unless given with -e;
   operations marked `on_demand` (patching, recovery, restores, maintenance...) are skipped
   unless named with --ops: a merge that touches their roles never runs them;
3. the artifacts in DIR (default var/ci/<plan|apply>-<env>): plan.md (what would change /
   what changed, with the diffs), plan.json, one <op>.json record and <op>.log per run, and
   records.json + records.html (`opsctl records export` of this job's records).

4. apply --plan: the plan the approvers saw (plan.json of a `plan` on the same environment
   and commit, covering the same operations; refused otherwise). Its path goes to every run as
   OPSCTL_APPROVAL_PLAN and the approvers (OPSCTL_APPROVED_BY, from ci/approver.py) with it:
   the records carry both (``approval``).

Exit status: 0 when every run succeeded (or nothing was to run), 1 when one failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orchestrator.changes import Impact, affected_operations, changed_files  # noqa: E402
from orchestrator.errors import OpsError  # noqa: E402
from orchestrator.operations import load_catalog  # noqa: E402


# opsctl works on this checkout (its playbooks, inventories and catalog), wherever the venv came from.
ENV = dict(os.environ)
ENV.setdefault("OPSCTL_HOME", str(REPO))
ENV.setdefault("OPSCTL_CATALOG", str(REPO / "orchestrator" / "catalog.yml"))


def opsctl() -> list[str]:
    exe = Path(sys.executable).parent / "opsctl"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "orchestrator.cli"]


def render_diff(diff: Any) -> str:
    """Ansible's diff (a dict or list of dicts: before/after or prepared) as unified diff text."""
    parts = diff if isinstance(diff, list) else [diff]
    out: list[str] = []
    for d in parts:
        if not isinstance(d, dict):
            continue
        if isinstance(d.get("prepared"), str):
            out.append(d["prepared"].rstrip("\n"))
            continue
        before, after = d.get("before", ""), d.get("after", "")
        if not isinstance(before, str):
            before = json.dumps(before, indent=2, sort_keys=True, default=str)
        if not isinstance(after, str):
            after = json.dumps(after, indent=2, sort_keys=True, default=str)
        out.extend(
            line.rstrip("\n")
            for line in difflib.unified_diff(
                before.splitlines(True),
                after.splitlines(True),
                fromfile=str(d.get("before_header") or "before"),
                tofile=str(d.get("after_header") or "after"),
            )
        )
    return "\n".join(out)


def markdown(
    mode: str, env: str, base: str, files: list[str], impacts: list[Impact], runs: list[dict[str, Any]]
) -> str:
    verb = "would change" if mode == "plan" else "changed"
    lines = [
        f"# CI {mode}: environment `{env}`",
        "",
        f"Base `{base}`; {len(files)} changed file(s); {len(impacts)} operation(s) touched.",
        "",
    ]
    if not impacts:
        lines.append("No operation is touched by this change: nothing to " + ("check." if mode == "plan" else "apply."))
    else:
        lines += ["| operation | status | changed tasks | record | why |", "| --- | --- | --- | --- | --- |"]
        # "path: why" per file -> the distinct whys ("role app_deploy used by playbooks/deploy.yml")
        reasons = {i.operation: sorted({r.split(": ", 1)[-1] for r in i.reasons}) for i in impacts}
        for run in runs:
            why = "; ".join(reasons.get(run["operation"], []))[:300]
            lines.append(
                f"| {run['operation']} | {run['status']} | {run.get('changes', '-')} | "
                f"{run.get('record') or '-'} | {why} |"
            )
    for run in runs:
        rec = run.get("record_data") or {}
        changes = rec.get("changes") or []
        failures = [f for f in rec.get("failures") or [] if not f.get("ignored")]
        if not changes and not failures:
            continue
        lines += ["", f"## {run['operation']}: {len(changes)} task(s) {verb}"]
        for c in changes:
            item = f" [{c.get('item')}]" if c.get("item") is not None else ""
            lines.append(f"- `{c.get('host')}`: {c.get('task')}{item} ({c.get('module')})")
            text = render_diff(c.get("diff")) if c.get("diff") else ""
            if text:
                lines += ["", "```diff", text, "```", ""]
        for f in failures:
            lines.append(f"- FAILED `{f.get('host')}`: {f.get('task')}: {str(f.get('msg') or '')[:500]}")
    if files:
        lines += ["", "<details><summary>changed files</summary>", "", *[f"- {f}" for f in files], "", "</details>"]
    return "\n".join(lines) + "\n"


def git_commit(ref: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise OpsError(f"--head {ref!r} is not a commit of this repository")
    return proc.stdout.strip()


def check_plan(plan_file: Path, env: str, commit: str, operations: list[str]) -> None:
    """Refuse an apply whose approved plan is not this apply's: another environment, another
    commit, or other operations (the approvers approved what the plan showed, nothing else)."""
    try:
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OpsError(f"--plan {plan_file}: not a readable plan.json ({exc.__class__.__name__})") from exc
    if not isinstance(plan, dict) or plan.get("mode") != "plan":
        raise OpsError(f"--plan {plan_file}: not the plan.json of a `ci/plan.py plan`")
    if plan.get("env") != env:
        raise OpsError(f"--plan {plan_file}: a plan of {plan.get('env')!r}, not of {env!r}")
    if plan.get("commit") != commit:
        raise OpsError(f"--plan {plan_file}: planned at commit {str(plan.get('commit'))[:12]}, this is {commit[:12]}")
    planned = [o.get("operation") for o in plan.get("operations") or [] if isinstance(o, dict)]
    if planned != operations:
        raise OpsError(
            f"--plan {plan_file}: the plan covers {', '.join(map(str, planned)) or 'no operation'}, "
            f"this apply would run {', '.join(operations) or 'no operation'}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("plan", "apply"))
    ap.add_argument("--env", required=True)
    ap.add_argument("--base", default=os.environ.get("BASE") or "origin/main")
    ap.add_argument("--head", default="HEAD")
    ap.add_argument("--ops", default="", help="comma list: run these operations instead of the derived ones")
    ap.add_argument("--files", default="", help="comma list of changed files instead of git diff (tests)")
    ap.add_argument("--ticket", default=None)
    ap.add_argument("--reason", default=None)
    ap.add_argument("-e", "--extra-vars", action="append", default=[], help="passed to every run")
    ap.add_argument("--out", default=None)
    ap.add_argument("--plan", default=None, help="apply: the approved plan.json (same env, commit, operations)")
    args = ap.parse_args(argv)

    out = Path(args.out or REPO / "var" / "ci" / f"{args.mode}-{args.env}")
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    try:
        catalog = load_catalog()
        diff_base: str | None = None
        if args.files:
            files = sorted({f.strip() for f in args.files.split(",") if f.strip()})
        elif args.ops:
            files = []
        else:
            base = args.base
            if not base.strip("0"):  # a new branch's "before" sha (000...0): compare with the parent
                base = f"{args.head}~1"
            files = changed_files(REPO, base, args.head)
            diff_base = base
        if args.ops:
            names = [o.strip() for o in args.ops.split(",") if o.strip()]
            unknown = [n for n in names if n not in catalog]
            if unknown:
                raise OpsError(f"unknown operation(s): {', '.join(unknown)}")
            impacts = [Impact(n, catalog[n].read_only, ["named with OPS="]) for n in names]
        else:
            impacts = affected_operations(files, catalog, REPO, args.env, base=diff_base)
        commit = git_commit(args.head)
        run_env = dict(ENV)
        if args.plan:
            if args.mode != "apply":
                raise OpsError("--plan is the approved plan of an apply; a plan makes its own")
            plan_file = Path(args.plan).resolve()
            check_plan(plan_file, args.env, commit, [i.operation for i in impacts])
            run_env["OPSCTL_APPROVAL_PLAN"] = str(plan_file)
    except OpsError as err:
        print(f"ci {args.mode}: error: {err}", file=sys.stderr)
        return 2

    given = dict(e.split("=", 1) for e in args.extra_vars if "=" in e)
    reason = (
        args.reason
        or os.environ.get("CI_PLAN_REASON")
        or (
            f"CI {args.mode} of {os.environ.get('CI_COMMIT_SHORT_SHA') or os.environ.get('GITHUB_SHA', '')[:8] or args.head}"
        )
    )
    runs: list[dict[str, Any]] = []
    print(
        f"ci {args.mode} on {args.env}: {len(files)} changed file(s) -> "
        f"{', '.join(i.operation for i in impacts) or 'no operation'}"
    )
    for impact in impacts:
        op = catalog[impact.operation]
        if op.on_demand and not args.ops:
            runs.append(
                {
                    "operation": op.name,
                    "status": "skipped",
                    "reason": "on demand only: a merge never runs it (name it with OPS=)",
                }
            )
            print(f"  {op.name}: skipped (on demand only; name it with OPS= to run it)")
            continue
        missing = op.missing(given)
        if missing:
            runs.append({"operation": op.name, "status": "skipped", "reason": f"needs {', '.join(missing)}"})
            print(f"  {op.name}: skipped (needs {', '.join(missing)})")
            continue
        cmd = [*opsctl(), "run", op.name, "--env", args.env, "--diff", "--json", "--yes", "--reason", reason]
        if args.mode == "plan":
            cmd.append("--check")
        if args.ticket:
            cmd += ["--ticket", args.ticket]
        for e in args.extra_vars:
            cmd += ["-e", e]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, env=run_env)
        (out / f"{op.name}.log").write_text(proc.stderr, encoding="utf-8")
        try:
            rec = json.loads(proc.stdout)
        except ValueError:
            rec = {}
        (out / f"{op.name}.json").write_text(json.dumps(rec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        status = rec.get("status") or f"error (exit {proc.returncode})"
        runs.append(
            {
                "operation": op.name,
                "status": status,
                "rc": proc.returncode,
                "record": rec.get("id"),
                "changes": len(rec.get("changes") or []),
                "record_data": rec,
            }
        )
        print(f"  {op.name}: {status}, {len(rec.get('changes') or [])} changed task(s), record {rec.get('id')}")
        if proc.returncode != 0 and not rec:
            print(proc.stderr[-2000:], file=sys.stderr)

    (out / "plan.md").write_text(markdown(args.mode, args.env, args.base, files, impacts, runs), encoding="utf-8")
    summary = {
        "mode": args.mode,
        "env": args.env,
        "base": args.base,
        "commit": commit,
        "files": files,
        "operations": [i.to_dict() for i in impacts],
        "runs": [{k: v for k, v in r.items() if k != "record_data"} for r in runs],
    }
    (out / "plan.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for fmt in ("json", "html"):
        subprocess.run(
            [*opsctl(), "records", "export", "--format", fmt, "--out", str(out / f"records.{fmt}"), "--since", started],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=ENV,
        )
    print(f"artifacts: {out}/plan.md plan.json records.json records.html")
    failed = [r for r in runs if r["status"] not in ("successful", "skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
