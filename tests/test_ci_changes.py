"""orchestrator.changes: changed files of a real git history -> affected operations."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path, PurePosixPath

import pytest

from orchestrator.changes import _roles_using_plugin, affected_operations, changed_files, playbook_roles
from orchestrator.errors import BadInput
from orchestrator.operations import load_catalog

REPO_ROOT = Path(__file__).resolve().parent.parent

CATALOG = """\
operations:
  ping: {playbook: ping.yml, description: p, read_only: true}
  inspect: {playbook: inspect.yml, description: i, read_only: true}
  backup: {playbook: backup.yml, description: b}
  deploy: {playbook: deploy.yml, description: d}
  site: {playbook: site.yml, description: s}
"""

FILES = {
    "playbooks/ping.yml": """\
        - name: Ping
          hosts: all
          tasks:
            - name: Ping
              ansible.builtin.ping:
        """,
    "playbooks/inspect.yml": """\
        - name: Inspect
          hosts: all
          roles:
            - role: inspect
        """,
    "playbooks/backup.yml": """\
        - name: Backup
          hosts: db
          roles:
            - db_backup
        """,
    "playbooks/deploy.yml": """\
        - name: Deploy
          hosts: app
          tasks:
            - name: Group
              block:
                - name: Deploy the app
                  ansible.builtin.include_role:
                    name: app_deploy
                    tasks_from: deploy
        """,
    "playbooks/site.yml": """\
        - name: Site
          ansible.builtin.import_playbook: deploy.yml
        """,
    "roles/inspect/tasks/main.yml": "- name: Probe\n  ansible.builtin.ping:\n",
    "roles/inspect/README.md": "inspect\n",
    "roles/db_backup/tasks/main.yml": "- name: Dump\n  ansible.builtin.ping:\n",
    "roles/db_backup/meta/main.yml": "dependencies:\n  - role: common_db\n",
    "roles/common_db/tasks/main.yml": "- name: Common\n  ansible.builtin.ping:\n",
    "roles/app_deploy/tasks/deploy.yml": """\
        - name: Web
          ansible.builtin.import_role:
            name: web_frontend
        """,
    "roles/web_frontend/tasks/main.yml": "- name: Web\n  ansible.builtin.ping:\n",
    "inventories/staging/hosts.yml": "all: {}\n",
    "inventories/staging/group_vars/all/main.yml": "web_frontend_port: 8080\nunused_note: x\n",
    "roles/web_frontend/defaults/main.yml": "web_frontend_port: 80\n",
    "roles/web_frontend/templates/site.conf.j2": "listen {{ web_frontend_port }};\n",
    "inventories/production/hosts.yml": "all: {}\n",
    "orchestrator/catalog.yml": CATALOG,
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def write(repo: Path, rel: str, text: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    for rel, text in FILES.items():
        write(repo, rel, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    return repo


def commit_change(repo: Path, *rels: str) -> list[str]:
    for rel in rels:
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("# changed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return changed_files(repo, "main")


def ops(repo: Path, files: list[str], env: str | None = "staging") -> list[str]:
    catalog = load_catalog(repo / "orchestrator" / "catalog.yml")
    return [i.operation for i in affected_operations(files, catalog, repo, env)]


def test_role_change_reaches_playbooks_and_importers(repo: Path) -> None:
    files = commit_change(repo, "roles/web_frontend/tasks/main.yml")
    assert files == ["roles/web_frontend/tasks/main.yml"]
    # web_frontend <- app_deploy (import_role in its tasks) <- deploy.yml (include_role in a block)
    # <- site.yml (import_playbook)
    assert ops(repo, files) == ["deploy", "site"]


def test_role_dependency_in_meta(repo: Path) -> None:
    assert ops(repo, commit_change(repo, "roles/common_db/tasks/main.yml")) == ["backup"]


def test_playbook_change(repo: Path) -> None:
    assert ops(repo, commit_change(repo, "playbooks/ping.yml")) == ["ping"]
    assert ops(repo, ["playbooks/deploy.yml"]) == ["deploy", "site"]


def test_inert_role_files_and_orchestrator(repo: Path) -> None:
    files = commit_change(
        repo,
        "roles/inspect/README.md",
        "orchestrator/catalog.yml",
        "docs/x.md",
        "roles/inspect/molecule/default/converge.yml",
    )
    assert len(files) == 4
    assert ops(repo, files) == []


def test_inventory_change_is_read_only_ops_of_that_env(repo: Path) -> None:
    files = commit_change(repo, "inventories/staging/hosts.yml")
    assert ops(repo, files, "staging") == ["ping", "inspect"]
    assert ops(repo, files, "production") == []
    assert ops(repo, ["ansible.cfg"], "production") == ["ping", "inspect"]


def _set_vars(repo: Path, text: str, rel: str = "inventories/staging/group_vars/all/main.yml") -> list[str]:
    write(repo, rel, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "vars")
    return changed_files(repo, "main")


def ops_since(repo: Path, files: list[str], env: str = "staging") -> list[str]:
    catalog = load_catalog(repo / "orchestrator" / "catalog.yml")
    return [i.operation for i in affected_operations(files, catalog, repo, env, base="main")]


def test_group_vars_change_applies_the_operations_its_variables_feed(repo: Path) -> None:
    files = _set_vars(repo, "web_frontend_port: 8443\nunused_note: x\n")
    # read-only checks, plus the convergent operations whose roles use web_frontend_port
    assert ops_since(repo, files) == ["ping", "inspect", "deploy", "site"]
    catalog = load_catalog(repo / "orchestrator" / "catalog.yml")
    deploy = {i.operation: i for i in affected_operations(files, catalog, repo, "staging", base="main")}["deploy"]
    assert any("sets web_frontend_port, used by role web_frontend" in r for r in deploy.reasons), deploy.reasons
    assert ops_since(repo, files, "production") == []  # another environment's variables


def test_group_vars_change_that_no_role_reads_stays_read_only(repo: Path) -> None:
    files = _set_vars(repo, "web_frontend_port: 8080\nunused_note: changed\n")
    assert ops_since(repo, files) == ["ping", "inspect"]
    files = _set_vars(repo, "# a comment\nweb_frontend_port: 8080\nunused_note: changed\n")
    assert ops_since(repo, files) == ["ping", "inspect"]  # nothing a role uses has another value
    # a removed variable counts as changed (the role falls back to its default)
    files = _set_vars(repo, "unused_note: x\n")
    assert ops_since(repo, files) == ["ping", "inspect", "deploy", "site"]


def test_encrypted_vars_file_is_a_read_only_change(repo: Path) -> None:
    files = _set_vars(repo, "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n", "inventories/staging/group_vars/all/vault.yml")
    assert ops_since(repo, files) == ["ping", "inspect"]


def test_reasons_and_merge_base(repo: Path) -> None:
    commit_change(repo, "roles/inspect/tasks/main.yml")
    # main moves on after the branch point: BASE...HEAD ignores main's own changes
    git(repo, "checkout", "-q", "main")
    commit_change(repo, "playbooks/backup.yml")
    git(repo, "checkout", "-q", "feature")
    files = changed_files(repo, "main")
    assert files == ["roles/inspect/tasks/main.yml"]
    catalog = load_catalog(repo / "orchestrator" / "catalog.yml")
    (impact,) = affected_operations(files, catalog, repo, "staging")
    assert impact.to_dict() == {
        "operation": "inspect",
        "read_only": True,
        "reasons": ["roles/inspect/tasks/main.yml: role inspect used by playbooks/inspect.yml"],
    }


def test_bad_base_is_bad_input(repo: Path) -> None:
    with pytest.raises(BadInput):
        changed_files(repo, "no-such-ref")


def test_real_repository_playbooks() -> None:
    """The parser reads this repository's own playbooks."""
    assert "inspect" in playbook_roles(REPO_ROOT / "playbooks" / "inspect.yml")
    catalog = load_catalog(REPO_ROOT / "orchestrator" / "catalog.yml")
    names = [i.operation for i in affected_operations(["roles/inspect/tasks/main.yml"], catalog, REPO_ROOT, "lab")]
    assert "inspect" in names
    assert [i.operation for i in affected_operations(["orchestrator/cli.py"], catalog, REPO_ROOT, "lab")] == []


