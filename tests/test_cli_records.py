"""``opsctl records``: the auditor's commands, through Click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from helpers.records import commit_record, fill  # noqa: E402

from orchestrator.archive import Archive  # noqa: E402
from orchestrator.cli.records import records  # noqa: E402
from orchestrator.cli.context import Context, fail, handle_errors  # noqa: E402
from orchestrator.errors import ArchiveError, BadInput, NotFound  # noqa: E402
from orchestrator.records import new_record_id  # noqa: E402


@pytest.fixture()
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    root = tmp_path / "archive"
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(root))
    return Archive(root)


@pytest.fixture()
def recs(archive: Archive) -> list[dict[str, Any]]:
    return fill(archive, 6)


def invoke(*args: str, obj: Any = None) -> Any:
    return CliRunner().invoke(records, list(args), obj=obj, catch_exceptions=False)


def test_list_table(recs: list[dict[str, Any]]) -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "OP", "ENV", "STATUS", "RC", "HOSTS", "TICKET", "STARTED", "(UTC+8)", "DURATION"]
    assert len(lines) == 7
    assert lines[1].startswith(recs[-1]["id"])
    # records keep UTC; a person reads Beijing time (UTC+8, marked in the header)
    from datetime import datetime, timedelta

    started = datetime.fromisoformat(recs[-1]["started"]) + timedelta(hours=8)
    assert started.strftime("%Y-%m-%d %H:%M:%S") in lines[1]
    assert "app2,db1" in lines[1] and "CHG-105" in lines[1] and "30.0s" in lines[1]
    # columns are aligned
    assert len({line.index("  ", 26) for line in lines[1:]}) == 1


def test_list_filters_and_json(recs: list[dict[str, Any]]) -> None:
    result = invoke("list", "--env", "production", "--status", "failed", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["seq"] for r in rows] == [6, 3]
    result = invoke("list", "--host", "app1", "--op", "backup", "--limit", "1")
    assert len(result.output.splitlines()) == 2
    assert invoke("list", "--env", "nowhere").output.strip() == "no records"


def test_list_bad_input(archive: Archive) -> None:
    result = CliRunner().invoke(records, ["list", "--since", "last tuesday"])
    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(records, ["list", "--status", "weird"])
    assert result.exit_code == 2


def test_show(recs: list[dict[str, Any]]) -> None:
    rec = recs[2]
    result = invoke("show", rec["id"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"Record {rec['id']}  (seq 3)" in out
    assert "backup on production: failed (rc 2)" in out
    from datetime import datetime, timedelta

    local = (datetime.fromisoformat(rec["started"]) + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"time       {local} -> " in out and "Beijing time (UTC+8)" in out
    assert "Recap" in out and "db1" in out
    assert "Changes (1)" in out and "app1: db_backup : Dump the database (ansible.builtin.command) +diff" in out
    assert "Failures (1)" in out and "FAILED: non-zero return code" in out
    assert rec["hash"] in out and rec["prev_hash"] in out
    with_diff = invoke("show", rec["id"], "--diff").output
    assert '"after": "dump-1"' in with_diff


def test_show_json_and_stdout(recs: list[dict[str, Any]], archive: Archive) -> None:
    rec = recs[0]
    shown = json.loads(invoke("show", rec["id"], "--json").output)
    assert shown == archive.get(rec["id"])
    result = invoke("show", rec["id"], "--stdout")
    assert result.output == archive.stdout(rec["id"])
    assert "changed: [app1]" in result.output


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", "HEAD", "20261128T080000000Z-zzzzzz"])
def test_show_bad_id(recs: list[dict[str, Any]], bad: str) -> None:
    result = CliRunner().invoke(records, ["show", bad])
    assert result.exit_code == 2
    assert "invalid record id" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_show_unknown_id(recs: list[dict[str, Any]]) -> None:
    rid = new_record_id()
    result = CliRunner().invoke(records, ["show", rid])
    assert result.exit_code == 2
    assert f"no record {rid}" in result.output
    assert "Traceback" not in result.output


def test_export_all_formats(recs: list[dict[str, Any]], tmp_path: Path) -> None:
    out = tmp_path / "exports"
    result = invoke("export", "--format", "csv", "--out", str(out / "r.csv"), "--env", "lab")
    assert result.exit_code == 0 and "exported 2 record(s)" in result.output
    rows = list(csv.DictReader(io.StringIO((out / "r.csv").read_text())))
    assert [r["seq"] for r in rows] == ["4", "1"] and rows[0]["environment"] == "lab"
    assert rows[0]["hash"] == recs[3]["hash"]
    invoke("export", "--format", "json", "--out", str(out / "r.json"))
    assert len(json.loads((out / "r.json").read_text())["records"]) == 6
    invoke("export", "--format", "html", "--out", str(out / "r.html"), "--status", "failed")
    html = (out / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert recs[2]["id"] in html and recs[5]["id"] in html and recs[0]["id"] not in html
    assert "<script src" not in html and "<link" not in html
    assert CliRunner().invoke(records, ["export", "--format", "pdf", "--out", "x"]).exit_code == 2


def test_verify_ok_and_broken(recs: list[dict[str, Any]], archive: Archive) -> None:
    result = invoke("verify")
    assert result.exit_code == 0
    assert result.output.strip() == "OK: 6 records, chain intact"
    shutil.rmtree(archive.root / recs[3]["id"])
    result = CliRunner().invoke(records, ["verify"])
    assert result.exit_code == 1
    assert f"BROKEN: record {recs[4]['id']}" in result.output
    assert "missing" in result.output


def test_reindex_and_recover(recs: list[dict[str, Any]], archive: Archive) -> None:
    assert invoke("reindex").output.strip() == "indexed 6 record(s)"
    assert invoke("recover").output.strip() == "nothing to recover"


def test_archive_from_context_object(tmp_path: Path) -> None:
    other = Archive(tmp_path / "other")
    commit_record(other, env="staging", ticket="CHG-CTX")

    result = invoke("list", obj=Context(archive=other))
    assert "CHG-CTX" in result.output


def test_fail_helper_exit_codes() -> None:
    @click.command()
    @click.argument("kind")
    @handle_errors
    def cmd(kind: str) -> None:
        if kind == "bad":
            raise BadInput("bad thing")
        if kind == "missing":
            raise NotFound("no such thing")
        if kind == "direct":
            fail(ArchiveError("archive broke"))
        raise ArchiveError("archive broke")

    runner = CliRunner()
    for kind, code in (("bad", 2), ("missing", 2), ("direct", 1), ("other", 1)):
        result = runner.invoke(cmd, [kind])
        assert result.exit_code == code, kind
        assert result.output.startswith("Error: ")
        assert "Traceback" not in result.output
