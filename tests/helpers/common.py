"""The repository, the venv, running ``opsctl``, small assertions."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
#: Where ``ansible_collections.envcredit.ops`` is found (a link to the repository).
COLLECTIONS = REPO / "collections"


def load_source(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` (a module, a filter plugin, a tool the roles copy to the hosts)
    imported as ``name``; what it imports from this collection
    (``ansible_collections.envcredit.ops...``) is found as Ansible finds it."""
    if str(COLLECTIONS) not in sys.path:
        sys.path.append(str(COLLECTIONS))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def opsctl_cmd(*args: str) -> list[str]:
    return [str(VENV_BIN / "opsctl"), *args]


def run_opsctl(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        opsctl_cmd(*args),
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def all_text_under(path: Path) -> str:
    """Every byte under ``path`` decoded leniently (for leak checks), including the SQLite index."""
    chunks: list[str] = []
    for p in sorted(path.rglob("*")):
        if p.is_file():
            chunks.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(chunks)


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def ssh_keygen(path: Path, comment: str | None = None) -> Path:
    """A new passphrase-less ed25519 key pair at ``path`` (and ``path``.pub), made by ssh-keygen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", *(["-C", comment] if comment else []), "-f", str(path)],
        check=True,
    )
    return path


def allowed_signers_line(principal: str, key: Path) -> str:
    """The allowed_signers line that lets ``principal`` sign change records with ``key``."""
    from orchestrator.signing import NAMESPACE

    return f'{principal} namespaces="{NAMESPACE}" {key.with_suffix(".pub").read_text(encoding="utf-8").strip()}\n'
