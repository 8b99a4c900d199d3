"""Approvals are evidence (issue 18): who approved the production apply, and the plan they saw.

ci/approver.py reads the approvals from the CI server's API (a local HTTP server here, on
127.0.0.1, answering as GitHub and GitLab do); ci/plan.py refuses an apply whose approved
plan is not its own (other environment, commit or operations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
APPROVER = REPO / "ci" / "approver.py"
PLAN = REPO / "ci" / "plan.py"


class Api:
    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.seen.append((self.path, dict(self.headers)))
            body = state.routes.get(self.path.split("?")[0])
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def approver(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "OPSCTL_"))}
    return subprocess.run(
        [sys.executable, str(APPROVER), "--env", "production"],
        capture_output=True,
        text=True,
        env=clean | env,
        timeout=60,
        check=False,
    )


def test_github_names_the_reviewers_who_approved_production(api: tuple[Api, str]) -> None:
    state, url = api
    state.routes["/repos/envcredit/envcredit-ops/actions/runs/77/approvals"] = [
        {"state": "approved", "user": {"login": "zhang.wei"}, "environments": [{"name": "production"}]},
        {"state": "rejected", "user": {"login": "mallory"}, "environments": [{"name": "production"}]},
        {"state": "approved", "user": {"login": "li.na"}, "environments": [{"name": "staging"}]},
        {"state": "approved", "user": {"login": "wang.fang"}, "environments": [{"name": "production"}]},
    ]
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": url,
        "GITHUB_REPOSITORY": "envcredit/envcredit-ops",
        "GITHUB_RUN_ID": "77",
        "GITHUB_TOKEN": "ghs_test",
    }
    proc = approver(env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "zhang.wei, wang.fang"
    assert state.seen[0][1].get("Authorization") == "Bearer ghs_test"
    assert "ghs_test" not in proc.stdout + proc.stderr


def test_github_without_an_approval_stops_the_job(api: tuple[Api, str]) -> None:
    state, url = api
    state.routes["/repos/e/o/actions/runs/5/approvals"] = [
        {"state": "rejected", "user": {"login": "zhang.wei"}, "environments": [{"name": "production"}]}
    ]
    proc = approver({"GITHUB_ACTIONS": "true", "GITHUB_API_URL": url, "GITHUB_REPOSITORY": "e/o", "GITHUB_RUN_ID": "5"})
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no approval of environment 'production'" in proc.stderr


def test_github_api_failure_is_a_clear_error(api: tuple[Api, str]) -> None:
    _, url = api
    proc = approver(
        {"GITHUB_ACTIONS": "true", "GITHUB_API_URL": url, "GITHUB_REPOSITORY": "e/o", "GITHUB_RUN_ID": "404"}
    )
    assert proc.returncode == 2 and "cannot read the approvals" in proc.stderr and "Traceback" not in proc.stderr


def test_gitlab_reads_the_deployment_approvals_of_this_job(api: tuple[Api, str]) -> None:
    state, url = api
    state.routes["/api/v4/projects/9/deployments"] = [
        {"id": 3, "deployable": {"id": 400}, "approvals": [{"user": {"username": "someone"}, "status": "approved"}]},
        {
            "id": 4,
            "deployable": {"id": 401},
            "approvals": [
                {"user": {"username": "zhang.wei"}, "status": "approved"},
                {"user": {"username": "mallory"}, "status": "rejected"},
            ],
        },
    ]
    env = {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"{url}/api/v4",
        "CI_PROJECT_ID": "9",
        "CI_JOB_ID": "401",
        "OPSCTL_GITLAB_TOKEN": "glpat-test",
        "CI_JOB_MANUAL": "true",
        "GITLAB_USER_LOGIN": "starter",
    }
    proc = approver(env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "zhang.wei"
    assert "environment=production" in state.seen[0][0]
    assert state.seen[0][1].get("Private-Token") == "glpat-test"


def test_gitlab_without_a_token_names_who_started_the_manual_job() -> None:
    proc = approver({"GITLAB_CI": "true", "CI_JOB_MANUAL": "true", "GITLAB_USER_LOGIN": "zhang.wei"})
    assert proc.returncode == 0 and proc.stdout.strip() == "zhang.wei"
    # a job that nobody started by hand was approved by nobody
    proc = approver({"GITLAB_CI": "true", "GITLAB_USER_LOGIN": "zhang.wei"})
    assert proc.returncode == 1 and proc.stdout == ""


# -- ci/plan.py apply --plan: only the plan of this apply --------------------------------------


def head() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def plan_apply(tmp_path: Path, plan: dict[str, Any] | str, ops: str = "inspect") -> subprocess.CompletedProcess[str]:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan if isinstance(plan, str) else json.dumps(plan), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCTL_")} | {
        "OPSCTL_ARCHIVE": str(tmp_path / "archive")
    }
    return subprocess.run(
        [
            sys.executable,
            str(PLAN),
            "apply",
            "--env",
            "staging",
            "--ops",
            ops,
            "--plan",
            str(plan_file),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"env": "production"}, "a plan of 'production', not of 'staging'"),
        ({"commit": "0" * 40}, "planned at commit 000000000000"),
        ({"operations": [{"operation": "ping"}]}, "the plan covers ping, this apply would run inspect"),
        ({"mode": "apply"}, "not the plan.json of a `ci/plan.py plan`"),
    ],
)
def test_apply_refuses_a_plan_that_is_not_its_own(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    plan = {"mode": "plan", "env": "staging", "commit": head(), "operations": [{"operation": "inspect"}]} | change
    proc = plan_apply(tmp_path, plan)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "archive").exists()  # nothing ran


def test_apply_refuses_an_unreadable_plan(tmp_path: Path) -> None:
    proc = plan_apply(tmp_path, "{not json")
    assert proc.returncode == 2 and "not a readable plan.json" in proc.stderr


# -- the record: ci_approval: required (production) ---------------------------------------------


def _gated(home: Path) -> None:
    policy = home / "inventories" / "production" / ".opsctl.yml"
    policy.write_text(policy.read_text(encoding="utf-8") + "ci_approval: required\n", encoding="utf-8")


def _plan(tmp_path: Path, env: str = "production", ops: tuple[str, ...] = ("change",)) -> Path:
    plan = tmp_path / "plan-production" / "plan.json"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(
        json.dumps(
            {"mode": "plan", "env": env, "commit": "c0ffee" * 6 + "c0ff", "operations": [{"operation": o} for o in ops]}
        ),
        encoding="utf-8",
    )
    return plan


def _ci_run(*args: str, **env: str) -> tuple[int, dict[str, Any], str]:
    from helpers.common import run_opsctl

    proc = run_opsctl(
        "run", *args, "--json", env={"OPSCTL_LAUNCH": "ci", "OPSCTL_APPROVED_BY": "", "OPSCTL_APPROVAL_PLAN": "", **env}
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


def test_a_ci_change_in_production_records_its_approval(opsctl_home: Path, tmp_path: Path) -> None:
    _gated(opsctl_home)
    plan = _plan(tmp_path)
    rc, rec, err = _ci_run(
        "change",
        "--env",
        "production",
        "--ticket",
        "CHG-7",
        "--yes",
        OPSCTL_APPROVED_BY="zhang.wei, wang.fang",
        OPSCTL_APPROVAL_PLAN=str(plan),
    )
    assert rc == 0, err
    import hashlib

    assert rec["approval"] == {
        "approved_by": "zhang.wei, wang.fang",
        "plan": {
            "file": "plan.json",
            "sha256": hashlib.sha256(plan.read_bytes()).hexdigest(),
            "env": "production",
            "commit": "c0ffee" * 6 + "c0ff",
            "operations": ["change"],
        },
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "requires an approval for CI runs of 'change': OPSCTL_APPROVED_BY is not set"),
        ({"OPSCTL_APPROVED_BY": "zhang.wei"}, "requires the approved plan for CI runs of 'change'"),
        ({"OPSCTL_APPROVED_BY": "zhang.wei", "plan_env": "staging"}, "a plan of 'staging', not of 'production'"),
        ({"OPSCTL_APPROVED_BY": "zhang.wei", "plan_ops": "ok"}, "does not cover 'change' (it covers ok)"),
    ],
)
def test_a_ci_change_in_production_without_its_approval_is_refused_and_recorded(
    opsctl_home: Path, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    _gated(opsctl_home)
    given = {k: v for k, v in env.items() if k.startswith("OPSCTL_")}
    if "plan_env" in env or "plan_ops" in env:
        given["OPSCTL_APPROVAL_PLAN"] = str(
            _plan(tmp_path, env.get("plan_env", "production"), (env.get("plan_ops", "change"),))
        )
    rc, rec, err = _ci_run("change", "--env", "production", "--ticket", "CHG-7", "--yes", **given)
    assert rc == 2, err
    assert rec["status"] == "refused" and message in json.dumps(rec["error"]), rec["error"]
    assert not list((opsctl_home / "markers").iterdir())  # nothing changed


def test_what_the_gate_does_not_cover_runs_as_before(opsctl_home: Path) -> None:
    _gated(opsctl_home)
    # read-only, a check, an engineer's run: no CI approval asked
    assert _ci_run("ok", "--env", "production", "--reason", "probe")[0] == 0
    assert _ci_run("change", "--env", "production", "--ticket", "CHG-7", "--check", "--yes")[0] == 0
    from helpers.common import run_opsctl

    proc = run_opsctl(
        "run",
        "change",
        "--env",
        "production",
        "--ticket",
        "CHG-7",
        "--yes",
        "--json",
        env={"OPSCTL_LAUNCH": "manual", "OPSCTL_APPROVED_BY": "", "OPSCTL_APPROVAL_PLAN": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "approval" not in json.loads(proc.stdout)


def test_an_unreadable_plan_is_refused_clearly(opsctl_home: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
    rc, rec, err = _ci_run(
        "change", "--env", "test", "--yes", OPSCTL_APPROVED_BY="x", OPSCTL_APPROVAL_PLAN=str(tmp_path / "bad.json")
    )
    assert rc == 2 and "Traceback" not in err
    assert rec["status"] == "refused" and "is not a plan.json (not JSON)" in json.dumps(rec["error"])
