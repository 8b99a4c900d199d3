"""The lab itself, checked for real over SSH (needs `lab/lab.sh up`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import testinfra

REPO = Path(__file__).resolve().parents[2]
KNOWN_HOSTS = REPO / "var" / "lab" / "known_hosts"
KEY = REPO / "var" / "lab" / "ssh" / "id_ed25519"

HOSTS = {"lab-web1": 2221, "lab-app1": 2222, "lab-app2": 2223, "lab-db1": 2224, "lab-db2": 2225}
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
    keys = [
        line.split()[2]
        for line in KNOWN_HOSTS.read_text().splitlines()
        if " ssh-ed25519 " in line
    ]
    assert len(keys) == len(set(keys)) >= len(HOSTS)


@pytest.mark.parametrize("user", ["root", "ops"])
def test_only_key_login_of_ops(user: str) -> None:
    base = ["ssh", "-o", "BatchMode=yes", "-o", "ControlPath=none",
            "-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes",
            "-p", "2221"]
    with_key = subprocess.run([*base, "-i", str(KEY), f"{user}@127.0.0.1", "true"],
                              capture_output=True, check=False)
    assert with_key.returncode == (0 if user == "ops" else 255)
    no_key = subprocess.run([*base, "-o", "PubkeyAuthentication=no", f"{user}@127.0.0.1", "true"],
                            capture_output=True, check=False)
    assert no_key.returncode == 255


def test_web_port_published_on_loopback() -> None:
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:8080/"],
                         capture_output=True, text=True, check=False)
    assert out.stdout == "200"
