"""opsctl awx import: an AWX-style event stream recorded from a REAL ansible-runner run.

The playbook runs for real on two local-connection hosts (the ``opsctl_home`` fixture);
its ansible-runner events are converted to the shape the AWX API returns them in
(``/api/v2/jobs/N/job_events/`` pages) and imported.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ansible_runner
import pytest
from click.testing import CliRunner

from orchestrator.archive import Archive
from orchestrator.cli import cli

from helpers.common import all_text_under
from helpers.home import CLI_SECRET_VALUE

JOB_ID = 42


def real_events(home: Path, tmp_path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    (tmp_path / "runner").mkdir()
    r = ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        playbook=str(home / "playbooks" / "change.yml"),
        inventory=str(home / "inventories" / "test"),
        cmdline=f"--diff --vault-password-file {home / 'vault-password'}",
        extravars={"api_token": CLI_SECRET_VALUE},
        envvars={"ANSIBLE_NOCOLOR": "1"},
        quiet=True,
        event_handler=lambda e: events.append(e) or True,
    )
    assert r.status == "successful", r.stdout.read()
    return events


def awx_time(text: str) -> str:
    """AWX serialises times as UTC with microseconds and a Z."""
    dt = datetime.fromisoformat(text)
    dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_awx(events: list[dict[str, Any]], page_size: int = 4) -> list[dict[str, Any]]:
    """ansible-runner events -> AWX API job event pages (fields as AWX serialises them)."""
    rows = []
    for i, e in enumerate(sorted(events, key=lambda e: e["counter"]), start=1):
        data = e.get("event_data") or {}
        res = data.get("res") or {}
        rows.append(
            {
                "id": 1000 + i,
                "type": "job_event",
                "url": f"/api/v2/job_events/{1000 + i}/",
                "related": {"job": f"/api/v2/jobs/{JOB_ID}/"},
                "summary_fields": {"job": {"id": JOB_ID}},
                "created": awx_time(e["created"]),
                "modified": awx_time(e["created"]),
                "job": JOB_ID,
                "event": e["event"],
                "counter": e["counter"],
                "event_display": e["event"].replace("_", " ").title(),
                "event_data": data,
                "event_level": 3 if data.get("host") else 1,
                "failed": e["event"] in ("runner_on_failed", "runner_on_unreachable"),
                "changed": bool(res.get("changed")) if isinstance(res, dict) else False,
                "uuid": e["uuid"],
                "parent_uuid": e.get("parent_uuid", ""),
                "host": 7 if data.get("host") else None,
                "host_name": data.get("host", ""),
                "playbook": "playbooks/change.yml",
                "play": data.get("play", ""),
                "task": data.get("task", ""),
                "role": data.get("role", ""),
                "stdout": e.get("stdout", ""),
                "start_line": e.get("start_line", 0),
                "end_line": e.get("end_line", 0),
                "verbosity": 0,
            }
        )
    pages = []
    for n, start in enumerate(range(0, len(rows), page_size), start=1):
        more = start + page_size < len(rows)
        pages.append(
            {
                "count": len(rows),
                "next": f"/api/v2/jobs/{JOB_ID}/job_events/?page={n + 1}" if more else None,
                "previous": None if n == 1 else f"/api/v2/jobs/{JOB_ID}/job_events/?page={n - 1}",
                "results": rows[start : start + page_size],
            }
        )
    return pages


def job_json(events: list[dict[str, Any]]) -> dict[str, Any]:
    created = sorted(e["created"] for e in events)
    return {
        "id": JOB_ID,
        "type": "job",
        "name": "change",
        "job_type": "run",
        "launch_type": "manual",
        "status": "successful",
        "failed": False,
        "started": awx_time(created[0]),
        "finished": awx_time(created[-1]),
        "playbook": "playbooks/change.yml",
        "limit": "",
        "job_tags": "",
        "skip_tags": "",
        "diff_mode": True,
        "extra_vars": json.dumps({"api_token": CLI_SECRET_VALUE, "opsctl_ticket": "CHG-2026-042"}),
        "scm_revision": "a" * 40,
        "scm_branch": "main",
        "job_explanation": "",
        "summary_fields": {
            "inventory": {"id": 3, "name": "test"},
            "job_template": {"id": 9, "name": "change"},
            "created_by": {"id": 1, "username": "alice"},
            "execution_environment": {"image": "registry.example.invalid/envcredit-ee:1"},
        },
    }


@pytest.fixture
def awx_files(opsctl_home: Path, tmp_path: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    events = real_events(opsctl_home, tmp_path)
    pages = to_awx(events)
    assert len(pages) > 1
    ev_file, job_file = tmp_path / "job_events.json", tmp_path / "job.json"
    ev_file.write_text(json.dumps(pages), encoding="utf-8")
    job_file.write_text(json.dumps(job_json(events)), encoding="utf-8")
    return ev_file, job_file, pages


def test_import_awx_job(awx_files: tuple[Path, Path, list[dict[str, Any]]], opsctl_home: Path) -> None:
    ev_file, job_file, _ = awx_files
    runner = CliRunner()
    res = runner.invoke(cli, ["awx", "import", "--job-events", str(ev_file), "--job", str(job_file), "--json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert rec["launch"] == {"type": "awx"}
    assert (rec["operation"], rec["environment"], rec["status"], rec["rc"]) == ("change", "test", "successful", 0)
    assert rec["ticket"] == "CHG-2026-042"
    assert rec["operator"]["user"] == "alice"
    assert rec["source"]["commit"] == "a" * 40
    assert rec["diff_mode"] is True
    assert rec["targets"] == ["node1", "node2"]
    assert {h: (c["ok"], c["changed"]) for h, c in rec["hosts"].items()} == {"node1": (1, 1), "node2": (1, 1)}
    assert sorted(c["host"] for c in rec["changes"]) == ["node1", "node2"]
    assert all(c["task"] == "Write the marker file" and c["module"] == "ansible.builtin.copy" for c in rec["changes"])
    assert all(c["diff"] for c in rec["changes"])
    assert rec["extra_vars"]["api_token"] == "********" or CLI_SECRET_VALUE not in json.dumps(rec["extra_vars"])
    assert rec["awx"]["job_id"] == JOB_ID and rec["awx"]["job_template"] == "change"
    archive = Archive(opsctl_home / "var" / "archive")
    assert archive.verify().ok
    stdout = archive.stdout(rec["id"])
    assert "Write the marker file" in stdout and "changed: [node1]" in stdout
    assert CLI_SECRET_VALUE not in all_text_under(archive.root)
    # the same job again is refused
    res = runner.invoke(cli, ["awx", "import", "--job-events", str(ev_file), "--job", str(job_file)])
    assert res.exit_code == 2 and "already in the archive" in res.output
    res = runner.invoke(cli, ["records", "list", "--json"])
    assert [r["id"] for r in json.loads(res.output)] == [rec["id"]]


def test_import_events_only_derives_everything(
    awx_files: tuple[Path, Path, list[dict[str, Any]]], opsctl_home: Path, tmp_path: Path
) -> None:
    ev_file, _, pages = awx_files
    # JSON lines of events, no job file: status from the stats event, job id from the events
    flat = tmp_path / "events.jsonl"
    flat.write_text("\n".join(json.dumps(e) for p in reversed(pages) for e in p["results"]), encoding="utf-8")
    res = CliRunner().invoke(cli, ["awx", "import", "--job-events", str(flat), "--env", "test"])
    # the fixture's catalog runs change.yml as two operations: the playbook alone cannot tell
    assert res.exit_code == 2 and "belongs to several operations (change, danger)" in res.output
    res = CliRunner().invoke(
        cli,
        [
            "awx",
            "import",
            "--job-events",
            str(flat),
            "--env",
            "test",
            "--operation",
            "change",
            "--launch",
            "ci",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert (rec["operation"], rec["status"], rec["launch"]["type"]) == ("change", "successful", "ci")
    assert rec["awx"]["job_id"] == JOB_ID and len(rec["changes"]) == 2
    # production needs a ticket, as for a local run
    res = CliRunner().invoke(
        cli, ["awx", "import", "--job-events", str(ev_file), "--env", "production", "--operation", "change"]
    )
    assert res.exit_code == 2 and "requires --ticket" in res.output
    # ... of the production form (the job's opsctl_ticket, or --ticket, cleaned of control characters)
    res = CliRunner().invoke(
        cli,
        [
            "awx",
            "import",
            "--job-events",
            str(ev_file),
            "--env",
            "production",
            "--operation",
            "change",
            "--ticket",
            "chg\x1b[31m 1",
        ],
    )
    assert res.exit_code == 2 and "--ticket 'chg 1' does not match the ticket pattern of 'production'" in res.output


def test_import_cut_off_stream_and_bad_input(
    awx_files: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, _, pages = awx_files
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(pages[0]), encoding="utf-8")  # first page only: no stats event
    res = CliRunner().invoke(
        cli, ["awx", "import", "--job-events", str(cut), "--env", "test", "--operation", "change", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["status"] == "interrupted"
    bad = tmp_path / "bad.json"
    bad.write_text('[{"foo": 1}]', encoding="utf-8")
    res = CliRunner().invoke(cli, ["awx", "import", "--job-events", str(bad), "--env", "test", "--operation", "change"])
    assert res.exit_code == 2 and "not an AWX job event" in res.output


@pytest.fixture
def fake_awx(awx_files: tuple[Path, Path, list[dict[str, Any]]]) -> Iterator[str]:
    """The AWX API's two endpoints, served on 127.0.0.1 from the recorded job."""
    _, job_file, pages = awx_files
    job = json.loads(job_file.read_text(encoding="utf-8"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            assert self.headers.get("Authorization") == "Bearer t0ken-for-test"
            if self.path == f"/api/v2/jobs/{JOB_ID}/":
                body: Any = job
            elif self.path.startswith(f"/api/v2/jobs/{JOB_ID}/job_events/"):
                page = int(self.path.split("page=")[1]) if "page=" in self.path else 1
                body = pages[page - 1]
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_api(fake_awx: str) -> None:
    res = CliRunner().invoke(
        cli,
        ["awx", "import", "--from-api", str(JOB_ID), "--json"],
        env={"AWX_HOST": fake_awx, "AWX_TOKEN": "t0ken-for-test"},
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert rec["awx"]["instance"] == fake_awx and rec["awx"]["events"] > 8
    assert rec["status"] == "successful" and len(rec["changes"]) == 2


def test_the_record_says_where_the_job_came_from_and_who_imported_it(
    awx_files: tuple[Path, Path, list[dict[str, Any]]], fake_awx: str, opsctl_home: Path
) -> None:
    import hashlib

    from orchestrator.records import login_user

    ev_file, job_file, _ = awx_files
    res = CliRunner().invoke(
        cli, ["awx", "import", str(JOB_ID), "--json"], env={"AWX_HOST": fake_awx, "AWX_TOKEN": "t0ken-for-test"}
    )
    assert res.exit_code == 0, res.output
    awx = json.loads(res.output)["awx"]
    assert awx["source"] == "api" and awx["url"] == f"{fake_awx}/api/v2/jobs/{JOB_ID}/"
    assert awx["imported_by"]["user"] == login_user()
    assert json.loads(res.output)["operator"]["user"] == "alice"  # who launched it in AWX, beside who imported
    # a hand-over of files: said so, with the files' hashes (another archive: the job is in this one)
    other = opsctl_home / "var" / "archive2"
    res = CliRunner().invoke(
        cli,
        [
            "awx",
            "import",
            "--from-file",
            str(ev_file),
            "--job",
            str(job_file),
            "--instance",
            "https://awx.example.invalid",
            "--json",
        ],
        env={"OPSCTL_ARCHIVE": str(other)},
    )
    assert res.exit_code == 0, res.output
    awx = json.loads(res.output)["awx"]
    assert awx["source"] == "file"
    assert awx["files"] == [
        {"name": ev_file.name, "sha256": hashlib.sha256(ev_file.read_bytes()).hexdigest()},
        {"name": job_file.name, "sha256": hashlib.sha256(job_file.read_bytes()).hexdigest()},
    ]
    assert awx["imported_by"]["user"] == login_user()
    res = CliRunner().invoke(
        cli,
        ["awx", "import", "--from-file", str(ev_file), "--job", str(job_file)],
        env={"OPSCTL_ARCHIVE": str(opsctl_home / "var" / "archive3")},
    )
    assert "from files, not from the AWX API" in res.output


def test_next_links_are_followed_only_on_the_configured_awx(
    awx_files: tuple[Path, Path, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator import awx
    from orchestrator.errors import OpsError

    _, job_file, pages = awx_files
    seen: list[str] = []

    def fake_fetch(url: str, token: str | None, timeout: float = 60) -> Any:
        seen.append(url)
        if url.endswith(f"/jobs/{JOB_ID}/"):
            return json.loads(job_file.read_text(encoding="utf-8"))
        return dict(pages[0], next="https://evil.example.invalid/api/v2/jobs/42/job_events/?page=2")

    monkeypatch.setattr(awx, "fetch_json", fake_fetch)
    with pytest.raises(OpsError, match="links its next page to https://evil.example.invalid"):
        awx.fetch_job("https://awx.example.invalid", JOB_ID, "t")
    assert not any("evil" in u for u in seen) and len(seen) == 2


def test_import_arguments_that_do_not_go_together(awx_files: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    ev_file, job_file, _ = awx_files
    for args, message in [
        (["--job", str(job_file)], "--job FILE goes with --from-file FILE"),
        ([str(JOB_ID), "--from-file", str(ev_file)], "not both"),
        ([], "give the AWX JOB_ID"),
        ([str(JOB_ID)], "needs AWX_HOST"),
    ]:
        res = CliRunner().invoke(cli, ["awx", "import", *args], env={"AWX_HOST": ""})
        assert res.exit_code == 2 and message in res.output, (args, res.output)
