"""Shared fixtures.

``opsctl_home`` builds a small, real repository layout in a temporary directory:
an inventory ``test`` of two local-connection hosts (with a vault-encrypted
group_vars file), a ``production`` inventory (ticket pattern and standard changes
in its policy), playbooks that succeed, change files, fail, sleep and print
secrets, and a catalog naming them. Runs against it are real ansible-runner /
ansible-playbook runs on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.vault import VaultLib, VaultSecret
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# Property-based tests (tests/test_prop_*.py): derandomized, so every run (CI included) tries the
# same examples and a failure is reproduced by running the test again; no example database (failing
# examples are not saved: derandomized runs find them again; Hypothesis still keeps caches in
# .hypothesis/, which git ignores through the .gitignore Hypothesis writes there); no per-example
# deadline (a busy 2-core machine must not turn slowness into a failure). HYPOTHESIS_PROFILE=explore
# searches afresh with random seeds (each test keeps its own max_examples), for new counterexamples.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Modules that change the lab for good (hardening) run after every other test.
RUN_LAST = ("test_baseline_lab_apply.py",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in RUN_LAST)  # stable: keeps the order otherwise


VAULT_PASSWORD = "test-vault-pass-8c1d"
VAULT_SECRET_VALUE = "Vaulted-Secret-7f3a9b2e"
CLI_SECRET_VALUE = "Cli-Secret-41d0c6aa"

CATALOG = """\
operations:
  ok:
    playbook: ok.yml
    description: Succeeds and reports outputs
    risk: low
    read_only: true
    outputs: [probe]
    # the redaction tests send it keys of every shape; ansible_* and _* stay refused
    inputs: ["*"]
  change:
    playbook: change.yml
    description: Writes a file (changes something)
    risk: medium
    inputs:
      - marker_value
      - {name: change_note, secret: true}
      - {name: change_query, needs_ticket: true}
  fail:
    playbook: fail.yml
    description: Fails on purpose
    risk: low
  slow:
    playbook: slow.yml
    description: Sleeps, to be canceled or killed
    risk: low
    read_only: true
  leak:
    playbook: leak.yml
    description: Prints secrets, to prove they are masked
    risk: low
    inputs: [api_token]
  danger:
    playbook: change.yml
    description: High risk everywhere
    risk: high
    inputs: [marker_value]
  needs:
    playbook: ok.yml
    description: Requires a backup id
    risk: low
    requires: [backup_id]
  ondemand:
    playbook: ondemand.yml
    description: Changes something, only when asked for (CI skips it unless named)
    risk: medium
    on_demand: true
    inputs: [marker_value]
  backup:
    playbook: backup.yml
    description: Backup-like (changes something, on demand); a standard change in production
    risk: low
    on_demand: true
"""

#: The test `production` policy: tickets of the production form, pre-approved standard changes
#: (as inventories/production/.opsctl.yml has them for the scheduled operations).
PRODUCTION_POLICY = """\
requires_ticket: true
ticket_pattern: '^CHG-[0-9]+(-[0-9]+)*$'
standard_changes:
  backup: STD-BACKUP-2026
  ok: STD-PROBE-2026
