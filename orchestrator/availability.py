"""The site's availability over a period, from Prometheus' blackbox probe of the site.

The monitoring host's Prometheus probes the site through nginx (blackbox exporter,
``probe_success`` 1/0 every scrape). Over a period this module asks Prometheus for
that series at a fixed step (``query_range``) and reports:

* ``availability_pct``: the share of the measured steps in which the site answered;
* ``coverage_pct``: the share of the period that was measured at all (Prometheus or
  the probe down is *unknown*, neither up nor down, and said so);
* ``outages``: the windows in which the probe failed, merged across one missing step,
  with start, end (Beijing time) and minutes.

The query is configurable (environment policy ``availability.query``); the default
takes the worst of the site's probes at each step, so one failing probe counts.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from .errors import OpsError
from .workdays import TZ, isoformat

DEFAULT_QUERY = 'min(probe_success{job="site"})'
DEFAULT_STEP_S = 60
#: Prometheus refuses more than 11,000 points per series in one query_range.
MAX_POINTS = 11000


class AvailabilityError(OpsError):
    """Prometheus could not be asked (unreachable, refused the query, answered nonsense).

    ``code`` says which, for a report that words it in its own language: ``unreachable`` (no
    connection), ``refused`` (an HTTP error), ``answer`` (not a usable answer)."""

    def __init__(self, message: str, code: str = "answer") -> None:
        super().__init__(message)
        self.code = code


def _query_range(
    url: str, query: str, start: float, end: float, step: int, timeout: float
) -> list[tuple[float, float]]:
    params = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)})
    req = urllib.request.Request(
        url.rstrip("/") + "/api/v1/query_range?" + params, headers={"Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise AvailabilityError(f"Prometheus at {url} refused the query ({exc.code}): {detail}", "refused") from exc
    except urllib.error.URLError as exc:
        raise AvailabilityError(f"cannot ask Prometheus at {url}: {exc.reason}", "unreachable") from exc
    except OSError as exc:
        raise AvailabilityError(f"cannot ask Prometheus at {url}: {exc}", "unreachable") from exc
    except ValueError as exc:
        raise AvailabilityError(f"Prometheus at {url} answered what is not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("status") != "success":
        raise AvailabilityError(f"Prometheus at {url} answered: {str(body)[:300]}")
    result = (body.get("data") or {}).get("result") or []
    if not result:
        return []
    if len(result) > 1:
        raise AvailabilityError(f"the availability query must give one series, it gave {len(result)}: {query}")
    return [(float(t), float(v)) for t, v in result[0].get("values") or []]


def measure(
    url: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    query: str = DEFAULT_QUERY,
    step_s: int = DEFAULT_STEP_S,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Availability of the site between ``start`` and ``end`` (aware datetimes)."""
    if end <= start:
        raise AvailabilityError("the period is empty")
    t0, t1 = start.timestamp(), end.timestamp()
    step = max(1, int(step_s))
    points: list[tuple[float, float]] = []
    chunk = step * (MAX_POINTS - 1)
    t = t0
    while t < t1:  # a month at one minute is 44,640 points: asked in chunks
        stop = min(t1, t + chunk)
        points += [p for p in _query_range(url, query, t, stop, step, timeout) if not points or p[0] > points[-1][0]]
        t = stop + step
    return summarize(points, t0, t1, step) | {"source": "prometheus", "query": query, "prometheus": url}


def summarize(points: Sequence[tuple[float, float]], t0: float, t1: float, step: int) -> dict[str, Any]:
    expected = max(1, int((t1 - t0) // step) + 1)
    measured = [(t, v) for t, v in points if t0 <= t <= t1]
    up = sum(1 for _, v in measured if v >= 1)
    raw: list[list[float]] = []  # [first failing step, last failing step]
    current: list[float] | None = None
    for t, v in measured:
        if v >= 1:
            current = None  # a good step ends the window
        elif current is not None and t - current[1] <= 2 * step:
            current[1] = t  # one missing step does not split a window
        else:
            current = [t, t]
            raw.append(current)
    windows: list[dict[str, Any]] = []
    for first, last in raw:
        begin = dt.datetime.fromtimestamp(first, tz=TZ)
        finish = dt.datetime.fromtimestamp(last + step, tz=TZ)  # failing until the next good step
        windows.append(
            {"start": isoformat(begin), "end": isoformat(finish), "minutes": round((last + step - first) / 60.0, 1)}
        )
    return {
        "step_s": step,
        "samples": len(measured),
        "expected_samples": expected,
        "coverage_pct": round(100.0 * len(measured) / expected, 2),
        "availability_pct": round(100.0 * up / len(measured), 3) if measured else None,
        "downtime_minutes": round(sum((last + step - first) / 60.0 for first, last in raw), 1),
        "outages": windows,
    }
