#!/usr/bin/python3
"""Forced SSH command of the archive account on the backup host (stdlib only).

A database host's key is in the archive account's ``authorized_keys`` as

    command="/usr/bin/python3 .../envcredit_archive_receive.py --root R --host H",restrict ssh-ed25519 ...

so whatever the client asks for, this runs instead, and only under ``R/H``: a database host can
add files to its own directory and read them back, never overwrite, remove or read another
host's. What arrives is already encrypted on the database host (age); this side never sees a
key. The request is ``$SSH_ORIGINAL_COMMAND``:

    put KIND NAME     stdin -> R/H/KIND/NAME (written to a hidden partial file, fsynced, renamed;
                      an existing NAME is refused); prints {"name", "size", "sha256"}
    list KIND         prints [{"name", "size", "mtime"}] of the committed files, sorted by name
    get KIND NAME     the file on stdout
    df                prints {"free", "total"} (bytes) of the filesystem under R

KIND is ``base`` (physical backups), ``binlog`` (MariaDB binary logs) or ``dump`` (logical
dumps); NAME is letters, digits, ``.``, ``_`` and ``-``, not starting with a dot. Exit status:
0 done, 2 bad request, 3 NAME exists, 4 the backup host's disk is full (nothing is left behind),
5 NAME not found, 1 any other failure.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import BinaryIO

KINDS = ("base", "binlog", "dump")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
CHUNK = 1 << 20


class Refused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def kind_dir(root: Path, host: str, kind: str, create: bool) -> Path:
    if kind not in KINDS:
        raise Refused(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})", 2)
    path = root / host / kind
    if create:
        for folder in (root / host, path):
            folder.mkdir(mode=0o700, exist_ok=True)
    return path


def checked_name(name: str) -> str:
    if not NAME.match(name) or name.endswith(".partial"):
        raise Refused(f"bad file name {name!r}", 2)
    return name


def put(root: Path, host: str, kind: str, name: str, src: BinaryIO) -> dict[str, object]:
    folder = kind_dir(root, host, kind, create=True)
    final = folder / checked_name(name)
    if final.exists():
        raise Refused(f"{kind}/{name} exists already; nothing is overwritten", 3)
    partial = folder / f".{name}.partial"
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            os.fchmod(out.fileno(), 0o600)
            while chunk := src.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if final.exists():
            raise Refused(f"{kind}/{name} exists already; nothing is overwritten", 3)
        os.rename(partial, final)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise Refused(f"the backup host's disk is full: {kind}/{name} not stored", 4) from exc
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {"name": name, "size": size, "sha256": digest.hexdigest()}


def listing(root: Path, host: str, kind: str) -> list[dict[str, object]]:
    folder = kind_dir(root, host, kind, create=False)
    if not folder.is_dir():
        return []
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        st = entry.stat()
        out.append({"name": entry.name, "size": st.st_size, "mtime": int(st.st_mtime)})
    return out


def get(root: Path, host: str, kind: str, name: str, dst: BinaryIO) -> None:
    path = kind_dir(root, host, kind, create=False) / checked_name(name)
    if not path.is_file():
        raise Refused(f"{kind}/{name} is not on the backup host", 5)
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
    dst.flush()


def serve(root: Path, host: str, request: str, stdin: BinaryIO, stdout: BinaryIO) -> None:
    try:
        words = shlex.split(request)
    except ValueError as exc:
        raise Refused(f"bad request: {exc}", 2) from exc
    if not words:
        raise Refused("no request (expected put, list, get or df)", 2)
    verb, args = words[0], words[1:]
    shapes = {"put": 2, "get": 2, "list": 1, "df": 0}
    if verb not in shapes or len(args) != shapes[verb]:
        raise Refused(f"bad request {request!r} (expected put KIND NAME, get KIND NAME, list KIND or df)", 2)
    if verb == "put":
        result: object = put(root, host, args[0], args[1], stdin)
    elif verb == "get":
        get(root, host, args[0], args[1], stdout)
        return
    elif verb == "list":
        result = listing(root, host, args[0])
    else:
        st = os.statvfs(root)
        result = {"free": st.f_bavail * st.f_frsize, "total": st.f_blocks * st.f_frsize}
    stdout.write((json.dumps(result) + "\n").encode())
    stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--host", required=True)
    opts = parser.parse_args(argv)
    if not NAME.match(opts.host):
        print(f"envcredit-archive: bad host name {opts.host!r}", file=sys.stderr)
        return 2
    try:
        serve(opts.root, opts.host, os.environ.get("SSH_ORIGINAL_COMMAND", ""), sys.stdin.buffer, sys.stdout.buffer)
    except Refused as exc:
        print(f"envcredit-archive: {exc}", file=sys.stderr)
        return exc.code
    except OSError as exc:
        print(f"envcredit-archive: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
