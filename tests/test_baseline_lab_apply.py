"""The full baseline flow on the lab (issue 8): apply `baseline`, then prove nobody is
locked out and the system still works.

It hardens the lab hosts for good (sshd, PAM, firewall) and runs Lynis twice per host
(about 9 minutes on 2 cores), so it runs only when OPSCTL_BASELINE_LAB=1: `make test`
(which sets it) and `make test-baseline-lab`. tests/conftest.py orders it after every
other test of the session; `make lab-reset` returns to an unhardened lab. The lab hosts carry
lynis and `--cap-add NET_ADMIN` (so NET-01 acts). `make lab-reset` returns to an
unhardened lab.

After `opsctl run baseline --env lab`:
* SSH by key as `ops` still works; password and root logins are refused;
* the application (installed before: `make demo`, or the app tests in `make test`) is still
  served through nginx at http://127.0.0.1:8080/;
* the database accepts connections only from the app hosts (when nftables can act);
* a second run changes nothing (check mode: molecule's baseline scenario);
* every applicable, non-waived control passes (the evaluation `baseline-check` runs, at the
  end of the second run);
* the Lynis hardening index is printed before/after and rises (on lab-app1; on every host in
  `make test-nightly`, OPSCTL_LYNIS_ALL=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from helpers.common import REPO, run_opsctl

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        os.environ.get("OPSCTL_BASELINE_LAB") != "1",
        reason="hardens the lab for good and takes 10+ min: run `make test-baseline-lab`",
    ),
]

KEY = REPO / "var" / "lab" / "ssh" / "id_ed25519"
KNOWN = REPO / "var" / "lab" / "known_hosts"
PORTS = {
    "lab-web1": 2221,
    "lab-app1": 2222,
    "lab-app2": 2223,
    "lab-db1": 2224,
    "lab-db2": 2225,
    "lab-mon1": 2226,
    "lab-backup1": 2227,
}


def _run_json(*args: str) -> dict[str, Any]:
    proc = run_opsctl(*args, "--json", timeout=1200)
    assert proc.returncode == 0, proc.stderr + proc.stdout[-3000:]
    return json.loads(proc.stdout)


def _ssh(port: int, user: str, *extra: str, command: str = "id -un") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-p",
            str(port),
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            f"UserKnownHostsFile={KNOWN}",
            "-o",
            "StrictHostKeyChecking=yes",
            *extra,
            f"{user}@127.0.0.1",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _lab(host: str, command: str) -> subprocess.CompletedProcess[str]:
    return _ssh(PORTS[host], "ops", "-i", str(KEY), "-o", "IdentitiesOnly=yes", command=command)


# Lynis is a read-only audit of about 30 s of CPU per run and host, twice per host in an
# apply: on every lab host that was 7 of this test's 12 minutes. `make test` audits one host
# (the application tier: most services, most findings); `make test-nightly` audits them all.
LYNIS_ALL = os.environ.get("OPSCTL_LYNIS_ALL") == "1"
LYNIS_HOSTS = ("-e", "baseline_lynis_hosts=lab-app1") if not LYNIS_ALL else ()


def _lynis(rec: dict[str, Any], phase: str) -> dict[str, Any]:
    return {h: (r["lynis"].get(phase) or {}).get("hardening_index") for h, r in rec["outputs"]["baseline"].items()}


def test_baseline_apply_keeps_the_lab_working(lab_archive: Path, lab_ready: list[str], tmp_path: Path) -> None:
    # The first host alone, then the others together (a canary): the run still stops when the
    # first host cannot be logged in to afresh, and the lab's identical hosts do not each wait
    # for the one before (on a hardened lab 160 -> 109 s; on a fresh lab the hosts hardened
    # together share two cores and the test took about as long as one at a time).
    canary = tmp_path / "canary.yml"
    canary.write_text('baseline_serial: [1, "100%"]\n', encoding="utf-8")
    rec = _run_json(
        "run", "baseline", "--env", "lab", "--limit", "all:!fleet", "--yes", *LYNIS_HOSTS, "-e", f"@{canary}"
    )
    assert rec["status"] == "successful"
    assert sorted(rec["outputs"]["baseline"]) == lab_ready
    # Lynis is in the lab image: its hardening index, before and after, on each audited host
    audited = lab_ready if LYNIS_ALL else ["lab-app1"]
    lynis = {h: r["lynis"] for h, r in rec["outputs"]["baseline"].items()}
    assert all(lynis[h]["installed"] for h in audited), lynis
    for host in set(lab_ready) - set(audited):
        assert lynis[host] == {"installed": False, "message": "lynis not run on this host (baseline_lynis_hosts)"}
    before, after = _lynis(rec, "before"), _lynis(rec, "after")
    print(f"lynis hardening index before: {before}\nlynis hardening index after:  {after}")
    assert all(0 < before[h] < after[h] for h in audited), (before, after)

    for host, port in PORTS.items():
        ok = _ssh(port, "ops", "-i", str(KEY), "-o", "IdentitiesOnly=yes")
        assert ok.returncode == 0 and ok.stdout.strip() == "ops", (host, ok.stderr)
        root = _ssh(port, "root", "-i", str(KEY), "-o", "IdentitiesOnly=yes")
        assert root.returncode == 255 and "Permission denied" in root.stderr, (host, root.stderr)
        password = _ssh(
            port, "ops", "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"
        )
        assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr, (
            host,
            password.stderr,
        )

    # The system is installed (make test: by the app tests before this one; make test-nightly:
    # before it), so the flow proves the site and the database still answer after the hardening.
    assert _lab("lab-app1", "systemctl cat envcredit.service >/dev/null 2>&1").returncode == 0, (
        "the application is not installed on the lab: run `make demo` (or the app tests) first"
    )
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=10) as resp:
            assert resp.status == 200
    except urllib.error.HTTPError as exc:  # the maintenance page (503) would be a failure too
        pytest.fail(f"nginx answers {exc.code} after the baseline")

    # The physical backups cross the hardened boundary (baseline_ssh_peers): pgBackRest both
    # ways (the backup's `pgbackrest check` pushes WAL from lab-db1 to lab-backup1 as pgbackrest,
    # and the backup runs on lab-backup1 over SSH to lab-db1 as postgres); the MariaDB archive
    # from lab-db2 to lab-backup1 as dbarchive (physical backup, then the binary logs).
    with tempfile.TemporaryDirectory(prefix="envcredit-test-store-") as store:
        physical = _run_json(
            "run", "backup", "--env", "lab", "--limit", "lab-db1,lab-db2", "-e", f"db_backup_store_dir={store}/lab"
        )
    assert physical["status"] == "successful", physical.get("failures")
    assert physical["outputs"]["backup"]["lab-db1"]["pgbackrest"]["repo_host"] == "lab-backup1"
    assert physical["outputs"]["backup"]["lab-db2"]["mariadb_archive"]["backup_host"] == "lab-backup1"
    sshd = {
        # sshd -T prints one "allowgroups" line per group
        h: [
            ln.split()[1]
            for ln in _lab(h, "sudo -n /usr/sbin/sshd -T").stdout.splitlines()
            if ln.startswith("allowgroups ")
        ]
        for h in ("lab-db1", "lab-backup1")
    }
    assert sshd == {"lab-db1": ["ops", "postgres"], "lab-backup1": ["ops", "pgbackrest", "dbarchive"]}, sshd

    firewall = {
        h: {c["id"]: c for c in r["controls"]}["NET-01"]["status"] for h, r in rec["outputs"]["baseline"].items()
    }
    if firewall["lab-db1"] == "pass":
        probe = "timeout 5 bash -c 'exec 3<>/dev/tcp/lab-db1/5432' && echo open || echo closed"
        assert _lab("lab-app1", probe).stdout.strip() == "open"
        assert _lab("lab-web1", probe).stdout.strip() == "closed"
        probe = "timeout 5 bash -c 'exec 3<>/dev/tcp/lab-db2/3306' && echo open || echo closed"
        assert _lab("lab-app2", probe).stdout.strip() == "open"
        assert _lab("lab-web1", probe).stdout.strip() == "closed"
    else:
        print(f"NET-01 not applicable on the lab hosts ({firewall}): database access not tested")

    # Lynis (27 s a run per host here) is a read-only audit: once before and once after the
    # first run is the evidence; the repeat run below checks the hardening itself. A second run
    # over the whole lab changes nothing (the firewall's rule sets name the other hosts, which
    # one container cannot show); check mode after it is molecule's `check` step (baseline).
    quick = ("-e", "baseline_lynis=false")
    # (all hosts at once: the one-host-at-a-time safety of the first run is not what this checks)
    again = _run_json(
        "run", "baseline", "--env", "lab", "--limit", "all:!fleet", "--yes", *quick, "-e", "baseline_serial=10"
    )
    assert again["changes"] == [], [c["task"] for c in again["changes"]]

    # Its evaluation is the verdict: every run of the role ends with the same evaluation that
    # `baseline-check` runs (tasks/evaluate.yml, the baseline_evaluate module, the same inputs);
    # `baseline-check` itself, read-only on every host, is tests/test_baseline_lab.py's.
    assert sorted(again["outputs"]["baseline"]) == lab_ready
    for host, res in again["outputs"]["baseline"].items():
        failing = [(c["id"], c["reason"]) for c in res["controls"] if c["status"] == "fail"]
        assert failing == [], (host, failing)
