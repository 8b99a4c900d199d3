"""Change records for the archive, records-CLI, store and report tests.

Records are made through the real code path: RunMeta -> RecordBuilder fed with
events shaped like ansible-runner's -> Archive.begin / write_* / commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from orchestrator.archive import Archive
from orchestrator.records import RecordBuilder, RunMeta, iso, new_record_id

BASE_TIME = datetime(2026, 11, 28, 8, 0, 0, tzinfo=timezone.utc)


def synthetic_events(
    hosts: list[str], *, fail_host: str | None = None, outputs: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A small event stream like ansible-runner's: one changed task, one failure if asked, stats."""
    events: list[dict[str, Any]] = []
    counter = 0

    def ev(kind: str, stdout: str = "", **data: Any) -> None:
        nonlocal counter
        counter += 1
        events.append(
            {
                "event": kind,
                "uuid": f"00000000-0000-0000-0000-{counter:012d}",
                "counter": counter,
                "stdout": stdout,
                "start_line": counter,
                "end_line": counter + 1,
                "runner_ident": "test",
                "created": iso(BASE_TIME + timedelta(seconds=counter)),
                "event_data": data,
            }
        )

    ev("playbook_on_start", playbook="backup.yml")
    ev("playbook_on_play_start", play="Back up the database", playbook="backup.yml")
    ev(
        "playbook_on_task_start",
        "TASK [Dump the database]",
        task="Dump the database",
        task_action="ansible.builtin.command",
    )
    stats: dict[str, dict[str, int]] = {
        k: {} for k in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
    }
    for host in hosts:
        if host == fail_host:
            ev(
                "runner_on_failed",
                f"fatal: [{host}]: FAILED!",
                host=host,
                task="Dump the database",
                task_action="ansible.builtin.command",
                resolved_action="ansible.builtin.command",
                role="db_backup",
                ignore_errors=None,
                res={"msg": "non-zero return code", "rc": 1, "stderr": "pg_dump: error: connection refused"},
            )
            stats["failures"][host] = 1
        else:
            ev(
                "runner_on_ok",
                f"changed: [{host}]",
                host=host,
                task="Dump the database",
                task_action="ansible.builtin.command",
                resolved_action="ansible.builtin.command",
                role="db_backup",
                res={"changed": True, "rc": 0, "diff": {"before": "", "after": "dump-1"}},
            )
            stats["ok"][host] = 1
            stats["changed"][host] = 1
    ev("playbook_on_stats", **stats, artifact_data=outputs or {})
    return events


def commit_record(
    archive: Archive,
    *,
    env: str = "lab",
    op: str = "backup",
    hosts: list[str] | None = None,
    fail_host: str | None = None,
    ticket: str | None = None,
    when: datetime | None = None,
    outputs: dict[str, Any] | None = None,
    stdout: str | None = None,
) -> dict[str, Any]:
    """One record through the real begin/commit path; returns the committed record."""
    hosts = hosts or ["db1"]
    started = when or BASE_TIME
    run_id = new_record_id(started)
    meta = RunMeta(
        id=run_id,
        operation=op,
        playbook=f"playbooks/{op}.yml",
        environment=env,
        inventory=f"inventories/{env}",
        started=iso(started),
        ticket=ticket,
        reason="scheduled backup",
        operator={"user": "ops", "host": "bastion", "git_name": "Ops", "git_email": "ops@example.org"},
        source={"commit": "0" * 40, "branch": "main", "dirty": False},
        versions={"opsctl": "0.1.0", "ansible_core": "2.19", "ansible_runner": "2.4", "python": "3.11"},
        targets=list(hosts),
    )
    pending = archive.begin(run_id, meta)
    builder = RecordBuilder()
    for event in synthetic_events(hosts, fail_host=fail_host, outputs=outputs):
        builder.feed(event)
        pending.write_event(event)
        if event["stdout"]:
            pending.write_stdout(event["stdout"] + "\n")
    if stdout:
        pending.write_stdout(stdout)
    status = "failed" if fail_host else "successful"
    record = builder.finish(meta, status=status, rc=2 if fail_host else 0, ended=iso(started + timedelta(seconds=30)))
    return archive.commit(pending, record)


def fill(archive: Archive, n: int) -> list[dict[str, Any]]:
    """n records, alternating environments/ops, every third one failed."""
    out = []
    for i in range(n):
        out.append(
            commit_record(
                archive,
                env=("lab", "staging", "production")[i % 3],
                op=("backup", "patch")[i % 2],
                hosts=[f"app{i % 2 + 1}", "db1"],
                fail_host="db1" if i % 3 == 2 else None,
                ticket=f"CHG-{100 + i}",
                when=BASE_TIME + timedelta(minutes=10 * i),
            )
        )
    return out
