"""Bad input to `opsctl run`, through the real CLI: tickets and the environment's ticket
pattern, free text with control characters, the operator's identity, ``-e @file`` and
``--limit @file`` limits, standard changes (issue 15 items 3-4, issue 17 item 5).

Every refusal: exit 2, one ``opsctl: error:`` line saying what is expected, a ``refused``
record, no traceback, and the ``change`` operation's marker files untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.common import run_opsctl
from helpers.home import home_env
from helpers.records import commit_record
from orchestrator.archive import Archive
from orchestrator.cli import cli
from orchestrator.records import login_user
from orchestrator.runner import MAX_INPUT_FILE, MAX_VARS_VALUES
from orchestrator.textclean import clean_lines, clean_text

PATTERN = "^CHG-[0-9]+(-[0-9]+)*$"
POLICY = "inventories/production/.opsctl.yml"
BEFORE = "untouched\n"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def latest(home: Path) -> dict[str, Any]:
    archive = Archive(home / "var" / "archive")
    return archive.get(archive.list()[0]["id"])


def markers(home: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((home / "markers").iterdir())}


@pytest.fixture
def home(opsctl_home: Path) -> Path:
    """The test repository with marker files a run of `change` (or `backup`) would rewrite."""
    for host in ("node1", "node2"):
        (opsctl_home / "markers" / f"{host}.txt").write_text(BEFORE, encoding="utf-8")
    return opsctl_home


def assert_refused(home: Path, args: list[str], message: str) -> dict[str, Any]:
    """Run ``opsctl ARGS``; assert the refusal the module docstring describes; the record."""
    count = len(Archive(home / "var" / "archive").list())
    code, out, err = invoke(*args)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("opsctl: error:")]
    assert len(errors) == 1 and message in errors[0], err
    rec = latest(home)
    assert len(Archive(home / "var" / "archive").list()) == count + 1
    assert rec["status"] == "refused" and rec["rc"] == 2
    assert message in rec["error"] and "\n" not in rec["error"]
    assert rec["hosts"] == {} and rec["changes"] == []
    assert markers(home) == {"node1.txt": BEFORE, "node2.txt": BEFORE}
    return rec


# -- A. tickets, reasons, identities -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ticket", " "], f"--ticket is blank: give the change ticket id ({PATTERN})"),
        (["--ticket", "\x1b[31m\r\t"], "--ticket is blank"),
        (
            ["--ticket", "chg-12"],
            f"--ticket 'chg-12' does not match the ticket pattern of 'production': {PATTERN} "
            f"(ticket_pattern in {POLICY})",
        ),
        (["--ticket", "CHG-12; rm -rf /"], "does not match the ticket pattern"),
        (["--ticket", "CHG-12\nCHG-13"], "--ticket 'CHG-12 CHG-13' does not match"),
        (["--ticket", "STD-BACKUP-2026"], "--ticket 'STD-BACKUP-2026' does not match"),
        ([], f"environment 'production' requires --ticket for 'change' ({PATTERN})"),
    ],
)
def test_bad_tickets_in_production(home: Path, args: list[str], message: str) -> None:
    rec = assert_refused(home, ["run", "change", "--env", "production", *args], message)
    assert rec["ticket"] in (None, clean_text(args[1]) if args else None)


def test_blank_ticket_reason_or_incident_is_refused_everywhere(home: Path) -> None:
    # the test environment has no ticket pattern and needs no ticket: blank is still no ticket
    assert_refused(
        home, ["run", "change", "--env", "test", "--ticket", ""], "--ticket is blank: give the change ticket id"
    )
    assert_refused(
        home, ["run", "change", "--env", "test", "--reason", " \x07 "], "--reason is blank: say why this run is made"
    )
    assert_refused(home, ["run", "change", "--env", "test", "--incident", "\r"], "--incident is blank")


def test_control_characters_are_removed_before_storing_and_printing(home: Path) -> None:
    code, out, err = invoke(
        "run",
        "change",
        "--env",
        "production",
        "--ticket",
        "\x1b[2K\rCHG-2026-7\x1b[0m",
        "--reason",
        "fix\x1b]0;owned\x07 the\rdisk\x9b31m now\u202e",
        "--incident",
        "INC-20261128-001\x00\x1b[1A",
    )
    assert code == 0, (out, err)
    rec = latest(home)
    assert rec["ticket"] == "CHG-2026-7" and rec["change_type"] == "normal"
    assert rec["reason"] == "fix the disk now"
    assert rec["incident"] == "INC-20261128-001"
    code, shown, _ = invoke("records", "show", rec["id"])
    assert code == 0
    assert "CHG-2026-7" in shown and "fix the disk now" in shown
    for text in (out, err, shown, json.dumps(rec, ensure_ascii=False)):
        assert not any(c in text for c in "\x1b\r\x00\x07\x9b\u202e"), repr(text)
    stdout = Archive(home / "var" / "archive").stdout(rec["id"])
    assert "\x1b" not in stdout


def test_records_show_and_list_scrub_escapes_of_older_records(home: Path) -> None:
    """A record written before free text was cleaned (or imported) prints no escape sequence."""
    rec = commit_record(Archive(home / "var" / "archive"), ticket="CHG-1\x1b[2K\x1b[1Afake", fail_host="db1")
    code, shown, _ = invoke("records", "show", rec["id"])
    assert code == 0 and "CHG-1fake" in shown and "\x1b" not in shown
    code, listed, _ = invoke("records", "list")
    assert code == 0 and "CHG-1fake" in listed and "\x1b" not in listed
    # a carriage return becomes a line break: nothing printed before it is overwritten
    assert clean_lines("  a\x1b[31m red\x1b[0m\n    b\rc") == "  a red\n    b\nc"


def test_operator_is_the_login_identity_and_claims_are_kept_beside_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "mallory")  # the environment cannot rename the operator
    monkeypatch.setenv("LOGNAME", "mallory")
    monkeypatch.setenv("OPSCTL_OPERATOR", "alice\x1b[8m")
    monkeypatch.setenv("SUDO_USER", "bob")
    assert invoke("run", "ok", "--env", "test")[0] == 0
    rec = latest(home)
    assert rec["operator"]["user"] == login_user() != "mallory"
    assert rec["operator"]["on_behalf_of"] == "alice"
    assert rec["operator"]["on_behalf_of_source"] == "OPSCTL_OPERATOR"
    code, shown, _ = invoke("records", "show", rec["id"])
    assert code == 0
    assert f"operator   {login_user()}@" in shown
    assert "for        alice (from OPSCTL_OPERATOR)" in shown
    monkeypatch.delenv("OPSCTL_OPERATOR")
    assert invoke("run", "ok", "--env", "test")[0] == 0
    assert latest(home)["operator"] | {"host": None, "git_name": None, "git_email": None} == {
        "user": login_user(),
        "on_behalf_of": "bob",
        "on_behalf_of_source": "SUDO_USER",
        "host": None,
        "git_name": None,
        "git_email": None,
    }
    monkeypatch.delenv("SUDO_USER")
    assert invoke("run", "ok", "--env", "test")[0] == 0
    rec = latest(home)
    assert rec["operator"]["user"] == login_user() and rec["operator"]["on_behalf_of"] is None
    assert "for  " not in invoke("records", "show", rec["id"])[1]


# -- B. limits and clean failures ----------------------------------------------------------


def _change(*args: str) -> list[str]:
    return ["run", "change", "--env", "test", *args]


def test_extra_vars_file_must_be_a_small_regular_file(home: Path, tmp_path: Path) -> None:
    assert_refused(
        home, _change("-e", f"@{tmp_path}"), f"-e @{tmp_path}: {tmp_path} is a directory; give a regular file"
    )
    assert_refused(home, _change("-e", "@/dev/zero"), "-e @/dev/zero: /dev/zero is a character device")
    huge = tmp_path / "huge.yml"
    with open(huge, "wb") as fh:  # sparse: its size says it is too big, nothing is read
        fh.truncate(MAX_INPUT_FILE + 1)
    assert_refused(home, _change("-e", f"@{huge}"), f"is larger than {MAX_INPUT_FILE // 1024} KiB")
    assert_refused(
        home,
        _change("-e", "@/nonexistent/vars.yml"),
        "-e @/nonexistent/vars.yml: cannot read /nonexistent/vars.yml: No such file or directory",
    )
    assert_refused(home, _change("-e", "@/etc/hostname/x"), "cannot read /etc/hostname/x: Not a directory")


def test_extra_vars_fifo_is_refused_without_waiting(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "vars.fifo"
    os.mkfifo(fifo)
    # nobody ever writes to the FIFO: reading it would block until the timeout fails the test
    proc = run_opsctl(*_change("-e", f"@{fifo}"), env=home_env(home), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"opsctl: error: -e @{fifo}: {fifo} is a FIFO; give a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr
    rec = latest(home)
    assert rec["status"] == "refused" and "is a FIFO" in rec["error"]
    assert markers(home) == {"node1.txt": BEFORE, "node2.txt": BEFORE}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- a\n- b\n", "the file must hold a mapping of variables (name: value), not a list"),
        ("", "not nothing"),
        ('"just text"\n', "not a str"),
        ("a: [1, 2\n", "not valid YAML/JSON: "),
        ('{"marker_value": "x"', "not valid YAML/JSON: "),
        ("1bad: x\n", "invalid variable name '1bad'"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
            f"more than {MAX_VARS_VALUES} values",
        ),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
    ids=["list", "empty", "string", "yaml", "json", "name", "aliases", "deep"],
)
def test_extra_vars_file_must_hold_a_mapping(home: Path, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "vars.yml"
    path.write_text(content, encoding="utf-8")
    assert_refused(home, _change("-e", f"@{path}"), message)


def test_extra_vars_file_that_is_not_utf8(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "vars.yml"
    path.write_bytes(b"marker_value: \xff\xfe\n")
    assert_refused(home, _change("-e", f"@{path}"), "is not UTF-8 text (byte 14)")


def test_a_good_extra_vars_file_still_works(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "vars.json"
    path.write_text('{"marker_value": "from-file"}', encoding="utf-8")
    code, out, err = invoke(*_change("-e", f"@{path}"))
    assert code == 0, (out, err)
    assert markers(home)["node1.txt"] == "marker from-file\n"


def test_limit_file_and_patterns(home: Path, tmp_path: Path) -> None:
    assert_refused(
        home,
        _change("--limit", "@/nonexistent/hosts"),
        "--limit @/nonexistent/hosts: cannot read /nonexistent/hosts: No such file or directory",
    )
    assert_refused(home, _change("--limit", "node1,@/etc/hostname/x"), "cannot read /etc/hostname/x: Not a directory")
    assert_refused(home, _change("--limit", f"@{tmp_path}"), "is a directory; give a regular file")
    assert_refused(home, _change("--limit", "@/dev/zero"), "is a character device")
    assert_refused(home, _change("--limit", " "), "--limit is blank: give a host pattern")
    assert_refused(home, _change("--limit", "node1\x1b[2J"), "--limit holds control characters")
    assert_refused(home, _change("--limit", "~("), "--limit '~(': Invalid host list pattern: ~(")
    assert_refused(home, _change("--tags", "a\rb"), "--tags holds control characters")
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("node2\n", encoding="utf-8")
    assert invoke(*_change("--limit", f"@{hosts}"))[0] == 0
    assert markers(home) == {"node1.txt": BEFORE, "node2.txt": "marker 1\n"}


def test_broken_policy_and_launch_type_are_refused_and_recorded(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = home / POLICY
    good = policy.read_text(encoding="utf-8")
    policy.write_text(good.replace(PATTERN, "^CHG-[0-9"), encoding="utf-8")
    assert_refused(
        home,
        ["run", "change", "--env", "production", "--ticket", "CHG-1"],
        "ticket_pattern '^CHG-[0-9' is not a valid regular expression",
    )
    policy.write_text("requires_ticket: [unclosed\n", encoding="utf-8")
    assert_refused(
        home,
        ["run", "change", "--env", "production", "--ticket", "CHG-1"],
        "/inventories/production/.opsctl.yml: not valid YAML: did not find expected ',' or ']' at line 2 column 1",
    )
    policy.write_text(good, encoding="utf-8")
    monkeypatch.setenv("OPSCTL_LAUNCH", "cron\x1b[1m")
    rec = assert_refused(home, _change(), "OPSCTL_LAUNCH 'cron' is not one of manual, scheduled, ci, awx")
    assert rec["launch"]["type"] == "manual"


# -- C. standard changes -------------------------------------------------------------------


def test_a_standard_change_runs_in_production_and_says_so(home: Path) -> None:
    code, out, err = invoke("run", "backup", "--env", "production", "--standard-change")
    assert code == 0, (out, err)
    assert "ticket: STD-BACKUP-2026 (standard change)" in out
    rec = latest(home)
    assert rec["status"] == "successful"
    assert rec["ticket"] == "STD-BACKUP-2026" and rec["change_type"] == "standard"
    assert markers(home) == {"node1.txt": "marker 1\n", "node2.txt": "marker 1\n"}
    code, shown, _ = invoke("records", "show", rec["id"])
    assert code == 0 and "ticket     STD-BACKUP-2026 (standard change)" in shown
    code, listed, _ = invoke("records", "list", "--ticket", "STD-BACKUP-2026", "--json")
    assert code == 0 and [r["id"] for r in json.loads(listed)] == [rec["id"]]
    # read-only operations may be standard changes too
    assert invoke("run", "ok", "--env", "production", "--standard-change")[0] == 0
    assert latest(home)["ticket"] == "STD-PROBE-2026"


def test_without_the_standard_change_production_refuses(home: Path) -> None:
    assert_refused(
        home,
        ["run", "backup", "--env", "production"],
        f"environment 'production' requires --ticket for 'backup' ({PATTERN}), "
        "or --standard-change (pre-approved STD-BACKUP-2026)",
    )
    # an ordinary ticket still works for the same operation: a normal change
    assert invoke("run", "backup", "--env", "production", "--ticket", "CHG-2026-001")[0] == 0
    assert latest(home)["change_type"] == "normal"


def test_an_operation_not_listed_is_refused_naming_the_policy(home: Path) -> None:
    rec = assert_refused(
        home,
        ["run", "change", "--env", "production", "--standard-change"],
        f"operation 'change' is not a standard change in 'production' (standard_changes in {POLICY} "
        "lists: backup, ok): run it with --ticket",
    )
    assert rec["change_type"] == "standard" and rec["ticket"] is None
    assert_refused(
        home,
        ["run", "backup", "--env", "test", "--standard-change"],
        "standard_changes in inventories/test/.opsctl.yml lists: none",
    )


def test_standard_change_rules(home: Path) -> None:
    assert_refused(
        home,
        ["run", "backup", "--env", "production", "--standard-change", "--ticket", "CHG-1"],
        "--standard-change takes its change id from the policy: leave out --ticket",
    )
    policy = home / POLICY
    good = policy.read_text(encoding="utf-8")
    policy.write_text(
        good.replace("standard_changes:\n", "standard_changes:\n  danger: STD-DANGER-1\n"), encoding="utf-8"
    )
    assert_refused(
        home,
        ["run", "danger", "--env", "production", "--standard-change", "--yes"],
        "operation 'danger' is high risk in 'production' and cannot run as a standard change",
    )
    policy.write_text(good.replace("STD-BACKUP-2026", "CHG-77"), encoding="utf-8")
    assert_refused(
        home,
        ["run", "backup", "--env", "production", "--standard-change"],
        "standard change 'CHG-77' of 'backup' must match ^STD-",
    )


# -- declared -e keys (issue 15 item 2) -------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-e", "undeclared=1"],
            "operation 'change' does not accept -e undeclared (accepted: change_note, change_query, marker_value)",
        ),
        (["-e", "ansible_become_method=su"], "does not accept -e ansible_become_method (Ansible's own variables"),
        (["-e", "ansible_port=1"], "does not accept -e ansible_port"),
        (
            ["-e", "__change_internal=1"],
            "does not accept -e __change_internal (Ansible's own variables and role internals are never accepted)",
        ),
        (["-e", "marker_value=1", "-e", "marker_dir=/tmp"], "does not accept -e marker_dir"),
    ],
)
def test_undeclared_extra_vars_are_refused_before_any_host(home: Path, args: list[str], message: str) -> None:
    rec = assert_refused(home, _change(*args), message)
    assert "reviewed change" in rec["error"]  # says how to do it properly


def test_reserved_names_are_refused_even_where_everything_is_declared(home: Path) -> None:
    """`ok` declares "*" in the test catalog: ansible_* still never passes."""
    code, _, err = invoke("run", "ok", "--env", "test", "-e", "ansible_connection=local", "-e", "x=1")
    assert code == 2 and "does not accept -e ansible_connection" in err


def test_declared_secret_input_is_masked_whatever_its_name_and_length(home: Path) -> None:
    code, out, err = invoke(*_change("-e", "marker_value=1", "-e", "change_note=Zq7"))
    assert code == 0, (out, err)
    rec = latest(home)
    assert rec["extra_vars"]["change_note"] == "********" and rec["extra_vars"]["marker_value"] == "1"


@pytest.mark.parametrize(
    ("operation", "key"),
    [
        ("export", "db_transfer_action"),  # a read-only export turned into an import
        ("export", "db_transfer_import_file"),
        ("export", "db_transfer_export_password"),
        ("patch-scan", "os_patch_action"),  # a read-only scan turned into patching
        ("baseline-check", "baseline_action"),  # a read-only check turned into hardening
        ("inspect", "ansible_become_user"),
        ("restore", "db_restore_app_action"),
    ],
)
def test_the_real_catalog_refuses_what_would_change_an_operations_nature(operation: str, key: str) -> None:
    from orchestrator.errors import BadInput
    from orchestrator.operations import get_environment, get_operation
    from orchestrator.runner import check_inputs

    op = get_operation(operation)
    with pytest.raises(BadInput, match=f"does not accept -e {key}"):
        check_inputs(op, get_environment("production"), {key: "x"}, "CHG-1")


def test_an_operators_own_query_needs_a_ticket_in_production() -> None:
    from orchestrator.errors import BadInput
    from orchestrator.operations import get_environment, get_operation
    from orchestrator.runner import check_inputs

    op, prod = get_operation("export"), get_environment("production")
    with pytest.raises(BadInput, match="-e db_export_query on 'export' needs --ticket in 'production'"):
        check_inputs(op, prod, {"db_export_query": "SELECT 1"}, None)
    check_inputs(op, prod, {"db_export_query": "SELECT 1"}, "CHG-7")  # with a ticket
    check_inputs(op, prod, {"db_export_tables": "ratings"}, None)  # tables: a reason is enough
    check_inputs(op, get_environment("lab"), {"db_export_query": "SELECT 1"}, None)  # no tickets in the lab


def test_every_catalog_operation_declares_its_inputs_and_playbook_variables() -> None:
    """Each key a playbook reads with `| default(...)` from the operator is declared (or required)."""
    import re

    from orchestrator.operations import load_catalog

    internal = {
        "opsctl_env",
        "opsctl_record_id",
        "opsctl_data_root",
        "msg",
        "status",
        "version",
        "content",
        "exists",
        "rc",
        "stderr",
        "name",
        "lab_db_password",
        "db_app_password",
        "db_export_password",
        "db_import_password",
        "emergency_restore_db_group",
        "app_deploy_port",
        "app_deploy_db_name",
    }
    for name, op in load_catalog().items():
        text = op.playbook_path().read_text(encoding="utf-8")
        used = set(re.findall(r"\b([a-z][a-z0-9_]*) \| default\(", text)) - internal
        undeclared = sorted(k for k in used if op.input_for(k) is None)
        assert not undeclared, f"{name}: the playbook reads {undeclared} but the catalog does not declare them"
