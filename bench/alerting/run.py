#!/usr/bin/env python3
"""Time from a failure to the on-call notification, on the lab (not a test).

Needs the lab (`make lab`, which starts the alerts receiver) with monitoring applied
(`opsctl run monitoring --env lab`) and the site whole. Each round stops nginx on
lab-web1, waits for the zh-CN "new incident" message on the lab's notification channel
(json://127.0.0.1:9096, a capture server started here), starts nginx again and waits for
the recovery, then resolves the incident. Prints the seconds of each round and the median.

    .venv/bin/python bench/alerting/run.py [--rounds N]

What bounds it (inventories/lab/group_vars/all/monitoring.yml): the probe interval
(10 s in the lab), the rule's `for: 2m`, the evaluation interval (10 s) and
Alertmanager's group wait (5 s); production's 30 s intervals add about 40 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OPSCTL = str(REPO / ".venv" / "bin" / "opsctl")
ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "containers.conf")}
ENV.pop("OPSCTL_ARCHIVE", None)
MESSAGES: list[tuple[float, dict[str, Any]]] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        MESSAGES.append((time.monotonic(), json.loads(body or b"{}")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def site_alert_firing() -> bool:
    url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode(
        {"query": 'ALERTS{alertname="EnvcreditSiteDown",alertstate="firing"}'}
    )
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bool(json.loads(resp.read())["data"]["result"])


def one_round(timeout: float) -> float:
    while site_alert_firing():  # a previous outage must be over
        time.sleep(5)
    seen = len(MESSAGES)
    t0 = time.monotonic()
    subprocess.run(["podman", "exec", "lab-web1", "systemctl", "stop", "nginx"], check=True, env=ENV)
    try:
        while True:
            new = [(t, m) for t, m in MESSAGES[seen:] if "新故障" in m.get("title", "")]
            if new:
                elapsed = new[0][0] - t0
                incident = new[0][1]["title"].split("】", 1)[1].split(" ", 1)[0]
                break
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"no notification within {timeout:.0f} s")
            time.sleep(0.5)
    finally:
        subprocess.run(["podman", "exec", "lab-web1", "systemctl", "start", "nginx"], check=True, env=ENV)
    while site_alert_firing():
        time.sleep(5)
    subprocess.run(
        [OPSCTL, "incident", "resolve", incident, "--cause", "bench/alerting: nginx stopped on purpose"],
        capture_output=True,
        env=ENV,
        cwd=REPO,
        check=False,
    )
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 9096), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    times = []
    for i in range(args.rounds):
        times.append(one_round(args.timeout))
        print(f"round {i + 1}: failure -> notification {times[-1]:.0f} s", flush=True)
    print(f"median failure -> notification: {statistics.median(times):.0f} s over {len(times)} round(s)")
    server.shutdown()


if __name__ == "__main__":
    main()
