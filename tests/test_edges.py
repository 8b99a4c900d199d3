"""Edges the headline tests missed (issue 22's surviving mutants), each a behaviour an auditor
or the on-call person relies on; no lab needed."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from helpers.common import REPO
from helpers.records import fill
from orchestrator.archive import Archive, record_bytes, record_hash
from orchestrator.backups import list_backups
from orchestrator.redact import MASK, Redactor
from orchestrator.workdays import TZ, Calendar

from orchestrator.cli import cli

sys.path.insert(0, str(REPO / "roles" / "db_backup" / "files"))
sys.path.insert(0, str(REPO / "plugins" / "module_utils"))  # envcredit_dbcommon, the tools' shared code
import envcredit_dbtool as dbtool  # noqa: E402


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_the_newest_record_edited_and_rehashed_is_caught_by_head(tmp_path: Path) -> None:
    """No record follows the newest one, so only HEAD's hash can tell it was re-sealed."""
    archive = Archive(tmp_path / "archive")
    recs = fill(archive, 3)
    rec = archive.get(recs[-1]["id"])
    rec["status"] = "successful" if rec["status"] != "successful" else "failed"
    rec["hash"] = record_hash(rec)
    (archive.root / rec["id"] / "record.json").write_bytes(record_bytes(rec))
    report = archive.verify()
    assert not report.ok and report.first_bad_id == rec["id"]
    assert "does not match HEAD" in report.problem


def test_credentials_inside_a_plain_list_of_extra_vars_are_masked() -> None:
    red = Redactor()
    safe, _ = red.redact_vars(
        {
            "sources": ["postgres://app:Pw-in-a-list-9@db1/envcredit", "plain"],
            "nested": {"urls": [["mysql://root:An0ther-Secret@db2/x"]]},
            "dsns": ["postgres://u:Under-A-Secret-Key@h/d"],
        }
    )
    text = json.dumps(safe)
    assert "Pw-in-a-list-9" not in text and "An0ther-Secret" not in text and "Under-A-Secret-Key" not in text
    assert safe["sources"][1] == "plain" and "db1/envcredit" in safe["sources"][0]  # only the password goes
    assert safe["dsns"] == MASK  # a secret key's value goes whole
    assert "Pw-in-a-list-9" not in red.redact_text("log: postgres://app:Pw-in-a-list-9@db1/envcredit")


def test_ordinary_saturdays_rest_in_a_year_from_the_project_file(tmp_path: Path) -> None:
    path = tmp_path / "workdays.yml"
    path.write_text(
        "years:\n  2027:\n    holidays: [{from: 2027-02-06, to: 2027-02-12, name: 春节}]\n"
        "    workdays: [{date: 2027-02-13, name: 春节调休}]\n",
        encoding="utf-8",
    )
    cal = Calendar(path)
    assert cal.source_of(2027) == "project"
    assert cal.is_workday(dt.date(2027, 3, 6)) == (False, True)  # an ordinary Saturday
    assert cal.is_workday(dt.date(2027, 3, 7)) == (False, True)  # an ordinary Sunday
    assert cal.is_workday(dt.date(2027, 3, 5)) == (True, True)  # a Friday
    # Friday 18:00 + 1 working day skips the ordinary weekend to Monday
    due = cal.add_working_days(dt.datetime(2027, 3, 5, 18, 0, tzinfo=TZ), 1)
    assert due.at == dt.datetime(2027, 3, 8, 18, 0, tzinfo=TZ)


def _clock(inc_id: str, clock: str) -> dict[str, Any]:
    result = invoke("incident", "show", inc_id, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return next(c for c in data["clocks"] if c["clock"] == clock)


@pytest.fixture
def register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    monkeypatch.delenv("OPSCTL_SLA_MARGIN_HOURS", raising=False)


def _open_outage() -> str:
    # Monday 2 March 2026 10:00: an outage must be answered by 14:00
    result = invoke(
        "incident",
        "open",
        "--json",
        "--no-notify",
        "--severity",
        "outage",
        "--summary",
        "down",
        "--reported-at",
        "2026-03-02T10:00",
    )
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["id"])


