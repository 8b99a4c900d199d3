"""The MariaDB archiving tool's parts that need no database (roles/db_backup/files/
envcredit_mariadb_archive.py); the lab test runs it against real MariaDB and a real backup host."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "roles" / "db_backup" / "files"))
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # envcredit_dbcommon, the tools' shared code

import envcredit_mariadb_archive as tool  # noqa: E402

# What mariadb-backup 10.11 prints at the end of a backup.
STDERR = (
    "[00] 2026-11-30 10:20:01 Backup created in directory '/tmp/envcredit-mbk-x/'\n"
    "[00] 2026-11-30 10:20:01 MySQL binlog position: filename 'mariadb-bin.000002', position '1174', "
    "GTID of the last change '0-1-7'\n"
    "[00] 2026-11-30 10:20:01 completed OK!\n"
)


def test_the_binlog_position_is_read_from_mariadb_backup() -> None:
    found = tool.POSITION.search(STDERR)
    assert found is not None
    assert (found.group(1), int(found.group(2)), found.group(3)) == ("mariadb-bin.000002", 1174, "0-1-7")
    bare = tool.POSITION.search("MySQL binlog position: filename 'b.000009', position '4'")
    assert bare is not None and bare.group(3) is None


def test_a_configuration_that_lacks_keys_is_bad_input(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"target": "dbarchive@b", "key": "/k"}), encoding="utf-8")
    with pytest.raises(tool.ArchiveError) as caught:
        tool.load_config(cfg)
    assert caught.value.code == 2
    assert "known_hosts, recipient, defaults_file, state" in str(caught.value)
    with pytest.raises(tool.ArchiveError) as unreadable:
        tool.load_config(tmp_path / "absent.json")
    assert unreadable.value.code == 2


@pytest.mark.parametrize(
    ("rc", "code", "words"),
    [(4, 4, "backup host: "), (255, 3, "unreachable"), (3, 3, "refused"), (1, 3, "refused")],
)
def test_the_receivers_answers_become_clear_errors(rc: int, code: int, words: str) -> None:
    err = tool.remote_error(b"warning: something\nenvcredit-archive: the backup host's disk is full\n", rc)
    assert err.code == code and words in str(err)
    assert str(err).endswith("envcredit-archive: the backup host's disk is full")


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-rf", "x;rm"])
def test_a_bad_backup_id_is_refused_before_anything_runs(bad: str) -> None:
    with pytest.raises(tool.ArchiveError) as caught:
        tool.cmd_base({}, bad)
    assert caught.value.code == 2


def test_the_ssh_call_pins_the_host_key_and_never_asks() -> None:
    cfg = {"key": "/etc/k", "known_hosts": "/etc/kh", "target": "dbarchive@lab-backup1", "port": 22}
    argv = tool.ssh_argv(cfg, "list base")
    assert argv[-2:] == ["dbarchive@lab-backup1", "list base"]
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes", "UserKnownHostsFile=/etc/kh"):
        assert option in argv


def window_of(monkeypatch: pytest.MonkeyPatch, finished: list[float], target: str, until: float) -> dict[str, Any]:
    metas = [{"id": f"b{i}", "finished": f} for i, f in enumerate(finished)]
    monkeypatch.setattr(tool, "bases", lambda cfg, identity: sorted(metas, key=lambda m: m["finished"]))
    return tool.cmd_window({}, Path("/id"), target, until)


def test_the_window_runs_from_the_oldest_base_to_what_the_logs_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2026-11-29 02:00:00 UTC = 10:00 Beijing
    t0 = 1795917600.0
    out = window_of(monkeypatch, [t0 + 600, t0], "2026-11-29 10:05:00+08", t0 + 3600)
    assert out["within"] is True and out["base"] == "b1" and out["target"] == t0 + 300
    assert out["window"] == "2026-11-29 10:00:00+08 .. 2026-11-29 11:00:00+08"
    later = window_of(monkeypatch, [t0 + 600, t0], "2026-11-29 02:20:00Z", t0 + 3600)
    assert later["base"] == "b0"  # the newest base that ended before the target
    assert window_of(monkeypatch, [t0], "latest", t0 + 3600)["target"] == t0 + 3599


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("2026-11-29 09:59:59+08", "is before the recovery window 2026-11-29 10:00:00+08 .. "),
        ("2026-11-29 11:00:00+08", "is after the newest archived binary log"),
        ("2026-11-29 10:05:00", "has no zone"),
        ("yesterday", "is not a time"),
    ],
)
def test_a_target_outside_the_window_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, target: str, words: str
) -> None:
    out = window_of(monkeypatch, [1795917600.0], target, 1795917600.0 + 3600)
    assert out["within"] is False and words in out["reason"] and "base" not in out


def test_no_complete_base_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tool, "bases", lambda cfg, identity: [])
    with pytest.raises(tool.ArchiveError) as caught:
        tool.cmd_window({}, Path("/id"), "latest", 1.0)
    assert "no complete physical backup" in str(caught.value)


def test_the_current_timeline_starts_at_the_newest_in_place_restore() -> None:
    def base(bid: str, at: float, complete: bool = True, start: bool = False) -> dict[str, Any]:
        return {
            "id": bid,
            "size": 1,
            "complete": complete,
            "stored_at": at if complete else None,
            "timeline_start": start,
        }

    found = [
        base("c", 30.0, start=True),
        base("a", 10.0),
        base("x", 0.0, complete=False),
        base("d", 40.0),
        base("b", 20.0),
    ]
    assert [b["id"] for b in tool.current_timeline(found)] == ["c", "d"]
    assert [b["id"] for b in tool.current_timeline([b for b in found if b["id"] != "c"])] == ["a", "b", "d"]
    assert tool.current_timeline([base("x", 0.0, complete=False)]) == []


def listing(*names: str) -> list[dict[str, Any]]:
    return [{"name": n, "size": 5, "mtime": 100 + i} for i, n in enumerate(sorted(names))]


def test_markers_are_no_bases_and_tell_the_binlog_and_the_verification() -> None:
    found = tool.bases_of(
        listing(
            "a.xbs.zst.age",
            "a.json.age",
            "a.binlog.mariadb-bin.000012.age",
            "a.verified.age",
            "a.timeline.age",
            "ab.xbs.zst.age",
            "ab.json.age",
            "c.xbs.zst.age",
            "c.binlog.mariadb-bin.000001.age",
        )
    )
    assert [b["id"] for b in found] == ["a", "ab", "c"]
    a, ab, c = found
    assert (a["binlog_file"], a["verified"], a["timeline_start"], a["complete"]) == (
        "mariadb-bin.000012",
        True,
        True,
        True,
    )
    # a base from before the binlog markers; another id's markers are not its own
    assert (ab["binlog_file"], ab["verified"], ab["timeline_start"], ab["complete"]) == (None, False, False, True)
    assert (c["complete"], c["stored_at"], c["binlog_file"]) == (False, None, "mariadb-bin.000001")


def status_of(monkeypatch: pytest.MonkeyPatch, *names: str) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(tool, "remote_json", lambda cfg, request: listing(*names))
    monkeypatch.setattr(tool, "send", lambda cfg, kind, name, source: sent.append((kind, name)) or {})
    return sent


def test_mark_verified_stores_the_marker_of_a_complete_base(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = status_of(monkeypatch, "b1.xbs.zst.age", "b1.json.age")
    assert tool.cmd_mark_verified({}, "b1") == {"base": "b1", "verified": True, "marked": True}
    assert sent == [("base", "b1.verified.age")]


def test_mark_verified_twice_is_done_already(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = status_of(monkeypatch, "b1.xbs.zst.age", "b1.json.age", "b1.verified.age")
    assert tool.cmd_mark_verified({}, "b1") == {"base": "b1", "verified": True, "marked": False}
    assert sent == []

    def refused(cfg: Any, kind: str, name: str, source: Any) -> dict[str, Any]:
        raise tool.remote_error(b"envcredit-archive: base/b1.verified.age exists already", rc)

    # another run stored it between the listing and the put: the receiver's 3 is done already
    status_of(monkeypatch, "b1.xbs.zst.age", "b1.json.age")
    rc = 3
    monkeypatch.setattr(tool, "send", refused)
    assert tool.cmd_mark_verified({}, "b1")["marked"] is False
    rc = 1  # any other refusal stays an error
    with pytest.raises(tool.ArchiveError) as caught:
        tool.cmd_mark_verified({}, "b1")
    assert caught.value.code == 3


@pytest.mark.parametrize(
    ("base", "names", "words"),
    [
        ("b2", ("b1.xbs.zst.age", "b1.json.age"), "not there"),
        ("b1", ("b1.xbs.zst.age", "b1.timeline.age"), "incomplete"),
        ("../b1", ("b1.xbs.zst.age", "b1.json.age"), "bad backup id"),
    ],
)
def test_mark_verified_refuses_what_is_not_a_complete_base(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], base: str, names: tuple[str, ...], words: str
) -> None:
    sent = status_of(monkeypatch, *names)
    monkeypatch.setattr(tool, "load_config", lambda path: {})
    assert tool.main(["mark-verified", "--base", base]) == 2
    assert words in capsys.readouterr().err and sent == []


def test_a_base_stores_its_starting_binlog_in_a_marker_after_its_metadata(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "mariadb-backup"
    fake.write_text(f"#!/bin/sh\nprintf 'stream'\nprintf \"{STDERR}\" >&2\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(tool, "sql", lambda cfg, statement: [["10.11.6-MariaDB"]])
    sent: list[tuple[str, bytes]] = []

    def send(cfg: Any, kind: str, name: str, source: Any) -> dict[str, Any]:
        data = source.read()
        sent.append((name, data))
        return {"size": len(data), "sha256": "x"}

    monkeypatch.setattr(tool, "send", send)
    meta = tool.cmd_base({"defaults_file": "/dev/null"}, "20261130T010203Z-lab-db2")
    assert meta["binlog_file"] == "mariadb-bin.000002"
    assert [name for name, _ in sent] == [
        "20261130T010203Z-lab-db2.xbs.zst.age",
        "20261130T010203Z-lab-db2.json.age",
        "20261130T010203Z-lab-db2.binlog.mariadb-bin.000002.age",
    ]
    assert sent[-1][1] == b""
    found = tool.bases_of(listing(*(name for name, _ in sent)))
    assert found[0]["binlog_file"] == "mariadb-bin.000002" and found[0]["complete"]


def test_backup_runs_the_base_then_the_binary_logs_then_reads_the_backup_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """One run for a backup's physical part: the binary logs are shipped after the base (the
    recovery window reaches the run), the status read last sees both; a failing base stops it."""
    calls: list[str] = []
    monkeypatch.setattr(tool, "cmd_base", lambda cfg, bid: calls.append(f"base {bid}") or {"id": bid})
    monkeypatch.setattr(tool, "cmd_binlogs", lambda cfg: calls.append("binlogs") or {"sent": ["b.1"]})
    monkeypatch.setattr(tool, "cmd_status", lambda cfg: calls.append("status") or {"bases": [1]})
    out = tool.cmd_backup({}, "20261130T010203Z-lab-db2")
    assert calls == ["base 20261130T010203Z-lab-db2", "binlogs", "status"]
    seconds = out.pop("seconds")
    assert out == {"base": {"id": "20261130T010203Z-lab-db2"}, "binlogs": {"sent": ["b.1"]}, "status": {"bases": [1]}}
    assert sorted(seconds) == ["base", "binlogs", "status"] and all(v >= 0 for v in seconds.values())

    def refuse(cfg: Any, bid: str) -> dict[str, Any]:
        raise tool.ArchiveError("mariadb-backup failed (exit 1): no room")

    calls.clear()
    monkeypatch.setattr(tool, "cmd_base", refuse)
    with pytest.raises(tool.ArchiveError, match="no room"):
        tool.cmd_backup({}, "20261130T010203Z-lab-db2")
    assert calls == []
