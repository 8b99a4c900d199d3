"""update-stack on the lab (issue 5): the patching role limited to a package filter, rolling
over the app hosts behind the deploy's health gate, then the web tier.

The lab's local repository offers envcredit-agent 1.1 (a security update: the stand-in for a
runtime library), envcredit-kernel-stub 1.1 (not in the filter) and envcredit-held (held).
Every test starts from and returns to the repository baseline (all at 1.0).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.lab import lab_run
from helpers.os_lab import pid1_start, restore_baseline, shell, versions
from test_app_lab import Client, app, artifacts, http_get  # noqa: F401  (app, artifacts: fixtures)

pytestmark = pytest.mark.lab

HOSTS = "lab-app1:lab-app2:lab-web1"
BROKEN_DROPIN = "/etc/systemd/system/envcredit.service.d/zz-test-broken-start.conf"


def service_started(hosts: str, unit: str) -> dict[str, str]:
    return {
        h: v.strip()
        for h, v in shell(
            hosts, f"systemctl show -p ActiveEnterTimestampMonotonic --value {unit}", become=False
        ).items()
    }


def backend_state(host: str) -> str:
    """lab-web1's nginx backend line for an app host ('... down;' while it is out)."""
    return shell("lab-web1", f"cat /etc/nginx/envcredit-backends/{host}.conf", become=False)["lab-web1"].strip()


@pytest.fixture
def stack(lab_ready: list[str], app: list[str]) -> Iterator[None]:
    assert http_get("/healthz")[0] == 200, "the app (installed by the app fixture) must be served"
    restore_baseline(HOSTS)
    yield
    shell(
        "lab-app1",
        f"rm -f {BROKEN_DROPIN} && systemctl daemon-reload && "
        "(systemctl is-active -q envcredit || systemctl restart envcredit)",
    )
    restore_baseline(HOSTS)
    if any("down" in backend_state(h) for h in ("lab-app1", "lab-app2")):
        lab_run("update-stack", "-e", "update_stack_packages=envcredit-agent")


def test_update_stack_upgrades_only_the_filter_rolling_without_a_failed_request(stack: None) -> None:
    boots = pid1_start(HOSTS)
    app_started = service_started("lab-app1:lab-app2", "envcredit")
    client = Client()
    client.start()
    try:
        rec = lab_run("update-stack", "-e", "update_stack_packages=envcredit-agent")
    finally:
        client.stop.set()
        client.join(30)
    assert rec["status"] == "successful"
    assert client.ok > 20 and client.failures == [], client.failures[:5]

    after = versions(HOSTS)
    for host in ("lab-app1", "lab-app2", "lab-web1"):
        assert after[host]["envcredit-agent"] == "1.1 install", (host, after[host])
        assert after[host]["envcredit-kernel-stub"] == "1.0 install", "outside the filter: not upgraded"
        assert after[host]["envcredit-held"] == "1.0 hold"
    assert pid1_start(HOSTS) == boots, "update-stack never reboots"

    restarted = service_started("lab-app1:lab-app2", "envcredit")
    assert all(restarted[h] != app_started[h] for h in app_started), "the app runs the upgraded runtime"
    patch = rec["outputs"]["patch"]
    assert patch["lab-app1"]["restarted"] == ["envcredit"] and patch["lab-web1"]["restarted"] == ["nginx"]
    assert patch["lab-app1"]["only"] == ["envcredit-agent"]
    upgraded = [p for p in patch["lab-app2"]["packages"] if p["upgraded"]]
    assert [(p["name"], p["before"], p["after"]) for p in upgraded] == [("envcredit-agent", "1.0", "1.1")]
    states = rec["outputs"]["update_stack"]
    assert {h: s["state"] for h, s in states.items()} == {h: "updated" for h in HOSTS.split(":")}
    assert all("down" not in backend_state(h) for h in ("lab-app1", "lab-app2"))

    # Nothing left to do: a second run changes no package and restarts nothing.
    again = lab_run("update-stack", "-e", "update_stack_packages=envcredit-agent")
    assert all(h["restarted"] == [] for h in again["outputs"]["patch"].values())
    assert service_started("lab-app1:lab-app2", "envcredit") == restarted


def test_failed_health_gate_stops_the_rollout_and_keeps_the_host_out(stack: None) -> None:
    # The application of lab-app1 will not start again after its packages change.
    shell(
        "lab-app1",
        f"mkdir -p {Path(BROKEN_DROPIN).parent} && "
        f"printf '[Service]\\nExecStartPre=/bin/false\\n' > {BROKEN_DROPIN} && systemctl daemon-reload",
    )
    client = Client()
    client.start()
    try:
        rec = lab_run("update-stack", "-e", "update_stack_packages=envcredit-agent", rc=1)
    finally:
        client.stop.set()
        client.join(30)
    assert rec["status"] == "failed"
    assert client.ok > 5 and client.failures == [], "lab-app2 served while lab-app1 was out"
    state = rec["outputs"]["update_stack"]["lab-app1"]
    assert state["state"] == "failed" and state["packages_changed"] is True and state["in_load_balancer"] is False
    assert "lab-app2" not in rec["outputs"]["update_stack"] and "lab-web1" not in rec["outputs"]["update_stack"]
    after = versions(HOSTS)
    assert after["lab-app1"]["envcredit-agent"] == "1.1 install"
    assert after["lab-app2"]["envcredit-agent"] == "1.0 install", "hosts after the failure are untouched"
    assert after["lab-web1"]["envcredit-agent"] == "1.0 install"
    assert "down" in backend_state("lab-app1") and "down" not in backend_state("lab-app2")
    assert http_get("/healthz")[0] == 200

    # Repaired, the same operation finishes the rollout and puts lab-app1 back.
    shell("lab-app1", f"rm -f {BROKEN_DROPIN} && systemctl daemon-reload && systemctl restart envcredit")
    rec = lab_run("update-stack", "-e", "update_stack_packages=envcredit-agent")
    assert {h: s["state"] for h, s in rec["outputs"]["update_stack"].items()} == {
        h: "updated" for h in HOSTS.split(":")
    }
    assert all(v["envcredit-agent"] == "1.1 install" for v in versions(HOSTS).values())
    assert "down" not in backend_state("lab-app1")
