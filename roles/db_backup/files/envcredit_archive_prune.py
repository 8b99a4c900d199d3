#!/usr/bin/python3
"""Retention of the archive on the backup host (stdlib only).

Run on the backup host as the archive account (envcredit-archive-prune.timer, daily), over
``<root>/<database host>/{base,binlog,dump}/`` as envcredit_archive_receive.py writes it. The
backup host has no key: it reads what the names say (the empty markers of
envcredit_mariadb_archive.py: ``<id>.json.age`` complete, ``<id>.timeline.age`` starts a
timeline, ``<id>.binlog.<file>.age`` its starting binary log, ``<id>.verified.age`` a restore
drill restored it). Per host:

    bases     keep the newest --keep-bases complete bases of the current timeline, the newest
              verified base wherever it is and every base newer than it; remove the older ones
              with all their files (<id>.*). Nothing at all is removed from base/ and binlog/
              while the current timeline has fewer than --keep-bases complete bases.
    binlogs   remove those whose name sorts before the oldest kept base's starting binary log;
              keep them all when that base has no binlog marker (a base from before them).
    incomplete bases (no metadata) and hidden partial files: removed once older than 24 h (an
              upload may still be running before that).
    dumps     keep the newest --keep-dumps by name (backup ids sort by time).

Symbolic links are never followed nor removed. Prints one JSON object: per host what was kept
and removed (with --dry-run: would be removed, nothing is) and the bytes freed. Exit status: 0
done, 2 bad arguments (nothing removed), 1 a removal failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import time
from pathlib import Path
from typing import Any

# The bases are read with envcredit_mariadb_archive.py's own code (bases_of: what the markers
# say; current_timeline: where a restore can start from), installed beside this script in the
# same directory (with the modules that one imports at its top, envcredit_dbtool.py and
# envcredit_dbcommon.py: the role installs the three; nothing of them runs here but these two
# functions): one definition for the restore and the retention.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import envcredit_mariadb_archive as archive  # noqa: E402

HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
STALE = 24 * 3600  # an incomplete base or a partial file older than this is no upload in progress
DUMP_SUFFIX = ".tar.age"


class Refused(Exception):
    pass


class Entry:
    """A regular file of a kind directory (never a symbolic link)."""

    def __init__(self, path: Path, st: os.stat_result) -> None:
        self.path = path
        self.name = path.name
        self.size = st.st_size
        self.mtime = st.st_mtime


def scan(folder: Path) -> tuple[list[Entry], list[Entry], list[str]]:
    """(committed files, hidden partial files, ignored names) of a kind directory, sorted by name;
    a missing directory is empty. Symbolic links and anything not a regular file are ignored."""
    files: list[Entry] = []
    partials: list[Entry] = []
    ignored: list[str] = []
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return files, partials, ignored
    if not stat.S_ISDIR(st.st_mode):
        return files, partials, [folder.name + "/"]
    for name in sorted(os.listdir(folder)):
        path = folder / name
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            ignored.append(f"{folder.name}/{name}")
        elif name.startswith("."):
            if name.endswith(".partial"):
                partials.append(Entry(path, st))
        else:
            files.append(Entry(path, st))
    return files, partials, ignored


class Plan:
    """What a host's retention removes, and the bytes that frees."""

    def __init__(self) -> None:
        self.remove: list[Entry] = []

    def add(self, entries: list[Entry]) -> None:
        self.remove.extend(entries)

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.remove)


