"""The small, real repository layout of the ``opsctl_home`` fixture.

An inventory ``test`` of two local-connection hosts (with a vault-encrypted group_vars
file), a ``production`` inventory (ticket pattern and standard changes in its policy),
playbooks that succeed, change files, fail, sleep and print secrets, and a catalog naming them.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from ansible.parsing.vault import VaultLib, VaultSecret

from .common import VENV_BIN

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
    tags: [backup]
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
        (inv / "group_vars" / "all" / "main.yml").write_text(f"marker_dir: {root / 'markers'}\n", encoding="utf-8")
        plaintext = f"vault_test_secret: {VAULT_SECRET_VALUE}\n".encode()
        (inv / "group_vars" / "all" / "vault.yml").write_bytes(vault.encrypt(plaintext))
        policy = PRODUCTION_POLICY if env == "production" else "vault_password_file: ../../vault-password\n"
        (inv / ".opsctl.yml").write_text(policy, encoding="utf-8")
    (root / "vault-password").write_text(VAULT_PASSWORD + "\n", encoding="utf-8")
    (root / "markers").mkdir()
    (root / "ansible.cfg").write_text("[defaults]\nforks = 5\nretry_files_enabled = False\n", encoding="utf-8")
    return root


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
