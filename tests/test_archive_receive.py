"""The backup host's receiver (roles/db_backup/files/envcredit_archive_receive.py), run as the
archive account's forced command would run it: a real process, the request in
$SSH_ORIGINAL_COMMAND, bytes on stdin."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RECEIVER = REPO / "roles" / "db_backup" / "files" / "envcredit_archive_receive.py"
sys.path.insert(0, str(RECEIVER.parent))

import envcredit_archive_receive as receiver  # noqa: E402


def call(root: Path, request: str, data: bytes = b"", host: str = "lab-db2") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "SSH_ORIGINAL_COMMAND": request}
    argv = [sys.executable, str(RECEIVER), "--root", str(root), "--host", host]
    return subprocess.run(argv, input=data, capture_output=True, env=env, timeout=30, check=False)


def test_put_list_get_round_trip(tmp_path: Path) -> None:
    data = os.urandom(3 * receiver.CHUNK + 17)
    put = call(tmp_path, "put base 2026-a.xbs.zst.age", data)
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout) == {
        "name": "2026-a.xbs.zst.age",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    stored = tmp_path / "lab-db2" / "base" / "2026-a.xbs.zst.age"
    assert stored.read_bytes() == data
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "lab-db2").stat().st_mode & 0o777 == 0o700
    listed = json.loads(call(tmp_path, "list base").stdout)
    assert [(e["name"], e["size"]) for e in listed] == [("2026-a.xbs.zst.age", len(data))]
    got = call(tmp_path, "get base 2026-a.xbs.zst.age")
    assert got.returncode == 0 and got.stdout == data
    assert json.loads(call(tmp_path, "list binlog").stdout) == []
    space = json.loads(call(tmp_path, "df").stdout)
    assert 0 < space["free"] <= space["total"]


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    assert call(tmp_path, "put binlog mariadb-bin.000001.age", b"first").returncode == 0
    again = call(tmp_path, "put binlog mariadb-bin.000001.age", b"second")
    assert again.returncode == 3 and b"exists already" in again.stderr
    assert (tmp_path / "lab-db2" / "binlog" / "mariadb-bin.000001.age").read_bytes() == b"first"


def test_a_host_sees_only_its_own_directory(tmp_path: Path) -> None:
    assert call(tmp_path, "put dump a.age", b"db1's", host="lab-db1").returncode == 0
    assert json.loads(call(tmp_path, "list dump", host="lab-db2").stdout) == []
    missing = call(tmp_path, "get dump a.age", host="lab-db2")
    assert missing.returncode == 5 and missing.stdout == b""


@pytest.mark.parametrize(
    "request_",
    [
        "",
        "rm base x",
        "put base",
        "put shell x",
        "put base ../../etc/passwd",
        "put base .hidden",
        "put base x.partial",
        "get base ../lab-db1/base/x",
        "list",
        "put base 'unterminated",
        "df now",
    ],
)
def test_bad_requests_are_refused_and_write_nothing(tmp_path: Path, request_: str) -> None:
    result = call(tmp_path, request_, b"payload")
    assert result.returncode == 2, (request_, result.stderr)
    assert result.stderr.startswith(b"envcredit-archive: ")
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_a_bad_host_binding_is_refused(tmp_path: Path) -> None:
    result = call(tmp_path, "list base", host="../etc")
    assert result.returncode == 2 and b"bad host name" in result.stderr


def test_a_full_disk_leaves_nothing_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(receiver.os, "fsync", full)
    with pytest.raises(receiver.Refused) as caught:
        receiver.put(tmp_path, "lab-db2", "base", "x.age", io.BytesIO(b"data"))
    assert caught.value.code == 4 and "disk is full" in str(caught.value)
    assert list((tmp_path / "lab-db2" / "base").iterdir()) == []


def test_an_interrupted_upload_leaves_no_partial_file(tmp_path: Path) -> None:
    class Dies(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionResetError("client gone")
            return super().read(4)

    with pytest.raises(ConnectionResetError):
        receiver.put(tmp_path, "lab-db2", "base", "x.age", Dies(b"0123456789"))
    assert list((tmp_path / "lab-db2" / "base").iterdir()) == []
