"""The archive: atomic, private, chained, indexed, verifiable, recoverable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.common import allowed_signers_line, ssh_keygen  # noqa: E402
from helpers.records import BASE_TIME, commit_record, fill  # noqa: E402

from orchestrator.archive import Archive, VerifyReport, canonical_json, record_bytes, record_hash  # noqa: E402
from orchestrator.errors import ArchiveError, BadInput, NotFound  # noqa: E402
from orchestrator.records import RunMeta, iso, new_record_id  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def archive(tmp_path: Path) -> Archive:
    return Archive(tmp_path / "archive")


@pytest.fixture()
def filled(archive: Archive) -> tuple[Archive, list[dict[str, Any]]]:
    return archive, fill(archive, 6)


def _rewrite(archive: Archive, rid: str, **changes: Any) -> None:
    path = archive.root / rid / "record.json"
    rec = json.loads(path.read_bytes())
    rec.update(changes)
    path.write_bytes(canonical_json(rec) + b"\n")


# -- commit ------------------------------------------------------------------------------


def test_commit_chains_and_hashes(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert recs[0]["prev_hash"] is None
    for prev, cur in zip(recs, recs[1:]):
        assert cur["prev_hash"] == prev["hash"]
    for rec in recs:
        on_disk = archive.get(rec["id"])
        assert on_disk == rec
        assert record_hash(on_disk) == rec["hash"]
        assert (archive.root / rec["id"] / "record.json").read_bytes() == record_bytes(rec)
        assert set(rec["artifacts"]) == {"stdout.txt", "events.jsonl"}
    head = archive.head()
    assert head == {"seq": 6, "id": recs[-1]["id"], "hash": recs[-1]["hash"]}
    assert archive.verify().ok
    assert archive.verify().count == 6


def test_record_content(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    failed = archive.get(recs[2]["id"])
    assert failed["status"] == "failed"
    assert failed["hosts"]["db1"]["failed"] == 1
    assert failed["failures"][0]["msg"] == "non-zero return code (rc 1): pg_dump: error: connection refused"
    assert failed["changes"][0]["host"] == "app1"
    assert "changed: [app1]" in archive.stdout(recs[2]["id"])
    events = list(archive.events(recs[2]["id"]))
    assert events[-1]["event"] == "playbook_on_stats"


def test_permissions_and_no_temp_files(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    archive.list()  # builds the index
    for dirpath, _dirnames, filenames in os.walk(archive.root):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for name in filenames:
            path = Path(dirpath) / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert not name.endswith(".tmp"), path
    assert list((archive.root / ".pending").iterdir()) == []
    for rec in recs:
        assert sorted(p.name for p in (archive.root / rec["id"]).iterdir()) == [
            "events.jsonl",
            "record.json",
            "stdout.txt",
        ]


def test_permissions_despite_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        archive = Archive(tmp_path / "open-umask")
        rec = commit_record(archive)
    finally:
        os.umask(old)
    assert stat.S_IMODE((archive.root / rec["id"]).stat().st_mode) == 0o700
    assert stat.S_IMODE((archive.root / rec["id"] / "stdout.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE((archive.root / "HEAD").stat().st_mode) == 0o600


def test_commit_rejects_mismatched_id(archive: Archive) -> None:
    rid = new_record_id()
    pending = archive.begin(rid, RunMeta(id=rid, operation="x", playbook="p", environment="lab", inventory="i"))
    with pytest.raises(ArchiveError):
        archive.commit(pending, {"id": new_record_id(), "status": "successful"})


# -- verify: tampering -------------------------------------------------------------------


def test_verify_empty(archive: Archive) -> None:
    report = archive.verify()
    assert report.ok and report.count == 0


def test_edit_field_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    _rewrite(archive, recs[2]["id"], status="successful")
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[2]["id"]
    assert "edited" in report.problem


def test_edit_reformatted_but_identical_is_ok(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    path = archive.root / recs[1]["id"] / "record.json"
    path.write_text(json.dumps(json.loads(path.read_bytes()), indent=4))
    assert archive.verify().ok


def test_edit_and_rehash_detected_at_next(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    rec = archive.get(recs[2]["id"])
    rec["rc"] = 0
    rec["hash"] = record_hash(rec)
    (archive.root / rec["id"] / "record.json").write_bytes(record_bytes(rec))
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[3]["id"]
    assert "prev_hash" in report.problem


def test_edit_and_rehash_of_the_newest_detected_by_head(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    """The newest record has no successor whose prev_hash would catch a re-hash: HEAD's hash must."""
    archive, recs = filled
    rec = archive.get(recs[-1]["id"])
    rec["rc"] = 0 if rec["rc"] else 1
    rec["hash"] = record_hash(rec)
    assert rec["hash"] != recs[-1]["hash"]
    (archive.root / rec["id"] / "record.json").write_bytes(record_bytes(rec))
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[-1]["id"]
    assert "does not match HEAD" in report.problem


def test_edited_index_row_detected_and_reindex_repairs(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    """records list reads the index: a forged row there must fail verify, not only the records."""
    import sqlite3

    archive, recs = filled
    assert archive.list(status="failed")  # builds the index
    assert archive.verify().ok
    conn = sqlite3.connect(archive.index_path)
    conn.execute("UPDATE records SET status = 'successful' WHERE id = ?", (recs[2]["id"],))
    conn.commit()
    conn.close()
    assert recs[2]["id"] in {r["id"] for r in archive.list(status="successful")}  # the forgery shows...
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[2]["id"]  # ...and is caught
    assert "index row" in report.problem and "(status)" in report.problem and "reindex" in report.problem
    archive.reindex()
    assert archive.verify().ok


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM records WHERE seq = 4",
        "INSERT INTO records (id, seq, operation, status, hash) VALUES ('20991231T000000000Z-ffffff', 99, 'restore',"
        " 'successful', 'x')",
        "DELETE FROM record_hosts WHERE id = (SELECT min(id) FROM record_hosts)",
    ],
)
def test_missing_or_extra_index_rows_detected(filled: tuple[Archive, list[dict[str, Any]]], sql: str) -> None:
    import sqlite3

    archive, _ = filled
    archive.list()
    conn = sqlite3.connect(archive.index_path)
    conn.execute(sql)
    conn.commit()
    conn.close()
    report = archive.verify()
    assert not report.ok and "index" in report.problem, report