def test_collection_plugins_reach_the_roles_that_use_them() -> None:
    """plugins/modules/<m>.py: the roles calling envcredit.ops.<m>; plugins/module_utils/ code
    the roles copy to the hosts: those roles; either way their operations."""
    catalog = load_catalog(REPO_ROOT / "orchestrator" / "catalog.yml")

    def names(path: str) -> list[str]:
        return [i.operation for i in affected_operations([path], catalog, REPO_ROOT, "lab")]

    store = names("plugins/modules/db_backup_store.py")  # db_backup and db_restore
    assert {"backup", "backup-verify", "restore"} <= set(store)
    assert "ping" not in store
    common = names("plugins/module_utils/envcredit_dbcommon.py")  # db_backup and db_transfer
    assert {"backup", "export", "import"} <= set(common)
    assert "deploy" in names("plugins/modules/envcredit_release.py")
    # module_utils code the modules import: the operations of the roles calling those modules
    # (db_backup_store: backup, restore; inspect_backups: inspect; monitoring_backup_metrics),
    # and role os_patch's filters import it: patch
    rules = names("plugins/module_utils/backup_store.py")
    assert {"backup", "backup-verify", "restore", "inspect", "monitoring", "patch"} <= set(rules), rules
    assert "ping" not in rules
    # by role: the modules' callers and the role whose filter imports it
    assert {"db_backup", "db_restore", "inspect", "monitoring", "os_patch"} <= _roles_using_plugin(
        REPO_ROOT / "roles", PurePosixPath("plugins/module_utils/backup_store.py")
    )
