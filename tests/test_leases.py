"""Host leases in the shared store (issue 15, item 7): the lock that holds across checkouts
and controllers. Real git (a bare repository as the store, compare-and-swap pushes) and a
shared folder (``dir:``); "another controller" is a lease written with another machine id.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers.common import only
from orchestrator import leases as leases_mod
from orchestrator.archive import Archive
from orchestrator.errors import BadInput, LockHeld
from orchestrator.leases import Leases, holder_gone, machine_identity
from test_run import invoke

OTHER = {"controller": "ci-runner-7", "machine_id": "0" * 32, "boot_id": "b" * 36}


@pytest.fixture(params=["git", "dir"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "git":
        bare = tmp_path / "store.git"
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
        return str(bare)
    folder = tmp_path / "shared"
    folder.mkdir()
    return f"dir:{folder}"


def lease(store: str, tmp_path: Path, run_id: str, who: str = "alice") -> Leases:
    return Leases(
        spec=store,
        env="production",
        run_id=run_id,
        holder={"operation": "patch", "operator": who},
        cache_dir=tmp_path / f"cache-{run_id}",
    )


def as_other_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases_mod, "machine_identity", lambda: dict(OTHER))


def test_a_second_controller_is_refused_with_the_holder_named(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = lease(store, tmp_path, "run-1")
    first.acquire(["db1", "app1"])
    assert sorted(first.taken) == ["app1", "db1"] and first.took_over == []
    listed = first.list()
    assert sorted(listed) == ["app1", "db1"] and listed["db1"]["run_id"] == "run-1"
    assert listed["db1"]["controller"] == machine_identity()["controller"] and listed["db1"]["pid"] == os.getpid()

    as_other_controller(monkeypatch)
    second = lease(store, tmp_path, "run-2", who="bob")
    with pytest.raises(LockHeld) as err:
        second.acquire(["web1", "db1"])  # overlaps on db1 only
    text = str(err.value)
    assert "db1 by run run-1 (patch, alice, controller" in text and "until" in text and "app1" not in text
    # all or nothing: web1 (free) was not taken either
    assert sorted(first.list()) == ["app1", "db1"] and second.taken == {}

    monkeypatch.undo()
    first.release()
    assert first.list() == {}
    as_other_controller(monkeypatch)
    second.acquire(["web1", "db1"])
    assert sorted(second.list()) == ["db1", "web1"]
    second.release()
    assert second.list() == {}


def test_a_second_checkout_on_the_same_machine_is_refused_while_the_holder_lives(store: str, tmp_path: Path) -> None:
    first = lease(store, tmp_path, "run-1")
    first.acquire(["db1"])
    with pytest.raises(LockHeld, match="db1 by run run-1"):
        lease(store, tmp_path, "run-2").acquire(["db1"])
    first.release()


def _write_foreign(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **fields: Any) -> None:
    """A lease on db1 as another run left it (its fields overridden), through the real code path."""
    orig = Leases._lease

    def patched(self: Leases, hosts: list[str], now: datetime) -> dict[str, Any]:
        return {**orig(self, hosts, now), **fields}

    monkeypatch.setattr(Leases, "_lease", patched)
    lease(store, tmp_path, "run-old", who="carol").acquire(["db1"])
    monkeypatch.setattr(Leases, "_lease", orig)


def test_an_expired_lease_is_taken_over_and_said_so(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    _write_foreign(store, tmp_path, monkeypatch, expires=past, **OTHER)
    new = lease(store, tmp_path, "run-new")
    new.acquire(["db1"])
    assert new.list()["db1"]["run_id"] == "run-new"
    assert only(new.took_over).startswith(f"db1: it expired at {past}") and "run-old" in new.took_over[0]


def test_a_dead_holder_on_this_machine_is_taken_over(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    _write_foreign(store, tmp_path, monkeypatch, pid=int(dead.stdout), pid_start="1")
    new = lease(store, tmp_path, "run-new")
    new.acquire(["db1"])
    assert "its process" in only(new.took_over) and "on this machine is gone" in new.took_over[0]


def test_a_live_holder_on_another_machine_is_never_taken_over(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_foreign(store, tmp_path, monkeypatch, pid=1, pid_start="999999999", **OTHER)  # pid 1 is not theirs
    with pytest.raises(LockHeld, match="controller ci-runner-7"):
        lease(store, tmp_path, "run-new").acquire(["db1"])


def test_release_keeps_a_lease_someone_took_over(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = lease(store, tmp_path, "run-1")
    first.acquire(["db1"])
    # run-1 hangs past its expiry; another controller takes the host over
    later = datetime.now(UTC) + timedelta(hours=13)
    monkeypatch.setattr(
        leases_mod,
        "datetime",
        type("FakeDT", (), {"now": staticmethod(lambda tz=None: later), "fromisoformat": datetime.fromisoformat}),
    )
    as_other_controller(monkeypatch)
    second = lease(store, tmp_path, "run-2", who="bob")
    second.acquire(["db1"])
    assert "it expired" in only(second.took_over)
    first.release()  # must not remove run-2's lease
    assert second.list()["db1"]["run_id"] == "run-2"


def test_holder_gone_rules() -> None:
    now = datetime.now(UTC)
    me = machine_identity()
    live = {
        "expires": (now + timedelta(hours=1)).isoformat(),
        "pid": os.getpid(),
        "pid_start": leases_mod.process_identity()[1],
        **me,
    }
    assert holder_gone(live, now, me) is None
    assert holder_gone({**live, "boot_id": "other"}, now, me) == "its controller (this machine) has rebooted since"
    assert holder_gone({**live, "expires": "garbage"}, now, me) == "its expiry is unreadable"
    assert holder_gone({**live, **OTHER, "pid": 999999}, now, me) is None  # another machine: only expiry counts


@pytest.mark.parametrize("env, hosts", [("bad/env", ["db1"]), ("production", ["../x"]), ("production", ["a.lock"])])
def test_names_that_cannot_name_a_lease_are_refused(tmp_path: Path, env: str, hosts: list[str]) -> None:
    with pytest.raises(BadInput, match="cannot name a lease"):
        Leases(spec=str(tmp_path), env=env, run_id="r", holder={}).acquire(hosts)


# -- through `opsctl run`: an environment whose policy says host_leases: store


def _policy(home: Path, text: str) -> None:
    (home / "inventories" / "test" / ".opsctl.yml").write_text(
        "vault_password_file: ../../vault-password\n" + text, encoding="utf-8"
    )


def _latest(home: Path) -> dict[str, Any]:
    archive = Archive(home / "var" / "archive")
    return archive.get(archive.list()[0]["id"])


def test_run_takes_and_releases_the_leases_and_records_them(
    opsctl_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    _policy(opsctl_home, "host_leases: store\n")
    monkeypatch.setenv("OPSCTL_STORE", str(bare))
    assert invoke("run", "change", "--env", "test")[0] == 0
    rec = _latest(opsctl_home)
    assert rec["status"] == "successful"
    assert rec["leases"] == {"store": str(bare), "hosts": rec["targets"], "took_over": []} and rec["targets"]
    refs = subprocess.run(
        ["git", "-C", str(bare), "for-each-ref", "refs/leases"], capture_output=True, text=True, check=True
    ).stdout
    assert refs == ""  # released at the end

    # a live lease of another controller on one of the hosts: refused before anything runs
    markers = {p.name: p.read_text(encoding="utf-8") for p in (opsctl_home / "markers").iterdir()}
    Leases(
        spec=str(bare),
        env="test",
        run_id="20261129T000000Z-other",
        cache_dir=tmp_path / "c",
        holder={"operation": "patch", "operator": "bob"},
    ).acquire(rec["targets"][:1])
    code, out, err = invoke("run", "change", "--env", "test")
    assert code == 1 and "by run 20261129T000000Z-other (patch, bob" in err, (out, err)
    refused = _latest(opsctl_home)
    assert refused["status"] == "refused" and "host lease held in the shared store" in refused["error"]
    assert refused["hosts"] == {}
    assert {p.name: p.read_text(encoding="utf-8") for p in (opsctl_home / "markers").iterdir()} == markers


def test_run_without_a_store_is_refused_where_the_policy_needs_leases(
    opsctl_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _policy(opsctl_home, "host_leases: store\n")
    monkeypatch.delenv("OPSCTL_STORE", raising=False)
    code, _out, err = invoke("run", "change", "--env", "test")
    assert code == 2 and "set OPSCTL_STORE" in err and "Traceback" not in err
    assert _latest(opsctl_home)["status"] == "refused"
    _policy(opsctl_home, "host_leases: everywhere\n")
    code, _out, err = invoke("run", "change", "--env", "test")
    assert code == 2 and "host_leases must be 'store' or 'local'" in err


def test_production_policy_takes_leases_in_the_store() -> None:
    from helpers.common import REPO
    import yaml

    policy = yaml.safe_load((REPO / "inventories" / "production" / ".opsctl.yml").read_text(encoding="utf-8"))
    assert policy["host_leases"] == "store"
    staging = yaml.safe_load((REPO / "inventories" / "staging" / ".opsctl.yml").read_text(encoding="utf-8"))
    assert staging["host_leases"] == "store"


def test_store_leases_lists_who_holds_what(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    monkeypatch.setenv("OPSCTL_HOME", str(tmp_path / "home"))  # the lease cache goes under it, not the checkout
    held = lease(str(bare), tmp_path, "run-1")
    held.acquire(["db1"])
    code, out, _ = invoke("store", "leases", "--env", "production", "--store", str(bare))
    assert code == 0 and "db1 by run run-1 (patch, alice" in out and "[live]" in out
    code, out, _ = invoke("store", "leases", "--env", "production", "--store", str(bare), "--json")
    assert json.loads(out)["db1"]["stale"] is None
    held.release()
    assert (
        "no host leases in environment 'production'"
        in invoke("store", "leases", "--env", "production", "--store", str(bare))[1]
    )
    monkeypatch.delenv("OPSCTL_STORE", raising=False)
    code, _out, err = invoke("store", "leases", "--env", "production")
    assert code == 2 and "set OPSCTL_STORE" in err
