"""The backup store as the CLI sees it: ``<store>/<env>/<host>/<backup id>/``.

Each backup directory holds ``manifest.json`` (written on the database host by
roles/db_backup/files/envcredit_dbtool.py) and ``status.json`` (written by the
db_backup_store module after the copy was checked, and by backup-verify).
Copies in progress (``*.partial``) are never listed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import paths
from .errors import BadInput, NotFound


def store_root() -> Path:
    """``OPSCTL_BACKUPS`` if set, else ``backups/`` of the data root (:func:`paths.data_dir`)."""
    env = os.environ.get("OPSCTL_BACKUPS")
    return Path(env).resolve() if env else paths.data_dir() / "backups"


@dataclass(frozen=True)
class Backup:
    env: str
    host: str
    backup_id: str
    path: Path
    manifest: dict[str, Any]
    status: dict[str, Any]

    @property
    def databases(self) -> list[str]:
        return [str(d.get("name")) for d in self.manifest.get("databases", [])]

    @property
    def started(self) -> datetime | None:
        try:
            return datetime.fromisoformat(str(self.manifest["started"]))
        except (KeyError, ValueError):
            return None

    @property
    def _mark(self) -> dict[str, Any]:
        """What backup-verify wrote (``{"ok": bool, "at", "record_id"}``); {} when it has not
        run (None) or status.json holds something else."""
        verified = self.status.get("verified")
        return verified if isinstance(verified, dict) else {}

    @property
    def verification(self) -> str:
        # the rules of plugins/module_utils/backup_store.py (tests/test_prop_backup_store.py)
        mark = self._mark
        if not mark:
            return "unverified"
        return "verified" if mark.get("ok") is True else "FAILED"

    def age_s(self, now: datetime | None = None) -> float | None:
        started = self.started
        if started is None:
            return None
        return ((now or datetime.now(UTC)) - started).total_seconds()

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        verified = self._mark
        return {
            "env": self.env,
            "host": self.host,
            "backup_id": self.backup_id,
            "path": str(self.path),
            "engine": self.manifest.get("engine"),
            "server_version": self.manifest.get("server_version"),
            "databases": self.databases,
            "total_bytes": self.manifest.get("total_bytes"),
            "started": self.manifest.get("started"),
            "ended": self.manifest.get("ended"),
            "age_s": self.age_s(now),
            "record_id": self.manifest.get("record_id"),
            "verification": self.verification,
            "verified_at": verified.get("at"),
            "verify_record_id": verified.get("record_id"),
            "files": self.manifest.get("files", []),
        }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_backups(
    root: Path | None = None, env: str | None = None, host: str | None = None, db: str | None = None
) -> list[Backup]:
    """Complete backups, newest first, filtered by environment, host and database."""
    root = root or store_root()
    if env is not None and (not env or "/" in env):
        raise BadInput(f"invalid environment {env!r}")
    out: list[Backup] = []
    if not root.is_dir():
        return out
    for env_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if env and env_dir.name != env:
            continue
        for host_dir in sorted(p for p in env_dir.iterdir() if p.is_dir()):
            if host and host_dir.name != host:
                continue
            for bdir in host_dir.iterdir():
                if not bdir.is_dir() or bdir.name.endswith(".partial"):
                    continue
                manifest = _read(bdir / "manifest.json")
                status = _read(bdir / "status.json")
                if manifest is None or status is None:
                    continue
                b = Backup(env_dir.name, host_dir.name, bdir.name, bdir, manifest, status)
                if db and db not in b.databases:
                    continue
                out.append(b)
    out.sort(key=lambda b: (str(b.manifest.get("started", "")), b.backup_id), reverse=True)
    return out


@dataclass(frozen=True)
class Repository:
    """The physical backups of a database host on the backup host as its newest backup run read
    them (written by role db_backup beside the host's logical backups in the store):
    ``pgbackrest.json`` (PostgreSQL, the pgBackRest repository) or ``mariadb-archive.json``
    (MariaDB, its physical backups and binary logs), both of the same shape."""

    env: str
    host: str
    state: dict[str, Any]
    tool: str = "pgBackRest"

    def kinds(self) -> dict[str, int]:
        """How many backups of each kind (full, diff, incr) the repository holds."""
        out = {"full": 0, "diff": 0, "incr": 0}
        for b in self.state.get("backups") or []:
            kind = str(b.get("type", ""))
            out[kind] = out.get(kind, 0) + 1
        return out

    def window(self) -> tuple[datetime | None, datetime | None]:
        """Earliest and latest restorable time as read: from the end of the oldest backup to the
        newest archived WAL (archiving goes on after it; a restore reads the window again)."""

        def moment(value: Any) -> datetime | None:
            try:
                return datetime.fromtimestamp(float(value), UTC)
            except (TypeError, ValueError, OverflowError):
                return None

        stops = [b.get("stop") for b in self.state.get("backups") or []]
        latest = max((m for m in (moment(v) for v in [*stops, self.state.get("last_archived")]) if m), default=None)
        return moment(self.state.get("earliest_restorable")), latest

    def to_dict(self) -> dict[str, Any]:
        earliest, latest = self.window()
        return {
            "env": self.env,
            "host": self.host,
            "tool": self.tool,
            "repo_host": self.state.get("repo_host"),
            "stanza": self.state.get("stanza"),
            "cipher": self.state.get("cipher"),
            "backups": self.kinds(),
            "earliest_restorable": earliest.isoformat() if earliest else None,
            "latest_restorable": latest.isoformat() if latest else None,
            "read_by_record": self.state.get("record_id"),
        }


def list_repositories(root: Path | None = None, env: str | None = None, host: str | None = None) -> list[Repository]:
    """The physical-backup states in the store (PHYSICAL_STATES), by environment and host."""
    root = root or store_root()
    if env is not None and (not env or "/" in env):
        raise BadInput(f"invalid environment {env!r}")
    out: list[Repository] = []
    paths = sorted(p for name in PHYSICAL_STATES for p in root.glob(f"*/*/{name}")) if root.is_dir() else []
    for path in paths:
        env_name, host_name = path.parent.parent.name, path.parent.name
        if (env and env_name != env) or (host and host_name != host):
            continue
        state = _read(path)
        if state is not None:
            out.append(Repository(env_name, host_name, state, PHYSICAL_STATES[path.name]))
    return out


#: State file in the store -> the tool it describes.
PHYSICAL_STATES = {"pgbackrest.json": "pgBackRest", "mariadb-archive.json": "mariadb-backup + binary logs"}


def get_backup(backup_id: str, root: Path | None = None) -> Backup:
    for b in list_backups(root):
        if b.backup_id == backup_id:
            return b
    raise NotFound(f"no backup {backup_id!r} in {root or store_root()}")


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}GB"