@pytest.mark.parametrize(("ack", "status"), [("2026-03-02T14:00:00", "met"), ("2026-03-02T14:00:01", "late")])
def test_an_acknowledgement_exactly_at_the_deadline_is_in_time(register: None, ack: str, status: str) -> None:
    inc = _open_outage()
    assert invoke("incident", "ack", inc, "--at", ack).exit_code == 0
    respond = _clock(inc, "respond")
    assert respond["due"].startswith("2026-03-02T14:00:00") and respond["status"] == status, respond


def test_without_an_ack_the_earlier_of_recovery_and_resolution_is_the_response(register: None) -> None:
    inc = _open_outage()
    assert invoke("incident", "recovered", inc, "--at", "2026-03-02T13:00").exit_code == 0
    assert invoke("incident", "resolve", inc, "--at", "2026-03-02T15:00", "--cause", "disk").exit_code == 0
    respond = _clock(inc, "respond")
    assert respond["done_at"].startswith("2026-03-02T13:00") and respond["status"] == "met", respond


def _backup(root: Path, bid: str, started: str, verified: dict[str, Any] | None) -> None:
    folder = root / "production" / "db1" / bid
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"engine": "postgresql", "started": started, "databases": [{"name": "envcredit"}], "files": []})
    )
    (folder / "status.json").write_text(json.dumps({"verified": verified} if verified is not None else {}))


def test_backups_list_tells_a_failed_verification_from_a_passed_one(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    _backup(root, "20261101T020000Z", "2026-11-01T02:00:00+00:00", {"ok": True, "at": "2026-11-01T03:00:00+00:00"})
    _backup(root, "20261102T020000Z", "2026-11-02T02:00:00+00:00", {"ok": False, "at": "2026-11-02T03:00:00+00:00"})
    _backup(root, "20261103T020000Z", "2026-11-03T02:00:00+00:00", None)
    (root / "production" / "db1" / "20261104T020000Z.partial").mkdir()
    listed = {b.backup_id: b.verification for b in list_backups(root, env="production")}
    assert listed == {"20261101T020000Z": "verified", "20261102T020000Z": "FAILED", "20261103T020000Z": "unverified"}
    assert [b.backup_id for b in list_backups(root)][0] == "20261103T020000Z"  # newest first


def test_the_backup_check_refuses_a_same_size_file_with_another_sha256(tmp_path: Path) -> None:
    data = tmp_path / "db.dump"
    data.write_bytes(b"A" * 4096)
    manifest = {"files": [{"path": "db.dump", "bytes": 4096, "sha256": dbtool.sha256(data)}]}
    assert dbtool.verify_files(tmp_path, manifest) == []
    data.write_bytes(b"B" * 4096)  # same size, other content
    assert dbtool.verify_files(tmp_path, manifest) == ["db.dump: checksum mismatch"]
    data.unlink()
    assert dbtool.verify_files(tmp_path, manifest) == ["db.dump: missing"]


def test_tags_and_skip_tags_are_recorded_as_given(opsctl_home: Path) -> None:
    from test_run import invoke as run_invoke, latest

    code, out, err = run_invoke("run", "ok", "--env", "test", "--tags", "probe,extra", "--skip-tags", "slow")
    assert code == 0, out + err
    rec = latest(opsctl_home)
    assert rec["tags"] == ["probe", "extra"] and rec["skip_tags"] == ["slow"]


def test_a_reason_never_stands_in_for_a_ticket_of_a_change_in_production(opsctl_home: Path) -> None:
    from test_run import invoke as run_invoke, latest

    code, _out, err = run_invoke("run", "change", "--env", "production", "--reason", "it is urgent")
    assert code == 2 and "requires --ticket for 'change'" in err
    rec = latest(opsctl_home)
    assert rec["status"] == "refused" and rec["hosts"] == {}
    assert list((opsctl_home / "markers").iterdir()) == []
