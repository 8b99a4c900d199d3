"""`opsctl ops`, the real catalog, and the lock's stale-holder handling."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import BadInput, LockHeld
from orchestrator.lock import HostLock
from orchestrator.operations import Environment, Operation, load_catalog
from orchestrator.runner import load_vars_file, parse_extra_vars

REPO = Path(__file__).resolve().parent.parent


def test_real_catalog_playbooks_exist() -> None:
    catalog = load_catalog(REPO / "orchestrator" / "catalog.yml")
    assert {"ping", "inspect"} <= set(catalog)
    for op in catalog.values():
        assert (REPO / "playbooks" / op.playbook).is_file(), op.playbook
        assert op.description


def test_ops_lists_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSCTL_CATALOG", raising=False)
    monkeypatch.delenv("OPSCTL_HOME", raising=False)
    result = CliRunner().invoke(cli, ["ops", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["ping"]["read_only"] is True and rows["ping"]["playbook"] == "playbooks/ping.yml"
    assert rows["inspect"]["risk"] == "low"
    text = CliRunner().invoke(cli, ["ops"]).stdout
    assert "inspect" in text and "lab" in text and "production" in text


def test_parse_extra_vars(tmp_path: Path) -> None:
    f = tmp_path / "vars.yml"
    f.write_text("a: 1\nb: [x]\n")
    assert parse_extra_vars(["x=1", "y=a=b", f"@{f}"]) == {"x": "1", "y": "a=b", "a": 1, "b": ["x"]}
    f.write_text("- not a mapping\n")
    for bad in (["=1"], ["1x=2"], ["x-y=1"], [f"@{f}"]):
        with pytest.raises(Exception) as exc:
            parse_extra_vars(bad)
        assert getattr(exc.value, "exit_code", None) == 2


def test_lock_overlap_and_stale_holders(tmp_path: Path) -> None:
    a = HostLock(tmp_path, "lab", ["h1", "h2"], "run-a", holder={"operation": "patch", "operator": "alice"})
    a.acquire()
    with pytest.raises(LockHeld) as exc:
        HostLock(tmp_path, "lab", ["h2", "h3"], "run-b").acquire()
    assert "run-a" in str(exc.value) and "h2" in str(exc.value) and "alice" in str(exc.value)
    # Another environment, or disjoint hosts, are independent.
    with HostLock(tmp_path, "staging", ["h1"], "run-c"), HostLock(tmp_path, "lab", ["h3"], "run-d"):
        pass
    a.release()
    HostLock(tmp_path, "lab", ["h2"], "run-e").acquire()
    # A holder whose process is gone is stale and does not block.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = tmp_path / "lab" / "run-x.json"
    stale.write_text(json.dumps({"run_id": "run-x", "hosts": ["h9"], "pid": int(dead.stdout), "pid_start": "1"}))
    HostLock(tmp_path, "lab", ["h9"], "run-f").acquire()
    assert not stale.exists()


def test_lock_holder_file_message_and_private_modes(tmp_path: Path) -> None:
    """What a holder leaves (its file, 0600 in a 0700 folder), the message naming it, six or more
    overlapping hosts shortened, unreadable holder files dropped, release idempotent."""
    hosts = [f"h{i}" for i in range(1, 8)]
    holder = {"operation": "patch", "operator": "alice", "started": "2026-12-01T10:00:00+08:00"}
    a = HostLock(tmp_path / "locks", "lab", list(reversed(hosts)), "run-a", holder=holder)
    with a:
        path = tmp_path / "locks" / "lab" / "run-a.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["hosts"] == sorted(hosts) and data["run_id"] == "run-a" and data["operator"] == "alice"
        assert data["pid"] == os.getpid() and data["pid_start"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert not list(path.parent.glob("*.tmp"))
        assert a.holders() == [data]
        with pytest.raises(LockHeld) as exc:
            HostLock(tmp_path / "locks", "lab", hosts, "run-b").acquire()
        assert str(exc.value) == (
            "environment 'lab' hosts h1, h2, h3, h4, h5 ... are locked by run run-a (patch, alice, "
            f"pid {os.getpid()}, since 2026-12-01T10:00:00+08:00); wait for it to finish"
        )
        assert exc.value.exit_code == 1
        with pytest.raises(LockHeld, match=r"hosts h1, h2, h3, h4, h5 are locked"):
            HostLock(tmp_path / "locks", "lab", hosts[:5], "run-c").acquire()
        (path.parent / "broken.json").write_text("{not json", encoding="utf-8")
        assert [h["run_id"] for h in a.holders()] == ["run-a"]
        assert not (path.parent / "broken.json").exists()
    assert not path.exists()
    a.release()  # a second release is harmless
    assert HostLock(tmp_path / "nowhere", "lab", ["h1"], "run-d").holders() == []


def test_lock_holders_stale_or_incomplete_and_release_after_removal(tmp_path: Path) -> None:
    """A holder file whose pid is reused by another process (start time differs), or that names
    no pid, is stale; one without hosts blocks nothing; stale files before a live one in name
    order do not hide it; six overlapping hosts are shortened; releasing a removed file is fine."""
    root = tmp_path / "locks"
    live = HostLock(root, "lab", ["h1", "h2", "h3", "h4", "h5", "h6"], "run-m")
    live.acquire()
    env_dir = root / "lab"
    mine = json.loads((env_dir / "run-m.json").read_text(encoding="utf-8"))
    (env_dir / "run-0-reused.json").write_text(
        json.dumps({"run_id": "run-0", "hosts": ["h1"], "pid": os.getpid(), "pid_start": "1"}), encoding="utf-8"
    )
    (env_dir / "run-1-nopid.json").write_text(json.dumps({"run_id": "run-1", "hosts": ["h1"]}), encoding="utf-8")
    nohosts = {"run_id": "run-2", "pid": os.getpid(), "pid_start": mine["pid_start"]}
    (env_dir / "run-2-nohosts.json").write_text(json.dumps(nohosts), encoding="utf-8")
    assert [h["run_id"] for h in live.holders()] == ["run-2", "run-m"]
    assert not (env_dir / "run-0-reused.json").exists() and not (env_dir / "run-1-nopid.json").exists()
    with pytest.raises(LockHeld, match=r"hosts h1, h2, h3, h4, h5 \.\.\. are locked by run run-m"):
        HostLock(root, "lab", ["h1", "h2", "h3", "h4", "h5", "h6"], "run-n").acquire()
    HostLock(root, "lab", ["h9"], "run-o").acquire()  # run-2 names no hosts: blocks nothing
    (env_dir / "run-m.json").unlink()
    live.release()
    assert live._path is None


def test_catalog_d_files_extend_and_duplicates_are_refused(tmp_path: Path) -> None:
    main = tmp_path / "catalog.yml"
    main.write_text("operations:\n  ping:\n    playbook: ping.yml\n")
    (tmp_path / "catalog.d").mkdir()
    (tmp_path / "catalog.d" / "db.yml").write_text(
        "operations:\n  backup:\n    playbook: backup.yml\n    risk: medium\n"
    )
    assert set(load_catalog(main)) == {"ping", "backup"}
    (tmp_path / "catalog.d" / "dup.yml").write_text("operations:\n  ping:\n    playbook: other.yml\n")
    with pytest.raises(Exception, match="defined twice"):
        load_catalog(main)
    (tmp_path / "catalog.d" / "dup.yml").write_text("operations:\n  bad:\n    playbook: x.yml\n    risk: extreme\n")
    with pytest.raises(Exception, match="risk must be one of"):
        load_catalog(main)


def test_lazy_command_table_matches_the_commands() -> None:
    """cli.COMMANDS names every command with the short help its own docstring gives."""
    import click

    from orchestrator import cli as cli_module

    group = cli_module.LazyGroup(commands={})  # a fresh group: loads every command from the table
    for name, (_, _, short_help) in cli_module.COMMANDS.items():
        command = group.get_command(click.Context(group), name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == short_help, name
    report = group.get_command(click.Context(group), "report")
    assert isinstance(report, click.Group)
    assert sorted(report.commands) == ["baseline", "inspect", "monthly", "patches", "sla"]


def test_help_lists_every_command_without_importing_them() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from orchestrator.cli import COMMANDS, cli; "
        "out = CliRunner().invoke(cli, ['--help']).stdout; "
        "assert all(f'  {name} ' in out for name in COMMANDS), out; "
        "print(sorted(m for m in sys.modules if m.startswith('orchestrator.')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['orchestrator.cli', 'orchestrator.errors']"


# -- the run's request and policy checks, one function at a time (issue 22's mutation run of
# runner-policy: tests/MUTATION.md). Named test_run_policy_* for ci/mutate.py's selection.


def _op(**kw: Any) -> Operation:
    return Operation(**{"name": "change", "playbook": "change.yml", "description": "d", **kw})


def _env(name: str = "production", **kw: Any) -> Environment:
    return Environment(
        **{
            "name": name,
            "inventory": REPO / "inventories" / name,
            "requires_ticket": True,
            "vault_password_file": None,
            **kw,
        }
    )


def _refused(fn: Any, *args: Any) -> str:
    with pytest.raises(BadInput) as err:
        fn(*args)
    return str(err.value)


def test_run_policy_extra_vars_names_files_and_order(tmp_path: Path) -> None:
    f = tmp_path / "vars.yml"
    f.write_text("from_file: 1\n")
    assert parse_extra_vars([f"@{f}", "db_backup_id=7", "_x=1"]) == {"from_file": 1, "db_backup_id": "7", "_x": "1"}
    assert _refused(parse_extra_vars, ["ok=1", "no value"]) == (
        "-e argument 2: expected key=value with a valid variable name, or @file.yml "
        "(the argument is not repeated here: it may hold a secret)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1\nb: 2\n", "not valid YAML/JSON: expected ',' or ']', but got ':' at line 2 column 2"),
        ("", "the file must hold a mapping of variables (name: value), not nothing"),
        ("- a\n", "the file must hold a mapping of variables (name: value), not a list"),
        ("5\n", "the file must hold a mapping of variables (name: value), not a int"),
        ("ok: 1\n9lives: 2\nx-y: 3\n", "invalid variable name '9lives' (letters, digits, _; not first a digit)"),
        ("ok: 1\n" + "y" * 70 + "-z: 2\n", f"invalid variable name '{'y' * 60}' (letters, digits, _; not first"),
    ],
)
def test_run_policy_vars_file_refusals_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "vars.yml"
    f.write_text(text)
    assert _refused(load_vars_file, f"@{f}").startswith(f"-e @{f}: {message}")


def test_run_policy_vars_file_unreadable_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "none.yml"
    assert _refused(load_vars_file, f"@{missing}") == f"-e @{missing}: cannot read {missing}: No such file or directory"


def test_run_policy_vars_file_nested_too_deeply(tmp_path: Path) -> None:
    f = tmp_path / "deep.yml"
    f.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert _refused(load_vars_file, f"@{f}") == f"-e @{f}: nested too deeply"


def test_run_policy_vars_file_values_are_counted_to_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.runner as runner

    monkeypatch.setattr(runner, "MAX_VARS_VALUES", 5)
    f = tmp_path / "vars.yml"
    f.write_text("a: 1\nb: 2\n")  # the mapping, 2 keys, 2 values: 5
    assert load_vars_file(f"@{f}") == {"a": 1, "b": 2}
    f.write_text("a: 1\nb: [2]\n")  # 6
    assert _refused(load_vars_file, f"@{f}") == f"-e @{f}: more than 5 values (YAML aliases expanded); give fewer"


def test_run_policy_input_files_are_small_regular_utf8_files(tmp_path: Path) -> None:
    import signal

    from orchestrator.runner import MAX_INPUT_FILE, read_input_file

    f = tmp_path / "f"
    f.write_bytes(b"x" * MAX_INPUT_FILE)
    assert read_input_file(f, "-e @f") == "x" * MAX_INPUT_FILE  # exactly the limit: whole
    f.write_bytes(b"x" * (MAX_INPUT_FILE + 1))
    assert _refused(read_input_file, f, "-e @f") == f"-e @f: {f} is larger than 1024 KiB; give a smaller file"
    f.write_bytes(b"ok \xff")
    assert _refused(read_input_file, f, "-e @f") == f"-e @f: {f} is not UTF-8 text (byte 3)"
    assert (
        _refused(read_input_file, tmp_path, "--limit @d")
        == f"--limit @d: {tmp_path} is a directory; give a regular file"
    )
    assert (
        _refused(read_input_file, Path("/dev/null"), "x") == "x: /dev/null is a character device; give a regular file"
    )
    assert _refused(read_input_file, tmp_path / "none", "x").startswith(f"x: cannot read {tmp_path / 'none'}: No such")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def hung(*_: Any) -> None:
        raise TimeoutError("opening a FIFO blocked")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:  # refused at once, not waited on for a writer
        assert _refused(read_input_file, fifo, "x") == f"x: {fifo} is a FIFO; give a regular file"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_run_policy_limit_refusals(tmp_path: Path) -> None:
    from orchestrator.runner import check_limit

    check_limit(None)
    check_limit("node1,node2")
    assert _refused(check_limit, "  ") == (
        "--limit is blank: give a host pattern (e.g. --limit node1), or leave the option out"
    )
    assert _refused(check_limit, "node1\x1b[2J") == "--limit holds control characters: give a plain host pattern"
    assert (
        _refused(check_limit, f"node1,@{tmp_path}")
        == f"--limit @{tmp_path}: {tmp_path} is a directory; give a regular file"
    )
    hosts = tmp_path / "hosts"
    hosts.write_text("node1\n")
    check_limit(f"node2:@{hosts}")


def test_run_policy_limit_without_a_file_part_needs_no_ansible_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing Ansible's inventory code takes a quarter of a second of every run: a limit
    without ``@`` is checked without it (the import made to fail here would raise)."""
    from orchestrator.runner import check_limit

    monkeypatch.setitem(sys.modules, "ansible.inventory.manager", None)
    check_limit("lab-db1,lab-db2:!lab-web1")
    with pytest.raises(ImportError):
        check_limit("lab-db1,@hosts.txt")