vault_password_file: ../../vault-password
"""

PLAYBOOKS = {
    "ok.yml": """\
        - name: Succeed
          hosts: all
          gather_facts: false
          tasks:
            - name: Report a probe value
              ansible.builtin.set_stats:
                data:
                  probe: "{{ {inventory_hostname: {'alive': true}} }}"
                per_host: false
                aggregate: true
        """,
    "change.yml": """\
        - name: Change a file
          hosts: all
          gather_facts: false
          tasks:
            - name: Write the marker file
              ansible.builtin.copy:
                dest: "{{ marker_dir }}/{{ inventory_hostname }}.txt"
                content: "marker {{ marker_value | default('1') }}\\n"
                mode: "0600"
        """,
    "fail.yml": """\
        - name: Fail
          hosts: all
          gather_facts: false
          tasks:
            - name: Fail on purpose
              ansible.builtin.fail:
                msg: deliberate failure for the test
        """,
    "slow.yml": """\
        - name: Sleep
          hosts: all
          gather_facts: false
          tasks:
            - name: Announce the sleep
              ansible.builtin.debug:
                msg: sleeping now
            - name: Sleep for a long time
              ansible.builtin.command: sleep 60
              changed_when: false
        """,
    "leak.yml": """\
        - name: Print secrets
          hosts: all
          gather_facts: false
          tasks:
            - name: Print the vaulted value
              ansible.builtin.debug:
                msg: "vault says {{ vault_test_secret }}"
            - name: Print the command-line secret
              ansible.builtin.debug:
                msg: "cli says {{ api_token }}"
            - name: Use the secret in a changed task with a diff
              ansible.builtin.copy:
                dest: "{{ marker_dir }}/{{ inventory_hostname }}-secret.txt"
                content: "{{ vault_test_secret }} {{ api_token }}\\n"
                mode: "0600"
            - name: Hide a result with no_log
              ansible.builtin.command: echo {{ vault_test_secret }}
              changed_when: false
              no_log: true
        """,
}
PLAYBOOKS["ondemand.yml"] = PLAYBOOKS["change.yml"]  # the same change, as an on-demand operation
PLAYBOOKS["backup.yml"] = PLAYBOOKS["change.yml"]  # a change, pre-approved as a standard change in production


def _hosts_yml(python: str) -> str:
    return textwrap.dedent(f"""\
        all:
          vars:
            ansible_connection: local
            ansible_python_interpreter: {python}
          children:
            app:
              hosts:
                node1: {{}}
                node2: {{}}
        """)


def build_home(root: Path) -> Path:
    (root / "playbooks").mkdir(parents=True)
    for name, body in PLAYBOOKS.items():
        (root / "playbooks" / name).write_text(textwrap.dedent(body), encoding="utf-8")
    (root / "catalog.yml").write_text(CATALOG, encoding="utf-8")
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    for env in ("test", "production"):
        inv = root / "inventories" / env
        (inv / "group_vars" / "all").mkdir(parents=True)
        (inv / "hosts.yml").write_text(_hosts_yml(sys.executable), encoding="utf-8")
        (inv / "group_vars" / "all" / "main.yml").write_text(
            f"marker_dir: {root / 'markers'}\n", encoding="utf-8")
        plaintext = f"vault_test_secret: {VAULT_SECRET_VALUE}\n".encode()
        (inv / "group_vars" / "all" / "vault.yml").write_bytes(vault.encrypt(plaintext))
        policy = PRODUCTION_POLICY if env == "production" else "vault_password_file: ../../vault-password\n"
        (inv / ".opsctl.yml").write_text(policy, encoding="utf-8")
    (root / "vault-password").write_text(VAULT_PASSWORD + "\n", encoding="utf-8")
    (root / "markers").mkdir()
    (root / "ansible.cfg").write_text("[defaults]\nforks = 5\nretry_files_enabled = False\n", encoding="utf-8")
    return root


@pytest.fixture
def opsctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = build_home(tmp_path / "home")
    env = home_env(home)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OPSCTL_VAULT_PASSWORD_FILE", raising=False)
    yield home


def home_env(home: Path) -> dict[str, str]:
    return {
        "OPSCTL_HOME": str(home),
        "OPSCTL_CATALOG": str(home / "catalog.yml"),
        "OPSCTL_ARCHIVE": str(home / "var" / "archive"),
        "OPSCTL_LOCKS": str(home / "var" / "locks"),
        # ssh control sockets: opsctl creates the directory; not in the tester's ~/.ansible
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "var" / "cp"),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def opsctl_cmd(*args: str) -> list[str]:
    return [str(VENV_BIN / "opsctl"), *args]


def run_opsctl(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(opsctl_cmd(*args), capture_output=True, text=True, env=full_env,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


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


LAB_HOSTS = ["lab-app1", "lab-app2", "lab-db1", "lab-db2", "lab-mon1", "lab-web1"]
LAB_VAULT_PASSWORD_FILE = REPO / "lab" / "lab-only-vault-password"


def lab_ansible_env(**extra: str) -> dict[str, str]:
    """The environment of an ad-hoc ansible command against the lab (the repository's config and vault key)."""
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                ANSIBLE_VAULT_PASSWORD_FILE=str(LAB_VAULT_PASSWORD_FILE), **extra)


def lab_run(op: str, *args: str, rc: int = 0, timeout: float = 600) -> dict[str, Any]:
    """``opsctl run OP --env lab ARGS --json``; the change record it prints. Fails the test unless it exits ``rc``."""
    proc = run_opsctl("run", op, "--env", "lab", *args, "--json", timeout=timeout)
    assert proc.returncode == rc, f"rc {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return dict(json.loads(proc.stdout))


