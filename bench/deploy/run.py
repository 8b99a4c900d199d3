"""Redeploy under load: failed requests and latency through nginx during a rolling deploy,
against the steady state measured just before, on the running lab.

    .venv/bin/python bench/deploy/run.py [--rounds 2] [--steady 20] [--clients 2]

Builds two throw-away releases from app/ into a temporary directory and deploys
them alternately (`opsctl run deploy --env lab`, archive in a temporary
directory); one or more client threads request http://127.0.0.1:8080/ the whole
time. Prints (and writes to bench/results/deploy-<time>.json) per phase: requests,
failed requests, p50/p99/max latency in ms. Goal: 0 failed requests during a
deploy. The app must be installed (`opsctl run site-app ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from orchestrator.releases import build_release  # noqa: E402

URL = "http://127.0.0.1:8080/"


class Load:
    def __init__(self, clients: int) -> None:
        self.samples: list[tuple[float, float, bool]] = []  # (start, seconds, ok)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            ok = False
            try:
                with urllib.request.urlopen(URL, timeout=10) as resp:
                    resp.read()
                    ok = resp.status == 200
            except Exception:
                ok = False
            with self.lock:
                self.samples.append((t0, time.monotonic() - t0, ok))

    def between(self, a: float, b: float) -> dict[str, Any]:
        with self.lock:
            rows = [s for s in self.samples if a <= s[0] < b]
        lat = sorted(s[1] * 1000 for s in rows)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "requests": len(rows),
            "failed": sum(1 for s in rows if not s[2]),
            "p50_ms": q(0.5),
            "p99_ms": q(0.99),
            "max_ms": round(lat[-1], 1) if lat else None,
            "seconds": round(b - a, 1),
        }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steady", type=float, default=20.0, help="seconds of steady state before each deploy")
    ap.add_argument("--clients", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    versions = ["8.0.1-bench", "8.0.2-bench"]
    for v in versions:
        build_release(v, out_dir=tmp / "releases")
    env = dict(os.environ, OPSCTL_ARCHIVE=str(tmp / "archive"), OPSCTL_LOCKS=str(tmp / "locks"))
    load = Load(args.clients)
    for t in load.threads:
        t.start()
    phases: list[dict[str, Any]] = []
    try:
        for i in range(args.rounds):
            version = versions[i % 2]
            t0 = time.monotonic()
            time.sleep(args.steady)
            t1 = time.monotonic()
            proc = subprocess.run(
                [
                    str(REPO / ".venv/bin/opsctl"),
                    "run",
                    "deploy",
                    "--env",
                    "lab",
                    "-e",
                    f"app_version={version}",
                    "-e",
                    f"app_deploy_artifact_dir={tmp / 'releases'}",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            t2 = time.monotonic()
            phases.append(
                {
                    "round": i + 1,
                    "version": version,
                    "deploy_rc": proc.returncode,
                    "steady": load.between(t0, t1),
                    "deploy": load.between(t1, t2),
                }
            )
            print(json.dumps(phases[-1]), flush=True)
    finally:
        load.stop.set()
        for t in load.threads:
            t.join(timeout=15)
    result = {
        "when": datetime.now().astimezone().isoformat(),
        "clients": args.clients,
        "phases": phases,
        "failed_during_deploys": sum(p["deploy"]["failed"] for p in phases),
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"deploy-{datetime.now():%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"failed requests during deploys: {result['failed_during_deploys']} (goal 0); {path}")
    return 0 if all(p["deploy_rc"] == 0 for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
