"""Benchmark the change-record archive at scale (not a test).

    .venv/bin/python bench/archive/run.py [--count N] [--keep DIR]

Builds N synthetic records in a temporary archive, then times:

* ``Archive.list(env=..., status="failed")`` in-process (goal < 0.3 s),
* ``opsctl records list --env ... --status failed`` through the Click command,
  in-process and as a fresh ``python -m`` process (import time included),
* ``Archive.verify()`` and ``records verify`` (goal < 10 s).

Record creation: the first ``--real`` records (default 20) go through the real
``Archive.begin`` / ``write_event`` / ``write_stdout`` / ``commit`` path. The
rest use :func:`fast_commit`, which writes the same bytes as ``commit()`` --
it calls the same ``record_hash``, ``record_bytes`` and ``canonical_json``
functions and the same ``RecordBuilder`` -- but skips the flock, the per-file
fsyncs and the per-record index update (one ``reindex()`` at the end instead).
Before building, the script checks that both paths give byte-identical
folders for the same inputs, and ``verify()`` over the mixed archive proves
that the chain continues seamlessly from one path into the other.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from orchestrator.archive import Archive, canonical_json, record_bytes, record_hash  # noqa: E402
from orchestrator.records import RecordBuilder, RunMeta, iso  # noqa: E402

ENVS = ("lab", "staging", "production")
OPS = ("backup", "patch", "inspect", "deploy", "log_collect", "restore")
HOSTS = [f"app{i}" for i in range(1, 5)] + ["db1", "db2", "proxy1"]
BASE = datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)


def make_inputs(i: int, rng: random.Random) -> tuple[RunMeta, list[dict[str, Any]], str, str, int]:
    """Deterministic synthetic run number i: meta, events, stdout, status, rc."""
    started = BASE + timedelta(minutes=7 * i)
    run_id = started.strftime("%Y%m%dT%H%M%S") + f"{started.microsecond // 1000:03d}Z-{i % 0xFFFFFF:06x}"
    env = ENVS[i % 3]
    op = OPS[i % len(OPS)]
    hosts = rng.sample(HOSTS, rng.randint(1, 4))
    failed_host = hosts[0] if rng.random() < 0.08 else None
    meta = RunMeta(
        id=run_id,
        operation=op,
        playbook=f"playbooks/{op}.yml",
        environment=env,
        inventory=f"inventories/{env}",
        started=iso(started),
        ticket=f"CHG-{i // 3:06d}",
        reason="routine maintenance",
        launch="scheduled" if i % 4 else "manual",
        operator={"user": "ops", "host": "bastion", "git_name": "Ops", "git_email": "ops@example.org"},
        source={"commit": f"{i:040x}", "branch": "main", "dirty": False},
        versions={"opsctl": "0.1.0", "ansible_core": "2.19.14", "ansible_runner": "2.4.3", "python": "3.11"},
        targets=sorted(hosts),
        files={"playbook": {"path": f"playbooks/{op}.yml", "sha256": "ab" * 32}, "inventory": []},
    )
    events: list[dict[str, Any]] = []
    stdout: list[str] = []
    n = 0

    def ev(kind: str, text: str = "", **data: Any) -> None:
        nonlocal n
        n += 1
        events.append(
            {
                "event": kind,
                "uuid": f"{i:08x}-0000-0000-0000-{n:012d}",
                "counter": n,
                "stdout": text,
                "start_line": n,
                "end_line": n + 1,
                "runner_ident": run_id,
                "created": iso(started + timedelta(seconds=n)),
                "event_data": data,
            }
        )
        if text:
            stdout.append(text)

    ev("playbook_on_start")
    ev("playbook_on_play_start", f"PLAY [{op}] ****", play=op)
    stats: dict[str, dict[str, int]] = {
        k: {} for k in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
    }
    for t in range(3):
        task = f"{op} step {t}"
        ev("playbook_on_task_start", f"TASK [{task}] ****", task=task)
        for h in hosts:
            if h == failed_host and t == 2:
                ev(
                    "runner_on_failed",
                    f"fatal: [{h}]: FAILED! => rc=1",
                    host=h,
                    task=task,
                    task_action="ansible.builtin.command",
                    resolved_action="ansible.builtin.command",
                    role=op,
                    ignore_errors=None,
                    res={"msg": "non-zero return code", "rc": 1},
                )
                stats["failures"][h] = 1
            else:
                changed = t == 1
                ev(
                    "runner_on_ok",
                    f"{'changed' if changed else 'ok'}: [{h}]",
                    host=h,
                    task=task,
                    task_action="ansible.builtin.template",
                    resolved_action="ansible.builtin.template",
                    role=op,
                    res={"changed": changed, "diff": [{"before": "a=1\n", "after": "a=2\n"}] if changed else None},
                )
                stats["ok"][h] = stats["ok"].get(h, 0) + 1
                if changed:
                    stats["changed"][h] = 1
    ev("playbook_on_stats", "PLAY RECAP ****", **stats, artifact_data={"backup_id": f"b-{i}"} if op == "backup" else {})
    status = "failed" if failed_host else "successful"
    return meta, events, "\n".join(stdout) + "\n", status, 2 if failed_host else 0


def build_record(meta: RunMeta, events: list[dict[str, Any]], status: str, rc: int) -> dict[str, Any]:
    builder = RecordBuilder()
    for e in events:
        builder.feed(e)
    return builder.finish(
        meta,
        status=status,
        rc=rc,
        ended=iso(datetime.fromisoformat(meta.started[:-1] + "+00:00") + timedelta(seconds=len(events))),
    )


def real_commit(
    archive: Archive, meta: RunMeta, events: list[dict[str, Any]], stdout: str, status: str, rc: int
) -> dict[str, Any]:
    pending = archive.begin(meta.id, meta)
    for e in events:
        pending.write_event(e)
    pending.write_stdout(stdout)
    return archive.commit(pending, build_record(meta, events, status, rc))


def events_bytes(events: list[dict[str, Any]]) -> bytes:
    # exactly what PendingRun.write_event writes, line by line
    return b"".join(
        (json.dumps(e, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8") for e in events
    )


def fast_commit(
    root: Path,
    seq: int,
    prev_hash: str | None,
    meta: RunMeta,
    events: list[dict[str, Any]],
    stdout: str,
    status: str,
    rc: int,
) -> dict[str, Any]:
    """Same bytes as Archive.commit(), without flock, fsyncs and index update."""
    import hashlib

    record = build_record(meta, events, status, rc)
    ev_b = events_bytes(events)
    out_b = stdout.encode("utf-8", "replace")
    record = {k: v for k, v in record.items() if k not in ("seq", "prev_hash", "artifacts", "hash")}
    record["seq"] = seq
    record["prev_hash"] = prev_hash
    record["artifacts"] = {
        "stdout.txt": hashlib.sha256(out_b).hexdigest(),
        "events.jsonl": hashlib.sha256(ev_b).hexdigest(),
    }
    record["hash"] = record_hash(record)
    folder = root / meta.id
    os.mkdir(folder, 0o700)
    for name, data in (("events.jsonl", ev_b), ("stdout.txt", out_b), ("record.json", record_bytes(record))):
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return record


def check_identical(tmp: Path) -> None:
    rng1, rng2 = random.Random(7), random.Random(7)
    a, b = Archive(tmp / "real"), Archive(tmp / "fast")
    meta, events, stdout, status, rc = make_inputs(0, rng1)
    real = real_commit(a, meta, events, stdout, status, rc)
    b._ensure()
    meta2, events2, stdout2, status2, rc2 = make_inputs(0, rng2)
    fast = fast_commit(b.root, 1, None, meta2, events2, stdout2, status2, rc2)
    assert real == fast, "records differ"
    for name in ("record.json", "stdout.txt", "events.jsonl"):
        assert (a.root / meta.id / name).read_bytes() == (b.root / meta.id / name).read_bytes(), name
    shutil.rmtree(tmp / "real")
    shutil.rmtree(tmp / "fast")


def timed(label: str, func: Any, goal: float | None = None) -> Any:
    start = time.perf_counter()
    result = func()
    took = time.perf_counter() - start
    verdict = "" if goal is None else ("  (goal < %.1f s: %s)" % (goal, "met" if took < goal else "MISSED"))
    print(f"{label:<58} {took:8.3f} s{verdict}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=20, help="records made through Archive.commit() itself")
    parser.add_argument("--keep", type=Path, help="build the archive here and keep it")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="opsctl-bench-"))
    root = args.keep or tmp / "archive"
    try:
        check_identical(tmp)
        print("fast path writes byte-identical folders to Archive.commit(): ok")
        archive = Archive(root)
        rng = random.Random(42)
        n_real = min(args.real, args.count)

        def build() -> None:
            prev: dict[str, Any] | None = None
            for i in range(n_real):
                prev = real_commit(archive, *make_inputs(i, rng))
            for i in range(n_real, args.count):
                meta, events, stdout, status, rc = make_inputs(i, rng)
                prev = fast_commit(root, i + 1, prev["hash"] if prev else None, meta, events, stdout, status, rc)
            if prev is not None:
                (root / "HEAD").write_bytes(
                    canonical_json({"seq": prev["seq"], "id": prev["id"], "hash": prev["hash"]}) + b"\n"
                )

        timed(f"create {args.count} records ({n_real} via commit())", build)
        timed("reindex (SQLite, from the folders)", archive.reindex)
        env = "production"
        rows = timed(f"Archive.list(env={env!r}, status='failed')", lambda: archive.list(env=env, status="failed"), 0.3)
        print(f"  -> {len(rows)} rows")
        timed("Archive.list(host='db1', limit=50)", lambda: archive.list(host="db1", limit=50), 0.3)
        timed(
            "Archive.list(since=..., until=...) one week",
            lambda: archive.list(since="2026-03-02", until="2026-03-08"),
            0.3,
        )

        from click.testing import CliRunner

        from orchestrator.cli.records import records

        os.environ["OPSCTL_ARCHIVE"] = str(root)
        res = timed(
            "records list --env production --status failed (CliRunner)",
            lambda: CliRunner().invoke(records, ["list", "--env", env, "--status", "failed"]),
            0.3,
        )
        assert res.exit_code == 0, res.output
        code = (
            "import sys; from orchestrator.cli.records import records; "
            "records.main(['list','--env','production','--status','failed'], standalone_mode=True)"
        )
        proc = timed(
            "same, as a fresh python process (imports included)",
            lambda: subprocess.run(
                [sys.executable, "-c", code],
                cwd=REPO,
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                check=False,
            ),
        )
        assert proc.returncode == 0, proc.stderr
        report = timed("Archive.verify()", archive.verify, 10.0)
        print(f"  -> ok={report.ok} count={report.count} {report.problem}")
        res = timed("records verify (CliRunner)", lambda: CliRunner().invoke(records, ["verify"]), 10.0)
        print(f"  -> {res.output.strip()}")
        return 0 if report.ok else 1
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
