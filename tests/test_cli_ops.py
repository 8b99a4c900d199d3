"""`opsctl ops`, the real catalog, and the lock's stale-holder handling."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import LockHeld
from orchestrator.lock import HostLock
from orchestrator.operations import load_catalog
from orchestrator.runner import parse_extra_vars

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
