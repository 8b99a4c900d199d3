"""Helpers of the OS maintenance lab tests (issue 4): ad-hoc commands and the local repository."""

from __future__ import annotations

import subprocess

from .common import REPO, VENV_BIN
from .lab import lab_ansible_env

ANSIBLE_ENV = lab_ansible_env()


def shell(hosts: str, command: str, become: bool = True) -> dict[str, str]:
    """Run ``command`` on ``hosts``; {host: stdout}. Fails the test on any error."""
    argv = [
        str(VENV_BIN / "ansible"),
        "-i",
        str(REPO / "inventories" / "lab"),
        hosts,
        "-m",
        "ansible.builtin.shell",
        "-a",
        command,
        "-o",
    ]
    if become:
        argv += ["-e", "ansible_become=true"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=REPO, env=ANSIBLE_ENV, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        host, sep, rest = line.partition(" | ")
        if sep and "(stdout)" in rest:
            out[host.strip()] = rest.split("(stdout)", 1)[1].strip().replace("\\n", "\n")
        elif sep:
            out.setdefault(host.strip(), "")
    return out


def restore_baseline(hosts: str) -> None:
    """The local repository on the hosts; envcredit-agent/-kernel-stub/-held at 1.0, held (idempotent)."""
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(REPO / "inventories" / "lab"),
            str(REPO / "lab" / "localrepo" / "prepare.yml"),
            "-l",
            hosts,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=ANSIBLE_ENV,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def versions(hosts: str) -> dict[str, dict[str, str]]:
    """{host: {package: 'version selection'}} of the envcredit packages."""
    out = shell(hosts, "dpkg-query -W -f '${Package} ${Version} ${db:Status-Want}\\n' 'envcredit-*'", become=False)
    result: dict[str, dict[str, str]] = {}
    for host, text in out.items():
        result[host] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3:
                result[host][parts[0]] = f"{parts[1]} {parts[2]}"
    return result


def pid1_start(hosts: str) -> dict[str, str]:
    """PID 1's start time per host: it changes when the container reboots."""
    return {h: v.strip() for h, v in shell(hosts, "cut -d' ' -f22 /proc/1/stat", become=False).items()}
