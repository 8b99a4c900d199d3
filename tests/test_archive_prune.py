"""The backup host's retention (roles/db_backup/files/envcredit_archive_prune.py), run as its
timer runs it: a real process over a real archive tree (files with set mtimes), as
envcredit_archive_receive.py and the db_backup role write it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PRUNE = REPO / "roles" / "db_backup" / "files" / "envcredit_archive_prune.py"
DAY = 86400.0
NOW = time.time()
HOST = "lab-db2"


def put(path: Path, at: float, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"a" * size)
    os.utime(path, (at, at))
    return path


def base(
    root: Path,
    bid: str,
    days_ago: float,
    binlog: str | None = "mariadb-bin.000001",
    complete: bool = True,
    timeline: bool = False,
    verified: bool = False,
    host: str = HOST,
) -> None:
    """A base as envcredit_mariadb_archive.py base stores it: the stream, the metadata, markers."""
    at = NOW - days_ago * DAY
    folder = root / host / "base"
    put(folder / f"{bid}.xbs.zst.age", at - 60, size=1000)
    if timeline:
        put(folder / f"{bid}.timeline.age", at - 1, size=10)
    if complete:
        put(folder / f"{bid}.json.age", at, size=20)
        if binlog:
            put(folder / f"{bid}.binlog.{binlog}.age", at, size=10)
    if verified:
        put(folder / f"{bid}.verified.age", at + 3600, size=10)


def binlogs(root: Path, first: int, last: int, host: str = HOST) -> None:
    for n in range(first, last + 1):
        put(root / host / "binlog" / f"mariadb-bin.{n:06d}.age", NOW - (last - n) * 600, size=50)


def names(root: Path, kind: str, host: str = HOST) -> list[str]:
    folder = root / host / kind
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run(root: Path, *args: str, keep_bases: int = 2, keep_dumps: int = 2) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(PRUNE), "--root", str(root), f"--keep-bases={keep_bases}", f"--keep-dumps={keep_dumps}"]
    # the tool's modules sit beside it on the backup host; here envcredit_dbcommon is in module_utils
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins" / "module_utils")}
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def prune(root: Path, *args: str, keep_bases: int = 2, keep_dumps: int = 2) -> dict[str, Any]:
    proc = run(root, *args, keep_bases=keep_bases, keep_dumps=keep_dumps)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def four_bases(root: Path) -> None:
    """b1..b4, a day apart, starting at binary logs 2, 4, 6, 8; logs 1..10 archived."""
    for i, day in enumerate((4, 3, 2, 1), start=1):
        base(root, f"2026112{i}T010000Z-{HOST}", day, binlog=f"mariadb-bin.{2 * i:06d}")
    binlogs(root, 1, 10)


def bid(i: int) -> str:
    return f"2026112{i}T010000Z-{HOST}"


def logs_left(root: Path) -> list[int]:
    return [int(n.split(".")[1]) for n in names(root, "binlog")]


def test_the_newest_bases_are_kept_older_ones_go_with_all_their_files_and_their_binlogs(tmp_path: Path) -> None:
    four_bases(tmp_path)
    before = {p: p.stat().st_size for p in (tmp_path / HOST).rglob("*") if p.is_file()}
    out = prune(tmp_path)
    host = out["hosts"][HOST]
    assert host["bases"] == {"kept": [bid(3), bid(4)], "removed": [bid(1), bid(2)]}
    assert names(tmp_path, "base") == sorted(
        f"{bid(i)}{suffix}"
        for i in (3, 4)
        for suffix in (".xbs.zst.age", ".json.age", f".binlog.mariadb-bin.{2 * i:06d}.age")
    )
    # the oldest kept base starts at log 6: the logs before it go, 6 and later stay
    assert logs_left(tmp_path) == [6, 7, 8, 9, 10]
    assert host["binlogs"]["from"] == "mariadb-bin.000006"
    assert (host["binlogs"]["kept"], host["binlogs"]["removed"]) == (5, 5)
    assert (host["binlogs"]["removed_first"], host["binlogs"]["removed_last"]) == (
        "mariadb-bin.000001",
        "mariadb-bin.000005",
    )
    gone = sum(size for p, size in before.items() if not p.exists())
    assert gone == 2 * (1000 + 20 + 10) + 5 * 50
    assert host["bytes_freed"] == gone and out["bytes_freed"] == gone
    assert host["notes"] == [] and out["dry_run"] is False
    # a second run finds nothing more to remove
    again = prune(tmp_path)
    assert again["bytes_freed"] == 0 and again["hosts"][HOST]["bases"]["removed"] == []


def test_a_dry_run_reports_the_same_and_removes_nothing(tmp_path: Path) -> None:
    four_bases(tmp_path)
    base(tmp_path, "20261101T010000Z-x", 10, complete=False)
    for i in range(1, 5):
        put(tmp_path / HOST / "dump" / f"2026112{i}T000000Z.tar.age", NOW - i * DAY)
    put(tmp_path / HOST / "binlog" / ".mariadb-bin.000011.age.partial", NOW - 3 * DAY)
    before = tree(tmp_path)
    dry = prune(tmp_path, "--dry-run")
    assert tree(tmp_path) == before
    assert dry["dry_run"] is True
    host = dry["hosts"][HOST]
    assert host["bases"]["removed"] == [bid(1), bid(2)]
    assert host["incomplete_bases"]["removed"] == ["20261101T010000Z-x"]
    assert host["binlogs"]["removed"] == 5 and host["dumps"]["removed"] == [
        "20261121T000000Z.tar.age",
        "20261122T000000Z.tar.age",
    ]
    assert host["partials_removed"] == ["binlog/.mariadb-bin.000011.age.partial"]
    real = prune(tmp_path)
    assert real["hosts"] == dry["hosts"] and real["bytes_freed"] == dry["bytes_freed"] > 0
    assert tree(tmp_path) != before


def test_the_newest_verified_base_and_every_newer_one_are_kept(tmp_path: Path) -> None:
    for i, day in enumerate((5, 4, 3, 2, 1), start=1):
        base(tmp_path, bid(i), day, binlog=f"mariadb-bin.{2 * i:06d}", verified=i in (1, 2))
    binlogs(tmp_path, 1, 12)
    host = prune(tmp_path)["hosts"][HOST]
    # keep 2 would keep b4, b5 only; b2 is the newest verified: b2 and every newer base stay
    assert host["newest_verified"] == bid(2)
    assert host["bases"] == {"kept": [bid(2), bid(3), bid(4), bid(5)], "removed": [bid(1)]}
    assert f"{bid(2)}.verified.age" in names(tmp_path, "base")
    assert not [n for n in names(tmp_path, "base") if n.startswith(bid(1))]
    assert logs_left(tmp_path) == list(range(4, 13))  # from b2's starting log


def test_a_timeline_marker_makes_the_older_timelines_bases_removable(tmp_path: Path) -> None:
    base(tmp_path, bid(1), 4, binlog="mariadb-bin.000002")
    base(tmp_path, bid(2), 3, binlog="mariadb-bin.000004")
    base(tmp_path, bid(3), 2, binlog="mariadb-bin.000006", timeline=True)  # an in-place restore's
    base(tmp_path, bid(4), 1, binlog="mariadb-bin.000008")
    binlogs(tmp_path, 1, 9)
    # 3 bases wanted, the current timeline has 2: the older timeline's bases do not count
    held = prune(tmp_path, keep_bases=3)["hosts"][HOST]
    assert held["timeline"] == [bid(3), bid(4)] and held["bases"]["removed"] == []
    assert "fewer than --keep-bases 3" in held["notes"][0]
    assert len(names(tmp_path, "base")) == 13 and logs_left(tmp_path) == list(range(1, 10))
    host = prune(tmp_path, keep_bases=2)["hosts"][HOST]
    assert host["bases"] == {"kept": [bid(3), bid(4)], "removed": [bid(1), bid(2)]}
    assert f"{bid(3)}.timeline.age" in names(tmp_path, "base")
    assert logs_left(tmp_path) == [6, 7, 8, 9]


def test_a_verified_base_of_an_older_timeline_is_kept_with_every_newer_base(tmp_path: Path) -> None:
    base(tmp_path, bid(1), 5, binlog="mariadb-bin.000002")
    base(tmp_path, bid(2), 4, binlog="mariadb-bin.000004", verified=True)
    base(tmp_path, bid(3), 3, binlog="mariadb-bin.000006")
    base(tmp_path, bid(4), 2, binlog="mariadb-bin.000008", timeline=True)
    base(tmp_path, bid(5), 1, binlog="mariadb-bin.000010")
    binlogs(tmp_path, 1, 11)
    host = prune(tmp_path, keep_bases=1)["hosts"][HOST]
    assert host["timeline"] == [bid(4), bid(5)]
    assert host["bases"] == {"kept": [bid(2), bid(3), bid(4), bid(5)], "removed": [bid(1)]}
    assert logs_left(tmp_path) == list(range(4, 12))


def test_an_oldest_kept_base_without_its_binlog_marker_keeps_every_binlog(tmp_path: Path) -> None:
    base(tmp_path, bid(1), 4, binlog=None)
    base(tmp_path, bid(2), 3, binlog=None)  # from before the markers
    base(tmp_path, bid(3), 2, binlog="mariadb-bin.000006")
    binlogs(tmp_path, 1, 8)
    host = prune(tmp_path)["hosts"][HOST]
    assert host["bases"] == {"kept": [bid(2), bid(3)], "removed": [bid(1)]}
    assert logs_left(tmp_path) == list(range(1, 9))
    assert host["binlogs"] == {
        "from": None,
        "kept": 8,
        "kept_first": "mariadb-bin.000001",
        "removed": 0,
        "removed_first": None,
        "removed_last": None,
    }
    assert host["notes"] == [
        f"the oldest kept base {bid(2)} has no binlog marker (a base from before them): every binary log is kept"
    ]


def test_fewer_complete_bases_than_wanted_remove_nothing_of_the_physical_archive(tmp_path: Path) -> None:
    base(tmp_path, bid(1), 3, binlog="mariadb-bin.000005")
    base(tmp_path, "20261101T010000Z-old", 10, complete=False)
    put(tmp_path / HOST / "base" / ".x.xbs.zst.age.partial", NOW - 5 * DAY)
    binlogs(tmp_path, 1, 6)
    for i in range(1, 4):
        put(tmp_path / HOST / "dump" / f"2026112{i}T000000Z.tar.age", NOW - i * DAY)
    before = names(tmp_path, "base")
    out = prune(tmp_path)
    host = out["hosts"][HOST]
    assert names(tmp_path, "base") == before and logs_left(tmp_path) == list(range(1, 7))
    assert host["bases"] == {"kept": [bid(1)], "removed": []}
    assert host["incomplete_bases"] == {"kept": ["20261101T010000Z-old"], "removed": []}
    assert host["notes"] == [
        "the current timeline has 1 complete base(s), fewer than --keep-bases 2: nothing is removed from base/ and binlog/"
    ]
    # the logical dumps have their own count
    assert names(tmp_path, "dump") == ["20261122T000000Z.tar.age", "20261123T000000Z.tar.age"]
    assert out["bytes_freed"] == 100


def test_incomplete_bases_and_partial_files_go_once_older_than_a_day(tmp_path: Path) -> None:
    four_bases(tmp_path)
    base(tmp_path, "20261101T010000Z-stale", 1.1, complete=False, timeline=True)
    base(tmp_path, "20261130T010000Z-uploading", 0.9, complete=False)
    folder = tmp_path / HOST / "base"
    put(folder / ".20261130T010000Z-next.xbs.zst.age.partial", NOW - 3600)
    put(folder / ".20261101T010000Z-dead.xbs.zst.age.partial", NOW - 2 * DAY)
    put(folder / ".hidden-other", NOW - 9 * DAY)
    put(tmp_path / HOST / "dump" / ".20261101T000000Z.tar.age.partial", NOW - 2 * DAY)
    put(tmp_path / HOST / "dump" / ".20261130T000000Z.tar.age.partial", NOW - 60)
    host = prune(tmp_path)["hosts"][HOST]
    assert host["incomplete_bases"] == {"kept": ["20261130T010000Z-uploading"], "removed": ["20261101T010000Z-stale"]}
    left = names(tmp_path, "base")
    assert not [n for n in left if "stale" in n]
    assert "20261130T010000Z-uploading.xbs.zst.age" in left
    assert ".20261130T010000Z-next.xbs.zst.age.partial" in left and ".hidden-other" in left
    assert ".20261101T010000Z-dead.xbs.zst.age.partial" not in left
    assert names(tmp_path, "dump") == [".20261130T000000Z.tar.age.partial"]
    assert sorted(host["partials_removed"]) == [
        "base/.20261101T010000Z-dead.xbs.zst.age.partial",
        "dump/.20261101T000000Z.tar.age.partial",
    ]


def test_the_newest_dumps_by_name_are_kept(tmp_path: Path) -> None:
    # mtimes in the opposite order: the names (backup ids) decide
    for i in range(1, 6):
        put(tmp_path / HOST / "dump" / f"2026112{i}T000000Z-{HOST}.tar.age", NOW + i * DAY, size=7)
    put(tmp_path / HOST / "dump" / "notes.txt", NOW - 9 * DAY)
    out = prune(tmp_path, keep_dumps=3)
    kept = [f"2026112{i}T000000Z-{HOST}.tar.age" for i in (3, 4, 5)]
    assert names(tmp_path, "dump") == sorted([*kept, "notes.txt"])
    assert out["hosts"][HOST]["dumps"] == {
        "kept": kept,
        "removed": [f"2026112{i}T000000Z-{HOST}.tar.age" for i in (1, 2)],
    }
    assert out["bytes_freed"] == 14


def test_only_the_named_hosts_are_pruned(tmp_path: Path) -> None:
    four_bases(tmp_path)
    for i, day in enumerate((4, 3, 2, 1), start=1):
        base(tmp_path, f"2026112{i}T010000Z-lab-db3", day, host="lab-db3")
    out = prune(tmp_path, "--host", "lab-db3")
    assert list(out["hosts"]) == ["lab-db3"]
    assert len(names(tmp_path, "base", host="lab-db3")) == 6
    assert len(names(tmp_path, "base")) == 12 and logs_left(tmp_path) == list(range(1, 11))
    assert sorted(prune(tmp_path)["hosts"]) == [HOST, "lab-db3"]
    assert len(names(tmp_path, "base")) == 6


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--keep-bases=0"], "less than 1"),
        (["--keep-dumps=0"], "less than 1"),
        (["--keep-bases=-3"], "less than 1"),
        (["--keep-dumps=many"], "is not a number"),
        (["--host", "../etc"], "bad host name"),
        (["--host", "lab-db9"], "does not exist"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_removed(tmp_path: Path, args: list[str], words: str) -> None:
    four_bases(tmp_path)
    before = tree(tmp_path)
    proc = run(tmp_path, *args)
    assert proc.returncode == 2 and words in proc.stderr and proc.stdout == ""
    assert tree(tmp_path) == before


def test_a_missing_root_is_refused(tmp_path: Path) -> None:
    proc = run(tmp_path / "absent")
    assert proc.returncode == 2 and "is not a directory" in proc.stderr


def test_symbolic_links_are_never_followed_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    four_bases(root)
    four_bases(outside)  # a whole host's archive outside the root
    (root / "lab-db9").symlink_to(outside / HOST)
    secret = put(outside / "mariadb-bin.000001.age", NOW - 9 * DAY)
    (root / HOST / "binlog" / "mariadb-bin.000000.age").symlink_to(secret)
    put(outside / "dumps" / "20260101T000000Z.tar.age", NOW - 9 * DAY)
    (root / "lab-db4").mkdir()
    (root / "lab-db4" / "dump").symlink_to(outside / "dumps")
    before = tree(outside)
    out = prune(root, keep_dumps=1)
    assert sorted(out["hosts"]) == [HOST, "lab-db4"]  # the linked host directory is skipped
    assert out["hosts"][HOST]["ignored"] == ["binlog/mariadb-bin.000000.age"]
    assert out["hosts"]["lab-db4"]["ignored"] == ["dump/"]
    assert tree(outside) == before
    assert (root / HOST / "binlog" / "mariadb-bin.000000.age").is_symlink()
    assert logs_left(root) == [0, 6, 7, 8, 9, 10]
    named = run(root, "--host", "lab-db9")
    assert named.returncode == 2 and "symbolic link" in named.stderr
    assert tree(outside) == before
