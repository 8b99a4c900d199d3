"""The lab itself, checked for real over SSH (needs `lab/lab.sh up`)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra

from helpers.common import REPO
from helpers.lab import PODMAN_ENV

KNOWN_HOSTS = REPO / "var" / "lab" / "known_hosts"
KEY = REPO / "var" / "lab" / "ssh" / "id_ed25519"

LAB_SH = REPO / "lab" / "lab.sh"
ADDRESSES = {
    "lab-web1": "10.89.77.11",
    "lab-app1": "10.89.77.12",
    "lab-app2": "10.89.77.13",
    "lab-db1": "10.89.77.14",
    "lab-db2": "10.89.77.15",
    "lab-mon1": "10.89.77.16",
    "lab-backup1": "10.89.77.17",
}
HOSTS = {
    "lab-web1": 2221,
    "lab-app1": 2222,
    "lab-app2": 2223,
    "lab-db1": 2224,
    "lab-db2": 2225,
    "lab-mon1": 2226,
    "lab-backup1": 2227,
}
SERVICES = {"lab-web1": "nginx", "lab-db1": "postgresql", "lab-db2": "mariadb"}

# lab_ready fails (never skips) when the lab is down.
pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab_ready")]


@pytest.fixture(scope="module")
def ssh_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same connection the inventory describes: key, strict known_hosts."""
    cfg = tmp_path_factory.mktemp("ssh") / "config"
    cfg.write_text(
        "".join(
            f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User ops\n"
            f"  IdentityFile {KEY}\n  IdentitiesOnly yes\n  BatchMode yes\n"
            f"  UserKnownHostsFile {KNOWN_HOSTS}\n  StrictHostKeyChecking yes\n"
            f"  HostKeyAlias [127.0.0.1]:{port}\n"
            for name, port in HOSTS.items()
        )
    )
    return cfg


@pytest.fixture(scope="module")
def host(ssh_config: Path):  # type: ignore[no-untyped-def]
    def get(name: str) -> testinfra.host.Host:
        return testinfra.get_host(f"ssh://{name}?ssh_config={ssh_config}")

    return get


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_systemd_running_and_ops_user(host, name: str) -> None:  # type: ignore[no-untyped-def]
    h = host(name)
    assert h.run("systemctl is-system-running").stdout.strip() == "running"
    assert h.user().name == "ops"
    assert h.user("ops").uid == 1000
    assert h.run("sudo -n true").rc == 0


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_lab_services(host, name: str) -> None:  # type: ignore[no-untyped-def]
    h = host(name)
    for svc in ("nginx", "postgresql", "mariadb"):
        enabled = SERVICES.get(name) == svc
        assert h.service(svc).is_enabled == enabled, svc
        assert h.service(svc).is_running == enabled, svc


def test_hosts_have_their_own_ssh_host_keys() -> None:
    keys = [line.split()[2] for line in KNOWN_HOSTS.read_text().splitlines() if " ssh-ed25519 " in line]
    assert len(keys) == len(set(keys)) >= len(HOSTS)


@pytest.mark.parametrize("user", ["root", "ops"])
def test_only_key_login_of_ops(user: str) -> None:
    base = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ControlPath=none",
        "-o",
        f"UserKnownHostsFile={KNOWN_HOSTS}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        "2221",
    ]
    with_key = subprocess.run([*base, "-i", str(KEY), f"{user}@127.0.0.1", "true"], capture_output=True, check=False)
    assert with_key.returncode == (0 if user == "ops" else 255)
    no_key = subprocess.run(
        [*base, "-o", "PubkeyAuthentication=no", f"{user}@127.0.0.1", "true"], capture_output=True, check=False
    )
    assert no_key.returncode == 255


def test_web_port_published_on_loopback() -> None:
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8080/"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.stdout == "200"


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=60, env=PODMAN_ENV, check=check)


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_every_host_resolves_every_other_to_its_lab_address(name: str) -> None:
    """Whatever podman's network backend (CNI without a DNS plugin resolves nothing)."""
    for other, address in ADDRESSES.items():
        out = podman("exec", name, "getent", "ahostsv4", other).stdout.split()
        assert out and out[0] == address, f"{name} resolves {other} to {out[:1]}, want {address}"


def test_the_lab_network_is_the_one_lab_sh_made() -> None:
    # the second lab (lab/lab2.sh) names its own network
    (net,) = json.loads(podman("network", "inspect", os.environ.get("LAB_NETWORK", "envcredit-lab")).stdout)
    labels = net.get("labels") or {}
    assert labels.get("io.envcredit.lab") == "1" and labels.get("io.envcredit.lab.netspec")
    subnets = [s.get("subnet") for s in net.get("subnets") or []]
    if not subnets:  # CNI's inspect output nests the ranges in the plugin configuration
        subnets = [r[0]["subnet"] for p in net.get("plugins", []) for r in p.get("ipam", {}).get("ranges", [])]
    assert subnets == ["10.89.77.0/24"]


@pytest.fixture
def hosts_file_without_db1() -> Iterator[None]:
    """lab-app2 loses its /etc/hosts entry of lab-db1 (restored afterwards)."""
    podman(
        "exec",
        "lab-app2",
        "sh",
        "-c",
        "cp /etc/hosts /root/hosts.saved && grep -v lab-db1 /root/hosts.saved > /etc/hosts",
    )
    try:
        yield
    finally:
        podman("exec", "lab-app2", "sh", "-c", "cat /root/hosts.saved > /etc/hosts && rm /root/hosts.saved")


def test_self_check_names_the_host_and_the_name_it_cannot_resolve(hosts_file_without_db1: None) -> None:
    proc = subprocess.run([str(LAB_SH), "check"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert "self-check FAILED" in proc.stderr
    assert "lab-app2 cannot resolve lab-db1" in proc.stderr
    assert "lab-app1 cannot resolve" not in proc.stderr  # only what is broken


def test_self_check_passes_and_counts_the_tier_connections() -> None:
    proc = subprocess.run([str(LAB_SH), "check"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"names resolve between all {len(HOSTS)} hosts" in proc.stderr