def test_extra_file_in_a_record_folder_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    (archive.root / recs[3]["id"] / "approval.pdf").write_bytes(b"%PDF forged")
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[3]["id"]
    assert "unexpected file(s) in the record folder: approval.pdf" in report.problem


def test_edit_stdout_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    with open(archive.root / recs[1]["id"] / "stdout.txt", "a") as fh:
        fh.write("nothing to see\n")
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[1]["id"]
    assert "stdout.txt" in report.problem


def test_edit_events_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    path = archive.root / recs[4]["id"] / "events.jsonl"
    path.write_bytes(path.read_bytes().replace(b"FAILED", b"ok").replace(b"changed", b"ok"))
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[4]["id"]
    assert "events.jsonl" in report.problem


def test_delete_middle_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    shutil.rmtree(archive.root / recs[2]["id"])
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[3]["id"]
    assert "missing" in report.problem and "seq 3" in report.problem


def test_delete_first_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    shutil.rmtree(archive.root / recs[0]["id"])
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[1]["id"]


def test_delete_newest_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    shutil.rmtree(archive.root / recs[-1]["id"])
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[-1]["id"]
    assert "removed" in report.problem


def test_delete_all_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    for rec in recs:
        shutil.rmtree(archive.root / rec["id"])
    report = archive.verify()
    assert not report.ok and "removed" in report.problem


def test_head_missing_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    (archive.root / "HEAD").unlink()
    report = archive.verify()
    assert not report.ok and "HEAD" in report.problem
    with pytest.raises(ArchiveError, match="HEAD"):
        commit_record(archive)


def test_swap_folders_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    a, b = archive.root / recs[1]["id"], archive.root / recs[3]["id"]
    tmp = archive.root / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    report = archive.verify()
    assert not report.ok
    # In seq order the first bad one is seq 2, now lying in the folder named after seq 4.
    assert report.first_bad_id == recs[3]["id"]
    assert "swapped" in report.problem and recs[1]["id"] in report.problem


def test_swap_seq_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    _rewrite(archive, recs[1]["id"], seq=4)
    _rewrite(archive, recs[3]["id"], seq=2)
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[3]["id"]  # now claims seq 2: the first in seq order


def test_swap_seq_and_rehash_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    for idx, seq in ((1, 4), (3, 2)):
        rec = archive.get(recs[idx]["id"])
        rec["seq"] = seq
        rec["hash"] = record_hash(rec)
        (archive.root / rec["id"] / "record.json").write_bytes(record_bytes(rec))
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[3]["id"]
    assert "prev_hash" in report.problem


def _forge_copy(
    archive: Archive, source: dict[str, Any], seq: int, *, rehash: bool, prev_hash: str | None = None
) -> str:
    new_id = new_record_id(BASE_TIME)
    shutil.copytree(archive.root / source["id"], archive.root / new_id)
    rec = archive.get(new_id)
    rec["id"] = new_id
    rec["seq"] = seq
    rec["status"] = "successful"
    if prev_hash is not None:
        rec["prev_hash"] = prev_hash
    if rehash:
        rec["hash"] = record_hash(rec)
    (archive.root / new_id / "record.json").write_bytes(record_bytes(rec))
    return new_id


@pytest.mark.parametrize("rehash", [False, True])
def test_insert_forged_in_middle_detected(filled: tuple[Archive, list[dict[str, Any]]], rehash: bool) -> None:
    archive, recs = filled
    forged = _forge_copy(archive, recs[2], seq=4, rehash=rehash, prev_hash=recs[2]["hash"])
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == forged
    assert "inserted" in report.problem or "edited" in report.problem


@pytest.mark.parametrize("rehash", [False, True])
def test_insert_forged_at_end_detected(filled: tuple[Archive, list[dict[str, Any]]], rehash: bool) -> None:
    archive, recs = filled
    forged = _forge_copy(archive, recs[-1], seq=7, rehash=rehash, prev_hash=recs[-1]["hash"])
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == forged


def test_junk_folder_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    (archive.root / "extra").mkdir()
    report = archive.verify()
    assert not report.ok and report.first_bad_id == "extra"


