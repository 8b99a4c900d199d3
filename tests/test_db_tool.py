"""Parts of roles/db_backup/files/envcredit_dbtool.py that need no database server.

The lab tests (test_db_lab.py, test_db_faults_lab.py) run the whole tool against PostgreSQL
and MariaDB; these pin two pieces on their own: the compression of pg_dump's directory output
while it is being written (with a writer that pauses with files open, real zstd), and the
comparison of restored row counts with the manifest (exact, or within the measured tolerance).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers.common import REPO

sys.path.insert(0, str(REPO / "roles" / "db_backup" / "files"))
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # envcredit_dbcommon, the tools' shared code
import envcredit_dbtool as tool  # noqa: E402

# A stand-in for pg_dump -Fd: writes its files the way pg_dump does (each opened once, written
# in pieces with pauses while open, closed), toc.dat last, then exits with the given status.
WRITER = r"""
import os, sys, time
out, status = sys.argv[1], int(sys.argv[2])
os.mkdir(out)
def chunk(i, n):
    # compressible but not trivial: text with a counter, plus some random bytes
    text = (f"row {i} 环境信用评价 " * (n // 8)).encode()[:n - n // 2]
    return text + os.urandom(n // 2)
with open(os.path.join(out, "1.dat"), "wb") as big, open(os.path.join(out, "2.dat"), "wb") as small:
    for i in range(12):
        big.write(chunk(i, 1 << 20))
        big.flush()
        if i == 3:
            small.write(chunk(i, 4096))
        time.sleep(0.15)   # longer than the follower's poll: it must wait, not stop
with open(os.path.join(out, "toc.dat"), "wb") as toc:
    toc.write(b"toc")
sys.exit(status)
"""


def writer(tmp: Path, status: int = 0) -> tuple[list[str], Path]:
    """argv of a writer into tmp/out.dir, and that directory."""
    script = tmp / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    return [sys.executable, str(script), str(tmp / "out.dir"), str(status)], tmp / "out.dir"


def unzstd(path: Path) -> bytes:
    return subprocess.run(["zstd", "-q", "-d", "-c", str(path)], check=True, capture_output=True).stdout


def test_files_are_compressed_while_written_and_match_byte_for_byte(tmp_path: Path) -> None:
    argv, out = writer(tmp_path)
    # The content has random parts: the reference is each raw file as it is just before the
    # tool removes it (after its .zst is complete).
    seen: dict[str, bytes] = {}
    orig_unlink = Path.unlink

    def keep_then_unlink(self: Path, missing_ok: bool = False) -> None:
        seen[self.name] = self.read_bytes()
        orig_unlink(self, missing_ok=missing_ok)

    Path.unlink = keep_then_unlink  # type: ignore[method-assign]
    try:
        tool.dump_directory_compressed(argv, out, 3)
    finally:
        Path.unlink = orig_unlink  # type: ignore[method-assign]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["1.dat.zst", "2.dat.zst", "toc.dat.zst"], names
    assert sorted(seen) == ["1.dat", "2.dat", "toc.dat"]
    assert len(seen["1.dat"]) == 12 << 20 and len(seen["2.dat"]) == 4096
    for name, raw in seen.items():
        restored = unzstd(out / f"{name}.zst")
        assert hashlib.sha256(restored).hexdigest() == hashlib.sha256(raw).hexdigest(), name
        # the manifest's sha256, taken while the .zst was written, is the file's
        zst = out / f"{name}.zst"
        assert tool.SEALED[str(zst)] == hashlib.sha256(zst.read_bytes()).hexdigest(), name


def test_chain_writes_hashes_and_checks_both_statuses(tmp_path: Path) -> None:
    dest = tmp_path / "out.zst"
    tool.chain(["printf", "环境信用 %s\\n", "a", "b"], ["zstd", "-q", "-c"], hashed_to=dest)
    assert unzstd(dest).decode() == "环境信用 a\n环境信用 b\n"
    assert tool.SEALED[str(dest)] == hashlib.sha256(dest.read_bytes()).hexdigest()
    with pytest.raises(tool.Fail, match=r"^sh exited 4: boom"):  # the first stage fails behind the pipe
        tool.chain(["sh", "-c", "echo boom >&2; exit 4"], ["zstd", "-q", "-c"], hashed_to=tmp_path / "x.zst")


def test_a_full_disk_while_writing_is_a_clear_error() -> None:
    with pytest.raises(tool.Fail, match=r"writing /dev/full: No space left on device"):
        tool.chain(["head", "-c", "4000000", "/dev/zero"], ["cat"], hashed_to=Path("/dev/full"))


def test_a_failing_dump_fails_with_its_status_and_message(tmp_path: Path) -> None:
    argv, out = writer(tmp_path, status=3)
    with pytest.raises(tool.Fail, match=r"exited 3"):
        tool.dump_directory_compressed(argv, out, 3)


def test_a_failing_output_stops_the_follower_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer of zstd's output fails (a full disk): zstd must be stopped so the follower's
    feeding fails instead of blocking for ever, and the reason reported is the disk's."""

    def full_disk(pipe: object, dest: Path) -> None:
        raise tool.Fail(f"writing {dest}: No space left on device")

    monkeypatch.setattr(tool, "write_hashed", full_disk)
    argv, out = writer(tmp_path)
    failure: list[BaseException] = []

    def dump() -> None:
        try:
            tool.dump_directory_compressed(argv, out, 3)
        except BaseException as exc:
            failure.append(exc)

    t = threading.Thread(target=dump, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the follower blocked feeding a zstd nobody reads"
    assert failure and isinstance(failure[0], tool.Fail)
    assert "1.dat.zst: No space left on device" in str(failure[0])


def test_a_missing_dump_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tool.dump_directory_compressed([str(tmp_path / "no-such-pg_dump")], tmp_path / "x.dir", 3)


def test_open_by_others_sees_a_file_another_process_holds(tmp_path: Path) -> None:
    f = tmp_path / "held"
    f.write_bytes(b"x")
    holder = subprocess.Popen([sys.executable, "-c", f"f = open({str(f)!r}); import time; time.sleep(30)"])
    try:
        for _ in range(100):
            if tool.open_by_others(f):
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert tool.open_by_others(f)
    finally:
        holder.kill()
        holder.wait()
    assert not tool.open_by_others(f)


EXPECTED = {"enterprises": 400, "ratings": 1700, "indicators": 20}


def test_counts_equal_pass_and_report_nothing() -> None:
    assert tool.compare_counts(EXPECTED, dict(EXPECTED), 0) is None


def test_any_difference_fails_when_the_counts_were_exact() -> None:
    msg = tool.compare_counts(EXPECTED, {**EXPECTED, "ratings": 1699}, 0)
    assert msg is not None and '"ratings": {"expected": 1700, "restored": 1699}' in msg
    assert "written during the backup" not in msg


def test_differences_within_the_measured_tolerance_pass() -> None:
    restored = {**EXPECTED, "ratings": 1702, "enterprises": 399}
    assert tool.compare_counts(EXPECTED, restored, 3) is None


def test_differences_beyond_the_tolerance_fail_and_say_so() -> None:
    restored = {**EXPECTED, "ratings": 1702, "enterprises": 399}
    msg = tool.compare_counts(EXPECTED, restored, 2)
    assert msg is not None and "more than the 2 rows written during the backup" in msg


def test_a_missing_or_extra_table_fails_whatever_the_tolerance() -> None:
    restored = {k: v for k, v in EXPECTED.items() if k != "indicators"}
    msg = tool.compare_counts(EXPECTED, restored, 10_000)
    assert msg is not None and "tables differ" in msg and "indicators" in msg
    msg = tool.compare_counts(EXPECTED, {**EXPECTED, "extra": 0}, 10_000)
    assert msg is not None and "extra" in msg


# -- check: every file against the manifest (size and sha256) --------------------------------


def _stored_backup(root: Path, backup_id: str = "20261201T020000Z-pg") -> Path:
    base = root / backup_id
    (base / "envcredit.dir").mkdir(parents=True)
    files = {"envcredit.dir/toc.dat.zst": b"toc " * 64, "globals.sql.zst": "CREATE ROLE 环境;\n".encode()}
    entries = []
    for rel, data in files.items():
        (base / rel).write_bytes(data)
        entries.append({"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    (base / "manifest.json").write_text(json.dumps({"id": backup_id, "files": entries}), encoding="utf-8")
    return base


def _check(root: Path, backup_id: str = "20261201T020000Z-pg") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins" / "module_utils")}
    script = REPO / "roles" / "db_backup" / "files" / "envcredit_dbtool.py"
    cmd = [sys.executable, str(script), "check", "--root", str(root), "--id", backup_id]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def test_check_passes_an_intact_backup(tmp_path: Path) -> None:
    base = _stored_backup(tmp_path)
    assert tool.verify_files(base, json.loads((base / "manifest.json").read_text())) == []
    assert tool.verify_files(base, {}) == []  # a manifest listing no files: nothing to check
    args = argparse.Namespace(root=str(tmp_path), id="20261201T020000Z-pg")
    assert tool.cmd_check(args) == {"backup_id": "20261201T020000Z-pg", "files": 2, "ok": True}
    loaded_base, manifest = tool.load_manifest(tmp_path, "20261201T020000Z-pg")
    assert loaded_base == base and manifest["files"][1]["path"] == "globals.sql.zst"
    proc = _check(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"backup_id": "20261201T020000Z-pg", "files": 2, "ok": True}


def test_check_refuses_a_same_size_file_with_another_sha256(tmp_path: Path) -> None:
    base = _stored_backup(tmp_path)
    toc = base / "envcredit.dir" / "toc.dat.zst"
    data = bytearray(toc.read_bytes())
    data[100] ^= 0x01  # one bit: same size, another hash
    toc.write_bytes(bytes(data))
    manifest = json.loads((base / "manifest.json").read_text())
    assert tool.verify_files(base, manifest) == ["envcredit.dir/toc.dat.zst: checksum mismatch"]
    with pytest.raises(tool.Fail) as err:
        tool.cmd_check(argparse.Namespace(root=str(tmp_path), id="20261201T020000Z-pg"))
    assert str(err.value) == "backup 20261201T020000Z-pg is corrupt: envcredit.dir/toc.dat.zst: checksum mismatch"
    proc = _check(tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "envcredit_dbtool: backup 20261201T020000Z-pg is corrupt: envcredit.dir/toc.dat.zst: checksum mismatch" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_check_refuses_a_missing_or_resized_file_and_names_each(tmp_path: Path) -> None:
    base = _stored_backup(tmp_path)
    (base / "globals.sql.zst").unlink()
    with (base / "envcredit.dir" / "toc.dat.zst").open("ab") as f:
        f.write(b"x")
    bad = tool.verify_files(base, json.loads((base / "manifest.json").read_text()))
    assert bad == ["envcredit.dir/toc.dat.zst: checksum mismatch", "globals.sql.zst: missing"]
    with pytest.raises(tool.Fail) as err:
        tool.cmd_check(argparse.Namespace(root=str(tmp_path), id="20261201T020000Z-pg"))
    assert str(err.value) == (
        "backup 20261201T020000Z-pg is corrupt: envcredit.dir/toc.dat.zst: checksum mismatch; globals.sql.zst: missing"
    )
    proc = _check(tmp_path)
    assert proc.returncode == 1 and "globals.sql.zst: missing" in proc.stderr


def test_check_of_an_unknown_or_unreadable_backup_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(tool.Fail) as err:
        tool.load_manifest(tmp_path, "nope")
    assert str(err.value) == f"backup nope not found in {tmp_path}"
    (tmp_path / "dir-only" / "manifest.json").mkdir(parents=True)  # not a file
    with pytest.raises(tool.Fail, match="backup dir-only not found"):
        tool.load_manifest(tmp_path, "dir-only")
    utf8 = _stored_backup(tmp_path, "utf8")
    (utf8 / "manifest.json").write_text(json.dumps({"note": "环境", "files": []}, ensure_ascii=False), encoding="utf-8")
    assert tool.load_manifest(tmp_path, "utf8")[1]["note"] == "环境"
    proc = _check(tmp_path, "nope")
    assert proc.returncode == 1 and f"backup nope not found in {tmp_path}" in proc.stderr
    base = _stored_backup(tmp_path)
    (base / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(tool.Fail, match=r"^backup 20261201T020000Z-pg: manifest unreadable: "):
        tool.load_manifest(tmp_path, "20261201T020000Z-pg")
    proc = _check(tmp_path)
    assert proc.returncode == 1 and "manifest unreadable" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_counts_messages_name_each_table_and_both_counts() -> None:
    restored = {k: v for k, v in EXPECTED.items() if k != "indicators"} | {"extra": 5}
    assert tool.compare_counts(EXPECTED, restored, 0) == (
        'tables differ: {"extra": {"expected": null, "restored": 5}, "indicators": {"expected": 20, "restored": null}}'
    )
    assert tool.compare_counts(EXPECTED, {**EXPECTED, "ratings": 1699}, 0) == (
        '{"ratings": {"expected": 1700, "restored": 1699}}'
    )
