"""Benchmark the redaction of a run's output (not a test).

    .venv/bin/python bench/redact/run.py [--events N] [--lines N] [--values N] [--rounds N]

Every event of every run and all of its stdout go through :class:`orchestrator.redact.Redactor`,
so its cost is part of what ``opsctl run`` adds to a bare ``ansible-playbook`` (bench/overhead).
These were two timed tests in tests/test_redact.py (``*_is_fast``, a 2 s limit); the tests now
check the mechanisms (the per-key cache, the pattern compiled once per value set) and the
speed is measured here, as figures and ratios taken side by side in one run:

* events: ``redact_obj`` on N ansible-runner-shaped events (30 module arguments each),
  events per second, against the same with the per-key cache cleared before every event
  (the cost the cache saves) and against ``copy.deepcopy`` of the event (a floor: a walk
  that builds a new structure and inspects nothing);
* text: ``redact_text`` on stdout of N lines with V known secret values, MB/s, against a
  naive redactor that calls ``str.replace`` once per known value.

The median of ``--rounds`` rounds is printed; nothing fails on a time.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from orchestrator.redact import MASK, Redactor, _str_looks_secret  # noqa: E402


def event(i: int) -> dict[str, Any]:
    return {
        "event": "runner_on_ok",
        "uuid": f"00000000-0000-0000-0000-{i:012d}",
        "stdout": f"ok: [node{i % 20}]",
        "event_data": {
            "host": f"node{i % 20}",
            "task": "Probe",
            "res": {
                "changed": False,
                "stdout": "5.10.0",
                "stdout_lines": ["5.10.0"],
                "rc": 0,
                "invocation": {"module_args": {f"arg_{k}": f"value {k}" for k in range(30)}},
            },
        },
    }


def median_time(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000, help="events per round (default 2000)")
    ap.add_argument("--lines", type=int, default=20000, help="stdout lines per round (default 20000)")
    ap.add_argument("--values", type=int, default=2000, help="known secret values (default 2000)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the median is printed (default 5)")
    a = ap.parse_args()
    if min(a.events, a.lines, a.values, a.rounds) < 1:
        ap.error("--events, --lines, --values and --rounds must be at least 1")

    # -- events ------------------------------------------------------------------------------
    events = [event(i) for i in range(a.events)]
    red = Redactor(["Vaulted-Secret-7f3a9b2e"])
    assert red.redact_obj(events[0]) == events[0]  # nothing secret in it: unchanged

    def cached() -> None:
        for ev in events:
            red.redact_obj(ev)

    def uncached() -> None:
        for ev in events:
            _str_looks_secret.cache_clear()
            red.redact_obj(ev)

    def deepcopy() -> None:
        for ev in events:
            copy.deepcopy(ev)

    t_cached = median_time(cached, a.rounds)
    t_uncached = median_time(uncached, a.rounds)
    t_copy = median_time(deepcopy, a.rounds)
    print(f"events: {a.events} per round, {a.rounds} rounds (median)")
    print(f"  redact_obj                 {t_cached:8.3f} s  {a.events / t_cached:10.0f} events/s")
    print(f"  redact_obj, no key cache   {t_uncached:8.3f} s  ratio to cached {t_uncached / t_cached:.2f}")
    print(f"  copy.deepcopy (floor)      {t_copy:8.3f} s  redact_obj / deepcopy {t_cached / t_copy:.2f}")

    # -- text --------------------------------------------------------------------------------
    values = [f"secret-value-{i:05d}" for i in range(a.values)]
    text = ("ordinary output line with nothing secret in it\n" * a.lines) + values[-1] + "\n"
    red_text = Redactor(values)
    assert red_text.redact_text(text).endswith(f"{MASK}\n")

    def naive() -> str:
        out = text
        for value in sorted(values, key=len, reverse=True):
            out = out.replace(value, MASK)
        return out

    assert naive().endswith(f"{MASK}\n")
    t_text = median_time(lambda: red_text.redact_text(text), a.rounds)
    t_naive = median_time(naive, a.rounds)
    mb = len(text.encode()) / 1e6
    print(f"text: {a.lines} lines ({mb:.1f} MB), {a.values} known values, {a.rounds} rounds (median)")
    print(f"  redact_text                {t_text:8.3f} s  {mb / t_text:10.1f} MB/s")
    print(f"  str.replace per value      {t_naive:8.3f} s  naive / redact_text {t_naive / t_text:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
