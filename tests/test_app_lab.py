"""The application operations end to end on the lab: deploy under load, automatic rollback,
rollback, corrupt artifact, recover, logs analysis, maintenance page.

Releases are built from app/ into a temporary directory (the repository's var/releases
stays untouched) under versions reserved for these tests. The tests install the app
when it is missing and leave it running, healthy, out of maintenance.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from helpers.common import REPO, VENV_BIN, run_opsctl
from helpers.lab import LOGICAL_ONLY, lab_ansible_env, lab_run, on_host, stdout_of
from orchestrator.releases import build_release

pytestmark = pytest.mark.lab

URL = "http://127.0.0.1:8080"
V1, V2, BROKEN = "9.1.0-test", "9.2.0-test", "9.3.0-broken"
MIGRATING = "9.4.0-migrate"
APP_HOSTS = ["lab-app1", "lab-app2"]


# ----------------------------------------------------------------------------- helpers


def http_get(path: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(URL + path, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", errors="replace")
    except OSError as err:  # refused, reset, timed out
        return 0, repr(err)


def ansible(pattern: str, module: str, args: str, become: bool = True) -> dict[str, dict[str, Any]]:
    """An ad-hoc module run on the lab; the JSON result per host."""
    cmd = [
        str(VENV_BIN / "ansible"),
        "-i",
        str(REPO / "inventories" / "lab"),
        pattern,
        "-o",
        "-M",
        str(REPO / "plugins" / "modules"),
        "-m",
        module,
        "-a",
        args,
    ]
    if become:
        cmd += ["-e", "ansible_become=true"]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
        env=lab_ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="0"),
    )
    out: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^(\S+) \| (\S+)(?: \| rc=\d+)? => (\{.*\})$", line)
        if m:
            out[m.group(1)] = json.loads(m.group(3))
    assert proc.returncode == 0 and (out or re.search(r"^\S+ \| (CHANGED|SUCCESS)", proc.stdout, re.M)), (
        proc.stdout + proc.stderr
    )
    return out


def release_state() -> dict[str, dict[str, Any]]:
    return ansible("app", "envcredit_release", "root=/opt/envcredit action=info")


class Client(threading.Thread):
    """Requests the app through nginx continuously and counts what failed."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(URL + "/", timeout=10) as resp:
                    body = resp.read().decode("utf-8")
                    if resp.status == 200 and "韶关市企业环境信用评价系统" in body:
                        self.ok += 1
                        self.versions.add(resp.headers.get("X-App-Version", "?"))
                    else:
                        self.failures.append(f"{resp.status}")
            except Exception as exc:  # every failure counts
                self.failures.append(repr(exc))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("releases")
    build_release(V1, out_dir=out)
    build_release(V2, out_dir=out)
    broken_src = tmp_path_factory.mktemp("broken-src") / "app"
    shutil.copytree(REPO / "app", broken_src, ignore=shutil.ignore_patterns("__pycache__"))
    code = broken_src / "envcredit_app.py"
    text = code.read_text(encoding="utf-8")
    assert "\nSELFTEST_OK = True\n" in text
    code.write_text(text.replace("\nSELFTEST_OK = True\n", "\nSELFTEST_OK = False\n"), encoding="utf-8")
    build_release(BROKEN, src=broken_src, out_dir=out)
    return out


@pytest.fixture
def app(lab_archive: Path, artifacts: Path) -> Iterator[list[str]]:
    """The app installed and healthy (site-app when missing); maintenance off afterwards."""
    status, _ = http_get("/healthz")
    state = release_state()
    if status != 200 or any(not s.get("current") for s in state.values()):
        lab_run("site-app", "-e", f"app_version={V1}", "-e", f"app_deploy_artifact_dir={artifacts}")
    yield [f"app_deploy_artifact_dir={artifacts}"]
    # Leave the lab as found: out of maintenance, everything running.
    if http_get("/")[0] == 503:
        run_opsctl("run", "maintenance-off", "--env", "lab")
    if http_get("/healthz")[0] != 200:
        run_opsctl("run", "recover", "--env", "lab")


