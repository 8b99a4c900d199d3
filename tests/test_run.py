"""`opsctl run` end to end on real ansible-runner runs (local-connection hosts), and its refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.common import all_text_under, only, opsctl_cmd, run_opsctl
from helpers.home import CLI_SECRET_VALUE, VAULT_SECRET_VALUE, home_env
from orchestrator.archive import Archive
from orchestrator.cli import cli


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def records(home: Path) -> list[dict[str, Any]]:
    archive = Archive(home / "var" / "archive")
    return [archive.get(row["id"]) for row in archive.list()]


def latest(home: Path) -> dict[str, Any]:
    return records(home)[0]


def test_successful_read_only_run(opsctl_home: Path) -> None:
    code, out, _ = invoke("run", "ok", "--env", "test", "--json")
    assert code == 0, out
    printed = json.loads(out)
    rec = latest(opsctl_home)
    assert printed["id"] == rec["id"]
    assert rec["status"] == "successful" and rec["rc"] == 0
    assert rec["operation"] == "ok" and rec["environment"] == "test"
    assert sorted(rec["hosts"]) == ["node1", "node2"] == rec["targets"]
    assert all(h["failed"] == 0 and h["changed"] == 0 for h in rec["hosts"].values())
    assert rec["changes"] == []
    assert rec["outputs"]["probe"] == {"node1": {"alive": True}, "node2": {"alive": True}}
    assert rec["files"]["playbook"]["path"] == "playbooks/ok.yml"
    assert len(rec["files"]["playbook"]["sha256"]) == 64
    assert {f["path"] for f in rec["files"]["inventory"]} >= {"inventories/test/hosts.yml"}
    assert rec["versions"]["ansible_core"].startswith("2.19")
    assert rec["operator"]["user"]
    assert rec["duration_s"] >= 0


def test_changes_with_diff_are_recorded(opsctl_home: Path) -> None:
    code, out, _ = invoke("run", "change", "--env", "test", "--diff", "-e", "marker_value=42")
    assert code == 0, out
    rec = latest(opsctl_home)
    assert rec["extra_vars"] == {"marker_value": "42"}
    assert sorted(c["host"] for c in rec["changes"]) == ["node1", "node2"]
    change = rec["changes"][0]
    assert change["task"] == "Write the marker file"
    assert change["module"] in ("ansible.builtin.copy", "copy")
    assert change["diff"], "copy with --diff must carry a diff"
    assert (opsctl_home / "markers" / "node1.txt").read_text() == "marker 42\n"
    # Check mode changes nothing on disk and says so.
    (opsctl_home / "markers" / "node1.txt").unlink()
    code, _, _ = invoke("run", "change", "--env", "test", "--check", "--limit", "node1")
    assert code == 0
    rec = latest(opsctl_home)
    assert rec["check_mode"] is True and rec["limit"] == "node1" and rec["targets"] == ["node1"]
    assert not (opsctl_home / "markers" / "node1.txt").exists()


def test_failed_run_exits_1_with_failures(opsctl_home: Path) -> None:
    code, out, _ = invoke("run", "fail", "--env", "test")
    assert code == 1
    rec = latest(opsctl_home)
    assert rec["status"] == "failed" and rec["rc"] != 0
    assert {f["host"] for f in rec["failures"]} == {"node1", "node2"}
    assert all("deliberate failure" in f["msg"] for f in rec["failures"])
    assert "FAILED" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "ok", "--env", "nowhere"], "unknown environment 'nowhere'"),
        (["run", "nosuchop", "--env", "test"], "unknown operation 'nosuchop'"),
        (["run", "change", "--env", "production"], "requires --ticket"),
        (["run", "ok", "--env", "production"], "requires --ticket or --reason"),
        (["run", "needs", "--env", "test"], "-e backup_id=..."),
        (["run", "ok", "--env", "test", "-e", "novalue"], "expected key=value"),
        (["run", "ok", "--env", "test", "-e", "@/nonexistent/vars.yml"], "cannot read"),
        (["run", "ok", "--env", "test", "--limit", "nomatch"], "no host"),
        (["run", "danger", "--env", "test"], "not confirmed"),
    ],
)
def test_bad_input_exits_2_and_is_recorded(opsctl_home: Path, args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2, (out, err)
    assert message in err
    assert "Traceback" not in out + err
    rec = latest(opsctl_home)
    assert rec["status"] == "refused" and message in rec["error"]
    assert rec["hosts"] == {} and rec["changes"] == []
    assert list((opsctl_home / "markers").iterdir()) == []


def test_production_read_only_with_reason_and_ticket(opsctl_home: Path) -> None:
    assert invoke("run", "ok", "--env", "production", "--reason", "weekly check")[0] == 0
    assert latest(opsctl_home)["reason"] == "weekly check"
    assert invoke("run", "change", "--env", "production", "--ticket", "CHG-1", "--incident", "INC-7")[0] == 0
    rec = latest(opsctl_home)
    assert rec["ticket"] == "CHG-1" and rec["incident"] == "INC-7" and rec["status"] == "successful"


def test_a_reason_is_not_a_ticket_for_a_changing_operation_in_production(opsctl_home: Path) -> None:
    code, out, err = invoke("run", "change", "--env", "production", "--reason", "weekly check", "--yes")
    assert code == 2, (out, err)
    assert "requires --ticket for 'change'" in err and "Traceback" not in out + err
    rec = latest(opsctl_home)
    assert rec["status"] == "refused" and rec["reason"] == "weekly check" and rec["ticket"] is None
    assert "requires --ticket" in rec["error"]
    assert list((opsctl_home / "markers").iterdir()) == []


def test_tags_and_skip_tags_are_recorded_as_given(opsctl_home: Path) -> None:
    """Each list in its own field, on a refused attempt (built before the policy check) and on a run."""
    code, _, _ = invoke("run", "change", "--env", "production", "--tags", "a,b", "--skip-tags", "c", "--skip-tags", "d")
    assert code == 2
    rec = latest(opsctl_home)
    assert rec["status"] == "refused"
    assert (rec["tags"], rec["skip_tags"]) == (["a", "b"], ["c", "d"])
    code, out, _ = invoke("run", "ok", "--env", "test", "--skip-tags", "never-used", "--limit", "node1")
    assert code == 0, out
    rec = latest(opsctl_home)
    assert rec["status"] == "successful" and (rec["tags"], rec["skip_tags"]) == ([], ["never-used"])


def test_required_extra_var_given_with_e_runs(opsctl_home: Path) -> None:
    assert invoke("run", "needs", "--env", "test", "-e", "backup_id=20261128-1")[0] == 0
    rec = latest(opsctl_home)
    assert rec["status"] == "successful" and rec["extra_vars"] == {"backup_id": "20261128-1"}
    assert invoke("run", "needs", "--env", "test", "-e", "backup_id=")[0] == 2


def test_high_risk_with_yes_runs(opsctl_home: Path) -> None:
    assert invoke("run", "danger", "--env", "test", "--yes")[0] == 0
    assert latest(opsctl_home)["status"] == "successful"


def test_secrets_never_reach_the_archive_or_stdout(opsctl_home: Path) -> None:
    proc = run_opsctl(
        "run", "leak", "--env", "test", "--diff", "-e", f"api_token={CLI_SECRET_VALUE}", env=home_env(opsctl_home)
    )
    assert proc.returncode == 0, proc.stderr
    # The play really used both secrets ...
    written = (opsctl_home / "markers" / "node1-secret.txt").read_text()
    assert VAULT_SECRET_VALUE in written and CLI_SECRET_VALUE in written
    # ... and neither appears anywhere in the archive, in opsctl's output, or in leftover run dirs.
    archive_text = all_text_under(opsctl_home / "var")
    for secret in (VAULT_SECRET_VALUE, CLI_SECRET_VALUE):
        assert secret not in archive_text
        assert secret not in proc.stdout + proc.stderr
    rec = latest(opsctl_home)
    assert rec["extra_vars"]["api_token"] != CLI_SECRET_VALUE
    assert "api_token" in rec["redaction"]["keys"]
    assert rec["redaction"]["values_masked"] > 0
    stdout = Archive(opsctl_home / "var" / "archive").stdout(rec["id"])
    assert "vault says ********" in stdout


def test_structured_extra_vars_are_masked_in_the_record(opsctl_home: Path) -> None:
    code, out, err = invoke(
        "run",
        "ok",
        "--env",
        "test",
        "-e",
        'x={"password":"P3q","user":"app"}',
        "-e",
        'dsns=["postgres://u:Dsn-Pass-1@h/db"]',
        "-e",
        'targets=["postgres://u:Url-Pass-2@h/db"]',
        "-e",
        "db_pw=ab",
    )
    assert code == 0, out + err
    rec = latest(opsctl_home)
    assert json.loads(rec["extra_vars"]["x"]) == {"password": "********", "user": "app"}
    assert rec["extra_vars"]["dsns"] == rec["extra_vars"]["db_pw"] == "********"
    assert json.loads(rec["extra_vars"]["targets"]) == ["postgres://u:********@h/db"]
    assert sorted(rec["redaction"]["keys"]) == ["db_pw", "dsns", "x.password"]
    text = all_text_under(opsctl_home / "var")
    for secret in ("P3q", "Dsn-Pass-1", "Url-Pass-2"):
        assert secret not in text


def test_bad_extra_var_is_not_repeated_in_the_error(opsctl_home: Path) -> None:
    code, out, err = invoke("run", "ok", "--env", "test", "-e", "ok=1", "-e", "Hunter2-Forgot-The-Key")
    assert code == 2
    assert "-e argument 2: expected key=value" in err
    rec = latest(opsctl_home)
    assert rec["status"] == "refused"
    assert "Hunter2" not in out + err + json.dumps(rec)


def test_control_socket_dir_is_made_private_and_passed_to_ansible(
    opsctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(opsctl_home / "operator"))
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", "~/sockets/cp")
    code, out, err = invoke(
        "run", "change", "--env", "test", "-e", "marker_value={{ lookup('env', 'ANSIBLE_SSH_CONTROL_PATH_DIR') }}"
    )
    assert code == 0, out + err
    cp = opsctl_home / "operator" / "sockets" / "cp"
    assert cp.is_dir() and (cp.stat().st_mode & 0o777) == 0o700
    # ansible-playbook got the directory opsctl checked (expanded), not the raw setting
    assert (opsctl_home / "markers" / "node1.txt").read_text() == f"marker {cp}\n"


def test_shared_control_socket_dir_is_refused(opsctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cp = opsctl_home / "shared-cp"
    cp.mkdir()
    os.chmod(cp, 0o1777)  # like /tmp: anyone could have made it, or replace a socket in it
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(cp))
    code, out, err = invoke("run", "ok", "--env", "test")
    assert code == 1
    assert f"opsctl: error: {cp} is writable by other users (mode 1777)" in err and "Traceback" not in out + err
    rec = latest(opsctl_home)
    assert rec["status"] == "refused" and "writable by other users" in rec["error"]
    assert rec["hosts"] == {}


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def _started_sleeping(home: Path) -> bool:
    pending = home / "var" / "archive" / ".pending"
    return any("Sleep for a long time" in p.read_text(errors="replace") for p in pending.glob("*/events.jsonl"))


def _playbook_pids(home: Path) -> list[int]:
    """ansible-playbook processes (main and workers) running a playbook of ``home``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if "ansible-playbook" in cmd and str(home) in cmd and state != "Z":
            pids.append(int(proc.name))
    return pids


