"""Where things live: the repository root, the archive, locks, lab files, ssh control sockets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import UnsafeDirectory


def repo_root() -> Path:
    """The repository this orchestrator belongs to (``OPSCTL_HOME`` overrides)."""
    env = os.environ.get("OPSCTL_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    return repo_root() / "var"


def data_dir() -> Path:
    """What runs leave on the controller -- backups, releases, collected logs, diagnostics,
    exports -- under one root: ``OPSCTL_DATA`` if set, else ``var/`` of the repository. opsctl
    gives it to every playbook as ``opsctl_data_root`` (the roles' defaults write below it);
    in AWX the job templates set that variable to a persistent volume (docs/awx.md)."""
    env = os.environ.get("OPSCTL_DATA")
    if env:
        return Path(env).resolve()
    return var_dir()


def archive_dir() -> Path:
    """The change-record archive: ``OPSCTL_ARCHIVE`` if set, else ``var/archive``."""
    env = os.environ.get("OPSCTL_ARCHIVE")
    if env:
        return Path(env).resolve()
    return var_dir() / "archive"


def lock_dir() -> Path:
    env = os.environ.get("OPSCTL_LOCKS")
    if env:
        return Path(env).resolve()
    return var_dir() / "locks"


def inventories_dir() -> Path:
    return repo_root() / "inventories"


def playbooks_dir() -> Path:
    return repo_root() / "playbooks"


def control_path_dir() -> Path:
    """Where ssh keeps ansible's ControlPersist sockets: ``$ANSIBLE_SSH_CONTROL_PATH_DIR`` if
    set, else ``~/.ansible/cp`` (ansible.cfg's ``control_path_dir``)."""
    env = os.environ.get("ANSIBLE_SSH_CONTROL_PATH_DIR")
    return Path(env).expanduser() if env else Path.home() / ".ansible" / "cp"


def ensure_private_dir(path: Path) -> Path:
    """``path`` as a directory no other user can change, created with mode 0700 if missing.

    A socket in a directory someone else can write to can be replaced by theirs (ssh would
    then talk through their master connection). Raises :class:`UnsafeDirectory` when the
    directory is not a directory, is owned by another user, or is group or world writable.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise UnsafeDirectory(f"cannot create the private directory {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectory(
            f"{path} is owned by uid {info.st_uid}, not by you (uid {os.geteuid()}): "
            "another user could replace its ssh sockets; remove it or set "
            "ANSIBLE_SSH_CONTROL_PATH_DIR to a directory of yours"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(
            f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"another user could replace its ssh sockets; run chmod 700 {path}"
        )
    return path