def test_run_policy_inputs_must_be_declared(tmp_path: Path) -> None:
    from orchestrator.operations import Input
    from orchestrator.runner import check_inputs

    op = _op(requires=("backup_id",), inputs=(Input("note"), Input("query", needs_ticket=True)))
    prod = _env(ticket_pattern=re.compile(r"^CHG-\d+$"), standard_changes={"change": "STD-1"})
    lab = _env("lab", requires_ticket=False)
    check_inputs(op, prod, {"backup_id": "1", "note": "x", "query": "q"}, "CHG-1")
    check_inputs(op, prod, {"note": "x"}, None)  # an input without needs_ticket: no ticket needed
    check_inputs(op, lab, {"query": "q"}, None)  # no tickets in the lab
    assert _refused(check_inputs, op, prod, {"query": "q"}, None) == (
        "-e query on 'change' needs --ticket in 'production' (a reason is not enough) (^CHG-\\d+$), "
        "or --standard-change (pre-approved STD-1)"
    )
    assert _refused(check_inputs, op, lab, {"note": "x", "other": "y"}, None) == (
        "operation 'change' does not accept -e other (accepted: backup_id, note, query); "
        "an input it needs is added to its catalog entry by a reviewed change"
    )
    assert "(Ansible's own variables and role internals are never accepted)" in _refused(
        check_inputs, op, lab, {"ansible_user": "root"}, None
    )
    assert "does not accept -e x (accepted: none)" in _refused(check_inputs, _op(), lab, {"x": "1"}, None)


