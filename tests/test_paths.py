"""Where things live, and the private directory of ssh's control sockets."""

from __future__ import annotations

import configparser
import os
import stat
from pathlib import Path

import pytest

from orchestrator import paths
from orchestrator.errors import UnsafeDirectory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_control_path_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ANSIBLE_SSH_CONTROL_PATH_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.control_path_dir() == tmp_path / ".ansible" / "cp"  # ansible.cfg's control_path_dir
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", "~/sockets")
    assert paths.control_path_dir() == tmp_path / "sockets"


def test_ansible_cfg_keeps_sockets_in_the_operators_home() -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(Path(__file__).resolve().parent.parent / "ansible.cfg", encoding="utf-8")
    assert cfg["ssh_connection"]["control_path_dir"] == "~/.ansible/cp"


def test_private_dir_is_created_0700(tmp_path: Path) -> None:
    target = tmp_path / "home" / ".ansible" / "cp"
    assert paths.ensure_private_dir(target) == target
    assert target.is_dir() and _mode(target) == 0o700
    assert paths.ensure_private_dir(target) == target  # idempotent


def test_private_dir_accepts_own_readable_dir(tmp_path: Path) -> None:
    target = tmp_path / "cp"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    assert paths.ensure_private_dir(target) == target
    assert _mode(target) == 0o755  # an operator's own choice is left alone


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
def test_private_dir_refuses_writable_by_others(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "cp"
    target.mkdir()
    os.chmod(target, mode)
    with pytest.raises(UnsafeDirectory, match=f"writable by other users .mode {mode:04o}.*chmod 700"):
        paths.ensure_private_dir(target)


def test_private_dir_refuses_other_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "cp"
    target.mkdir(mode=0o700)
    me = os.geteuid()
    monkeypatch.setattr(paths.os, "geteuid", lambda: me + 1)  # as seen by another user
    with pytest.raises(UnsafeDirectory, match=f"owned by uid {me}, not by you"):
        paths.ensure_private_dir(target)


def test_private_dir_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "cp"
    target.write_text("")
    with pytest.raises(UnsafeDirectory):
        paths.ensure_private_dir(target)


# -- one root for what runs leave on the controller (AWX keeps it on a persistent volume) --------

REPO = Path(__file__).resolve().parent.parent


def test_data_root_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from orchestrator import backups, releases

    monkeypatch.delenv("OPSCTL_DATA", raising=False)
    monkeypatch.delenv("OPSCTL_BACKUPS", raising=False)
    assert paths.data_dir() == paths.var_dir()
    monkeypatch.setenv("OPSCTL_DATA", str(tmp_path / "data"))
    assert paths.data_dir() == tmp_path / "data"
    assert backups.store_root() == tmp_path / "data" / "backups"
    assert releases.releases_dir() == tmp_path / "data" / "releases"


def test_every_controller_path_of_the_roles_is_under_the_data_root() -> None:
    """A role default (or playbook) that writes below the playbook's folder without the data
    root would write into AWX's throw-away project copy."""
    offenders = []
    for path in [*REPO.glob("roles/*/defaults/main.yml"), *REPO.glob("playbooks/*.yml")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "playbook_dir" in line and "/var" in line and "opsctl_data_root" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
    used = [p for p in REPO.glob("roles/*/defaults/main.yml") if "opsctl_data_root" in p.read_text(encoding="utf-8")]
    assert len(used) >= 8, used  # backups (3 roles), releases, exports, logs, diagnostics, monitoring


def test_opsctl_gives_the_data_root_to_the_playbook(
    opsctl_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import json

    from helpers.common import run_opsctl

    (opsctl_home / "playbooks" / "where.yml").write_text(
        "- name: Where the data goes\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Publish the data root\n      run_once: true\n      ansible.builtin.set_stats:\n"
        '        data: {where: "{{ opsctl_data_root }}"}\n',
        encoding="utf-8",
    )
    catalog = opsctl_home / "catalog.yml"
    catalog.write_text(
        catalog.read_text(encoding="utf-8") + "  where:\n    playbook: where.yml\n"
        "    description: Publishes the data root\n    risk: low\n    read_only: true\n"
        "    outputs: [where]\n",
        encoding="utf-8",
    )
    data = tmp_path / "persistent"
    proc = run_opsctl("run", "where", "--env", "test", "--json", env={"OPSCTL_DATA": str(data)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"]["where"] == str(data)
