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