def test_run_policy_declared_secrets_come_from_the_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.runner import _declared_secrets

    catalog = tmp_path / "catalog.yml"
    catalog.write_text(
        "operations:\n  note:\n    title_zh: 记录\n    playbook: ping.yml\n    description: d\n"
        "    inputs: [{name: change_note, secret: true}, plain]\n"
    )
    monkeypatch.setenv("OPSCTL_CATALOG", str(catalog))
    assert _declared_secrets("note", {"plain": "a", "change_note": "b", "other": "c"}) == ["change_note"]
    assert _declared_secrets("nosuch", {"change_note": "b"}) == []


def test_run_policy_request_checks(tmp_path: Path) -> None:
    from orchestrator.operations import Input
    from orchestrator.runner import RunRequest, check_policy, clean_request, needs_confirmation, resolve_ticket

    prod = _env(standard_changes={"change": "STD-1"})
    op = _op(requires=("backup_id",), inputs=(Input("query", needs_ticket=True),), high_risk_in=("lab",))
    ok = {"backup_id": "7"}

    def req(**kw: Any) -> RunRequest:
        return RunRequest(**{"operation": "change", "env": "production", "ticket": "CHG-1", **kw})

    assert needs_confirmation(op, "lab") and not needs_confirmation(op, "production")
    check_policy(req(extra_vars=ok), op, prod)  # the request's own extra vars when none are given apart
    check_policy(req(extra_vars={"bad": "1"}), op, prod, ok)  # ...else those given
    assert "does not accept -e bad" in _refused(check_policy, req(extra_vars=ok), op, prod, {**ok, "bad": "1"})
    check_policy(req(ticket=None, standard_change=True), op, prod, ok)
    assert resolve_ticket(req(ticket=None, standard_change=True), op, prod) == "STD-1"
    assert _refused(resolve_ticket, req(standard_change=True), op, prod) == (
        "--standard-change takes its change id from the policy: leave out --ticket"
    )
    check_policy(req(), op, prod, {**ok, "query": "q"})  # the ticket reaches the input check
    assert _refused(check_policy, req(reason=""), op, prod, ok) == (
        "--reason is blank: say why this run is made, or leave the option out"
    )
    assert _refused(check_policy, req(incident=""), op, prod, ok) == (
        "--incident is blank: give the incident id (INC-...), or leave the option out"
    )
    assert "--limit is blank" in _refused(check_policy, req(limit=" "), op, prod, ok)
    assert _refused(check_policy, req(tags=["a\x07"]), op, prod, ok) == (
        "--tags holds control characters: give plain tag names"
    )
    assert _refused(check_policy, req(skip_tags=["b\x1b"]), op, prod, ok) == (
        "--skip-tags holds control characters: give plain tag names"
    )
    two = _op(requires=("a", "b"))
    assert _refused(check_policy, req(), two, prod, {"a": ""}) == "operation 'change' requires -e a=..., -e b=..."
    lab = _env("lab", requires_ticket=False)
    assert _refused(check_policy, req(env="lab"), op, lab, ok) == (
        "operation 'change' is high risk in 'lab': not confirmed (confirm at the terminal prompt, or pass --yes)"
    )
    check_policy(req(env="lab", confirmed=True), op, lab, ok)
    cleaned = clean_request(req(ticket="CHG-1\x1b[0m", reason="why\x07", incident="INC-1\x00"))
    assert (cleaned.ticket, cleaned.reason, cleaned.incident) == ("CHG-1", "why", "INC-1")


