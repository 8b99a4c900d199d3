"""`opsctl report baseline` from a real archive record (issue 8): zh/en HTML, CSV, JSON;
the newest successful baseline-check record wins; statuses, waivers and clauses shown."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helpers.records import BASE_TIME, commit_record
from orchestrator.archive import Archive
from orchestrator.baseline import build_baseline, latest_check
from orchestrator.cli import cli
from orchestrator.errors import NotFound


def _control(cid: str, status: str, reason: str, waiver: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "en": f"{cid} in English",
        "zh": f"{cid} 中文说明",
        "ref": "8.1.4.1 身份鉴别 a)",
        "status": status,
        "reason": reason,
        "evidence": ["x=1"],
        "waiver": waiver,
    }


WAIVER = {
    "approved_by": "李明",
    "reason": "legacy client needs it until the upgrade",
    "until": "2099-12-31",
    "ticket": "CHG-1",
}


def _outputs(ssh01: str = "pass") -> dict[str, Any]:
    return {
        "baseline": {
            "web1": {
                "container": True,
                "os": "Debian 12",
                "evaluated_at": "2026-11-28T10:00:00",
                "summary": {},
                "lynis": {"installed": False, "message": "lynis not installed"},
                "controls": [
                    _control("SSH-01", ssh01, "sshd -T: passwordauthentication no"),
                    _control("AUD-01", "not_applicable", "inside a container"),
                    _control("SSH-04", "waived", "macs offers hmac-sha1", WAIVER),
                ],
            },
            "db1": {
                "container": False,
                "os": "Debian 12",
                "evaluated_at": "2026-11-28T10:00:00",
                "summary": {},
                "lynis": {
                    "installed": True,
                    "message": "lynis current: hardening index 71",
                    "current": {"hardening_index": 71, "warnings": []},
                },
                "controls": [
                    _control("SSH-01", "fail", "=cmd|' /C calc'!A0"),
                    _control("AUD-01", "pass", "auditd enabled and active"),
                    _control("SSH-04", "pass", "modern only"),
                ],
            },
        }
    }


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Archive:
    monkeypatch.setenv("OPSCTL_ARCHIVE", str(tmp_path / "archive"))
    arch = Archive(tmp_path / "archive")
    commit_record(arch, op="baseline-check", env="lab", hosts=["web1", "db1"], outputs=_outputs("fail"), when=BASE_TIME)
    commit_record(
        arch,
        op="baseline-check",
        env="lab",
        hosts=["web1", "db1", "app1"],
        outputs=_outputs("pass"),
        when=BASE_TIME + timedelta(hours=1),
    )
    commit_record(
        arch,
        op="baseline-check",
        env="lab",
        hosts=["web1", "db1"],
        outputs=_outputs("fail"),
        when=BASE_TIME + timedelta(hours=2),
        fail_host="db1",
    )
    return arch


def test_build_uses_the_newest_successful_check(archive: Archive) -> None:
    data = build_baseline(latest_check(archive, "lab"))
    assert [h["host"] for h in data["hosts"]] == ["db1", "web1"]
    web, db = data["hosts"][1], data["hosts"][0]
    assert web["compliant"] and not db["compliant"]
    assert web["counts"] == {"pass": 1, "fail": 0, "waived": 1, "not_applicable": 1}
    assert data["summary"]["compliant"] == 1 and data["summary"]["compliance_pct"] == 50.0
    assert data["summary"]["not_checked"] == ["app1"]
    assert db["lynis"]["hardening_index"] == 71
    assert [row["id"] for row in data["matrix"]] == ["SSH-01", "AUD-01", "SSH-04"]
    assert data["matrix"][1]["by_host"] == {"db1": "pass", "web1": "not_applicable"}


def test_no_check_record_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="baseline-check"):
        latest_check(Archive(tmp_path / "empty"), "lab")
    result = CliRunner().invoke(
        cli, ["report", "baseline", "--env", "lab"], env={"OPSCTL_ARCHIVE": str(tmp_path / "empty")}
    )
    assert result.exit_code != 0
    assert "opsctl run baseline-check --env lab" in result.output


@pytest.mark.parametrize(
    "lang, words",
    [
        ("zh", ["安全基线合规证据报告", "不通过", "已豁免", "不适用", "批准人", "GB/T 22239-2019"]),
        (
            "en",
            [
                "Security baseline compliance evidence",
                "fail",
                "waived",
                "not applicable",
                "Approved by",
                "GB/T 22239-2019",
            ],
        ),
    ],
)
def test_html_in_both_languages(archive: Archive, tmp_path: Path, lang: str, words: list[str]) -> None:
    out = tmp_path / f"baseline.{lang}.html"
    result = CliRunner().invoke(cli, ["report", "baseline", "--env", "lab", "--lang", lang, "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and f'lang="{"zh-CN" if lang == "zh" else "en"}"' in html
    for word in words:
        assert word in html, word
    assert "李明" in html and "2099-12-31" in html and "8.1.4.1 身份鉴别 a)" in html
    assert re.findall(r"<script[^>]*>", html) in (
        [],
        ['<script type="application/json" id="envcredit-report">'],
    )  # data, never code
    if lang == "en":  # the engineer's reason (English) is shown escaped
        assert "&#39; /C calc&#39;" in html or "&#x27; /C calc" in html
    else:  # zh: the evidence read on the host, as code, never the English reason
        assert "<code>x=1</code>" in html and "主机上的证据" in html and "sshd -T:" not in html
        assert "lynis not installed" not in html and "未安装" in html
    assert out.stat().st_mode & 0o077 == 0


def test_csv_rows_per_host_and_control(archive: Archive) -> None:
    result = CliRunner().invoke(cli, ["report", "baseline", "--env", "lab", "--lang", "en", "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 6
    waived = [r for r in rows if r["status"] == "waived"]
    assert [(r["host"], r["control"], r["waiver_approved_by"], r["waiver_until"]) for r in waived] == [
        ("web1", "SSH-04", "李明", "2099-12-31")
    ]
    formula = next(r for r in rows if r["host"] == "db1" and r["control"] == "SSH-01")
    assert formula["reason"].startswith("'=")  # spreadsheet formulas neutralised
    zh = CliRunner().invoke(cli, ["report", "baseline", "--env", "lab", "--lang", "zh", "--format", "csv"])
    assert "不适用" in zh.output


def test_json_carries_the_record_reference(archive: Archive) -> None:
    result = CliRunner().invoke(cli, ["report", "baseline", "--env", "lab", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["report"] == "baseline"
    assert data["record"]["operation"] == "baseline-check" and data["record"]["hash"]


def test_check_time_is_beijing_time(archive: Archive, tmp_path: Path) -> None:
    """The newest successful check started at BASE_TIME + 1 h (UTC); the report shows Beijing time."""
    from orchestrator.workdays import TZ

    shown = (BASE_TIME + timedelta(hours=1)).astimezone(TZ).strftime("%Y-%m-%d %H:%M")
    utc = (BASE_TIME + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    assert shown != utc
    out = tmp_path / "baseline.html"
    result = CliRunner().invoke(cli, ["report", "baseline", "--env", "lab", "--lang", "zh", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert shown in html and f"{utc}<" not in html


@pytest.mark.parametrize("fmt", ["html", "json", "csv"])
def test_a_filed_report_names_the_archive_head_and_its_records(archive: Archive, tmp_path: Path, fmt: str) -> None:
    """Every report carries the chain's HEAD and [id, seq, hash] of the records it was built
    from (issue 18): `records verify-export` checks a filed copy, and fails once the chain is rewritten."""
    out = tmp_path / f"baseline.{fmt}"
    result = CliRunner().invoke(cli, ["report", "baseline", "--env", "lab", "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    head = archive.head()
    assert head is not None and head["hash"] in text
    if fmt == "csv":  # each row names its record (seq, hash) and the HEAD
        rows = list(csv.DictReader(io.StringIO(text)))
        rec = archive.get(rows[0]["record_id"])
        assert {(r["record_seq"], r["record_hash"], r["archive_head_seq"]) for r in rows} == {
            (str(rec["seq"]), rec["hash"], str(head["seq"]))
        }
    if fmt == "html":
        assert f"序号 {head['seq']}，哈希 {head['hash']}" in text  # the line a reader of the zh report sees
    check = CliRunner().invoke(cli, ["records", "verify-export", str(out)])
    assert check.exit_code == 0, check.output
    # the chain rewritten after the report was filed (the newest record re-hashed)
    newest = archive.root / head["id"] / "record.json"
    newest.write_text(newest.read_text(encoding="utf-8").replace(head["hash"], "0" * 64), encoding="utf-8")
    check = CliRunner().invoke(cli, ["records", "verify-export", str(out)])
    assert check.exit_code != 0 and "rewritten" in check.output, check.output
