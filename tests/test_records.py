"""The record builder, fed by a real ansible-runner run against localhost."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import pwd
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from orchestrator.archive import Archive
from orchestrator.errors import BadInput
from orchestrator import records
from orchestrator.records import (
    RecordBuilder,
    RunMeta,
    _item_label,
    build_from_events,
    collect_approval,
    collect_operator,
    collect_source,
    collect_versions,
    file_entry,
    inventory_entries,
    iso,
    login_user,
    new_record_id,
    on_behalf_of,
    operator_name,
    parse_iso,
    utc_now,
    validate_record_id,
)
from orchestrator.redact import MASK, Redactor

from helpers.records import BASE_TIME, synthetic_events

VENV_BIN = Path(sys.executable).parent
SECRET = "Pg-Admin-Secret-42"

PLAYBOOK = """
- name: Exercise the recorder
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the motd
      ansible.builtin.copy:
        content: "hello\\n"
        dest: "{{ out_dir }}/motd.txt"
        mode: "0600"
    - name: Write one file per item
      ansible.builtin.copy:
        content: "{{ item }}\\n"
        dest: "{{ out_dir }}/{{ item }}.txt"
        mode: "0600"
      loop: [alpha, beta]
    - name: Probe something that fails
      ansible.builtin.command: /bin/false
      changed_when: false
      ignore_errors: true
    - name: Skip this
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Show the connection string
      ansible.builtin.debug:
        msg: "postgres://admin:{{ db_password }}@db1/app"
    - name: Publish the outputs
      ansible.builtin.set_stats:
        data:
          backup_id: b-20261128-01
          checksum: sha256:abc123
        per_host: false
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real ansible-runner run; events redacted and recorded as the runner would."""
    base = tmp_path_factory.mktemp("runner")
    (base / "out").mkdir()
    (base / "play.yml").write_text(PLAYBOOK)
    private = base / "private"
    private.mkdir()
    redactor = Redactor()
    extra, _ = redactor.redact_vars({"out_dir": str(base / "out"), "db_password": SECRET})
    archive = Archive(base / "archive")
    started = datetime.now(timezone.utc)
    meta = RunMeta(
        id=new_record_id(started),
        operation="selftest",
        playbook="play.yml",
        environment="lab",
        inventory="localhost",
        started=iso(started),
        diff_mode=True,
        extra_vars=extra,
        versions=collect_versions(),
        targets=["localhost"],
    )
    pending = archive.begin(meta.id, meta)
    builder = RecordBuilder()
    raw: list[dict[str, Any]] = []
    progress: list[dict[str, Any]] = []

    def handler(event: dict[str, Any]) -> bool:
        raw.append(event)
        clean = redactor.redact_obj(event)
        builder.feed(clean)
        pending.write_event(clean)
        if clean.get("stdout"):
            pending.write_stdout(clean["stdout"] + "\n")
        progress.append(builder.progress())
        return True

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        mp.setenv("ANSIBLE_NOCOLOR", "1")
        result = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str(base / "play.yml"),
            inventory=f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
            extravars={"out_dir": str(base / "out"), "db_password": SECRET},
            cmdline="--diff",
            quiet=True,
            event_handler=handler,
        )
    record = builder.finish(meta, status=result.status, rc=result.rc, redaction=redactor.report())
    final = archive.commit(pending, record)
    yield {
        "result": result,
        "builder": builder,
        "record": final,
        "raw": raw,
        "progress": progress,
        "archive": archive,
        "meta": meta,
        "base": base,
    }


def test_run_succeeded(run: dict[str, Any]) -> None:
    assert run["result"].status == "successful"
    assert run["record"]["status"] == "successful"
    assert run["record"]["rc"] == 0


def test_recap(run: dict[str, Any]) -> None:
    recap = run["record"]["hosts"]
    assert list(recap) == ["localhost"]
    assert recap["localhost"]["changed"] == 2
    assert recap["localhost"]["skipped"] == 1
    assert recap["localhost"]["ignored"] == 1
    assert recap["localhost"]["failed"] == 0
    assert recap["localhost"]["unreachable"] == 0
    assert recap["localhost"]["ok"] >= 4


def test_counted_recap_matches_stats(run: dict[str, Any]) -> None:
    """Without the stats event (an interrupted run) the recap is counted from events."""
    events = [e for e in run["raw"] if e["event"] != "playbook_on_stats"]
    builder = RecordBuilder()
    for event in events:
        builder.feed(event)
    assert not builder.has_stats
    assert builder.hosts == run["record"]["hosts"]


def test_changes_with_diffs(run: dict[str, Any]) -> None:
    changes = run["record"]["changes"]
    assert [(c["task"], c.get("item")) for c in changes] == [
        ("Write the motd", None),
        ("Write one file per item", "alpha"),
        ("Write one file per item", "beta"),
    ]
    for change in changes:
        assert change["host"] == "localhost"
        assert change["module"] == "ansible.builtin.copy"
        assert change["diff"], change
    assert "hello" in str(changes[0]["diff"])


def test_failures_ignored_flagged(run: dict[str, Any]) -> None:
    failures = run["record"]["failures"]
    assert len(failures) == 1
    failure = failures[0]
    assert failure["task"] == "Probe something that fails"
    assert failure["module"] == "ansible.builtin.command"
    assert failure["ignored"] is True and failure["unreachable"] is False
    assert failure["msg"]


def test_outputs_from_set_stats(run: dict[str, Any]) -> None:
    assert run["record"]["outputs"] == {"backup_id": "b-20261128-01", "checksum": "sha256:abc123"}


def test_metadata_fields(run: dict[str, Any]) -> None:
    rec = run["record"]
    for key in (
        "schema_version",
        "id",
        "operation",
        "playbook",
        "environment",
        "inventory",
        "limit",
        "tags",
        "skip_tags",
        "check_mode",
        "diff_mode",
        "extra_vars",
        "ticket",
        "change_type",
        "reason",
        "incident",
        "launch",
        "operator",
        "source",
        "files",
        "versions",
        "targets",
        "started",
        "ended",
        "duration_s",
        "status",
        "rc",
        "hosts",
        "changes",
        "failures",
        "outputs",
        "redaction",
        "seq",
        "prev_hash",
        "artifacts",
        "hash",
    ):
        assert key in rec, key
    assert rec["schema_version"] == 1
    assert rec["launch"] == {"type": "manual"}
    assert rec["versions"]["ansible_core"].startswith("2.19")
    assert parse_iso(rec["ended"]) >= parse_iso(rec["started"])
    assert rec["duration_s"] > 0


def test_secret_never_reaches_the_archive(run: dict[str, Any]) -> None:
    rec = run["record"]
    assert rec["extra_vars"]["db_password"] == MASK
    assert rec["redaction"]["keys"] == ["db_password"]
    assert rec["redaction"]["values_masked"] > 0
    assert any(SECRET in str(e) for e in run["raw"])  # the raw stream did carry it
    archive: Archive = run["archive"]
    assert f"postgres://admin:{MASK}@db1/app" in archive.stdout(rec["id"])
    for path in archive.root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert archive.verify().ok


def test_progress(run: dict[str, Any]) -> None:
    tasks = [p["task"] for p in run["progress"]]
    assert "Write the motd" in tasks and "Publish the outputs" in tasks
    last = run["progress"][-1]
    assert last["hosts_failed"] == []  # an ignored failure is not a failed host
    assert last["changes"] == 3


def test_build_from_events_equals_incremental(run: dict[str, Any]) -> None:
    events = list(run["archive"].events(run["record"]["id"]))
    rebuilt = build_from_events(
        events,
        run["meta"],
        status="successful",
        rc=0,
        ended=run["record"]["ended"],
        redaction=run["record"]["redaction"],
    )
    strip = {k: v for k, v in run["record"].items() if k not in ("seq", "prev_hash", "artifacts", "hash")}
    assert rebuilt == strip


# -- synthetic events: unreachable, real failures ------------------------------------------


def _ev(kind: str, **data: Any) -> dict[str, Any]:
    return {"event": kind, "created": "2026-11-28T08:00:01.000000", "event_data": data}


def test_unreachable_and_failed() -> None:
    builder = RecordBuilder()
    builder.feed(_ev("playbook_on_task_start", task="Ping"))
    builder.feed(
        _ev(
            "runner_on_unreachable",
            host="app2",
            task="Ping",
            task_action="ping",
            res={"msg": "ssh: connect to host app2 port 22: No route to host", "unreachable": True},
        )
    )
    builder.feed(
        _ev(
            "runner_on_failed",
            host="db1",
            task="Dump",
            task_action="ansible.builtin.command",
            resolved_action="ansible.builtin.command",
            role="db_backup",
            ignore_errors=None,
            res={"rc": 1, "stderr": "line1\n" + "x" * 5000},
        )
    )
    builder.feed(
        _ev(
            "runner_on_failed",
            host="app1",
            task="Loop",
            task_action="ansible.builtin.file",
            res={"results": [{"failed": True, "msg": "item one broke"}, {"changed": False}]},
        )
    )
    progress = builder.progress()
    assert progress["task"] == "Ping" and progress["hosts_failed"] == ["app1", "app2", "db1"]
    meta = RunMeta(
        id=new_record_id(),
        operation="backup",
        playbook="p.yml",
        environment="lab",
        inventory="i",
        started="2026-11-28T08:00:00.000Z",
    )
    rec = builder.finish(meta, status="failed", rc=2, ended="2026-11-28T08:00:02.000Z")
    unreachable, dump, loop = rec["failures"]
    assert unreachable["unreachable"] is True and "No route" in unreachable["msg"]
    assert dump["role"] == "db_backup" and dump["ignored"] is False
    assert dump["msg"].startswith("...") and len(dump["msg"]) <= 2003
    assert loop["msg"] == "item one broke"
    assert rec["hosts"]["app2"]["unreachable"] == 1 and rec["hosts"]["db1"]["failed"] == 1
    assert rec["duration_s"] == 2.0
    with pytest.raises(BadInput):
        builder.finish(meta, status="exploded", rc=1)


def test_failed_command_carries_the_tail_of_its_stderr() -> None:
    """A command that fails says why: "non-zero return code" plus the end of its stderr."""
    builder = RecordBuilder()
    builder.feed(
        _ev(
            "runner_on_failed",
            host="lab-web1",
            task="Check the whole nginx configuration",
            task_action="ansible.builtin.command",
            res={
                "rc": 1,
                "msg": "non-zero return code",
                "stdout": "",
                "stderr": 'nginx: [emerg] host not found in upstream "lab-app1:8000"\n'
                "nginx: configuration file /etc/nginx/nginx.conf test failed",
            },
        )
    )
    builder.feed(
        _ev(
            "runner_on_failed",
            host="lab-db1",
            task="Run the tool",
            task_action="ansible.builtin.command",
            res={"rc": 3, "msg": "non-zero return code", "stderr": "", "stdout": "tool: disk full"},
        )
    )
    builder.feed(
        _ev(
            "runner_on_failed",
            host="lab-db2",
            task="Assert",
            task_action="ansible.builtin.assert",
            res={"msg": "Assertion failed", "stderr": "Assertion failed"},
        )
    )
    meta = RunMeta(
        id=new_record_id(),
        operation="site-app",
        playbook="p.yml",
        environment="lab",
        inventory="i",
        started="2026-11-28T08:00:00.000Z",
    )
    nginx, tool, plain = builder.finish(meta, status="failed", rc=2, ended="2026-11-28T08:00:02.000Z")["failures"]
    assert nginx["msg"].startswith("non-zero return code (rc 1): nginx: [emerg] host not found")
    assert nginx["msg"].endswith("test failed")
    assert tool["msg"] == "non-zero return code (rc 3): tool: disk full"
    assert plain["msg"] == "Assertion failed"  # nothing repeated
    # a long stderr keeps its end, the part that says why
    builder = RecordBuilder()
    builder.feed(
        _ev(
            "runner_on_failed",
            host="h",
            task="t",
            task_action="ansible.builtin.shell",
            res={"rc": 1, "msg": "non-zero return code", "stderr": "noise\n" * 500 + "the real reason"},
        )
    )
    (long_fail,) = builder.finish(meta, status="failed", rc=2, ended="2026-11-28T08:00:02.000Z")["failures"]
    assert long_fail["msg"].startswith("non-zero return code (rc 1): ...")
    assert long_fail["msg"].endswith("the real reason") and len(long_fail["msg"]) < 700


# -- ids --------------------------------------------------------------------------------------


def test_record_ids_sort_by_time() -> None:
    a = new_record_id(datetime(2026, 11, 28, 13, 45, 0, 123000, tzinfo=timezone.utc))
    b = new_record_id(datetime(2026, 11, 28, 13, 45, 0, 124000, tzinfo=timezone.utc))
    assert a.startswith("20261128T134500123Z-") and a < b
    assert validate_record_id(a) == a


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../x",
        "a/b",
        "..",
        ".",
        "/etc/passwd",
        "20261128T134500123Z-a1b2c3/..",
        "../20261128T134500123Z-a1b2c3",
        "20261128T134500123Z-A1B2C3",
        "20261128T134500123Z-a1b2c",
        "20261128T134500123Z-a1b2c3\n",
        "２０２６1128T134500123Z-a1b2c3",  # full-width digits
        "20261128T134500123Z-a1b2c３",
        "20261128T134500123Z-a1b2c3" + "0" * 300,
        None,
        42,
    ],
)
def test_record_id_validation_rejects(bad: Any) -> None:
    with pytest.raises(BadInput):
        validate_record_id(bad)


def test_run_meta_round_trip_and_validation(tmp_path: Path) -> None:
    meta = RunMeta(
        id=new_record_id(),
        operation="patch",
        playbook="p.yml",
        environment="staging",
        inventory="i",
        tags=["security"],
        launch="scheduled",
    )
    assert RunMeta.from_dict(meta.to_dict()) == meta
    with pytest.raises(BadInput):
        RunMeta(id="../x", operation="patch", playbook="p", environment="e", inventory="i")
    with pytest.raises(BadInput):
        RunMeta(id=new_record_id(), operation="patch", playbook="p", environment="e", inventory="i", launch="cron")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.yml").write_text("all: {}\n")
    (tmp_path / "group_vars" / "all.yml").write_text("x: 1\n")
    entries = inventory_entries(tmp_path, base=tmp_path)
    assert [e["path"] for e in entries] == ["hosts.yml", "group_vars/all.yml"]
    assert all(e["sha256"] and len(e["sha256"]) == 64 for e in entries)


def test_finish_error_outputs_missing_and_time_normalisation() -> None:
    builder = RecordBuilder()
    builder.feed(_ev("playbook_on_stats", ok={"db1": 1}, artifact_data={"backup_id": "b-1"}))
    meta = RunMeta(
        id=new_record_id(),
        operation="backup",
        playbook=None,
        environment="lab",
        inventory=None,
        started="2026-11-28T16:00:00.250000+08:00",
        launch={"type": "ci"},
    )
    assert meta.started == "2026-11-28T08:00:00.250Z"
    rec = builder.finish(
        meta,
        status="refused",
        rc=2,
        ended="2026-11-28T08:00:01.250000+00:00",
        error="a ticket is required for production",
        output_keys=["backup_id", "checksum"],
    )
    assert rec["ended"] == "2026-11-28T08:00:01.250Z" and rec["duration_s"] == 1.0
    assert rec["launch"] == {"type": "ci"}
    assert rec["error"] == "a ticket is required for production"
    assert rec["outputs"] == {"backup_id": "b-1"} and rec["outputs_missing"] == ["checksum"]
    assert rec["playbook"] is None and rec["status"] == "refused"


# -- who, from where, approved by whom: the collectors (issue 22, records' mutation run) -------


def _repo(path: Path, *, commit: bool = True) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)

    path.mkdir()
    git("init", "-q", "-b", "trunk")
    git("config", "user.name", "Ada\x1b[31m Ops")
    git("config", "user.email", "ada@example.test")
    if commit:
        (path / "a.txt").write_text("a\n")
        git("add", "a.txt")
        git("commit", "-q", "-m", "first")
    return path


def test_collect_operator_keeps_the_login_user_and_names_a_claimed_identity_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path / "repo", commit=False)
    monkeypatch.delenv("OPSCTL_OPERATOR", raising=False)
    monkeypatch.setenv("SUDO_USER", "bob\x07")
    assert collect_operator(repo) == {
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "on_behalf_of": "bob",
        "on_behalf_of_source": "SUDO_USER",
        "host": socket.gethostname(),
        "git_name": "Ada Ops",
        "git_email": "ada@example.test",
    }
    monkeypatch.setenv("OPSCTL_OPERATOR", "timer:nightly")  # the first variable set wins
    assert on_behalf_of() == ("timer:nightly", "OPSCTL_OPERATOR")
    monkeypatch.setenv("OPSCTL_OPERATOR", "\x1b[0m")  # nothing left after cleaning: the next one
    assert on_behalf_of() == ("bob", "SUDO_USER")
    monkeypatch.delenv("SUDO_USER")
    assert on_behalf_of() == (None, None)
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(outside)
    operator = collect_operator()  # the current folder, no git identity there
    assert (operator["git_name"], operator["git_email"], operator["on_behalf_of"]) == (None, None, None)


def test_login_user_is_the_bare_uid_without_a_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(uid: int) -> Any:
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", missing)
    assert login_user() == f"uid:{os.getuid()}"


def test_collect_source_names_the_commit_branch_and_a_dirty_tree(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert collect_source(repo) == {"commit": head.strip(), "branch": "trunk", "dirty": False}
    (repo / "a.txt").write_text("changed\n")
    assert collect_source(repo)["dirty"] is True
    (repo / "a.txt").write_text("a\n")
    (repo / "untracked.txt").write_text("x\n")  # untracked files do not make the tree dirty
    assert collect_source(repo)["dirty"] is False
    outside = tmp_path / "plain"
    outside.mkdir()
    assert collect_source(outside) == {"commit": None, "branch": None, "dirty": None}
    assert collect_source(tmp_path / "missing") == {"commit": None, "branch": None, "dirty": None}


def test_collect_versions_names_each_tool() -> None:
    from importlib.metadata import PackageNotFoundError, version

    from orchestrator import __version__

    try:
        ansible: str | None = version("ansible")
    except PackageNotFoundError:
        ansible = None
    assert collect_versions() == {
        "opsctl": __version__,
        "ansible_core": version("ansible-core"),
        "ansible": ansible,
        "ansible_runner": version("ansible-runner"),
        "python": platform.python_version(),
    }


def test_operator_name_for_reports() -> None:
    assert operator_name(None) is None
    assert operator_name({}) is None
    assert operator_name({"user": "", "on_behalf_of": "bob"}) is None
    assert operator_name({"user": "ada"}) == "ada"
    assert operator_name({"user": "ada", "on_behalf_of": None}) == "ada"
    assert operator_name({"user": "ada", "on_behalf_of": "timer:nightly"}) == "ada (for timer:nightly)"
    assert operator_name({"user": 1000}) == "1000"


def test_collect_approval_reads_the_gate_and_its_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSCTL_APPROVED_BY", raising=False)
    monkeypatch.delenv("OPSCTL_APPROVAL_PLAN", raising=False)
    assert collect_approval() is None
    monkeypatch.setenv("OPSCTL_APPROVED_BY", "carol\x1b[1m")
    assert collect_approval() == {"approved_by": "carol", "plan": None}
    plan = tmp_path / "plan.json"
    data = json.dumps(
        {
            "mode": "plan",
            "env": "prod\x07",
            "commit": "abc123",
            "operations": [{"operation": "backup"}, {"operation": ""}, "junk", {"other": 1}, {"operation": "seed"}],
        }
    ).encode()
    plan.write_bytes(data)
    monkeypatch.setenv("OPSCTL_APPROVAL_PLAN", str(plan))
    monkeypatch.delenv("OPSCTL_APPROVED_BY")
    assert collect_approval() == {
        "approved_by": None,
        "plan": {
            "file": "plan.json",
            "sha256": hashlib.sha256(data).hexdigest(),
            "env": "prod",
            "commit": "abc123",
            "operations": ["backup", "seed"],
        },
    }
    plan.write_bytes(b'{"mode": "plan"}')
    assert collect_approval() == {
        "approved_by": None,
        "plan": {
            "file": "plan.json",
            "sha256": hashlib.sha256(b'{"mode": "plan"}').hexdigest(),
            "env": None,
            "commit": None,
            "operations": [],
        },
    }


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read {p}: No such file or directory"),
        (b"{not json", "{p} is not a plan.json (not JSON)"),
        (b'["plan"]', "{p} is not the plan.json of `ci/plan.py plan`"),
        (b'{"mode": "apply"}', "{p} is not the plan.json of `ci/plan.py plan`"),
    ],
)
def test_collect_approval_refuses_a_plan_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, problem: str
) -> None:
    plan = tmp_path / "plan.json"
    if content is not None:
        plan.write_bytes(content)
    monkeypatch.setenv("OPSCTL_APPROVAL_PLAN", str(plan))
    with pytest.raises(BadInput) as err:
        collect_approval()
    assert str(err.value) == "OPSCTL_APPROVAL_PLAN: " + problem.format(p=plan)


def test_collect_approval_refuses_a_plan_over_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tmp_path / "plan.json"
    monkeypatch.setattr(records, "MAX_PLAN_BYTES", 20)
    plan.write_bytes(b'{"mode": "plan", "x": 1}')  # 24 bytes
    monkeypatch.setenv("OPSCTL_APPROVAL_PLAN", str(plan))
    with pytest.raises(BadInput) as err:
        collect_approval()
    assert str(err.value) == f"OPSCTL_APPROVAL_PLAN: {plan} is larger than 20 bytes"
    plan.write_bytes(b'{"mode":"plan","x":1}')  # 21 bytes: one over
    with pytest.raises(BadInput):
        collect_approval()
    plan.write_bytes(b'{"mode": "plan"}    ')  # 20 bytes: at the limit
    assert collect_approval() is not None


def test_item_labels_of_loop_results() -> None:
    assert _item_label({"_ansible_item_label": "lbl", "item": "x"}) == "lbl"
    assert _item_label({"item": 3}) == 3
    assert _item_label({"item": 2.5}) == 2.5
    assert _item_label({"item": True}) is True
    assert _item_label({}) is None
    assert _item_label({"item": {"name": "a"}}) == "{'name': 'a'}"
    assert _item_label({"item": ["x" * 300]}) == str(["x" * 300])[:200]


def test_utc_now_is_aware_utc() -> None:
    assert utc_now().tzinfo is timezone.utc


def test_file_entries_hash_files_relative_to_the_base(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / ".git").mkdir()
    (inv / ".git" / "config").write_text("hidden folder\n")
    (inv / ".hidden.yml").write_text("hidden file\n")
    (inv / "hosts.yml").write_text("all: {}\n")
    (inv / "group_vars" / "all.yml").write_bytes(b"x: 1\n" * 300_000)  # over one 1 MiB block

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert inventory_entries(inv, base=tmp_path) == [
        {"path": "inv/hosts.yml", "sha256": digest(inv / "hosts.yml")},
        {"path": "inv/group_vars/all.yml", "sha256": digest(inv / "group_vars" / "all.yml")},
    ]
    assert inventory_entries(inv / "hosts.yml", base=tmp_path) == [
        {"path": "inv/hosts.yml", "sha256": digest(inv / "hosts.yml")}
    ]
    assert inventory_entries(inv / "hosts.yml") == [
        {"path": str(inv / "hosts.yml"), "sha256": digest(inv / "hosts.yml")}
    ]
    assert inventory_entries(tmp_path / "missing") == []
    outside = tmp_path.parent
    assert file_entry(inv / "hosts.yml", base=inv / "group_vars") == {
        "path": str(inv / "hosts.yml"),  # not under the base: the path as given
        "sha256": digest(inv / "hosts.yml"),
    }
    assert file_entry(inv, base=outside)["sha256"] is None  # a folder has no digest
    # A file that cannot be read (Linux's /proc/self/mem: a regular file whose read fails).
    assert file_entry(Path("/proc/self/mem")) == {"path": "/proc/self/mem", "sha256": None}


def test_builder_progress_follows_plays_tasks_and_hosts() -> None:
    builder = RecordBuilder()
    assert builder.progress() == {
        "play": None,
        "task": None,
        "task_hosts_done": 0,
        "hosts_seen": 0,
        "hosts_failed": [],
        "changes": 0,
        "events": 0,
    }
    for event in synthetic_events(["db1", "db2", "db3"], fail_host="db2")[:-1]:
        builder.feed(event)
    assert builder.progress() == {
        "play": "Back up the database",
        "task": "Dump the database",
        "task_hosts_done": 3,
        "hosts_seen": 3,
        "hosts_failed": ["db2"],
        "changes": 2,
        "events": 6,
    }


def test_build_from_events_passes_everything_to_the_record() -> None:
    meta = RunMeta(
        id=new_record_id(BASE_TIME),
        operation="backup",
        playbook="playbooks/backup.yml",
        environment="lab",
        inventory=None,
        started=iso(BASE_TIME),
    )
    events = synthetic_events(["db1", "db2"], fail_host="db2", outputs={"backup_id": "b-7"})
    redaction = {"keys": ["password"], "values_masked": 3, "min_length": 4}
    rec = build_from_events(
        events,
        meta,
        status="failed",
        rc=2,
        ended=iso(BASE_TIME + timedelta(seconds=30)),
        redaction=redaction,
        error="db2 failed",
        output_keys=["backup_id", "checksum"],
    )
    builder = RecordBuilder()
    for event in events:
        builder.feed(event)
    assert rec == builder.finish(
        meta,
        status="failed",
        rc=2,
        ended=iso(BASE_TIME + timedelta(seconds=30)),
        redaction=redaction,
        error="db2 failed",
        output_keys=["backup_id", "checksum"],
    )
    assert (rec["status"], rec["rc"], rec["duration_s"], rec["error"]) == ("failed", 2, 30.0, "db2 failed")
    assert rec["redaction"] == redaction and rec["outputs_missing"] == ["checksum"]
    assert rec["hosts"]["db2"]["failed"] == 1 and len(rec["changes"]) == 1 and len(rec["failures"]) == 1


def test_failure_messages_of_every_shape() -> None:
    fm = records._failure_msg
    assert records._tail("  lead kept, trail cut  \n") == "  lead kept, trail cut"
    assert records._tail("x" * 2000) == "x" * 2000  # at the limit: whole
    assert records._tail("x" * 2001) == "..." + "x" * 2000
    assert records._tail(None) == ""
    # A command's stdout is its reason only when it ran (rc present); a long one keeps its tail.
    assert fm({"msg": "failed", "stdout": "out"}) == "failed"
    assert fm({"msg": "failed", "rc": 3, "stdout": "o" * 700 + "END"}) == "failed (rc 3): ..." + ("o" * 597 + "END")
    assert fm({"msg": "failed", "rc": "3", "stderr": "boom"}) == "failed: boom"  # an rc that is no integer
    # No message: the first output there is, in this order.
    order = ("stderr", "module_stderr", "stdout", "module_stdout")
    for i, key in enumerate(order):
        res = {k: f"from {k}" for k in order[i:]}
        assert fm(res) == f"from {key}", key
    # A loop: the failed or unreachable items' messages, joined.
    loop = {
        "results": [
            "not a mapping",
            {"failed": True, "msg": "first"},
            {"unreachable": True, "msg": "second"},
            {"failed": False, "msg": "fine"},
            {"failed": True},  # says nothing: left out
        ]
    }
    assert fm(loop) == "first; second"
    assert fm({"msg": ["a", "list"]}) == "['a', 'list']"
    assert fm({"msg": 7}) == "7"
    assert fm({"msg": "   ", "stdout": "why"}) == "why"  # a blank message: the output says more
    assert fm({}) == ""


def test_ignored_and_unreachable_failures_are_counted_apart() -> None:
    builder = RecordBuilder()
    for host, kind, ignore in (
        ("db1", "runner_on_failed", True),
        ("db2", "runner_on_failed", False),
        ("db3", "runner_on_unreachable", True),  # ignore_errors does not cover an unreachable host
    ):
        builder.feed(_ev(kind, host=host, task="t", ignore_errors=ignore, res={"msg": f"{host} said no"}))
    zero = dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"), 0)
    assert builder.hosts == {
        "db1": {**zero, "ok": 1, "ignored": 1},
        "db2": {**zero, "failed": 1},
        "db3": {**zero, "unreachable": 1},
    }
    assert [(f["host"], f["msg"], f["ignored"], f["unreachable"]) for f in builder.failures] == [
        ("db1", "db1 said no", True, False),
        ("db2", "db2 said no", False, False),
        ("db3", "db3 said no", False, True),
    ]
    assert builder.progress()["hosts_failed"] == ["db2", "db3"]


def test_a_changed_loop_records_one_change_per_changed_item() -> None:
    builder = RecordBuilder()
    data = {"host": "db1", "task": "Write files", "role": "", "task_action": "copy"}
    loop = {
        "changed": True,
        "diff": {"whole": "task"},
        "results": [
            {"changed": True, "item": "a", "diff": {"after": "A"}},
            "junk",
            {"changed": False, "item": "b", "diff": {"after": "B"}},
            {"changed": True, "_ansible_item_label": "c", "item": {"path": "/c"}},
        ],
    }
    builder.feed(_ev("runner_on_ok", **data, res=loop))
    base = {"host": "db1", "task": "Write files", "role": None, "module": "copy"}
    assert builder.changes == [
        {**base, "item": "a", "diff": {"after": "A"}},
        {**base, "item": "c", "diff": None},
    ]
    # A changed loop none of whose items says so: one change for the task, with its diff.
    unchanged = {"changed": True, "diff": {"whole": "task"}, "results": [{"changed": False, "item": "b"}]}
    builder.feed(_ev("runner_on_ok", **data, res=unchanged))
    assert builder.changes[2:] == [{**base, "diff": {"whole": "task"}}]
    assert builder.hosts["db1"]["changed"] == 2


def test_the_stats_event_is_the_recap_missing_fields_zero() -> None:
    builder = RecordBuilder()
    builder.feed(
        _ev(
            "runner_on_ok",
            host="db1",
            task="t",
            resolved_action="ansible.builtin.copy",
            task_action="copy",
            res={"changed": True},
        )
    )
    assert builder.changes[0]["module"] == "ansible.builtin.copy"  # the resolved name first
    # "changed" is not a mapping and "dark" is missing: skipped, the keys after them still read
    builder.feed(
        _ev("playbook_on_stats", ok={"db1": 5, "db2": 0}, changed="junk", failures={"db2": None}, skipped={"db1": 2})
    )
    zero = dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"), 0)
    assert builder.hosts == {"db1": {**zero, "ok": 5, "skipped": 2}, "db2": zero}
    assert builder.has_stats


def test_feed_reads_names_handlers_skips_and_async_failures() -> None:
    builder = RecordBuilder()
    builder.feed(_ev("playbook_on_play_start", name="Play by name"))
    builder.feed(_ev("playbook_on_handler_task_start", name="Restart by name"))
    builder.feed(_ev("runner_on_skipped", host="db1", task="t"))
    builder.feed(_ev("runner_on_async_failed", host="db2", task="t", res="not a mapping"))
    builder.feed(_ev("runner_on_ok", host=None, task="t", res={"changed": True}))  # no host: not counted
    builder.feed({"event": "runner_on_ok", "event_data": "not a mapping"})
    assert builder.progress() == {
        "play": "Play by name",
        "task": "Restart by name",
        "task_hosts_done": 2,
        "hosts_seen": 2,
        "hosts_failed": ["db2"],
        "changes": 0,
        "events": 6,
    }
    zero = dict.fromkeys(("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"), 0)
    assert builder.hosts == {"db1": {**zero, "skipped": 1}, "db2": {**zero, "failed": 1}}
    assert [(f["host"], f["msg"]) for f in builder.failures] == [("db2", "")]
    builder.feed(_ev("playbook_on_play_start", play="Second play", name="ignored"))
    builder.feed(_ev("playbook_on_task_start", task="Second task", name="ignored"))
    assert (builder.progress()["play"], builder.progress()["task"]) == ("Second play", "Second task")
    assert builder.progress()["task_hosts_done"] == 0  # a new task starts with no host done


def test_finish_refuses_an_unknown_status() -> None:
    meta = RunMeta(
        id=new_record_id(BASE_TIME),
        operation="backup",
        playbook=None,
        environment="lab",
        inventory=None,
        started=iso(BASE_TIME),
    )
    with pytest.raises(BadInput) as err:
        RecordBuilder().finish(meta, status="done", rc=0)
    assert str(err.value) == f"status must be one of {', '.join(records.STATUSES)}, not 'done'"


def test_finish_defaults_and_a_run_that_ended_as_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    meta = RunMeta(
        id=new_record_id(BASE_TIME),
        operation="backup",
        playbook=None,
        environment="prod",
        inventory=None,
        started=iso(BASE_TIME),
        ticket="CHG-1",
        change_type="standard",
    )
    monkeypatch.setattr(records, "utc_now", lambda: BASE_TIME)  # "now": the run's start
    rec = RecordBuilder().finish(meta, status="successful", rc=0)
    assert rec["schema_version"] == records.SCHEMA_VERSION
    assert (rec["ticket"], rec["change_type"]) == ("CHG-1", "standard")
    assert (rec["started"], rec["ended"], rec["duration_s"]) == (iso(BASE_TIME), iso(BASE_TIME), 0.0)
    assert rec["redaction"] == {"keys": [], "values_masked": 0, "min_length": 4}
    early = RecordBuilder().finish(meta, status="successful", rc=0, ended=iso(BASE_TIME - timedelta(seconds=5)))
    assert early["duration_s"] == 0.0  # a clock set back: never negative


def test_times_and_ids_are_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert iso(BASE_TIME) == "2026-11-28T08:00:00.000Z"
        assert new_record_id(BASE_TIME).startswith("20261128T080000000Z-")
        assert utc_now().utcoffset() == timedelta(0)
        assert parse_iso("2026-11-28T08:00:00") == BASE_TIME  # a naive time is UTC, not local time
        assert parse_iso("2026-11-28T16:00:00+08:00").tzinfo is timezone.utc
    finally:
        monkeypatch.undo()
        time.tzset()


def test_refusals_name_the_value() -> None:
    with pytest.raises(BadInput) as err:
        validate_record_id("../" * 30)
    shown = repr("../" * 30)[:60]
    assert str(err.value) == f"invalid record id {shown}: expected the form 20261128T134500123Z-a1b2c3"
    with pytest.raises(BadInput) as err:
        RunMeta(
            id=new_record_id(BASE_TIME),
            operation="backup",
            playbook=None,
            environment="lab",
            inventory=None,
            started=iso(BASE_TIME),
            launch={},
        )
    assert str(err.value) == "launch type must be one of manual, scheduled, ci, awx, not ''"


def test_leases_and_approval_reach_the_record_only_when_given() -> None:
    def meta(**extra: Any) -> RunMeta:
        return RunMeta(
            id=new_record_id(BASE_TIME),
            operation="backup",
            playbook=None,
            environment="lab",
            inventory=None,
            started=iso(BASE_TIME),
            **extra,
        )

    ended = iso(BASE_TIME)
    plain = RecordBuilder().finish(meta(), status="successful", rc=0, ended=ended)
    assert "leases" not in plain and "approval" not in plain
    leases = {"store": "s", "hosts": ["db1"], "took_over": []}
    approval = {"approved_by": "carol", "plan": None}
    rec = RecordBuilder().finish(meta(leases=leases, approval=approval), status="successful", rc=0, ended=ended)
    assert (rec["leases"], rec["approval"]) == (leases, approval)
