"""Where things live: the repository root, the archive, locks, lab files."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository this orchestrator belongs to (``OPSCTL_HOME`` overrides)."""
    env = os.environ.get("OPSCTL_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    return repo_root() / "var"


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