def test_corrupt_json_detected(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    (archive.root / recs[4]["id"] / "record.json").write_text("{not json")
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[4]["id"]


# -- get / list / index ------------------------------------------------------------------


def test_get_unknown_and_bad_ids(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, _ = filled
    with pytest.raises(NotFound, match="no record"):
        archive.get(new_record_id())
    for bad in ("../HEAD", "..", "a/b", "", ".pending"):
        with pytest.raises(BadInput):
            archive.get(bad)
        with pytest.raises(BadInput):
            archive.stdout(bad)


def test_list_filters(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    rows = archive.list()
    assert [r["id"] for r in rows] == [r["id"] for r in reversed(recs)]
    assert {r["environment"] for r in archive.list(env="lab")} == {"lab"}
    assert [r["seq"] for r in archive.list(env="production", status="failed")] == [6, 3]
    assert [r["seq"] for r in archive.list(op="patch")] == [6, 4, 2]
    assert [r["seq"] for r in archive.list(host="app1")] == [5, 3, 1]
    assert [r["seq"] for r in archive.list(ticket="CHG-103")] == [4]
    assert [r["seq"] for r in archive.list(limit=2)] == [6, 5]
    since = iso(BASE_TIME.replace(minute=20))
    assert [r["seq"] for r in archive.list(since=since)] == [6, 5, 4, 3]
    assert [r["seq"] for r in archive.list(until=since)] == [2, 1]
    assert len(archive.list(until="2026-11-28")) == 6  # a bare date includes the whole day
    assert archive.list(since="2026-11-29") == []
    row = rows[0]
    assert row["hosts"] == ["app2", "db1"] and row["failed"] == 1 and row["changed"] == 1
    with pytest.raises(BadInput):
        archive.list(since="yesterday")


def test_index_rebuild_equals_incremental(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    archive.list()  # index exists from here on and is appended to by commit
    recs.append(commit_record(archive, env="lab", ticket="CHG-999"))
    incremental = archive.list()
    assert incremental[0]["ticket"] == "CHG-999"
    archive.index_path.unlink()
    rebuilt = archive.list()
    assert rebuilt == incremental
    assert archive.reindex() == 7
    assert archive.list() == incremental


def test_stale_index_is_rebuilt(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    archive.list()
    saved = archive.index_path.read_bytes()
    commit_record(archive)
    archive.index_path.write_bytes(saved)  # an index from before the last commit
    assert len(archive.list()) == 7


# -- export ------------------------------------------------------------------------------


def test_export_formats(filled: tuple[Archive, list[dict[str, Any]]], tmp_path: Path) -> None:
    archive, recs = filled
    assert archive.export("json", tmp_path / "r.json", env="lab") == 2
    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["seq"] for r in data["records"]] == [4, 1] and data["records"][0] == archive.get(recs[3]["id"])
    assert data["archive_head"]["seq"] == 6 and data["archive_head"]["hash"] == recs[5]["hash"]
    archive.export("csv", tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("seq,id,operation,environment,status")
    assert len(lines) == 7
    archive.export("html", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert all(r["id"] in html and r["hash"] in html for r in recs)
    assert "chain intact" in html
    assert "http://" not in html and "https://" not in html  # offline: no external assets
    with pytest.raises(BadInput):
        archive.export("xml", tmp_path / "r.xml")


def test_export_escapes_and_defuses(archive: Archive, tmp_path: Path) -> None:
    commit_record(archive, ticket="<script>alert(1)</script>")
    commit_record(archive, ticket='=HYPERLINK("http://evil")')
    archive.export("html", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    archive.export("csv", tmp_path / "r.csv")
    assert "'=HYPERLINK" in (tmp_path / "r.csv").read_text()


# -- interrupted runs --------------------------------------------------------------------


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from orchestrator.archive import Archive
    from orchestrator.records import RunMeta
    archive = Archive(sys.argv[1])
    meta = RunMeta(id=sys.argv[2], operation="patch", playbook="playbooks/patch.yml",
                   environment="staging", inventory="inventories/staging", started=sys.argv[3],
                   ticket="CHG-7", targets=["app1", "app2"])
    run = archive.begin(sys.argv[2], meta)
    events = [
        {"event": "playbook_on_task_start", "counter": 1, "created": "2026-11-28T08:00:05.000000",
         "event_data": {"task": "Upgrade packages"}},
        {"event": "runner_on_ok", "counter": 2, "created": "2026-11-28T08:00:09.500000", "stdout": "changed: [app1]",
         "event_data": {"host": "app1", "task": "Upgrade packages", "task_action": "ansible.builtin.apt",
                        "res": {"changed": True}}},
    ]
    for ev in events:
        run.write_event(ev)
        run.write_stdout(ev.get("stdout", "") + "\\n")
    run._events.write(b'{"event": "runner_on_ok", "torn')  # a line cut by the kill
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_recover_interrupted_after_sigkill(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    run_id = new_record_id()
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(archive.root), run_id, iso(BASE_TIME)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert (archive.root / ".pending" / run_id / "events.jsonl").exists()
    assert archive.recover_interrupted() == [run_id]
    rec = archive.get(run_id)
    assert rec["status"] == "interrupted" and rec["rc"] == -1
    assert rec["seq"] == 7 and rec["prev_hash"] == recs[-1]["hash"]
    assert rec["operation"] == "patch" and rec["ticket"] == "CHG-7"
    assert rec["changes"] == [
        {"host": "app1", "task": "Upgrade packages", "role": None, "module": "ansible.builtin.apt", "diff": None}
    ]
    assert rec["ended"] == "2026-11-28T08:00:09.500Z"
    assert rec["duration_s"] == 9.5
    assert "changed: [app1]" in archive.stdout(run_id)
    assert not (archive.root / ".pending" / run_id).exists()
    assert archive.verify().ok
    assert archive.recover_interrupted() == []


def test_recover_leaves_live_runs_alone(archive: Archive) -> None:
    run_id = new_record_id()
    pending = archive.begin(run_id, RunMeta(id=run_id, operation="x", playbook="p", environment="lab", inventory="i"))
    assert archive.recover_interrupted() == []  # our own process is alive
    pending.discard()
    assert not (archive.root / ".pending" / run_id).exists()


def test_recover_pid_reused(archive: Archive) -> None:
    run_id = new_record_id()
    pending = archive.begin(run_id, RunMeta(id=run_id, operation="x", playbook="p", environment="lab", inventory="i"))
    pending.close()
    path = archive.root / ".pending" / run_id / "pending.json"
    info = json.loads(path.read_text())
    info["pid_start"] = "1"  # same pid, different process start time: the pid was reused
    path.write_text(json.dumps(info))
    assert archive.recover_interrupted() == [run_id]
    assert archive.get(run_id)["status"] == "interrupted"


def test_roll_forward_after_crash_between_head_and_rename(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    last = recs[-1]
    # Simulate the crash: the final folder is still in .pending although HEAD names it.
    (archive.root / last["id"]).rename(archive.root / ".pending" / last["id"])
    report = archive.verify()
    assert not report.ok and "interrupted" in report.problem
    assert archive.recover_interrupted() == []
    assert archive.verify().ok
    assert archive.get(last["id"]) == last


@pytest.mark.parametrize("fmt", ["csv", "json", "html"])
def test_an_export_can_be_checked_later_against_the_archive(
    filled: tuple[Archive, list[dict[str, Any]]], tmp_path: Path, fmt: str
) -> None:
    from orchestrator.reports.export import read_export_claims, verify_export

    archive, recs = filled
    out = tmp_path / f"r.{fmt}"
    archive.export(fmt, out, status="failed")
    claims = read_export_claims(out)
    assert claims["head"]["seq"] == 6 and claims["head"]["hash"] == recs[5]["hash"]
    assert {c[0] for c in claims["records"]} == {r["id"] for r in recs if r["status"] == "failed"}
    assert verify_export(archive, claims) == []
    commit_record(archive)  # the archive grows: the export stays valid
    assert verify_export(archive, claims) == []
    # a record of the export re-sealed (and the chain rebuilt after it) no longer matches
    victim = claims["records"][0][0]
    rec = archive.get(victim)
    rec["rc"] = 0
    rec["hash"] = record_hash(rec)
    (archive.root / victim / "record.json").write_bytes(record_bytes(rec))
    problems = verify_export(archive, claims)
    assert any(f"record {victim}" in p and "differs" in p for p in problems), problems
    # the export file itself edited: its claims no longer match the archive either
    if fmt == "json":
        data = json.loads(out.read_text())
        data["archive_head"]["hash"] = "0" * 64
        out.write_text(json.dumps(data))
        assert any("the chain was rewritten" in p for p in verify_export(archive, read_export_claims(out)))


def test_verify_export_cli(
    filled: tuple[Archive, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import cli

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(cli, ["records", *args])

    archive, recs = filled
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(archive.root))
    out = tmp_path / "r.html"
    archive.export("html", out)
    html = out.read_text()
    assert f"seq 6, hash <code>{recs[5]['hash']}</code>" in html
    result = invoke("verify-export", str(out))
    assert result.exit_code == 0 and "OK: 6 record(s)" in result.output
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    result = invoke("verify-export", str(tmp_path / "x.csv"))
    assert result.exit_code == 2 and "not made by records export" in result.output
    import shutil

    shutil.rmtree(archive.root / recs[5]["id"])  # the newest record removed
    result = invoke("verify-export", str(out))
    assert result.exit_code == 1 and "MISMATCH" in result.output


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda rec: rec.pop("seq"), "record has no integer seq: edited"),
        (lambda rec: rec.update(seq=True), "record has no integer seq: edited"),
        (lambda rec: rec.pop("hash"), "record has no hash: edited"),
        (lambda rec: rec.update(hash=7), "record has no hash: edited"),
    ],
)
def test_malformed_fields_are_named(filled: tuple[Archive, list[dict[str, Any]]], edit: Any, problem: str) -> None:
    archive, recs = filled
    path = archive.root / recs[2]["id"] / "record.json"
    rec = json.loads(path.read_bytes())
    edit(rec)
    path.write_bytes(canonical_json(rec) + b"\n")
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[2]["id"]
    assert report.problem == problem


def test_a_record_that_is_not_an_object_is_named(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    (archive.root / recs[1]["id"] / "record.json").write_bytes(b"[1, 2]\n")
    report = archive.verify()
    assert not report.ok and report.first_bad_id == recs[1]["id"]
    assert "record.json is not valid JSON (not an object): edited" in report.problem


# -- edges the mutation run of issue 22 found untested (tests/MUTATION.md, "chain") -------


def _meta(rid: str, **extra: Any) -> RunMeta:
    return RunMeta(id=rid, operation="x", playbook="p", environment="lab", inventory="i", **extra)


def test_the_archive_defaults_to_opsctl_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "elsewhere"))
    assert Archive().root == (tmp_path / "elsewhere").resolve()
    assert Archive(tmp_path / "given").root == tmp_path / "given"


def test_an_archive_is_made_under_missing_folders_or_refused_with_the_reason(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "a" / "b" / "archive")
    rec = commit_record(archive)
    assert archive.get(rec["id"]) == rec and archive.verify().ok
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ArchiveError, match=r"cannot create the archive at .*file/archive: "):
        commit_record(Archive(tmp_path / "file" / "archive"))


def test_pending_json_says_who_runs_it_and_since_when(archive: Archive) -> None:
    import datetime as dt

    from orchestrator.proc import process_start_time

    rid = new_record_id()
    archive.begin(rid, _meta(rid, started="2026-11-28T08:00:00Z")).close()
    info = json.loads((archive.pending_root / rid / "pending.json").read_bytes())
    assert info["id"] == rid and info["pid"] == os.getpid()
    assert info["pid_start"] == process_start_time(os.getpid()) is not None
    assert info["started"] == info["meta"]["started"] == "2026-11-28T08:00:00.000Z" and info["meta"]["operation"] == "x"
    rid2 = new_record_id()
    archive.begin(rid2, {"operation": "y"}).close()  # no start time in the meta: now
    info = json.loads((archive.pending_root / rid2 / "pending.json").read_bytes())
    started = dt.datetime.fromisoformat(info["started"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - started).total_seconds()) < 60
    assert info["meta"] == {"operation": "y"}


def test_begin_refuses_an_id_already_filed_or_pending(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    with pytest.raises(ArchiveError, match=f"record {recs[0]['id']} already exists"):
        archive.begin(recs[0]["id"], _meta(recs[0]["id"]))  # filed (no pending folder)
    rid = new_record_id()
    archive.begin(rid, _meta(rid)).close()
    with pytest.raises(ArchiveError, match=f"record {rid} already exists"):
        archive.begin(rid, _meta(rid))  # pending (no record folder)


def test_the_pending_streams_as_written_and_closed(archive: Archive) -> None:
    import datetime as dt

    rid = new_record_id()
    pending = archive.begin(rid, _meta(rid))
    pending.write_event({"event": "x", "task": "春节 check", "at": dt.date(2026, 11, 28)})
    pending.write_stdout("ok \udc80 done\n")  # a lone surrogate (undecodable output) is replaced
    pending.write_stdout("")
    pending.write_child(4242, "123456")
    events, stdout = pending._events, pending._stdout
    path = pending.path
    assert (path / "events.jsonl").read_bytes() == '{"event":"x","task":"春节 check","at":"2026-11-28"}\n'.encode()
    assert (path / "stdout.txt").read_bytes() == b"ok ? done\n"
    assert json.loads((path / "child.json").read_bytes()) == {"pid": 4242, "pid_start": "123456"}
    assert not pending.closed
    pending.close()
    assert pending.closed and events is not None and events.closed and stdout is not None and stdout.closed
    pending.close()  # idempotent
    with pytest.raises(ArchiveError, match=f"pending run {rid} is already closed"):
        pending.write_event({"event": "late"})
    with pytest.raises(ArchiveError, match=f"pending run {rid} is already closed"):
        pending.write_stdout("late")
    # the child's pid file is run state: the filed record has none, and verifies
    rec = archive.commit(pending, {"id": rid, "status": "successful"})
    assert sorted(p.name for p in (archive.root / rid).iterdir()) == ["events.jsonl", "record.json", "stdout.txt"]
    assert rec["artifacts"]["stdout.txt"] == hashlib.sha256(b"ok ? done\n").hexdigest()
    assert archive.verify().ok
    pending.discard()  # already filed: nothing left to remove, and no error
    pending.discard()


def test_missing_streams_are_filed_empty(archive: Archive) -> None:
    rid = new_record_id()
    pending = archive.begin(rid, _meta(rid))
    pending.close()
    (pending.path / "stdout.txt").unlink()
    (pending.path / "events.jsonl").unlink()
    rec = archive.commit(pending, {"id": rid, "status": "interrupted"})
    empty = hashlib.sha256(b"").hexdigest()
    assert rec["artifacts"] == {"stdout.txt": empty, "events.jsonl": empty}
    for name in ("stdout.txt", "events.jsonl"):
        assert (archive.root / rid / name).read_bytes() == b""
        assert stat.S_IMODE((archive.root / rid / name).stat().st_mode) == 0o600
    assert archive.verify().ok


def test_commit_errors_name_the_record(archive: Archive) -> None:
    rid, other = new_record_id(), new_record_id()
    pending = archive.begin(rid, _meta(rid))
    with pytest.raises(ArchiveError, match=f"record id '{other}' does not match the pending run {rid}"):
        archive.commit(pending, {"id": other, "status": "successful"})
    (archive.root / rid).mkdir()  # a folder of that id appeared meanwhile
    with pytest.raises(ArchiveError, match=f"record {rid} is already in the archive"):
        archive.commit(pending, {"id": rid, "status": "successful"})


def test_a_missing_head_stops_commits_with_what_to_do(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, _ = filled
    (archive.root / "HEAD").unlink()
    with pytest.raises(ArchiveError) as err:
        commit_record(archive)
    assert str(err.value) == (
        f"{archive.root / 'HEAD'} is missing but the archive holds records; "
        "run `opsctl records verify` and restore HEAD before recording more runs"
    )


def test_symlinks_are_not_records(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    archive.root.mkdir()
    rid = new_record_id()
    (archive.root / rid).symlink_to(elsewhere, target_is_directory=True)
    assert archive.record_ids() == []
    rec = commit_record(archive)  # no HEAD, but no record folder either: a first record
    assert rec["seq"] == 1 and archive.record_ids() == [rec["id"]]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"seq": 1, "id": "x"}', "(fields missing)"),
        (b'{"hash": "ab", "id": "x"}', "(fields missing)"),
        (b'["seq", "hash"]', "(fields missing)"),
        (b"{not json", "Expecting property name"),
    ],
)
def test_a_corrupt_head_is_named(filled: tuple[Archive, list[dict[str, Any]]], content: bytes, problem: str) -> None:
    archive, _ = filled
    (archive.root / "HEAD").write_bytes(content)
    with pytest.raises(ArchiveError) as err:
        archive.head()
    assert str(err.value).startswith(f"{archive.root / 'HEAD'} is corrupt (") and problem in str(err.value)


def test_unreadable_head_record_and_stdout_are_named(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    (archive.root / "HEAD").unlink()
    (archive.root / "HEAD").mkdir()
    with pytest.raises(ArchiveError, match=f"^cannot read {archive.root / 'HEAD'}: "):
        archive.head()
    rid = recs[1]["id"]
    (archive.root / rid / "stdout.txt").unlink()
    (archive.root / rid / "stdout.txt").mkdir()
    with pytest.raises(ArchiveError, match=f"^cannot read the stdout of {rid}: "):
        archive.stdout(rid)
    (archive.root / rid / "record.json").unlink()
    (archive.root / rid / "record.json").mkdir()
    with pytest.raises(ArchiveError, match=f"^cannot read record {rid}: "):
        archive.get(rid)


def test_corrupt_records_and_unknown_artifacts_are_named(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    a, b = recs[1]["id"], recs[2]["id"]
    (archive.root / a / "record.json").write_bytes(b"{torn")
    with pytest.raises(ArchiveError, match=f"^record {a} is corrupt: Expecting"):
        archive.get(a)
    (archive.root / b / "record.json").write_bytes(b"[1]")
    with pytest.raises(ArchiveError, match=f"^record {b} is corrupt: not a JSON object$"):
        archive.get(b)
    unknown = new_record_id()
    with pytest.raises(NotFound, match=f"^no record {unknown} in the archive {archive.root}$"):
        archive.stdout(unknown)


def test_stdout_with_undecodable_bytes_is_read_with_replacements(archive: Archive) -> None:
    rec = commit_record(archive)
    path = archive.root / rec["id"] / "stdout.txt"
    path.write_bytes(b"ok \xff\xfe end\n")
    assert archive.stdout(rec["id"]) == "ok \ufffd\ufffd end\n"


def test_roll_forward_removes_run_state_and_indexes(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    import sqlite3

    archive, recs = filled
    last = recs[-1]
    archive.list()  # the index exists
    conn = sqlite3.connect(archive.index_path)
    conn.execute("DELETE FROM records WHERE id = ?", (last["id"],))
    conn.execute("DELETE FROM record_hosts WHERE id = ?", (last["id"],))
    conn.commit()
    conn.close()
    pend = archive.pending_root / last["id"]
    (archive.root / last["id"]).rename(pend)  # the crash between HEAD and the rename
    (pend / "pending.json").write_text("{}")
    (pend / "child.json").write_text("{}")
    assert archive.recover_interrupted() == []
    assert sorted(p.name for p in (archive.root / last["id"]).iterdir()) == [
        "events.jsonl",
        "record.json",
        "stdout.txt",
    ]
    assert archive.list()[0]["id"] == last["id"]
    assert archive.verify().ok


@pytest.mark.parametrize("edit", ["hash", "list", "id"])
def test_roll_forward_leaves_what_head_does_not_vouch_for(
    filled: tuple[Archive, list[dict[str, Any]]], edit: str
) -> None:
    archive, recs = filled
    last = recs[-1]
    pend = archive.pending_root / last["id"]
    (archive.root / last["id"]).rename(pend)
    if edit == "hash":  # the content HEAD vouches for, but its hash field edited
        rec = json.loads((pend / "record.json").read_bytes())
        rec["hash"] = "0" * 64
        (pend / "record.json").write_bytes(canonical_json(rec))
    elif edit == "list":
        (pend / "record.json").write_bytes(b"[1, 2]")
    else:  # HEAD's id is not a record id
        head = json.loads((archive.root / "HEAD").read_bytes())
        (archive.root / "HEAD").write_bytes(canonical_json({**head, "id": 7}))
    archive._roll_forward()
    assert pend.is_dir() and not (archive.root / last["id"]).exists()


def test_list_filters_by_incident(archive: Archive) -> None:
    from helpers.records import fill as fill_records

    fill_records(archive, 2)
    rid = new_record_id()
    pending = archive.begin(rid, _meta(rid, incident="INC-20261128-001"))
    rec = archive.commit(pending, {"id": rid, "status": "successful", "incident": "INC-20261128-001"})
    assert [r["id"] for r in archive.list(incident="INC-20261128-001")] == [rec["id"]]
    assert len(archive.list()) == 3


def test_export_stamp_is_the_head_now(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    stamp = archive.export_stamp()
    assert stamp["seq"] == 6 and stamp["hash"] == recs[-1]["hash"]


def test_commits_are_signed_with_the_makers_key_or_said_unsigned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from orchestrator.archive import SignaturePolicy
    from orchestrator.signing import Verifier, message

    key = ssh_keygen(tmp_path / "keys" / "alice", "alice")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_signers_line("alice@envcredit", key))
    archive = Archive(tmp_path / "archive")
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(key))
    signed = commit_record(archive, env="production")
    sig = archive.root / signed["id"] / "record.sig"
    with Verifier([allowed]) as verifier:
        assert verifier.signer(sig, message(signed["id"], signed["seq"], signed["hash"])) == ("alice@envcredit", "")
        assert verifier.signer(sig, message(signed["id"], signed["seq"], "0" * 64))[0] is None
    monkeypatch.setenv("OPSCTL_SIGNING_KEY", str(tmp_path / "keys" / "nobody"))
    unsigned = commit_record(archive, env="production")
    err = capsys.readouterr().err
    assert f"opsctl: warning: record {unsigned['id']} is not signed: " in err and "no such key file" in err
    assert not (archive.root / unsigned["id"] / "record.sig").exists()
    assert archive.verify().ok  # the chain alone
    with Verifier([allowed]) as verifier:  # the signatures asked for: the unsigned one is named
        report = archive.verify(SignaturePolicy(verifier, {"production": "2000-01-01T00:00:00Z"}))
    assert not report.ok and report.first_bad_id == unsigned["id"]


# -- verify's whole messages and edges, from the mutation run of issue 22 (tests/MUTATION.md, "verify")


def _rehash(archive: Archive, rid: str, **changes: Any) -> None:
    """Edit a record and give it a hash that fits the edit (what a forger would do)."""
    path = archive.root / rid / "record.json"
    rec = json.loads(path.read_bytes())
    rec.update(changes)
    rec["hash"] = record_hash(rec)
    path.write_bytes(canonical_json(rec) + b"\n")


def test_folder_problems_are_named_whole(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    (archive.root / "extra").mkdir()
    report = archive.verify()
    assert report.problem == "folder 'extra' is not a record id (inserted or renamed folder)"
    (archive.root / "extra").rmdir()
    (archive.root / recs[2]["id"] / "record.json").unlink()
    report = archive.verify()
    assert (report.first_bad_id, report.problem) == (recs[2]["id"], "record.json unreadable: No such file or directory")


def test_edits_inside_a_folder_are_named_whole(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    a, b, c = recs[1]["id"], recs[2]["id"], recs[3]["id"]
    saved = (archive.root / a / "record.json").read_bytes()
    _rewrite(archive, a, ticket="CHG-forged")
    report = archive.verify()
    assert (report.first_bad_id, report.problem) == (a, "record hash mismatch: record.json was edited")
    (archive.root / a / "record.json").write_bytes(saved)
    assert archive.verify().ok
    _rehash(archive, b, artifacts="none")
    report = archive.verify()
    assert (report.first_bad_id, report.problem) == (b, "record has no artifact hashes: edited")
    _rehash(archive, b, artifacts=recs[2]["artifacts"])  # its own hash again: the chain holds
    assert archive.verify().ok
    (archive.root / c / "stdout.txt").unlink()
    report = archive.verify()
    assert (report.ok, report.first_bad_id, report.problem) == (False, c, "stdout.txt is missing: removed")


def test_several_unexpected_files_are_listed(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    for name in ("notes.txt", "approval.pdf"):
        (archive.root / recs[3]["id"] / name).write_bytes(b"added")
    report = archive.verify()
    assert report.problem == "unexpected file(s) in the record folder: approval.pdf, notes.txt: added"


def test_a_record_id_that_is_not_text_is_named(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    _rehash(archive, recs[2]["id"], id=5)
    report = archive.verify()
    assert report.first_bad_id == recs[2]["id"]
    assert report.problem == f"folder {recs[2]['id']} holds record None (seq 3): folders renamed or swapped"


def test_a_record_the_canonical_form_cannot_hold_is_a_hash_mismatch(
    filled: tuple[Archive, list[dict[str, Any]]],
) -> None:
    # NaN parses but cannot be hashed (canonical JSON refuses it): an edit, not a pass.
    archive, recs = filled
    path = archive.root / recs[2]["id"] / "record.json"
    path.write_bytes(b'{"aaa":NaN,' + path.read_bytes()[1:])
    report = archive.verify()
    assert (report.ok, report.first_bad_id, report.problem) == (
        False,
        recs[2]["id"],
        "record hash mismatch: record.json was edited",
    )


def test_a_stored_hash_that_is_not_ascii_is_a_mismatch_not_a_crash(
    filled: tuple[Archive, list[dict[str, Any]]],
) -> None:
    archive, recs = filled
    _rewrite(archive, recs[4]["id"], hash="é" * 64)
    report = archive.verify()
    assert (report.first_bad_id, report.problem) == (recs[4]["id"], "record hash mismatch: record.json was edited")


def test_a_corrupt_head_fails_verify_with_its_reason(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, _ = filled
    (archive.root / "HEAD").write_bytes(b"{not json")
    with pytest.raises(ArchiveError) as err:
        archive.head()
    assert archive.verify() == VerifyReport(ok=False, count=0, first_bad_id=None, problem=str(err.value))


# -- verify: a seq claimed twice, and what the top of the archive holds (issue 22, second run) --
# The forgeries get ids that sort after every genuine record's, so that naming the forged one
# depends on the chain (which record the next one or HEAD links to), not on the names' order.


def _forge_claim(archive: Archive, genuine: dict[str, Any], *, rehash: bool = True) -> str:
    """A copy of ``genuine`` under a later id, claiming its seq and linking to its predecessor."""
    forged = new_record_id(BASE_TIME + timedelta(days=1))
    shutil.copytree(archive.root / genuine["id"], archive.root / forged)
    rec = archive.get(forged)
    rec["id"] = forged
    rec["status"] = "successful"
    if rehash:
        rec["hash"] = record_hash(rec)
    (archive.root / forged / "record.json").write_bytes(record_bytes(rec))
    return forged


@pytest.mark.parametrize("where", [0, 2, 4, 5])  # the first, the middle, next to the newest, the newest
def test_a_seq_claimed_twice_names_the_record_off_the_chain(
    filled: tuple[Archive, list[dict[str, Any]]], where: int
) -> None:
    archive, recs = filled
    genuine = recs[where]
    forged = _forge_claim(archive, genuine)
    report = archive.verify()
    ids = ", ".join(sorted([genuine["id"], forged]))
    assert report == VerifyReport(
        ok=False,
        count=7,
        first_bad_id=forged,
        problem=f"seq {genuine['seq']} is claimed by 2 records ({ids}); {forged} is not part of the chain: "
        "inserted record",
    )


def test_a_seq_claimed_twice_without_head_names_the_broken_record_first(
    filled: tuple[Archive, list[dict[str, Any]]],
) -> None:
    # No HEAD to tell which of the newest two is genuine: neither is kept; a record with a
    # problem of its own is named before a sound one, whatever the names.
    archive, recs = filled
    forged = _forge_claim(archive, recs[-1], rehash=False)
    (archive.root / "HEAD").unlink()
    report = archive.verify()
    ids = ", ".join(sorted([recs[-1]["id"], forged]))
    assert (report.ok, report.count, report.first_bad_id) == (False, 7, forged)
    assert report.problem == (
        f"seq 6 is claimed by 2 records ({ids}); {forged} is not part of the chain: inserted record "
        "(record hash mismatch: record.json was edited)"
    )


def test_folders_without_a_seq_are_named_in_name_order(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, _ = filled
    names = [f"junk-{c}" for c in "hcafgbed"]
    for name in names:
        (archive.root / name).mkdir()
    report = archive.verify()
    assert (report.ok, report.count, report.first_bad_id) == (False, 14, "junk-a")
    assert report.problem == "folder 'junk-a' is not a record id (inserted or renamed folder)"


def test_a_symlink_or_file_at_the_top_is_no_record_unless_named_as_one(
    tmp_path: Path, filled: tuple[Archive, list[dict[str, Any]]]
) -> None:
    archive, recs = filled
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (archive.root / "notes").symlink_to(elsewhere, target_is_directory=True)
    (archive.root / new_record_id(BASE_TIME + timedelta(days=1))).write_bytes(b"not a folder")
    assert archive.verify() == VerifyReport(ok=True, count=6)
    # A symlink named as a record is checked (and is no record folder of this archive).
    linked = new_record_id(BASE_TIME + timedelta(days=2))
    (archive.root / linked).symlink_to(elsewhere, target_is_directory=True)
    report = archive.verify()
    assert (report.ok, report.count, report.first_bad_id) == (False, 7, linked)


def test_chain_problems_are_named_whole(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    ids = [r["id"] for r in recs]

    def report_of() -> tuple[bool, int, str | None, str]:
        report = archive.verify()
        return report.ok, report.count, report.first_bad_id, report.problem

    _rehash(archive, ids[0], seq=0)
    assert report_of() == (False, 6, ids[0], "seq 0 is out of range (the first record has seq 1): edited")
    _rehash(archive, ids[0], seq=1)
    _rehash(archive, ids[0], prev_hash="0" * 64)
    assert report_of() == (
        False,
        6,
        ids[0],
        "prev_hash does not match the hash of nothing (first record): "
        "a record before it was edited and re-hashed, replaced or reordered",
    )
    _rehash(archive, ids[0], prev_hash=None)
    _rehash(archive, ids[3], prev_hash="0" * 64)
    assert report_of() == (
        False,
        6,
        ids[3],
        f"prev_hash does not match the hash of record {ids[2]}: "
        "a record before it was edited and re-hashed, replaced or reordered",
    )


def test_removed_records_are_named_whole(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    ids = [r["id"] for r in recs]
    shutil.rmtree(archive.root / ids[2])
    report = archive.verify()
    assert (report.count, report.first_bad_id, report.problem) == (
        5,
        ids[3],
        "seq jumps from 2 to 4: record(s) with seq 3 missing (removed)",
    )
    shutil.rmtree(archive.root / ids[3])
    report = archive.verify()
    assert (report.first_bad_id, report.problem) == (
        ids[4],
        "seq jumps from 2 to 5: record(s) with seqs 3..4 missing (removed)",
    )


def test_head_problems_are_named_whole(filled: tuple[Archive, list[dict[str, Any]]]) -> None:
    archive, recs = filled
    ids = [r["id"] for r in recs]
    head = archive.head()
    assert head is not None

    def set_head(**changes: Any) -> None:
        (archive.root / "HEAD").write_bytes(canonical_json({**head, **changes}))

    def report_of() -> tuple[bool, int, str | None, str]:
        report = archive.verify()
        return report.ok, report.count, report.first_bad_id, report.problem

    set_head(hash="0" * 64)
    assert report_of() == (
        False,
        6,
        ids[5],
        "the newest record does not match HEAD: edited and re-hashed, or replaced",
    )
    for seq, beyond in ((1, 1), (4, 4), (-1, 5)):  # the record after HEAD's, or the newest
        set_head(seq=seq)
        assert report_of() == (
            False,
            6,
            ids[beyond],
            f"record {ids[beyond]} (seq {beyond + 1}) is beyond HEAD (seq {seq}): inserted",
        )
    set_head()
    (archive.root / "HEAD").unlink()
    assert report_of() == (
        False,
        6,
        ids[5],
        "HEAD is missing: cannot tell whether the newest records were removed",
    )
    set_head()
    saved = archive.root.parent / "saved"
    shutil.move(archive.root / ids[5], saved)
    removed = f"HEAD names seq 6 ({ids[5]}) but the newest record is seq 5: newest record(s) removed"
    assert report_of() == (False, 5, ids[5], removed)
    pending = archive.pending_root / ids[5]
    pending.mkdir(parents=True)
    (pending / "record.json").write_bytes(b"{}")
    assert report_of() == (
        False,
        5,
        ids[5],
        removed + " (its commit was interrupted; run `opsctl records recover`)",
    )


def test_a_head_without_records_and_an_archive_without_either(tmp_path: Path) -> None:
    archive = Archive(tmp_path / "archive")
    archive.root.mkdir()
    assert archive.verify() == VerifyReport(ok=True, count=0)
    (rec,) = fill(archive, 1)
    shutil.rmtree(archive.root / rec["id"])
    assert archive.verify() == VerifyReport(
        ok=False, count=0, first_bad_id=rec["id"], problem="HEAD names seq 1 but the archive holds no records: removed"
    )


@pytest.mark.parametrize("bad", [0, False, [], {}, 1.5])
def test_a_first_record_linking_to_a_non_text_value_is_refused(
    filled: tuple[Archive, list[dict[str, Any]]], bad: object
) -> None:
    """The first record links to nothing (null), the others to a hash (text): a first record
    written with prev_hash 0, false, [] or {} (its own hash and HEAD consistent with it) is no
    record commit() wrote, and verify names it (issue 22: verify's mutant _check_folder 57)."""
    archive, recs = filled
    first = archive.get(recs[0]["id"])
    assert first["prev_hash"] is None
    first["prev_hash"] = bad
    first["hash"] = record_hash(first)
    (archive.root / first["id"] / "record.json").write_bytes(record_bytes(first))
    report = archive.verify()
    assert not report.ok
    assert report.first_bad_id == recs[0]["id"]
    assert f"prev_hash is {type(bad).__name__}, not a hash or null" in report.problem
