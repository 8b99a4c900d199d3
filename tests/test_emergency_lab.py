"""The emergency runbooks end to end on the lab (issue 7): emergency-restore after a
destroyed table (maintenance page shown during the restore, data back, run linked to
the incident), emergency-restore refused before anything changes, emergency-recover
after stopping the services (diagnostic bundles of every tier, what was restarted).

Backups go to a temporary store and diagnostic bundles to a temporary directory, so
the tests depend on no backup left by engineers and leave nothing in the repository.
The tests install the application when it is missing and leave it running, healthy,
out of maintenance, with the seeded data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.common import REPO, VENV_BIN, run_opsctl
from helpers.lab import LOGICAL_ONLY, lab_ansible_env
from orchestrator.releases import build_release

pytestmark = pytest.mark.lab

URL = "http://127.0.0.1:8080"
V1 = "9.1.0-test"  # the release test_app_lab.py installs too
DB = "lab-db1"
TOOL = "/usr/local/lib/envcredit/envcredit_dbtool.py"
MAINTENANCE_TEXT = "系统维护中"
APP_TEXT = "企业环境信用评价结果"
STEPS = ["preflight", "maintenance_on", "restore", "health_check", "maintenance_off"]
ANSIBLE_ENV = lab_ansible_env()


# ----------------------------------------------------------------------------- helpers


def http_get(path: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(URL + path, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", errors="replace")
    except OSError as err:  # refused, reset, timed out
        return 0, repr(err)


def adhoc(pattern: str, module: str, args: dict[str, Any], user: str = "root") -> str:
    """An ad-hoc module run on the lab as ``user``; its one-line output. Fails the test on error."""
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "-i",
            str(REPO / "inventories" / "lab"),
            pattern,
            "-o",
            "-e",
            "ansible_become=true",
            "--become-user",
            user,
            "-m",
            module,
            "-a",
            json.dumps(args),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=ANSIBLE_ENV,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def sql(statement: str) -> None:
    adhoc(
        DB,
        "ansible.builtin.command",
        {"argv": ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", "envcredit", "-c", statement]},
        "postgres",
    )


def checksums() -> dict[str, str]:
    """Per-table checksums of the live envcredit database (the backup tool's own)."""
    out = adhoc(
        DB,
        "ansible.builtin.command",
        {"argv": ["/usr/bin/python3", TOOL, "checksum", "--engine=postgresql", "--db=envcredit"]},
        "postgres",
    )
    return json.loads(out.split("(stdout) ", 1)[1])["tables"]  # type: ignore[no-any-return]


def opsctl(op: str, *args: str) -> tuple[int, dict[str, Any]]:
    proc = run_opsctl("run", op, "--env", "lab", *args, *LOGICAL_ONLY, "--json", timeout=600)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def bundle_file(bundle: Path, name: str) -> str:
    """One file of a diagnostic bundle, by its base name."""
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar.getmembers() if m.name.rsplit("/", 1)[-1] == name)
        data = tar.extractfile(member)
        assert data is not None
        return data.read().decode("utf-8", errors="replace")


def failure_text(rec: dict[str, Any]) -> str:
    return " ".join(f["msg"] for f in rec["failures"])


class Poller(threading.Thread):
    """Requests / through nginx all along a run and keeps every answer in order."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.seen: list[tuple[int, str]] = []  # (status, "maintenance" | "app" | other body)

    def run(self) -> None:
        while not self.stop.is_set():
            status, body = http_get("/", timeout=5)
            kind = "maintenance" if MAINTENANCE_TEXT in body else "app" if APP_TEXT in body else body[:120]
            self.seen.append((status, kind))
            self.stop.wait(0.2)

    def __enter__(self) -> Poller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(timeout=15)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("releases")
    build_release(V1, out_dir=out)
    return out


@pytest.fixture
def app(lab_archive: Path, artifacts: Path) -> Iterator[None]:
    """The application installed, healthy and out of maintenance; left that way afterwards."""
    if http_get("/")[0] == 503:
        run_opsctl("run", "maintenance-off", "--env", "lab")
    if http_get("/healthz")[0] != 200:
        rc, rec = opsctl("site-app", "-e", f"app_version={V1}", "-e", f"app_deploy_artifact_dir={artifacts}")
        assert rc == 0, rec.get("failures")
    assert http_get("/healthz")[0] == 200
    yield
    if http_get("/")[0] == 503:
        run_opsctl("run", "maintenance-off", "--env", "lab")
    if http_get("/healthz")[0] != 200:
        run_opsctl("run", "recover", "--env", "lab")


@pytest.fixture
def store(lab_archive: Path) -> Iterator[list[str]]:
    """A fresh backup store for one test; the -e options that point the roles at it.

    Not under pytest's tmp_path: a concurrent pytest session may prune that base directory
    while a run is still copying into it."""
    root = Path(tempfile.mkdtemp(prefix="envcredit-test-store-")) / "lab"
    root.mkdir()
    yield ["-e", f"db_backup_store_dir={root}", "-e", f"db_restore_store_dir={root}"]
    shutil.rmtree(root.parent, ignore_errors=True)


def backups_in(store: list[str]) -> list[str]:
    """The backups of lab-db1 in the test's store (<store>/<host>/<backup id>)."""
    root = Path(store[1].split("=", 1)[1]) / DB
    return [p.name for p in root.iterdir() if not p.name.endswith(".partial")]


