"""Forecasts from a short series of observations: least-squares line, when it crosses a limit.

The inspection stores one observation per run (time, value). A straight line
fitted by least squares over the last N observations tells how fast a value
grows and when it reaches a limit (a filesystem 100 % full, a database size
budget). The fit is only trusted when there are enough points, the span of
time is long enough and the line explains the data (R² for a growing series;
a flat series has nothing to forecast).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

DAY_S = 86400.0
MIN_POINTS = 3


@dataclass(frozen=True)
class Fit:
    """y = intercept + slope * t, t in days since the first point."""

    points: int
    slope_per_day: float
    intercept: float
    r2: float
    first: float  # epoch seconds of the first point
    last: float  # epoch seconds of the last point
    last_value: float

    def value_at(self, epoch_s: float) -> float:
        return self.intercept + self.slope_per_day * (epoch_s - self.first) / DAY_S


@dataclass(frozen=True)
class Forecast:
    """The outcome for one series against one limit."""

    status: str  # "ok" (crosses in days_left), "stable" (not growing), "insufficient" (too few/short/noisy)
    points: int
    slope_per_day: float | None = None
    r2: float | None = None
    last_value: float | None = None
    limit: float | None = None
    days_left: float | None = None  # from the last observation to the crossing
    eta: str | None = None  # ISO date of the crossing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _epoch(moment: float | dt.datetime) -> float:
    return moment.timestamp() if isinstance(moment, dt.datetime) else float(moment)


def fit(series: Sequence[tuple[float | dt.datetime, float]]) -> Fit | None:
    """Least-squares line through (time, value) pairs; None for fewer than 2 distinct times."""
    pts = sorted((_epoch(t), float(v)) for t, v in series if v is not None and math.isfinite(float(v)))
    if len(pts) < 2:
        return None
    t0 = pts[0][0]
    xs = [(t - t0) / DAY_S for t, _ in pts]
    ys = [v for _, v in pts]
    n = len(pts)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    syy = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 if syy == 0 else max(0.0, 1.0 - ss_res / syy)
    return Fit(
        points=n, slope_per_day=slope, intercept=intercept, r2=r2, first=pts[0][0], last=pts[-1][0], last_value=ys[-1]
    )


def days_until(
    series: Sequence[tuple[float | dt.datetime, float]],
    limit: float,
    *,
    min_points: int = MIN_POINTS,
    min_span_s: float = 0.0,
    min_r2: float = 0.5,
    min_slope_per_day: float = 1e-9,
) -> Forecast:
    """When the fitted line reaches ``limit`` (counted from the last observation).

    ``insufficient``: fewer than ``min_points`` points, a span shorter than
    ``min_span_s``, or a growing but noisy series (R² under ``min_r2``);
    ``stable``: the line does not grow (slope under ``min_slope_per_day``);
    ``ok`` with ``days_left`` (0 when the limit is already reached).
    """
    f = fit(series)
    n = len([1 for _t, v in series if v is not None])
    if f is None or f.points < min_points or (f.last - f.first) < min_span_s:
        return Forecast(status="insufficient", points=n, limit=limit)
    base = Forecast(
        status="stable",
        points=f.points,
        slope_per_day=round(f.slope_per_day, 6),
        r2=round(f.r2, 3),
        last_value=f.last_value,
        limit=limit,
    )
    if f.slope_per_day < min_slope_per_day:
        return base
    if f.r2 < min_r2:
        return Forecast(**{**base.as_dict(), "status": "insufficient"})
    # Start from the fitted value now (robust to a last noisy point), never before it.
    crossing_days = (limit - f.value_at(f.last)) / f.slope_per_day
    days_left = max(0.0, crossing_days)
    if f.last_value >= limit:
        days_left = 0.0
    eta = dt.datetime.fromtimestamp(f.last + days_left * DAY_S, tz=dt.timezone.utc).date().isoformat()
    return Forecast(**{**base.as_dict(), "status": "ok", "days_left": round(days_left, 2), "eta": eta})


def growth_per_week(series: Sequence[tuple[float | dt.datetime, float]], *, min_points: int = 2) -> float | None:
    """The fitted growth per 7 days (value units), or None without enough points."""
    f = fit(series)
    if f is None or f.points < min_points:
        return None
    return f.slope_per_day * 7
