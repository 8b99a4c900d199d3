"""The AWX execution environment: ansible-builder accepts it and it lists what the roles use."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BUILDER = Path(sys.executable).parent / "ansible-builder"


def test_ansible_builder_create(tmp_path: Path) -> None:
    ctx = tmp_path / "context"
    proc = subprocess.run(
        [str(BUILDER), "create", "-f", "execution-environment.yml", "-c", str(ctx)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (ctx / "Containerfile").read_text(encoding="utf-8")
    assert "ansible-galaxy collection install" in containerfile
    assert "ansible-core>=2.19.14,<2.20" in containerfile
    assert "ENV ANSIBLE_COLLECTIONS_PATH=/usr/share/ansible/collections" in containerfile
    galaxy = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    assert {c["name"] for c in galaxy["collections"]} >= {
        "community.general",
        "community.postgresql",
        "community.mysql",
        "ansible.posix",
    }
    assert "jmespath" in (ctx / "_build" / "requirements.txt").read_text(encoding="utf-8")
    assert "openssh-client" in (ctx / "_build" / "bindep.txt").read_text(encoding="utf-8")


def test_requirements_cover_the_collections_the_roles_use() -> None:
    listed = {c["name"] for c in yaml.safe_load((REPO / "requirements.yml").read_text(encoding="utf-8"))["collections"]}
    used: set[str] = set()
    fqcn = re.compile(r"^\s*-?\s*([a-z_]+\.[a-z_]+)\.[a-z_]+:\s*$", re.M)
    for path in [
        *REPO.glob("roles/*/tasks/*.yml"),
        *REPO.glob("roles/*/handlers/*.yml"),
        *REPO.glob("playbooks/*.yml"),
    ]:
        used.update(fqcn.findall(path.read_text(encoding="utf-8")))
    used -= {"ansible.builtin", "ansible.legacy"}
    used -= {"envcredit.ops"}  # this repository (galaxy.yml): its own modules, not a requirement
    assert used, "no collection module found: the pattern is wrong"
    assert used <= listed, f"collections used but not in requirements.yml: {sorted(used - listed)}"