def newest_record(archive: Path) -> dict[str, Any]:
    """The newest change record in ``archive`` (for runs whose output is not JSON)."""
    from orchestrator.archive import Archive

    arch = Archive(archive)
    return arch.get(arch.list()[0]["id"])


@pytest.fixture(scope="session")
def lab_ready() -> list[str]:
    """The running lab (started by `make lab`, which `make pytest` depends on).

    Fails, never skips, when the lab is down: a lab test that silently skips proves nothing.
    Returns the lab's base hosts (fleet hosts excluded).
    """
    key = REPO / "var" / "lab" / "ssh" / "id_ed25519"
    if not key.is_file():
        pytest.fail("the lab is not running: start it with `make lab`")
    # Names and tier ports first: when the hosts cannot reach each other, every lab
    # test fails with the one reason instead of each in its own way.
    check = subprocess.run([str(REPO / "lab" / "lab.sh"), "check"], capture_output=True, text=True,
                           timeout=120, cwd=REPO, check=False)
    if check.returncode != 0:
        pytest.fail(f"the lab's self-check fails:\n{check.stderr}")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", str(REPO / "inventories" / "lab"), "all:!fleet",
         "-m", "ansible.builtin.ping", "-o"],
        capture_output=True, text=True, timeout=180, cwd=REPO, check=False,
        env=lab_ansible_env(),
    )
    if proc.returncode != 0:
        pytest.fail(f"the lab does not answer (start it with `make lab`):\n{proc.stdout}\n{proc.stderr}")
    # The system's data set comes first: the seed owns the `envcredit` database (it loads
    # only into empty tables), so it must run before anything else (e.g. the application's
    # install) puts rows there. Idempotent: a seeded lab is left as it is.
    archive = tempfile.mkdtemp(prefix="opsctl-seed-archive-")
    seed = run_opsctl("run", "seed", "--env", "lab", "--reason", "test session", timeout=900,
                      env={"OPSCTL_ARCHIVE": archive, "OPSCTL_LOCKS": archive + "-locks"})
    if seed.returncode != 0:
        pytest.fail(f"seeding the lab databases failed:\n{seed.stdout[-3000:]}\n{seed.stderr[-3000:]}")
    return LAB_HOSTS


@pytest.fixture
def lab_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab_ready: list[str]) -> Path:
    """A fresh archive and lock directory for one lab test; the real repository and inventory."""
    archive = tmp_path / "archive"
    for key in ("OPSCTL_HOME", "OPSCTL_CATALOG", "OPSCTL_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(archive))
    monkeypatch.setenv("OPSCTL_LOCKS", str(tmp_path / "locks"))
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return archive


LAB_SSH_PORTS = {"lab-web1": 2221, "lab-app1": 2222, "lab-app2": 2223, "lab-db1": 2224, "lab-db2": 2225,
                 "lab-mon1": 2226}


@contextlib.contextmanager
def unreachable(*hosts: str) -> Iterator[None]:
    """Lab hosts that refuse SSH for a while (sshd stopped, its sessions ended, the
    controller's kept-open connections to them closed), started again afterwards.

    Operations accept no ``ansible_*`` extra var, so a test cannot point a host at a dead
    port with ``-e ansible_port=1``; this is the real thing instead."""
    env = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf")}
    try:
        for host in hosts:
            # '^sshd: ops': the sessions only, not this very shell (its command line holds the words)
            subprocess.run(["podman", "exec", host, "sh", "-c",
                            "systemctl stop ssh.socket ssh.service 2>/dev/null; pkill -f '^sshd: ops' || true"],
                           check=True, env=env, capture_output=True, timeout=60)
            for cp in (Path.home() / ".ansible" / "cp", Path("/tmp/envcredit-cp")):
                subprocess.run(["ssh", "-o", f"ControlPath={cp}/%C", "-p", str(LAB_SSH_PORTS[host]), "-O", "exit",
                                "ops@127.0.0.1"], capture_output=True, timeout=30, check=False)
        yield
    finally:
        for host in hosts:
            subprocess.run(["podman", "exec", host, "systemctl", "start", "ssh.service"],
                           check=True, env=env, capture_output=True, timeout=60)