def _spawn(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, **home_env(home))
    return subprocess.Popen(
        opsctl_cmd(*args), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_lock_refuses_overlap_then_sigint_cancels(opsctl_home: Path) -> None:
    slow = _spawn(opsctl_home, "run", "slow", "--env", "test", "--limit", "node1")
    try:
        _wait_for(lambda: _started_sleeping(opsctl_home))
        holder = only(list((opsctl_home / "var" / "locks" / "test").glob("*.json"))).stem
        # Overlapping hosts: refused, naming the holder.
        code, _, err = invoke("run", "ok", "--env", "test")
        assert code == 1
        assert holder in err and "node1" in err
        refused = latest(opsctl_home)
        assert refused["status"] == "refused" and holder in refused["error"]
        # Disjoint hosts: allowed while the slow run holds node1.
        assert invoke("run", "ok", "--env", "test", "--limit", "node2")[0] == 0
        slow.send_signal(signal.SIGINT)
        slow.communicate(timeout=60)
    finally:
        if slow.poll() is None:
            slow.kill()
    assert slow.returncode == 130
    # Cancel stops ansible-playbook and its workers, not just opsctl.
    _wait_for(lambda: not _playbook_pids(opsctl_home), timeout=20)
    rec = next(r for r in records(opsctl_home) if r["id"] == holder)
    assert rec["status"] == "canceled"
    assert "SIGINT" in rec["error"]
    assert rec["targets"] == ["node1"]
    assert not list((opsctl_home / "var" / "locks" / "test").glob("*.json"))
    assert Archive(opsctl_home / "var" / "archive").verify().ok


def test_killed_opsctl_is_recorded_as_interrupted(opsctl_home: Path) -> None:
    slow = _spawn(opsctl_home, "run", "slow", "--env", "test")
    try:
        _wait_for(lambda: _started_sleeping(opsctl_home))
        slow.send_signal(signal.SIGKILL)
        slow.communicate(timeout=30)
    finally:
        if slow.poll() is None:
            slow.kill()
    # ansible-playbook survives its killed parent (ansible-runner spawns it ignoring SIGHUP) ...
    child = json.loads(only(list((opsctl_home / "var" / "archive" / ".pending").glob("*/child.json"))).read_text())
    assert child["pid"] in _playbook_pids(opsctl_home)
    # The next opsctl call finds the unfinished run and records it.
    code, out, _ = invoke("records", "list", "--json")
    assert code == 0, out
    rec = latest(opsctl_home)
    assert rec["operation"] == "slow" and rec["status"] == "interrupted"
    assert rec["targets"] == ["node1", "node2"]
    assert not (opsctl_home / "var" / "archive" / ".pending" / rec["id"]).exists()
    # ... and the recovery stopped it before recording the run.
    assert "orphaned ansible-playbook" in rec["error"]
    _wait_for(lambda: not _playbook_pids(opsctl_home), timeout=20)
    # The stale lock of the killed run does not block the next run, which also removes
    # the killed run's ansible-runner work dir (it held the unredacted extra vars file).
    assert invoke("run", "ok", "--env", "test")[0] == 0
    assert list((opsctl_home / "var" / "run").iterdir()) == []
    assert Archive(opsctl_home / "var" / "archive").verify().ok


def test_timeout_is_recorded(opsctl_home: Path) -> None:
    code, _, _ = invoke("run", "slow", "--env", "test", "--timeout", "3")
    assert code == 1
    rec = latest(opsctl_home)
    assert rec["status"] == "timeout" and "timed out after 3 s" in rec["error"]
    assert rec["duration_s"] < 30
    _wait_for(lambda: not _playbook_pids(opsctl_home), timeout=20)


def test_records_list_filters_by_incident(opsctl_home: Path) -> None:
    assert invoke("run", "ok", "--env", "test", "--incident", "INC-20261128-001")[0] == 0
    assert invoke("run", "ok", "--env", "test")[0] == 0
    code, out, _ = invoke("records", "list", "--incident", "INC-20261128-001", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 1 and rows[0]["operation"] == "ok"


def test_only_work_dirs_of_dead_runs_are_removed(opsctl_home: Path) -> None:
    from orchestrator.proc import process_identity

    run_root = opsctl_home / "var" / "run"
    live, dead = run_root / "run-live", run_root / "run-dead"
    for d in (live, dead):
        d.mkdir(parents=True)
    pid, start = process_identity()  # this test process: alive, like a concurrent opsctl
    (live / "owner.json").write_text(json.dumps({"pid": pid, "pid_start": start}))
    (dead / "owner.json").write_text(json.dumps({"pid": pid, "pid_start": "not-its-start-time"}))
    assert invoke("run", "ok", "--env", "test")[0] == 0
    assert live.is_dir(), "a concurrent run's work dir must survive"
    assert not dead.exists()


@pytest.mark.parametrize("command", [["ops"], ["records", "list"], ["incident", "list"]])
def test_every_command_removes_work_dirs_of_dead_runs(opsctl_home: Path, command: list[str]) -> None:
    """A killed opsctl's work dir (its extra vars in plain text) goes at the next opsctl command,
    whatever it is; a live run's and one still being created stay."""
    from orchestrator.proc import process_identity

    gone = subprocess.Popen(["sleep", "60"])
    dead_pid, dead_start = process_identity(gone.pid)
    gone.kill()
    gone.wait()
    run_root = opsctl_home / "var" / "run"
    dead, live, new = run_root / "run-dead-x1", run_root / "run-live-x2", run_root / "run-new-x3"
    for d in (dead, live, new):
        (d / "env").mkdir(parents=True)
        (d / "env" / "extravars").write_text('{"db_password": "Plain-Text-Secret"}')
    (dead / "owner.json").write_text(json.dumps({"pid": dead_pid, "pid_start": dead_start}))
    pid, start = process_identity()
    (live / "owner.json").write_text(json.dumps({"pid": pid, "pid_start": start}))
    code, out, err = invoke(*command)
    assert code == 0, out + err
    assert not dead.exists()
    assert live.is_dir() and new.is_dir()


def test_pty_close_delay_is_short_and_exit_status_kept() -> None:
    """ptyprocess sleeps 0.1 s on close by default (set per instance, so a class attribute
    does not change it); opsctl shortens it on each spawn, without losing the exit status."""
    import pexpect

    from orchestrator.runner import PTY_CLOSE_DELAY, _shorten_pty_close_delay

    _shorten_pty_close_delay()
    _shorten_pty_close_delay()  # idempotent: wraps once
    child = pexpect.spawn("sh", ["-c", "echo done; exit 3"], encoding="utf-8")
    assert child.ptyproc.delayafterclose == PTY_CLOSE_DELAY
    while child.isalive():  # as ansible-runner does: close only once the child is reaped
        child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=1)
    child.expect(pexpect.EOF, timeout=5)
    child.close()
    # the delay itself is what is asserted (no wall-clock limit: speed is measured in bench/)
    assert child.ptyproc.delayafterclose == PTY_CLOSE_DELAY < 0.1
    assert child.exitstatus == 3