def deploy(extra: list[str], version: str, *more: str, rc: int = 0) -> dict[str, Any]:
    args = ["-e", f"app_version={version}", *[x for e in extra for x in ("-e", e)], *more]
    return lab_run("deploy", *args, rc=rc)


def ensure(extra: list[str], previous: str, current: str) -> None:
    """Bring every app host to `current`, with `previous` as the release before it."""
    state = release_state()
    if all(s["current"] == current and s["previous"] == previous for s in state.values()):
        return
    if not all(s["current"] == previous for s in state.values()):
        deploy(extra, previous)
    deploy(extra, current)


# ----------------------------------------------------------------------------- tests


def test_deploy_v1_then_v2_under_load_without_a_failed_request(app: list[str], lab_archive: Path) -> None:
    client = Client()
    client.start()
    try:
        first = deploy(app, V1) if any(s["current"] != V1 for s in release_state().values()) else None
        rec = deploy(app, V2)
    finally:
        client.stop.set()
        client.join(timeout=15)
    assert client.failures == [], f"{len(client.failures)} failed requests: {client.failures[:5]}"
    assert client.ok > 20, "the client made too few requests to prove anything"
    assert {V1, V2} <= client.versions or first is None
    assert rec["status"] == "successful"
    deployed = rec["outputs"]["deploy"]
    assert sorted(deployed) == APP_HOSTS
    for host in APP_HOSTS:
        assert deployed[host]["running"] == V2 and deployed[host]["state"] == "deployed", deployed[host]
        assert deployed[host]["previous"] == V1
    # what the hosts say, and what `opsctl releases` reads from the records
    assert {h: s["current"] for h, s in release_state().items()} == {h: V2 for h in APP_HOSTS}
    status, body = http_get("/healthz")
    assert status == 200 and json.loads(body)["version"] == V2
    proc = run_opsctl("releases", "--env", "lab", "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert {h: shown[h]["running"] for h in APP_HOSTS} == {h: V2 for h in APP_HOSTS}
    assert shown["lab-app1"]["record"] == rec["id"]


def test_broken_release_rolls_back_automatically(app: list[str], lab_archive: Path) -> None:
    ensure(app, V1, V2)
    rec = deploy(app, BROKEN, "-e", "app_deploy_health_retries=3", rc=1)
    assert rec["status"] == "failed"
    out = rec["outputs"]["deploy"]
    first, second = out["lab-app1"], out["lab-app2"]
    assert first["state"] == "auto_rolled_back" and first["running"] == V2, first
    assert first["failed_version"] == BROKEN and "health" in first["reason"].lower(), first
    assert second["state"] == "not_reached" and second["running"] == V2, second
    assert any(BROKEN in f["msg"] and "rolled back" in f["msg"] for f in rec["failures"]), rec["failures"]
    state = release_state()
    assert {h: s["current"] for h, s in state.items()} == {h: V2 for h in APP_HOSTS}
    assert state["lab-app1"]["previous"] == V1, "the automatic rollback must keep the previous release"
    assert BROKEN in state["lab-app1"]["failed_releases"]
    status, body = http_get("/healthz")
    assert status == 200 and json.loads(body)["version"] == V2
    # the backend of lab-app1 is back in nginx: both hosts answer
    seen = {http_get("/version")[1] for _ in range(10)}
    assert seen == {json.dumps({"version": V2})}


def test_rollback_to_previous_and_to_a_named_release(app: list[str], lab_archive: Path) -> None:
    ensure(app, V1, V2)
    rec = lab_run("rollback", *[x for e in app for x in ("-e", e)])
    assert rec["status"] == "successful"
    assert {h: rec["outputs"]["deploy"][h]["running"] for h in APP_HOSTS} == {h: V1 for h in APP_HOSTS}
    assert json.loads(http_get("/version")[1])["version"] == V1
    rec = lab_run("rollback", "-e", f"app_version={V2}")
    assert {h: rec["outputs"]["deploy"][h]["running"] for h in APP_HOSTS} == {h: V2 for h in APP_HOSTS}
    assert {h: s["current"] for h, s in release_state().items()} == {h: V2 for h in APP_HOSTS}
    # a release that is not installed is refused before anything changes
    rec = lab_run("rollback", "-e", "app_version=0.0.0-never", rc=1)
    assert rec["changes"] == [] and {h: s["current"] for h, s in release_state().items()} == {h: V2 for h in APP_HOSTS}


def test_corrupt_artifact_is_refused_before_anything_changes(
    app: list[str], lab_archive: Path, artifacts: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "releases"
    bad.mkdir()
    good = artifacts / f"envcredit-{V2}.tar.gz"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "envcredit-9.9.9-corrupt.tar.gz").write_bytes(bytes(data))
    shutil.copy(artifacts / f"envcredit-{V2}.tar.gz.sha256", bad / "envcredit-9.9.9-corrupt.tar.gz.sha256")
    before = release_state()
    rec = lab_run("deploy", "-e", "app_version=9.9.9-corrupt", "-e", f"app_deploy_artifact_dir={bad}", rc=1)
    assert rec["status"] == "failed"
    assert rec["changes"] == [], "nothing may change before the artifact is verified"
    assert any("refused" in f["msg"] and "does not match" in f["msg"] for f in rec["failures"]), rec["failures"]
    after = release_state()
    assert {h: (s["current"], s["releases"]) for h, s in after.items()} == {
        h: (s["current"], s["releases"]) for h, s in before.items()
    }


def test_recover_brings_back_app_and_nginx_then_changes_nothing(app: list[str], lab_archive: Path) -> None:
    ansible("app", "ansible.builtin.systemd_service", "name=envcredit state=stopped")
    ansible("web", "ansible.builtin.systemd_service", "name=nginx state=stopped")
    time.sleep(1)
    with pytest.raises(OSError):
        urllib.request.urlopen(URL + "/healthz", timeout=2)
    rec = lab_run("recover")
    assert rec["status"] == "successful"
    found = rec["outputs"]["recover"]
    for host in APP_HOSTS:
        assert found[host]["app"]["found"] == "inactive" and found[host]["app"]["action"] == "started", found[host]
    assert found["lab-web1"]["web"]["found"] == "inactive" and found["lab-web1"]["web"]["action"] == "started"
    assert found["lab-db1"]["database"]["action"] == "none"
    assert http_get("/healthz")[0] == 200
    again = lab_run("recover")
    assert again["changes"] == [], again["changes"]
    assert all(t["action"] == "none" for host in again["outputs"]["recover"].values() for t in host.values())


def test_logs_analyze_counts_injected_errors(app: list[str], lab_archive: Path) -> None:
    start = datetime.now().astimezone().replace(microsecond=0)
    time.sleep(1)
    marker = f"/missing-{os.getpid()}-{int(time.time())}"
    for _ in range(7):
        assert http_get("/_fault/500")[0] == 500
    for _ in range(5):
        assert http_get(marker)[0] == 404
    for _ in range(2):
        assert http_get("/_fault/slow?ms=800")[0] == 200
    rec = lab_run("logs")
    logs = rec["outputs"]["logs"]
    folder = Path(logs["dir"])
    try:
        assert folder.is_dir() and rec["id"] in str(folder)
        proc = run_opsctl("logs", "analyze", str(folder), "--since", start.isoformat(), "--window", "60", "--json")
        assert proc.returncode == 0, proc.stderr
        res = json.loads(proc.stdout)
        nginx, appl = res["sources"]["nginx"], res["sources"]["app"]
        assert nginx["status"].get("500") == 7 and nginx["status"].get("404") == 5, nginx["status"]
        assert appl["status"].get("500") == 7 and appl["status"].get("404") == 5, appl["status"]
        assert sum(w["5xx"] for w in nginx["windows"].values()) == 7
        assert nginx["slow_requests"] == 2 and appl["slow_requests"] == 2
        assert nginx["slowest_endpoints"][0]["path"] == "/_fault/slow"
        errors = {g["signature"]: g["count"] for g in res["errors"]}
        assert errors.get("app: RuntimeError at envcredit_app.py:route") == 7, errors
        # the record's own analysis (whole files) saw them too
        assert logs["analysis"]["sources"]["nginx"]["status"]["500"] >= 7
        html = folder / "report.html"
        proc = run_opsctl("logs", "analyze", str(folder), "--lang", "zh", "--html", str(html))
        assert proc.returncode == 0 and "日志分析" in html.read_text(encoding="utf-8")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_maintenance_page_on_and_off(app: list[str], lab_archive: Path) -> None:
    rec = lab_run("maintenance-on")
    assert rec["outputs"]["web_frontend"]["lab-web1"]["maintenance"] is True
    status, body = http_get("/")
    assert status == 503 and "系统维护中" in body and 'lang="zh-CN"' in body
    rec = lab_run("maintenance-off")
    assert rec["outputs"]["web_frontend"]["lab-web1"]["maintenance"] is False
    status, body = http_get("/")
    assert status == 200 and "企业环境信用评价结果" in body


def test_release_with_a_migration_gets_the_backup_operations_backup_first(
    app: list[str], lab_archive: Path, tmp_path: Path
) -> None:
    """A migration in the release: db_backup's backup (manifest, checksums, store), then migrate once.

    Last in the module: it leaves V2 running with the migrating release before it."""
    ensure(app, V1, V2)
    # a version of its own each run: a release once installed is never unpacked again
    # (its directory has a VERSION), and each run's release carries its own migration
    migrating = f"{MIGRATING}.{uuid.uuid4().hex[:8]}"
    src = tmp_path / "src" / "app"
    shutil.copytree(REPO / "app", src, ignore=shutil.ignore_patterns("__pycache__"))
    name = f"0002_deploy_test_{os.getpid()}.sql"
    table = f"deploy_test_{os.getpid()}"
    (src / "migrations" / name).write_text(f"CREATE TABLE {table} (id integer PRIMARY KEY);\n", encoding="utf-8")
    out = tmp_path / "releases"
    build_release(migrating, src=src, out_dir=out)
    store = tmp_path / "store"
    psql = ["psql", "--no-psqlrc", "-AtX", "-d", "envcredit", "-c"]
    try:
        rec = lab_run(
            "deploy",
            "-e",
            f"app_version={migrating}",
            "-e",
            f"app_deploy_artifact_dir={out}",
            "-e",
            f"db_backup_store_dir={store}",
            *LOGICAL_ONLY,
        )
        assert rec["status"] == "successful"
        backup = rec["outputs"]["backup"]["lab-db1"]
        manifests = list((store / "lab-db1").glob("*/manifest.json"))
        assert len(manifests) == 1 and backup["backup_id"] == manifests[0].parent.name, (backup, manifests)
        manifest = json.loads(manifests[0].read_text(encoding="utf-8"))
        assert manifest["record_id"] == rec["id"], "the backup names the deploy's change record"
        migrations = rec["outputs"]["deploy_migrations"]
        assert migrations["applied"] == [name] and migrations["backup_operation"] is True, migrations
        assert {h: s["current"] for h, s in release_state().items()} == {h: migrating for h in APP_HOSTS}
        assert stdout_of(on_host("lab-db1", [*psql, f"SELECT count(*) FROM {table}"], "postgres")) == "0", (
            "the migration's table exists"
        )
        # Nothing pending any more: a second deploy of the release takes no backup.
        again = lab_run(
            "deploy",
            "-e",
            f"app_version={migrating}",
            "-e",
            f"app_deploy_artifact_dir={out}",
            "-e",
            f"db_backup_store_dir={store}",
            *LOGICAL_ONLY,
        )
        assert "backup" not in again["outputs"]
        assert len(list((store / "lab-db1").glob("*/manifest.json"))) == 1
    finally:
        # back to V2, an installed release (one rollback, not two deploys): the last test of the
        # module, so nothing after it needs V1 as the previous release
        lab_run("rollback", "-e", f"app_version={V2}")
        stdout_of(
            on_host(
                "lab-db1",
                [*psql, f"DROP TABLE IF EXISTS {table}; DELETE FROM schema_migrations WHERE name = '{name}'"],
                "postgres",
            )
        )
