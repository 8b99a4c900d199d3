"""The hosts an operation's run targets: its playbook's host patterns in the environment's
inventory, after ``--limit`` (for the lock, the leases and the record, before the run starts).

Ansible's own inventory code resolves them; importing and running it costs about 0.4 s on a
2-core controller, a fixed cost of every run. The answer depends only on the inventory's
files, the patterns and the limit, so it is kept in ``var/cache/targets/`` under a key made
of all of these (every file's path and content, the ansible-core version): any change to the
inventory is a different key. Inventories that Ansible computes (an inventory plugin's
configuration, an executable script) and limits read from a file (``@file``) are never
cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .errors import BadInput
from .operations import Environment, Operation, yaml_problem
from .textclean import clean_text

#: Bumped when what is cached changes shape.
_CACHE_VERSION = "1"
#: A line that makes an inventory file a plugin's configuration (dynamic: never cached).
_PLUGIN_MARK = b"plugin:"


def resolve_targets(op: Operation, env: Environment, limit: str | None) -> list[str]:
    """The hosts the playbook's plays would run on, after ``--limit``."""
    key = _cache_key(op, env, limit)
    path = paths.var_dir() / "cache" / "targets" / f"{key}.json" if key else None
    if path is not None:
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(cached, list) and cached and all(isinstance(h, str) for h in cached):
                return cached
        except (OSError, ValueError):
            pass
    found = _resolve(op, env, limit)
    if path is not None:
        _store(path, found)
    return found


def _cache_key(op: Operation, env: Environment, limit: str | None) -> str | None:
    """A digest of everything the answer depends on; None when it cannot be cached."""
    if limit and "@" in limit:
        return None
    try:
        from ansible.release import __version__ as ansible_version
    except ImportError:  # pragma: no cover - ansible-core is a dependency
        return None
    digest = hashlib.sha256()
    for part in (_CACHE_VERSION, ansible_version, str(env.inventory.resolve()), limit or ""):
        digest.update(part.encode() + b"\0")
    try:
        digest.update(op.playbook_path().read_bytes() + b"\0")
        for file in _inventory_files(env.inventory):
            data = file.read_bytes()
            if os.access(file, os.X_OK) or any(line.lstrip().startswith(_PLUGIN_MARK) for line in data.splitlines()):
                return None
            digest.update(str(file.relative_to(env.inventory)).encode() + b"\0" + data + b"\0")
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


def _inventory_files(inventory: Path) -> list[Path]:
    if inventory.is_file():
        return [inventory]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(inventory, followlinks=True):
        dirnames.sort()
        found.extend(Path(dirpath) / name for name in sorted(filenames))
    return found


def _store(path: Path, hosts: list[Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(hosts), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: the next run resolves again


def _resolve(op: Operation, env: Environment, limit: str | None) -> list[str]:
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    pb = op.playbook_path()
    if not pb.is_file():
        raise BadInput(f"operation {op.name!r}: playbook {pb} is missing")
    try:
        plays = yaml.safe_load(pb.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as exc:
        raise BadInput(f"{pb}: {yaml_problem(exc)}") from exc
    patterns: list[str] = []
    for play in plays if isinstance(plays, list) else []:
        if isinstance(play, dict) and "hosts" in play:
            hosts = play["hosts"]
            patterns.extend(hosts if isinstance(hosts, list) else [str(hosts)])
    if not patterns:
        patterns = ["all"]
    from ansible.errors import AnsibleError

    found: set[str] = set()
    try:
        inventory = InventoryManager(loader=DataLoader(), sources=[str(env.inventory)])
        if limit:
            inventory.subset(limit)
        for pattern in patterns:
            if "{{" in pattern:  # templated pattern: be conservative
                pattern = "all"
            found.update(h.name for h in inventory.get_hosts(pattern))
    except AnsibleError as exc:  # a bad pattern (e.g. an invalid ~regex) is bad input, not a traceback
        raise BadInput(
            f"--limit {limit!r}: {clean_text(str(exc.message))}"
            if limit
            else f"inventory {env.name!r}: {clean_text(str(exc.message))}"
        ) from exc
    if not found:
        raise BadInput(
            f"no host of environment {env.name!r} matches {'limit ' + repr(limit) if limit else 'the playbook'}"
        )
    return sorted(found)