def open_incident(summary: str) -> str:
    proc = run_opsctl("incident", "open", "--env", "lab", "--severity", "outage", "--summary", summary, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return str(json.loads(proc.stdout)["id"])


def incident_timeline(incident_id: str) -> list[dict[str, Any]]:
    proc = run_opsctl("incident", "show", incident_id, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return list(json.loads(proc.stdout)["timeline"])


# ----------------------------------------------------------------------------- tests


def test_emergency_restore_brings_a_dropped_table_back_behind_the_maintenance_page(app: None, store: list[str]) -> None:
    incident = open_incident("ratings table lost (test)")
    rc, rec = opsctl("backup", "--limit", DB, *store)
    assert rc == 0, rec.get("failures")
    backup_id = rec["outputs"]["backup"][DB]["backup_id"]
    rc, rec = opsctl("backup-verify", "--limit", DB, "-e", f"backup_id={backup_id}", *store)
    assert rc == 0, rec.get("failures")
    before = checksums()
    assert "ratings" in before
    try:
        sql("DROP TABLE ratings")
        assert "ratings" not in checksums()
        with Poller() as poller:
            rc, rec = opsctl(
                "emergency-restore", "--incident", incident, "--yes", "-e", "backup_id=latest-verified", *store
            )
    finally:
        if checksums() != before:  # put the data back whatever happened
            run_opsctl(
                "run",
                "restore",
                "--env",
                "lab",
                "--limit",
                DB,
                "--yes",
                "-e",
                f"backup_id={backup_id}",
                *store,
                timeout=600,
            )
    assert rc == 0, failure_text(rec) or rec.get("error")
    out = rec["outputs"]["emergency_restore"]
    assert out["outcome"] == "restored" and out["maintenance"] == "off", out
    assert out["backup_id"] == backup_id  # latest-verified resolved to the verified backup
    assert [s["step"] for s in out["steps"]] == STEPS
    assert all(s["status"] == "ok" for s in out["steps"]), out["steps"]
    assert out["safety_backup"] and out["safety_backup"] != backup_id
    assert sorted(backups_in(store)) == sorted([backup_id, out["safety_backup"]])
    assert rec["outputs"]["restore"][DB]["live_replaced"] is True
    assert rec["incident"] == incident
    # the data is back, table by table
    assert checksums() == before
    # the maintenance page was shown during the run, and from then on nothing else until
    # the application came back (no error page leaked out between)
    kinds = [(status, kind) for status, kind in poller.seen]
    first = next((i for i, (status, kind) in enumerate(kinds) if status == 503 and kind == "maintenance"), None)
    assert first is not None, f"the maintenance page was never seen: {kinds[:20]}"
    after = kinds[first:]
    back = next((i for i, (status, kind) in enumerate(after) if (status, kind) != (503, "maintenance")), len(after))
    assert all(sk == (200, "app") for sk in after[back:]), after
    # the site serves the application normally again
    status, body = http_get("/")
    assert status == 200 and APP_TEXT in body
    health = json.loads(http_get("/healthz")[1])
    assert health["status"] == "ok" and health["db"] == "ok"
    # the run is on the incident's timeline
    assert rec["id"] in [e.get("record_id") for e in incident_timeline(incident)]


def test_emergency_restore_of_a_missing_backup_changes_nothing(app: None, store: list[str]) -> None:
    rc, rec = opsctl("backup", "--limit", DB, *store)
    assert rc == 0, rec.get("failures")
    before = checksums()
    with Poller() as poller:
        rc, rec = opsctl("emergency-restore", "--yes", "-e", "backup_id=20000101T000000Z-nope", *store)
    assert rc != 0 and rec["status"] == "failed"
    msg = failure_text(rec)
    assert "not found" in msg and "maintenance page was not switched on" in msg, msg
    out = rec["outputs"]["emergency_restore"]
    assert out["outcome"] == "refused" and out["live_data_changed"] is False, out
    assert [(s["step"], s["status"]) for s in out["steps"]] == [("preflight", "failed")]
    assert "web_frontend" not in rec["outputs"] and "restore" not in rec["outputs"]
    assert rec["changes"] == [], rec["changes"]
    # maintenance never switched on: the application answered all along
    assert poller.seen and all(sk == (200, "app") for sk in poller.seen), poller.seen
    assert checksums() == before
    assert len(backups_in(store)) == 1  # no safety backup: only the one above


def test_emergency_restore_that_fails_leaves_the_maintenance_page_on(app: None, store: list[str]) -> None:
    rc, rec = opsctl("backup", "--limit", DB, *store)
    assert rc == 0, rec.get("failures")
    backup_id = rec["outputs"]["backup"][DB]["backup_id"]
    before = checksums()
    try:
        # pg_restore refuses -j 0: the restore fails after the safety backup, before the swap
        rc, rec = opsctl(
            "emergency-restore", "--yes", "-e", f"backup_id={backup_id}", "-e", "db_restore_jobs=0", *store
        )
        assert rc == 1 and rec["status"] == "failed"
        msg = failure_text(rec)
        assert "MAINTENANCE PAGE STAYS ON" in msg and "live database is unchanged" in msg, msg
        assert "maintenance-off" in msg
        out = rec["outputs"]["emergency_restore"]
        assert out["outcome"] == "restore_failed" and out["maintenance"] == "on", out
        assert out["live_data_changed"] is False
        assert [(s["step"], s["status"]) for s in out["steps"]] == [
            ("preflight", "ok"),
            ("maintenance_on", "ok"),
            ("restore", "failed"),
        ]
        safety = out["steps"][-1]["safety_backup"]
        assert safety and safety != backup_id
        assert sorted(backups_in(store)) == sorted([backup_id, safety])
        # the maintenance page is still shown, and the live data is as it was
        status, body = http_get("/")
        assert status == 503 and MAINTENANCE_TEXT in body
        assert checksums() == before
    finally:
        run_opsctl("run", "maintenance-off", "--env", "lab")
    status, body = http_get("/")
    assert status == 200 and APP_TEXT in body


def test_emergency_recover_after_the_services_stopped(app: None, lab_archive: Path, tmp_path: Path) -> None:
    incident = open_incident("site down (test)")
    adhoc("app", "ansible.builtin.systemd_service", {"name": "envcredit", "state": "stopped"})
    adhoc("web", "ansible.builtin.systemd_service", {"name": "nginx", "state": "stopped"})
    assert http_get("/healthz", timeout=2)[0] == 0  # nothing listens any more
    bundles_dir = tmp_path / "diagnostics"
    rc, rec = opsctl("emergency-recover", "--incident", incident, "--yes", "-e", f"os_diagnose_dest={bundles_dir}")
    assert rc == 0, failure_text(rec) or rec.get("error")
    out = rec["outputs"]["emergency_recover"]
    assert out["outcome"] == "recovered" and out["healthy"] is True, out
    assert [s["step"] for s in out["steps"]] == [
        "diagnose",
        "recover_database",
        "recover_app",
        "recover_web",
        "health_check",
    ]
    assert all(s["status"] == "ok" for s in out["steps"]), out["steps"]
    # a bundle of the faulty state from every tier, taken before anything was restarted
    hosts = ["lab-app1", "lab-app2", "lab-db1", "lab-db2", "lab-web1"]
    assert sorted(out["bundles"]) == hosts
    for host in hosts:
        path = Path(out["bundles"][host])
        assert path.parent == bundles_dir / rec["id"] and path.name == f"{host}.tar.gz"
        with tarfile.open(path) as tar:
            assert len(tar.getnames()) > 3, tar.getnames()
        assert rec["outputs"]["diagnose"][host]["bundle"]["path"] == str(path)
    # what was restarted: both applications and nginx, not the database that was running
    restarted = {(r["host"], r["tier"], r["unit"], r["found"], r["action"]) for r in out["restarted"]}
    assert restarted == {
        ("lab-app1", "app", "envcredit", "inactive", "started"),
        ("lab-app2", "app", "envcredit", "inactive", "started"),
        ("lab-web1", "web", "nginx", "inactive", "started"),
    }, out["restarted"]
    assert rec["outputs"]["recover"][DB]["database"]["action"] == "none"
    assert rec["incident"] == incident
    assert rec["id"] in [e.get("record_id") for e in incident_timeline(incident)]
    # everything healthy, through nginx
    status, body = http_get("/")
    assert status == 200 and APP_TEXT in body
    assert json.loads(http_get("/healthz")[1])["status"] == "ok"
    # the bundles hold the faulty state: nothing listened on the app port nor as nginx
    assert "nginx" not in bundle_file(Path(out["bundles"]["lab-web1"]), "ports.txt")
    for host in ("lab-app1", "lab-app2"):
        ports = bundle_file(Path(out["bundles"][host]), "ports.txt")
        assert "LISTEN" in ports and ":8000" not in ports, ports