def test_run_policy_ci_approval(tmp_path: Path) -> None:
    from orchestrator.runner import RunRequest, check_approval

    prod = _env(settings={"ci_approval": "required"})
    op = _op()
    ci = RunRequest(operation="change", env="production", launch_type="ci")
    plan = {"env": "production", "operations": ["ping", "change"]}
    good = {"approved_by": "bob", "plan": plan}
    how = "(the CI gate: ci/approver.py and make ci-apply PLAN=...; docs/ci.md)"
    check_approval(ci, op, prod, good)
    # not asked for: another environment, a manual run, a read-only operation, a --check run
    check_approval(ci, op, _env(settings={}), None)
    check_approval(RunRequest(operation="change", env="production", launch_type="manual"), op, prod, None)
    check_approval(ci, _op(read_only=True), prod, None)
    check_approval(RunRequest(operation="change", env="production", launch_type="ci", check=True), op, prod, None)
    for approval in (None, {}, {"approved_by": "", "plan": plan}, {"plan": plan}):
        assert _refused(check_approval, ci, op, prod, approval) == (
            "environment 'production' requires an approval for CI runs of 'change': "
            f"OPSCTL_APPROVED_BY is not set {how}"
        )
    assert _refused(check_approval, ci, op, prod, {"approved_by": "bob", "plan": "x"}) == (
        "environment 'production' requires the approved plan for CI runs of 'change': "
        f"OPSCTL_APPROVAL_PLAN is not set {how}"
    )
    other = {"approved_by": "bob", "plan": {**plan, "env": "staging"}}
    assert _refused(check_approval, ci, op, prod, other) == (
        "the approved plan is a plan of 'staging', not of 'production'"
    )
    narrow = {"approved_by": "bob", "plan": {"env": "production", "operations": ["ping", "inspect"]}}
    assert _refused(check_approval, ci, op, prod, narrow) == (
        "the approved plan does not cover 'change' (it covers ping, inspect)"
    )
    empty = {"approved_by": "bob", "plan": {"env": "production"}}
    assert _refused(check_approval, ci, op, prod, empty) == (
        "the approved plan does not cover 'change' (it covers no operation)"
    )