def prune_host(hostdir: Path, keep_bases: int, keep_dumps: int, now: float) -> tuple[dict[str, Any], Plan]:
    plan = Plan()
    notes: list[str] = []
    base_files, base_partials, base_ignored = scan(hostdir / "base")
    log_files, log_partials, log_ignored = scan(hostdir / "binlog")
    dump_files, dump_partials, dump_ignored = scan(hostdir / "dump")

    # ---- bases and binary logs
    found = archive.bases_of([{"name": e.name, "size": e.size, "mtime": e.mtime} for e in base_files])
    by_id = {b["id"]: b for b in found}
    files_of = {bid: [e for e in base_files if e.name.startswith(bid + ".")] for bid in by_id}
    timeline = archive.current_timeline(found)
    complete = sorted((b for b in found if b["complete"]), key=lambda b: float(b["stored_at"]))
    verified = [b for b in complete if b["verified"]]
    newest_verified = verified[-1]["id"] if verified else None
    incomplete = [b for b in found if not b["complete"]]
    base_mtime = {
        b["id"]: next(e.mtime for e in files_of[b["id"]] if e.name == b["id"] + archive.SUFFIX) for b in found
    }
    stale_incomplete = [b["id"] for b in incomplete if now - base_mtime[b["id"]] > STALE]
    logs = [e for e in log_files if e.name.endswith(".age")]
    kept_bases = [b["id"] for b in complete]
    removed_bases: list[str] = []
    removed_incomplete: list[str] = []
    removed_logs: list[Entry] = []
    oldest_binlog: str | None = None
    if len(timeline) < keep_bases:
        notes.append(
            f"the current timeline has {len(timeline)} complete base(s), fewer than --keep-bases {keep_bases}: "
            "nothing is removed from base/ and binlog/"
        )
    else:
        keep = {b["id"] for b in timeline[-keep_bases:]}
        if verified:
            keep.update(b["id"] for b in complete if float(b["stored_at"]) >= float(verified[-1]["stored_at"]))
        kept_bases = [b["id"] for b in complete if b["id"] in keep]
        removed_bases = [b["id"] for b in complete if b["id"] not in keep]
        removed_incomplete = stale_incomplete
        for bid in removed_bases + removed_incomplete:
            plan.add(files_of[bid])
        plan.add([e for e in base_partials + log_partials if now - e.mtime > STALE])
        oldest = by_id[kept_bases[0]]
        oldest_binlog = oldest["binlog_file"]
        if oldest_binlog is None:
            notes.append(
                f"the oldest kept base {oldest['id']} has no binlog marker (a base from before them): "
                "every binary log is kept"
            )
        else:
            removed_logs = [e for e in logs if e.name[: -len(".age")] < oldest_binlog]
            plan.add(removed_logs)
    gone = {e.name for e in removed_logs}
    kept_logs = [e.name[: -len(".age")] for e in logs if e.name not in gone]

    # ---- dumps (logical backups; their own count, whatever the physical archive holds)
    dumps = [e for e in dump_files if e.name.endswith(DUMP_SUFFIX)]
    removed_dumps = dumps[:-keep_dumps] if len(dumps) > keep_dumps else []
    plan.add(removed_dumps)
    plan.add([e for e in dump_partials if now - e.mtime > STALE])

    removed_partials = [e.path.parent.name + "/" + e.name for e in plan.remove if e.name.startswith(".")]
    report: dict[str, Any] = {
        "timeline": [b["id"] for b in timeline],
        "newest_verified": newest_verified,
        "bases": {"kept": kept_bases, "removed": removed_bases},
        "incomplete_bases": {
            "kept": [b["id"] for b in incomplete if b["id"] not in removed_incomplete],
            "removed": removed_incomplete,
        },
        "binlogs": {
            "from": oldest_binlog,
            "kept": len(kept_logs),
            "kept_first": kept_logs[0] if kept_logs else None,
            "removed": len(removed_logs),
            "removed_first": removed_logs[0].name[:-4] if removed_logs else None,
            "removed_last": removed_logs[-1].name[:-4] if removed_logs else None,
        },
        "dumps": {
            "kept": [e.name for e in dumps[len(removed_dumps) :]],
            "removed": [e.name for e in removed_dumps],
        },
        "partials_removed": removed_partials,
        "ignored": base_ignored + log_ignored + dump_ignored,
        "notes": notes,
        "bytes_freed": plan.bytes,
    }
    return report, plan


def host_dirs(root: Path, hosts: list[str]) -> dict[str, Path]:
    """The host directories to prune (all of the root's when none is named); refuses anything
    that is not a real directory under the root (a symbolic link is never followed)."""
    if not root.is_dir():
        raise Refused(f"the archive root {root} is not a directory")
    if hosts:
        for h in hosts:
            if not HOST.match(h):
                raise Refused(f"bad host name {h!r}")
        names = sorted(set(hosts))
    else:
        names = sorted(n for n in os.listdir(root) if HOST.match(n))
    out = {}
    for name in names:
        path = root / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise Refused(f"{path} does not exist (no archive for host {name})") from None
        if stat.S_ISLNK(st.st_mode):
            if hosts:
                raise Refused(f"{path} is a symbolic link: not followed out of the root")
            continue
        if stat.S_ISDIR(st.st_mode):
            out[name] = path
        elif hosts:
            raise Refused(f"{path} is not a directory")
    return out


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1 (at least one is always kept)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--root", required=True, type=Path, help="the archive root (<root>/<host>/{base,binlog,dump})")
    parser.add_argument("--host", action="append", default=[], help="only this host's directory (repeatable)")
    parser.add_argument(
        "--keep-bases", required=True, type=positive, help="complete bases kept of the current timeline"
    )
    parser.add_argument("--keep-dumps", required=True, type=positive, help="newest logical dumps kept")
    parser.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    opts = parser.parse_args(argv)
    now = time.time()
    try:
        dirs = host_dirs(opts.root, opts.host)
    except Refused as exc:
        print(f"envcredit-archive-prune: {exc}", file=sys.stderr)
        return 2
    plans: dict[str, Plan] = {}
    hosts: dict[str, Any] = {}
    try:
        for name, path in dirs.items():
            hosts[name], plans[name] = prune_host(path, opts.keep_bases, opts.keep_dumps, now)
        if not opts.dry_run:
            for plan in plans.values():
                for entry in plan.remove:
                    if stat.S_ISREG(os.lstat(entry.path).st_mode):  # still the regular file scanned
                        entry.path.unlink()
    except OSError as exc:
        print(f"envcredit-archive-prune: {exc}", file=sys.stderr)
        return 1
    result = {
        "root": str(opts.root),
        "dry_run": opts.dry_run,
        "keep_bases": opts.keep_bases,
        "keep_dumps": opts.keep_dumps,
        "hosts": hosts,
        "bytes_freed": sum(p.bytes for p in plans.values()),
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
