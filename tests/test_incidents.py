"""The incident register through the CLI: life cycle, errors, breaches, timeline with real runs, the chain."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.archive import Archive
from orchestrator.cli import cli
from orchestrator.incidents import Incident, compute_deadlines
from orchestrator.workdays import TZ

REPO = Path(__file__).resolve().parent.parent


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    root = tmp_path / "archive"
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(root))
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    monkeypatch.delenv("OPSCTL_SLA_MARGIN_HOURS", raising=False)
    return Archive(root)


def open_incident(*args: str) -> dict[str, Any]:
    result = invoke("incident", "open", "--json", *args)
    assert result.exit_code == 0, result.output + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def ago(hours: float) -> str:
    return (dt.datetime.now(TZ) - dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")


def test_outage_life_cycle(archive: Archive) -> None:
    # Fri 27 Feb 2026 16:00; Sat 28 Feb is a make-up working day.
    opened = open_incident(
        "--severity",
        "outage",
        "--summary",
        "Portal returns 502",
        "--reported-at",
        "2026-02-27T16:00",
        "--reporter",
        "Bureau hotline call",
    )
    inc = opened["id"]
    assert re.fullmatch(r"INC-[0-9]{8}-001", inc)
    assert opened["deadlines"] == {
        "respond": "2026-02-27T20:00:00+08:00",
        "recover": "2026-02-28T16:00:00+08:00",
        "resolve": "2026-03-03T16:00:00+08:00",
    }
    assert opened["hotline"] == "0751-555-0100" and opened["on_call"]["primary"]["phone"].startswith("+86")
    assert opened["calendar_warnings"] == []

    text = invoke(
        "incident", "open", "--severity", "general", "--summary", "Slow search", "--reported-at", "2026-02-27T16:00"
    )
    assert text.exit_code == 0
    assert "respond" in text.stdout and "2026-02-28 Sat 16:00 +0800" in text.stdout  # 24 clock hours
    assert "2026-03-05 Thu 16:00 +0800" in text.stdout  # 5 working days: 28 Feb, 2, 3, 4, 5 Mar
    assert "on call:" in text.stdout and "hotline: 0751-555-0100" in text.stdout
    assert re.search(r"opened INC-[0-9]{8}-002", text.stdout)

    assert invoke("incident", "ack", inc, "--at", "2026-02-27T17:10", "--by", "chen").exit_code == 0
    assert (
        invoke(
            "incident", "note", inc, "nginx upstream timeouts; restarting app1", "--at", "2026-02-27T17:30"
        ).exit_code
        == 0
    )
    assert invoke("incident", "recovered", inc, "--at", "2026-02-28T11:00", "--note", "app restarted").exit_code == 0
    result = invoke(
        "incident",
        "resolve",
        inc,
        "--cause",
        "connection pool exhausted; pool size raised",
        "--at",
        "2026-03-02T15:00",
        "--json",
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["state"] == "resolved" and data["cause"].startswith("connection pool")
    assert [(c["clock"], c["status"]) for c in data["clocks"]] == [
        ("respond", "met"),
        ("recover", "met"),
        ("resolve", "met"),
    ]

    shown = invoke("incident", "show", inc)
    assert shown.exit_code == 0
    kinds = [line.split()[4] for line in shown.stdout.splitlines() if re.match(r"  20[0-9]{2}-", line)]
    # in time order: the actions were back-dated with --at, so the register entry itself comes last
    assert kinds == ["reported", "acknowledged", "note", "recovered", "resolved", "opened"]

    listed = json.loads(invoke("incident", "list", "--json").stdout)
    assert [i["id"] for i in listed][-1] == inc and len(listed) == 2
    assert [i["severity"] for i in json.loads(invoke("incident", "list", "--open", "--json").stdout)] == ["general"]

    # every action is a record in the change-record chain
    rows = archive.list()
    assert [r["operation"] for r in reversed(rows)] == [
        "incident-open",
        "incident-open",
        "incident-ack",
        "incident-note",
        "incident-recovered",
        "incident-resolve",
    ]
    assert all(r["status"] == "successful" and r["incident"] for r in rows)
    verify = invoke("records", "verify")
    assert verify.exit_code == 0 and "OK: 6 records" in verify.stdout
    rec = archive.get(rows[0]["id"])
    assert rec["incident_event"]["action"] == "resolve" and rec["incident"] == inc
    assert "resolve" in archive.stdout(rows[0]["id"])


def records_count(archive: Archive) -> int:
    return len(archive.list())


@pytest.mark.parametrize(
    "args, message",
    [
        (("ack", "INC-20990101-001"), "no incident INC-20990101-001"),
        (("ack", "INC-1"), "invalid incident id"),
        (("show", "INC-20990101-001"), "no incident"),
        (("recovered", "{general}"), "applies to outages only"),
        (("resolve", "{resolved}", "--cause", "again"), "already resolved"),
        (("ack", "{resolved}"), "already resolved"),
        (("recovered", "{resolved}"), "already resolved"),
        (("ack", "{general}", "--at", "yesterday-ish"), "not a time"),
        (("ack", "{general}", "--at", "2026-01-01T00:00"), "before the report"),
        (("ack", "{general}", "--at", "2099-01-01T00:00"), "in the future"),
        (("resolve", "{general}", "--cause", "   "), "needs a cause"),
        (("note", "{general}", " "), "needs text"),
        (("open", "--severity", "general", "--summary", "x", "--reported-at", "2099-01-01"), "in the future"),
        (("open", "--severity", "general", "--summary", "x", "--reported-at", "31/12/2025"), "not a time"),
        (("open", "--severity", "general", "--summary", "  "), "needs a summary"),
        (("open", "--severity", "critical", "--summary", "x"), "critical"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(archive: Archive, args: tuple[str, ...], message: str) -> None:
    general = open_incident("--severity", "general", "--summary", "g", "--reported-at", "2026-02-02T10:00")["id"]
    resolved = open_incident("--severity", "outage", "--summary", "o", "--reported-at", "2026-02-02T10:00")["id"]
    assert invoke("incident", "resolve", resolved, "--cause", "fixed", "--at", "2026-02-02T12:00").exit_code == 0
    before = records_count(archive)
    argv = [a.format(general=general, resolved=resolved) for a in args]
    result = CliRunner().invoke(cli, ["incident", *argv])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert records_count(archive) == before


def test_breach_detection_and_check(archive: Archive) -> None:
    assert invoke("incident", "check").exit_code == 0  # empty register
    # a general fault from January, never acknowledged: both clocks breached
    old = open_incident(
        "--severity", "general", "--summary", "Report export fails", "--reported-at", "2026-01-05T09:00"
    )["id"]
    # an outage reported 3 h ago: response due in 1 h -> within the default 2 h margin
    soon = open_incident("--severity", "outage", "--summary", "Login page down", "--reported-at", ago(3))["id"]
    # an outage answered late but resolved: history, not a running breach
    done = open_incident("--severity", "outage", "--summary", "DB failover", "--reported-at", "2026-02-02T10:00")["id"]
    assert invoke("incident", "ack", done, "--at", "2026-02-02T16:00").exit_code == 0
    assert invoke("incident", "resolve", done, "--cause", "failover", "--at", "2026-02-03T09:00").exit_code == 0

    breaching = json.loads(invoke("incident", "list", "--breaching", "--json").stdout)
    assert sorted(i["id"] for i in breaching) == sorted([old, soon])
    statuses = {i["id"]: {c["clock"]: c["status"] for c in i["clocks"]} for i in breaching}
    assert statuses[old] == {"respond": "breached", "resolve": "breached"}
    assert statuses[soon]["respond"] == "due-soon" and statuses[soon]["recover"] == "running"
    # a smaller margin: the outage is not yet within it
    narrow = json.loads(invoke("incident", "list", "--breaching", "--margin", "0.5", "--json").stdout)
    assert [i["id"] for i in narrow] == [old]
    shown = json.loads(invoke("incident", "show", done, "--json").stdout)
    assert shown["clocks"][0]["status"] == "late" and shown["clocks"][0]["late_hours"] == 2.0

    check = CliRunner().invoke(cli, ["incident", "check"])
    assert check.exit_code == 1
    assert f"BREACHED {old} (general) respond due 2026-01-06T09:00:00+08:00" in check.stdout
    assert f"due soon {soon} (outage) respond" in check.stdout and done not in check.stdout
    report = json.loads(CliRunner().invoke(cli, ["incident", "check", "--json"]).stdout)
    assert report["ok"] is False and {b["clock"] for b in report["breached"]} == {"respond", "resolve"}

    # acknowledging and resolving the old one clears the breach; the due-soon one only warns
    assert invoke("incident", "resolve", old, "--cause", "template fixed").exit_code == 0
    check = invoke("incident", "check")
    assert check.exit_code == 0 and "due soon" in check.stdout and "BREACHED" not in check.stdout


def test_margin_from_the_environment(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    open_incident("--severity", "outage", "--summary", "x", "--reported-at", ago(1))  # respond due in 3 h
    assert json.loads(invoke("incident", "list", "--breaching", "--json").stdout) == []
    monkeypatch.setenv("OPSCTL_SLA_MARGIN_HOURS", "4")
    assert len(json.loads(invoke("incident", "list", "--breaching", "--json").stdout)) == 1


def test_unknown_year_warns_on_open(archive: Archive) -> None:
    # 2003 is before the package's range and not in the project file: Monday-Friday, with a warning.
    result = invoke(
        "incident", "open", "--severity", "general", "--summary", "old", "--reported-at", "2003-06-06T10:00", "--json"
    )
    assert result.exit_code == 0
    assert "warning: the official holiday schedule of 2003 is not known" in result.stderr
    data = json.loads(result.stdout)
    assert data["deadlines"]["resolve"] == "2003-06-13T10:00:00+08:00"  # Fri -> next Fri, weekdays only
    assert data["calendar_warnings"] and "2003" in data["calendar_warnings"][0]
    shown = invoke("incident", "show", data["id"])
    assert "2003 is not known" in shown.stderr


def test_timeline_with_real_linked_runs(opsctl_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCTL_ROSTER", str(REPO / "oncall" / "roster.yml"))
    inc = open_incident(
        "--severity", "outage", "--summary", "App tier down", "--env", "test", "--reported-at", ago(0.5)
    )["id"]
    other = open_incident("--severity", "general", "--summary", "unrelated", "--env", "test")["id"]
    assert invoke("incident", "ack", inc).exit_code == 0
    ok = CliRunner().invoke(cli, ["run", "ok", "--env", "test", "--incident", inc, "--json"])
    assert ok.exit_code == 0, ok.output
    ok_id = json.loads(ok.stdout)["id"]
    failed = CliRunner().invoke(cli, ["run", "fail", "--env", "test", "--incident", inc, "--json"])
    assert failed.exit_code != 0
    failed_id = json.loads(failed.stdout)["id"]
    assert invoke("incident", "recovered", inc).exit_code == 0
    assert invoke("incident", "resolve", inc, "--cause", "app restarted").exit_code == 0

    shown = json.loads(invoke("incident", "show", inc, "--json").stdout)
    timeline = shown["timeline"]
    assert [e["kind"] for e in timeline] == [
        "reported",
        "opened",
        "acknowledged",
        "run",
        "run",
        "recovered",
        "resolved",
    ]
    runs = [e for e in timeline if e["kind"] == "run"]
    assert [(r["record_id"], r["status"]) for r in runs] == [(ok_id, "successful"), (failed_id, "failed")]
    assert "run ok on test: successful (rc 0)" in runs[0]["text"]
    text = invoke("incident", "show", inc).stdout
    assert ok_id in text and failed_id in text and "run fail on test: failed" in text
    assert all(e["kind"] != "run" for e in json.loads(invoke("incident", "show", other, "--json").stdout)["timeline"])
    verified = invoke("records", "verify")
    assert verified.exit_code == 0, verified.output


def test_chain_verification_covers_incident_records(archive: Archive) -> None:
    inc = open_incident("--severity", "general", "--summary", "Disk 91% on db1", "--reported-at", "2026-02-02T10:00")[
        "id"
    ]
    assert invoke("incident", "ack", inc, "--at", "2026-02-02T11:00").exit_code == 0
    assert invoke("incident", "resolve", inc, "--cause", "logs rotated", "--at", "2026-02-03T11:00").exit_code == 0
    verified = invoke("records", "verify")
    assert verified.exit_code == 0, verified.output
    ack_row = next(r for r in archive.list() if r["operation"] == "incident-ack")
    path = archive.root / ack_row["id"] / "record.json"
    path.write_text(
        path.read_text(encoding="utf-8").replace("2026-02-02T11:00:00.000+08:00", "2026-02-02T10:30:00.000+08:00"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["records", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN: record {ack_row['id']}" in result.stderr and "edited" in result.stderr


def test_incident_records_export(archive: Archive, tmp_path: Path) -> None:
    inc = open_incident("--severity", "outage", "--summary", "<b>Site</b> down", "--reported-at", "2026-02-02T10:00")[
        "id"
    ]
    for fmt in ("csv", "json", "html"):
        out = tmp_path / f"export.{fmt}"
        result = invoke("records", "export", "--format", fmt, "--out", str(out))
        assert result.exit_code == 0, result.output
        assert inc in out.read_text(encoding="utf-8")
    assert "<b>Site</b>" not in (tmp_path / "export.html").read_text(encoding="utf-8")
    show = invoke("records", "show", archive.list()[0]["id"])
    assert show.exit_code == 0 and f"incident {inc}" in show.stdout


def test_interrupted_incident_action_is_ignored(archive: Archive) -> None:
    """An incident action whose process died is recovered as an 'interrupted' record and does not count."""
    from orchestrator.incidents import IncidentRegister
    from orchestrator.records import RunMeta, new_record_id

    inc = open_incident("--severity", "general", "--summary", "x", "--reported-at", "2026-02-02T10:00")["id"]
    rid = new_record_id()
    meta = RunMeta(
        id=rid, operation="incident-resolve", playbook=None, environment="production", inventory=None, incident=inc
    )
    pending = archive.begin(rid, meta)
    pending.close()
    info = json.loads((pending.path / "pending.json").read_text())
    info["pid"] = 2**22 + 12345  # a pid that does not run
    (pending.path / "pending.json").write_text(json.dumps(info))
    assert archive.recover_interrupted() == [rid]
    assert archive.get(rid)["status"] == "interrupted"
    assert IncidentRegister(archive).get(inc).state == "open"
    verified = invoke("records", "verify")
    assert verified.exit_code == 0, verified.output


def test_concurrent_opens_get_distinct_ids(archive: Archive) -> None:
    """Real opsctl processes opening incidents at once: one id each, one unbroken chain."""
    import os
    import subprocess

    from helpers.common import opsctl_cmd

    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            opsctl_cmd("incident", "open", "--severity", "general", "--summary", f"parallel {i}", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(json.loads(out)["id"])
    assert len(set(ids)) == 4
    assert sorted(int(i.rsplit("-", 1)[1]) for i in ids) == [1, 2, 3, 4]
    verified = invoke("records", "verify")
    assert verified.exit_code == 0, verified.output


def _incident(severity: str, reported: dt.datetime, **milestones: dt.datetime) -> Incident:
    deadlines, _ = compute_deadlines(severity, reported)
    return Incident(
        id="INC-20261201-001",
        severity=severity,
        summary="test",
        environment="lab",
        reported_at=reported,
        opened_at=reported,
        opened_record="r",
        deadlines=deadlines,
        **milestones,
    )


def test_an_acknowledgement_exactly_at_the_deadline_is_in_time() -> None:
    reported = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)  # a Tuesday, a working day
    due = reported + dt.timedelta(hours=4)
    on_time = _incident("outage", reported, acknowledged_at=due)
    clock = {c.clock: c for c in on_time.clocks(at=due)}["respond"]
    assert (clock.due, clock.done_at, clock.status, clock.late_by) == (due, due, "met", None)
    late = _incident("outage", reported, acknowledged_at=due + dt.timedelta(seconds=1))
    clock = {c.clock: c for c in late.clocks(at=due)}["respond"]
    assert clock.status == "late" and clock.late_by == dt.timedelta(seconds=1)
    assert clock.as_dict()["late_hours"] == 0.0 and clock.as_dict()["status"] == "late"


def test_respond_without_an_ack_is_the_earlier_of_recovered_and_resolved() -> None:
    reported = dt.datetime(2026, 12, 1, 10, 0, tzinfo=TZ)
    recovered = reported + dt.timedelta(hours=3)  # within the 4 h response time
    resolved = reported + dt.timedelta(hours=30)
    inc = _incident("outage", reported, recovered_at=recovered, resolved_at=resolved)
    assert inc.milestone("respond") == recovered
    assert inc.milestone("recover") == recovered and inc.milestone("resolve") == resolved
    statuses = {c.clock: c.status for c in inc.clocks(at=resolved)}
    assert statuses == {"respond": "met", "recover": "met", "resolve": "met"}
    # resolved before a recovery was recorded: the resolution answers (and recovers) too
    only_resolved = _incident("outage", reported, resolved_at=recovered)
    assert only_resolved.milestone("respond") == recovered == only_resolved.milestone("recover")
    # an acknowledgement wins over both, even when it came later
    acked = _incident("outage", reported, acknowledged_at=resolved, recovered_at=recovered, resolved_at=resolved)
    assert acked.milestone("respond") == resolved
    assert {c.clock: c.status for c in acked.clocks(at=resolved)}["respond"] == "late"


def test_notified_matches_kind_delivery_clock_and_level() -> None:
    """Incident.notified (issue 22: mutants of the partial incidents run not yet reached)."""
    at = dt.datetime(2026, 11, 28, 9, 0, tzinfo=TZ)
    inc = Incident(
        id="x",
        severity="general",
        summary="s",
        environment="prod",
        reported_at=at,
        opened_at=at,
        opened_record="r",
        notices=[
            {"kind": "opened", "ok": False},  # tried, not delivered
            {"kind": "deadline", "ok": True, "clock": "respond", "level": 75},
            {"kind": "deadline", "ok": True, "clock": "resolve"},  # no level: 0
        ],
    )
    assert not inc.notified("opened")
    assert not inc.notified("closed")
    assert inc.notified("deadline")
    assert inc.notified("deadline", clock="respond")
    assert inc.notified("deadline", clock="respond", level=75)
    assert not inc.notified("deadline", clock="respond", level=76)
    assert inc.notified("deadline", clock="resolve", level=0)
    assert not inc.notified("deadline", clock="resolve", level=1)
    assert not inc.notified("deadline", clock="recover")
    inc.notices.insert(0, {"kind": "opened", "ok": True})
    assert inc.notified("opened")


def test_a_note_keeps_its_cleaned_text_author_alert_and_notice(tmp_path: Path) -> None:
    """IncidentRegister.note and TimelineEntry.as_dict (issue 22, the partial incidents run)."""
    from orchestrator.incidents import IncidentRegister

    register = IncidentRegister(Archive(tmp_path / "archive"))
    at = dt.datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    inc, _ = register.open("general", "disk full", reported_at=at)
    alert = {"fingerprint": "f1", "status": "firing"}
    notice = {"kind": "opened", "ok": True, "channels": ["mail"]}
    later = at + dt.timedelta(minutes=5)
    noted, rec = register.note(
        inc.id, "line one\x1b[31m\nline two  ", at=later, by=" ann\x07 ", alert=alert, notice=notice
    )
    assert rec["incident_event"] == {
        "action": "note",
        "at": "2026-11-30T09:05:00.000+08:00",
        "text": "line one\nline two",
        "by": "ann",
        "alert": alert,
        "notice": notice,
    }
    assert noted.notices == [{**notice, "at": "2026-11-30T09:05:00.000+08:00", "record_id": rec["id"]}]
    assert noted.events[-1].as_dict() == {
        "at": "2026-11-30T09:05:00+08:00",
        "kind": "note",
        "text": "line one\nline two by ann",
        "record_id": rec["id"],
        "status": None,
    }
    _, plain = register.note(inc.id, "just text", at=later, by="  ")
    assert plain["incident_event"] == {
        "action": "note",
        "at": "2026-11-30T09:05:00.000+08:00",
        "text": "just text",
    }  # nobody (a blank author): no "by"


# -- issue 22: the survivors of the incidents mutation run (tests/MUTATION.md) ------------------


@pytest.fixture
def register(tmp_path: Path) -> Any:
    from orchestrator.incidents import IncidentRegister

    return IncidentRegister(Archive(tmp_path / "archive"))


def test_recovered_keeps_its_cleaned_text_author_and_reason(register: Any) -> None:
    at = dt.datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    inc, _ = register.open("outage", "portal down", reported_at=at)
    later = at + dt.timedelta(minutes=30)
    done, rec = register.recovered(inc.id, at=later, text=" app\x1b[31m restarted\nline two  ", by=" ops\x07 ")
    assert rec["incident_event"] == {
        "action": "recovered",
        "at": "2026-11-30T09:30:00.000+08:00",
        "text": "app restarted\nline two",
        "by": "ops",
    }
    assert rec["reason"] == "app restarted\nline two"  # the note's text is the record's reason
    assert done.recovered_at == later and done.state == "recovered"
    assert done.events[-1].text == "emergency recovery achieved: app restarted\nline two by ops"
    # without text or author: neither in the payload, no reason
    other, _ = register.open("outage", "db down", reported_at=at)
    _, plain = register.recovered(other.id, at=later)
    assert plain["incident_event"] == {"action": "recovered", "at": "2026-11-30T09:30:00.000+08:00"}
    assert plain["reason"] is None


def test_recovered_by_alert_records_the_alert_as_its_author(register: Any) -> None:
    at = dt.datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
    fired = {"fingerprint": "f1", "status": "firing", "digest": "d0"}
    inc, _ = register.open("outage", "portal down", reported_at=at, alert=fired)
    ended = at + dt.timedelta(minutes=20)
    resolved = {"fingerprint": "f1", "status": "resolved", "digest": "d1"}
    done, rec = register.recovered_by_alert(inc.id, ended, "the alert ended", resolved)
    assert rec["incident_event"] == {
        "action": "recovered",
        "at": "2026-11-30T09:20:00.000+08:00",
        "text": "the alert ended",
        "by": "alertmanager",
        "alert": resolved,
    }
    assert rec["reason"] == "the alert ended"
    assert done.recovered_at == ended and done.alert_digest == "d1"
    assert done.alert_seen_at == ended and done.alert_resolved_at == ended
    assert done.events[-1].text == "emergency recovery achieved: the alert ended by alertmanager"


def test_breaching_and_breached_at_a_given_time() -> None:
    reported = dt.datetime(2026, 11, 2, 10, 0, tzinfo=TZ)  # a Monday; outage: respond due at 14:00
    inc = _incident("outage", reported)
    assert not inc.breaching(reported) and not inc.breached(reported)  # breached now, but not at that time
    assert inc.breaching(reported + dt.timedelta(hours=2)) and not inc.breached(reported + dt.timedelta(hours=2))
    assert not inc.breaching(reported + dt.timedelta(hours=2), margin_hours=1.5)
    assert inc.breaching(reported + dt.timedelta(hours=3), margin_hours=1.5)
    assert not inc.breached(reported + dt.timedelta(hours=4))  # at the deadline: not yet past it
    assert inc.breached(reported + dt.timedelta(hours=4, seconds=1))
    assert inc.breached() and inc.breaching()  # now: weeks later
    acked = _incident("outage", reported, acknowledged_at=reported + dt.timedelta(hours=1))
    assert not acked.breached(reported + dt.timedelta(hours=5))  # respond met, recover not due yet


def test_an_incident_as_a_dict_names_every_field(register: Any) -> None:
    at = dt.datetime(2026, 11, 2, 10, 0, tzinfo=TZ)  # a Monday
    inc, rec = register.open(
        "outage", "portal down", reported_at=at, reporter="hotline", environment="staging", on_call={"primary": "chen"}
    )
    register.ack(inc.id, at=at + dt.timedelta(hours=1), by="chen")
    inc, _ = register.recovered(inc.id, at=at + dt.timedelta(hours=30))
    deadlines = {
        "respond": "2026-11-02T14:00:00+08:00",
        "recover": "2026-11-03T10:00:00+08:00",
        "resolve": "2026-11-05T10:00:00+08:00",
    }
    assert inc.as_dict(at + dt.timedelta(hours=40)) == {
        "id": inc.id,
        "severity": "outage",
        "state": "recovered",
        "summary": "portal down",
        "environment": "staging",
        "reporter": "hotline",
        "reported_at": "2026-11-02T10:00:00+08:00",
        "opened_at": inc.opened_at.isoformat(timespec="seconds"),
        "opened_record": rec["id"],
        "acknowledged_at": "2026-11-02T11:00:00+08:00",
        "acknowledged_by": "chen",
        "recovered_at": "2026-11-03T16:00:00+08:00",
        "resolved_at": None,
        "cause": None,
        "deadlines": deadlines,
        "deadlines_at_open": deadlines,
        "clocks": [
            {
                "clock": "respond",
                "target": "4 h",
                "due": deadlines["respond"],
                "done_at": "2026-11-02T11:00:00+08:00",
                "status": "met",
                "late_hours": None,
            },
            {
                "clock": "recover",
                "target": "1 working day",
                "due": deadlines["recover"],
                "done_at": "2026-11-03T16:00:00+08:00",
                "status": "late",
                "late_hours": 6.0,
            },
            {
                "clock": "resolve",
                "target": "3 working days",
                "due": deadlines["resolve"],
                "done_at": None,
                "status": "running",
                "late_hours": None,
            },
        ],
        "calendar_warnings": [],
        "on_call_at_open": {"primary": "chen"},
    }
    # the margin given is the one used: resolve due at 10:00, 3 h to go
    three_hours_before = dt.datetime(2026, 11, 5, 7, 0, tzinfo=TZ)
    assert inc.as_dict(three_hours_before)["clocks"][2]["status"] == "running"
    assert inc.as_dict(three_hours_before, margin_hours=4)["clocks"][2]["status"] == "due-soon"
    done, _ = register.resolve(inc.id, "pool size raised", at=at + dt.timedelta(hours=50))
    assert {k: done.as_dict()[k] for k in ("state", "resolved_at", "cause")} == {
        "state": "resolved",
        "resolved_at": "2026-11-04T12:00:00+08:00",
        "cause": "pool size raised",
    }
    old, _ = register.open("general", "old", reported_at=dt.datetime(2003, 6, 6, 10, 0, tzinfo=TZ))
    assert old.as_dict()["calendar_warnings"] == [str(w) for w in old.calendar_warnings]
    assert len(old.calendar_warnings) == 1 and "2003" in old.as_dict()["calendar_warnings"][0]


def test_timeline_orders_ties_reported_opened_then_the_rest(register: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    inc, rec = register.open("general", "slow search")  # reported when opened: the same moment
    runs = [
        {"id": "r1", "operation": "restart", "environment": "production", "status": "successful", "rc": 0},
        {
            "id": "r2",
            "operation": "inspect",
            "environment": "production",
            "status": "failed",
            "rc": 2,
            "check_mode": True,
            "started": "2026-11-02T09:00:00+08:00",
        },
    ]
    monkeypatch.setattr(register, "linked_runs", lambda incident_id: runs if incident_id == inc.id else [])
    # the run without a start time (r1) counts from the opening, after the register's own entries
    assert [(e.kind, e.record_id) for e in register.timeline(inc)] == [
        ("run", "r2"),
        ("reported", None),
        ("opened", rec["id"]),
        ("run", "r1"),
    ]
    entries = {e.record_id: e for e in register.timeline(inc)}
    assert entries["r1"].at == inc.opened_at and entries["r1"].status == "successful"
    assert entries["r1"].text == "run restart on production: successful (rc 0)"
    assert entries["r2"].text == "run inspect (check) on production: failed (rc 2)"
    assert entries["r2"].at == dt.datetime(2026, 11, 2, 9, 0, tzinfo=TZ) and entries["r2"].status == "failed"


def test_ack_and_resolve_keep_their_cleaned_author_cause_and_reason(register: Any) -> None:
    from orchestrator.errors import BadInput

    at = dt.datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
    inc, _ = register.open("general", "slow search", reported_at=at)
    acked, rec = register.ack(inc.id, at=at + dt.timedelta(hours=1), by=" chen\x07 ")
    assert rec["incident_event"] == {"action": "ack", "at": "2026-11-02T11:00:00.000+08:00", "by": "chen"}
    assert rec["reason"] is None and acked.acknowledged_by == "chen"
    with pytest.raises(BadInput, match="needs a cause"):
        register.resolve(inc.id, "")
    done, rec = register.resolve(inc.id, " index\x1b[31m rebuilt\nfor 2026  ", at=at + dt.timedelta(hours=2), by=" li ")
    assert rec["incident_event"] == {
        "action": "resolve",
        "at": "2026-11-02T12:00:00.000+08:00",
        "cause": "index rebuilt\nfor 2026",
        "by": "li",
    }
    assert rec["reason"] == "index rebuilt\nfor 2026"
    assert done.cause == "index rebuilt\nfor 2026"
    assert done.events[-1].text == "resolved: index rebuilt\nfor 2026 by li"


def _rec(rid: str, action: str, inc_id: Any = "INC-20261102-001", **payload: Any) -> dict[str, Any]:
    """A synthetic incident record, as the fold reads it."""
    return {
        "id": rid,
        "operation": f"incident-{action}",
        "incident": inc_id,
        "environment": "prod",
        "incident_event": {"action": action, **payload},
    }


def test_the_fold_of_synthetic_records(register: Any) -> None:
    """IncidentRegister._apply record by record: what each action sets, keeps and ignores."""
    t = [f"2026-11-02T{h:02d}:00:00.000+08:00" for h in range(10, 24)]
    opened = {"severity": "outage", "summary": "down", "reported_at": t[0], "reporter": "hotline"}
    fired = {"fingerprint": "f1", "status": "firing", "digest": "d0", "name": "PortalDown"}
    incidents: dict[str, Incident] = {}
    register._apply(incidents, _rec("r1", "open", at=t[1], alert=fired, deadlines={"respond": "x"}, **opened))
    inc = incidents["INC-20261102-001"]
    assert (inc.severity, inc.summary, inc.environment, inc.reporter) == ("outage", "down", "prod", "hotline")
    assert (inc.opened_record, inc.deadlines_at_open) == ("r1", {"respond": "x"})
    assert inc.alert == fired and inc.alert_fingerprint == "f1" and inc.alert_digest == "d0"
    assert inc.reported_at == dt.datetime(2026, 11, 2, 10, 0, tzinfo=TZ) and inc.alert_seen_at == inc.opened_at
    assert inc.opened_at == dt.datetime(2026, 11, 2, 11, 0, tzinfo=TZ)
    assert [(e.kind, e.text, e.record_id) for e in inc.events] == [
        ("reported", "outage: down by hotline", None),
        ("opened", "opened in the register (outage)", "r1"),
    ]
    # ignored: a second open of the id, an unknown severity, no valid time, no operation or id,
    # an action on an incident never opened
    register._apply(incidents, _rec("r2", "open", at=t[2], **{**opened, "summary": "again"}))
    register._apply(incidents, _rec("r3", "open", "INC-20261102-002", at=t[2], **{**opened, "severity": "minor"}))
    register._apply(incidents, _rec("r4", "open", "INC-20261102-003", at="noon", **opened))
    register._apply(incidents, _rec("r5", "ack", None, at=t[2]))
    register._apply(incidents, {**_rec("r6", "ack", at=t[2]), "operation": "incident-reopen"})
    register._apply(incidents, _rec("r7", "ack", "INC-20261102-009", at=t[2]))
    assert list(incidents) == ["INC-20261102-001"] and inc.summary == "down" and len(inc.events) == 2

    # the first acknowledgement, recovery and resolution count; later ones are only in the timeline
    register._apply(incidents, _rec("a1", "ack", at=t[2], by="chen"))
    register._apply(incidents, _rec("a2", "ack", at=t[3]))
    assert (inc.acknowledged_at, inc.acknowledged_by, inc.state) == (
        dt.datetime(2026, 11, 2, 12, 0, tzinfo=TZ),
        "chen",
        "acknowledged",
    )
    resolved_alert = {"fingerprint": "f1", "status": "resolved", "digest": "d1"}
    register._apply(incidents, _rec("v1", "recovered", at=t[4], text="restarted", alert=resolved_alert))
    register._apply(incidents, _rec("v2", "recovered", at=t[5]))
    assert inc.recovered_at == dt.datetime(2026, 11, 2, 14, 0, tzinfo=TZ) and inc.state == "recovered"
    assert (inc.alert_digest, inc.alert_seen_at, inc.alert_resolved_at) == ("d1", inc.recovered_at, inc.recovered_at)
    # the alert resolved again: the first end stays; a note without a digest keeps the last one
    register._apply(incidents, _rec("n1", "note", at=t[6], text="still quiet", alert={"status": "resolved"}))
    assert inc.alert_resolved_at == inc.recovered_at and inc.alert_digest == "d1"
    assert inc.alert_seen_at == dt.datetime(2026, 11, 2, 16, 0, tzinfo=TZ)
    # firing again: no longer resolved
    notice = {"kind": "opened", "ok": True}
    register._apply(
        incidents, _rec("n2", "note", at=t[7], text="fires", alert={**fired, "digest": "d2"}, notice=notice)
    )
    assert inc.alert_resolved_at is None and inc.alert_digest == "d2"
    assert inc.notices == [{**notice, "at": t[7], "record_id": "n2"}]
    register._apply(incidents, _rec("n3", "note", at=t[8], alert={"status": "resolved", "digest": "d3"}))
    assert inc.alert_resolved_at == dt.datetime(2026, 11, 2, 18, 0, tzinfo=TZ) and inc.alert_digest == "d3"
    # an alert in an acknowledgement or a resolution is not looked at
    register._apply(incidents, _rec("a3", "ack", at=t[9], alert={"status": "firing", "digest": "d4"}))
    assert inc.alert_resolved_at is not None and inc.alert_digest == "d3"

    register._apply(incidents, _rec("s1", "resolve", at=t[10], cause="pool", by="li"))
    register._apply(incidents, _rec("s2", "resolve", at=t[11], cause="other"))
    assert (inc.resolved_at, inc.cause, inc.state) == (dt.datetime(2026, 11, 2, 20, 0, tzinfo=TZ), "pool", "resolved")
    assert [(e.kind, e.text, e.record_id) for e in inc.events[2:]] == [
        ("acknowledged", "acknowledged by chen", "a1"),
        ("acknowledged", "acknowledged", "a2"),
        ("recovered", "emergency recovery achieved: restarted", "v1"),
        ("recovered", "emergency recovery achieved", "v2"),
        ("note", "still quiet", "n1"),
        ("note", "fires", "n2"),
        ("note", "", "n3"),
        ("acknowledged", "acknowledged", "a3"),
        ("resolved", "resolved: pool by li", "s1"),
        ("resolved", "resolved: other", "s2"),
    ]
    assert [e.at.hour for e in inc.events[2:]] == [12, 13, 14, 15, 16, 17, 18, 19, 20, 21]

    # an open record whose alert has no digest, and one without a reporter
    register._apply(incidents, _rec("o2", "open", "INC-20261102-004", at=t[1], alert={"fingerprint": "f9"}, **opened))
    assert incidents["INC-20261102-004"].alert_digest is None
    plain = {**opened, "reporter": None, "severity": "general"}
    register._apply(incidents, _rec("o3", "open", "INC-20261102-005", at=t[1], **plain))
    quiet = incidents["INC-20261102-005"]
    assert quiet.alert is None and quiet.alert_digest is None and quiet.alert_seen_at is None
    assert quiet.events[0].text == "general: down" and set(quiet.deadlines) == {"respond", "resolve"}


def test_open_and_update_write_whole_records_and_name_each_refusal(register: Any) -> None:
    from orchestrator.errors import BadInput
    from orchestrator.incidents import stamp

    archive = register.archive
    at = dt.datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
    inc, rec = register.open(
        "outage",
        "portal down",
        reported_at=at,
        reporter=" hotline ",
        environment="staging",
        on_call={"primary": "chen"},
        alert={"fingerprint": "f"},
    )
    deadlines = {
        "respond": "2026-11-02T14:00:00+08:00",
        "recover": "2026-11-03T10:00:00+08:00",
        "resolve": "2026-11-05T10:00:00+08:00",
    }
    assert rec["incident_event"] == {
        "action": "open",
        "at": stamp(inc.opened_at),
        "severity": "outage",
        "summary": "portal down",
        "reporter": "hotline",
        "reported_at": "2026-11-02T10:00:00.000+08:00",
        "targets": [
            {"clock": "respond", "hours": 4, "working_days": None},
            {"clock": "recover", "hours": None, "working_days": 1},
            {"clock": "resolve", "hours": None, "working_days": 3},
        ],
        "deadlines": deadlines,
        "calendar_warnings": [],
        "on_call": {"primary": "chen"},
        "alert": {"fingerprint": "f"},
    }
    assert {k: rec.get(k) for k in ("operation", "incident", "environment", "reason", "status", "rc")} == {
        "operation": "incident-open",
        "incident": inc.id,
        "environment": "staging",
        "reason": "portal down",
        "status": "successful",
        "rc": 0,
    }
    assert archive.stdout(rec["id"]) == (
        f"incident {inc.id} opened (outage): portal down\n"
        "  respond by 2026-11-02T14:00:00+08:00\n"
        "  recover by 2026-11-03T10:00:00+08:00\n"
        "  resolve by 2026-11-05T10:00:00+08:00\n"
    )
    general, g_rec = register.open("general", "g", reported_at=at)
    assert g_rec["incident_event"]["on_call"] is None and "alert" not in g_rec["incident_event"]
    assert g_rec["incident_event"]["reporter"] is None and general.id != inc.id

    def refused(call: Any) -> str:
        with pytest.raises(BadInput) as info:
            call()
        return str(info.value)

    hour = dt.timedelta(hours=1)
    i = inc.id
    assert refused(lambda: register.recovered(general.id, at=at)) == (
        f"{general.id} is a general fault: emergency recovery applies to outages only (use `resolve`, or `note`)"
    )
    assert refused(lambda: register.ack(i, at=at - hour)) == (
        "the acknowledgement time 2026-11-02T09:00:00+08:00 is before the report (2026-11-02T10:00:00+08:00)"
    )
    assert refused(lambda: register.note(i, " ")) == "a note needs text"
    assert refused(lambda: register.note(i, "x", at=at - hour)) == (
        "the note time 2026-11-02T09:00:00+08:00 is before the report (2026-11-02T10:00:00+08:00)"
    )
    assert refused(lambda: register.recovered(i, at=at - hour)) == (
        "the recovery time 2026-11-02T09:00:00+08:00 is before the report (2026-11-02T10:00:00+08:00)"
    )
    assert refused(lambda: register.resolve(i, "c", at=at - hour)) == (
        "the resolution time 2026-11-02T09:00:00+08:00 is before the report (2026-11-02T10:00:00+08:00)"
    )
    _, r = register.ack(i, at=at + hour, by="chen")
    assert archive.stdout(r["id"]) == f"incident {i}: ack at 2026-11-02T11:00:00+08:00\n  by: chen\n"
    assert refused(lambda: register.ack(i, at=at + 2 * hour)) == (
        f"{i} was already acknowledged at 2026-11-02T11:00:00+08:00"
    )
    _, r = register.recovered(i, at=at + 3 * hour, text="restarted")
    assert archive.stdout(r["id"]) == f"incident {i}: recovered at 2026-11-02T13:00:00+08:00\n  text: restarted\n"
    assert refused(lambda: register.recovered(i, at=at + 4 * hour)) == (
        f"{i} was already marked recovered at 2026-11-02T13:00:00+08:00"
    )
    assert refused(lambda: register.resolve(i, "c", at=at + 2 * hour)) == (
        "the resolution time 2026-11-02T12:00:00+08:00 is before the recovery (2026-11-02T13:00:00+08:00)"
    )
    _, r = register.note(i, "a\nb", at=at + 4 * hour)
    assert archive.stdout(r["id"]) == f"incident {i}: note at 2026-11-02T14:00:00+08:00\n  text: a\nb\n"
    _, r = register.resolve(i, "c", at=at + 5 * hour, by="li")
    assert archive.stdout(r["id"]) == f"incident {i}: resolve at 2026-11-02T15:00:00+08:00\n  cause: c\n  by: li\n"
    assert r["environment"] == "staging" and r["incident"] == i and r["operation"] == "incident-resolve"
    assert refused(lambda: register.recovered(i)) == f"{i} is already resolved (2026-11-02T15:00:00+08:00)"
    assert refused(lambda: register.resolve(i, "c")) == f"{i} is already resolved (2026-11-02T15:00:00+08:00)"
    assert refused(lambda: register.ack(i)) == (
        f"{i} is already resolved (2026-11-02T15:00:00+08:00); nothing to acknowledge"
    )


def test_an_incident_record_names_who_and_what_and_a_failed_commit_leaves_nothing(
    register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator import paths
    from orchestrator.records import collect_operator, collect_source, collect_versions

    inc, rec = register.open("general", "x")
    repo = paths.repo_root()
    assert {k: rec[k] for k in ("operator", "source", "versions")} == {
        "operator": collect_operator(repo),
        "source": collect_source(repo),
        "versions": collect_versions(),
    }
    assert rec["playbook"] is None and rec["inventory"] is None and rec["environment"] == "production"
    assert register.archive.stdout(rec["id"]).endswith("\n  resolve by " + isoformat_of(inc, "resolve") + "\n")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    count = len(register.archive.list())
    monkeypatch.setattr(register.archive, "commit", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        register.note(inc.id, "n")
    assert list((register.archive.root / ".pending").iterdir()) == []  # the half-written action is discarded
    monkeypatch.undo()
    assert len(register.archive.list()) == count and register.get(inc.id).events[-1].kind == "opened"


def isoformat_of(inc: Incident, clock: str) -> str:
    from orchestrator.workdays import isoformat

    return isoformat(inc.deadlines[clock])


def test_ids_times_and_severities_are_checked_and_named(register: Any) -> None:
    from orchestrator.errors import BadInput
    from orchestrator.incidents import validate_incident_id

    assert validate_incident_id("INC-20261128-001") == "INC-20261128-001"
    assert validate_incident_id("INC-20261128-1234") == "INC-20261128-1234"
    for bad in ("INC-20261128-01", "INC-2026112-001", "inc-20261128-001", " INC-20261128-001", 20261128):
        with pytest.raises(BadInput) as info:
            validate_incident_id(bad)
        assert str(info.value) == f"invalid incident id {str(bad)!r}: expected the form INC-20261128-001"
    with pytest.raises(BadInput) as info:
        validate_incident_id("X" * 100)
    assert str(info.value) == f"invalid incident id {'X' * 60!r}: expected the form INC-20261128-001"
    with pytest.raises(BadInput) as info:
        compute_deadlines("critical", dt.datetime(2026, 11, 2, 10, 0, tzinfo=TZ))
    assert str(info.value) == "severity must be one of general, outage, not 'critical'"
    with pytest.raises(BadInput) as info:
        register.open("critical", "x")
    assert str(info.value) == "severity must be one of general, outage, not 'critical'"
    # two working-day clocks in a year without a schedule: its warning once
    _, warnings = compute_deadlines("outage", dt.datetime(2003, 6, 6, 10, 0, tzinfo=TZ))
    assert len(warnings) == 1 and "2003" in str(warnings[0])

    from orchestrator.incidents import stamp

    utc = dt.datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=dt.timezone.utc)
    assert stamp(utc) == "2026-01-01T08:00:00.123+08:00"

    # an operator's time may run a few minutes ahead (clock skew), not more
    now = dt.datetime.now(TZ)
    inc, _ = register.open("general", "x", reported_at=now - dt.timedelta(hours=1))
    register.note(inc.id, "soon", at=now + dt.timedelta(seconds=240))
    with pytest.raises(BadInput, match="the note time .* is in the future"):
        register.note(inc.id, "later", at=now + dt.timedelta(seconds=360))
    with pytest.raises(BadInput, match="the report time .* is in the future"):
        register.open("general", "x", reported_at=now + dt.timedelta(seconds=360))


def test_next_ids_count_up_per_day(register: Any) -> None:
    day = dt.date(2026, 11, 2)
    taken = dict.fromkeys(["INC-20261102-009", "INC-20261102-010", "INC-20261101-050"])
    assert register._next_id(taken, day) == "INC-20261102-011"
    assert register._next_id(taken, dt.date(2026, 11, 1)) == "INC-20261101-051"
    assert register._next_id(taken, dt.date(2026, 11, 3)) == "INC-20261103-001"
    assert register._next_id(dict.fromkeys(["INC-20261102-999"]), day) == "INC-20261102-1000"
    first, _ = register.open("general", "a")
    second, _ = register.open("general", "b")
    today = f"INC-{dt.datetime.now(TZ):%Y%m%d}-"
    assert (first.id, second.id) == (today + "001", today + "002")


def test_the_register_reads_only_successful_incident_records_in_chain_order(register: Any) -> None:
    from orchestrator.records import RecordBuilder, RunMeta, new_record_id

    archive = register.archive
    at = dt.datetime(2026, 11, 2, 10, 0, tzinfo=TZ)
    inc, _ = register.open("general", "x", reported_at=at)
    # an incident-note record without a payload (not written by the register): not an event
    rid = new_record_id()
    meta = RunMeta(
        id=rid, operation="incident-note", playbook=None, environment="production", inventory=None, incident=inc.id
    )
    pending = archive.begin(rid, meta)
    pending.write_stdout("x\n")
    archive.commit(pending, RecordBuilder().finish(meta, status="successful", rc=0))
    register.note(inc.id, "first", at=at + dt.timedelta(hours=2))
    register.note(inc.id, "second", at=at + dt.timedelta(hours=1))  # back-dated: still after "first"
    register.ack(inc.id, at=at + dt.timedelta(hours=3))
    records = register._event_records()
    assert [r["operation"] for r in records] == ["incident-open", "incident-note", "incident-note", "incident-ack"]
    assert [int(r["seq"]) for r in records] == sorted(int(r["seq"]) for r in records)
    assert [e.text for e in register.get(inc.id).events if e.kind == "note"] == ["first", "second"]
    assert register.load().keys() == {inc.id}
