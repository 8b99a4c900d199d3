"""Forecasts on synthetic series: linear growth, flat, noisy, too few points; forecast findings."""

from __future__ import annotations

import random

import pytest

from orchestrator.forecast import DAY_S, days_until, fit, growth_per_week
from orchestrator.inspection import Thresholds, forecasts

T0 = 1_790_000_000.0


def _series(values: list[float], step_days: float = 1.0) -> list[tuple[float, float]]:
    return [(T0 + i * step_days * DAY_S, v) for i, v in enumerate(values)]


def test_linear_growth_crosses_the_limit_when_expected() -> None:
    # 50 % growing 2 %/day: 100 % is 25 days after the start, 16 after the 10th point.
    fc = days_until(_series([50 + 2 * i for i in range(10)]), 100.0)
    assert fc.status == "ok"
    assert fc.slope_per_day == pytest.approx(2.0)
    assert fc.days_left == pytest.approx(16.0)
    assert fc.r2 == pytest.approx(1.0)
    assert fc.eta is not None


def test_flat_and_shrinking_series_are_stable() -> None:
    assert days_until(_series([40.0] * 8), 100.0).status == "stable"
    assert days_until(_series([60 - i for i in range(8)]), 100.0).status == "stable"


def test_noisy_growth_is_fitted_within_tolerance() -> None:
    rng = random.Random(42)
    values = [30 + 1.0 * i + rng.uniform(-1.5, 1.5) for i in range(30)]
    fc = days_until(_series(values), 100.0)
    assert fc.status == "ok"
    assert fc.slope_per_day == pytest.approx(1.0, abs=0.1)
    assert fc.days_left == pytest.approx(100 - (30 + 29), abs=5)


def test_pure_noise_is_not_a_forecast() -> None:
    rng = random.Random(7)
    fc = days_until(_series([50 + rng.uniform(-5, 5) for _ in range(20)]), 100.0)
    assert fc.status in ("stable", "insufficient")
    assert fc.days_left is None


def test_too_few_points_or_too_short_a_span() -> None:
    assert days_until(_series([10, 20]), 100.0).status == "insufficient"
    assert days_until([], 100.0).status == "insufficient"
    assert fit([(T0, 1.0)]) is None
    short = _series([10, 20, 30], step_days=1 / 86400)  # one second apart
    assert days_until(short, 100.0, min_span_s=3600).status == "insufficient"


def test_already_over_the_limit_is_zero_days() -> None:
    assert days_until(_series([95, 98, 101]), 100.0).days_left == 0.0


def test_growth_per_week() -> None:
    assert growth_per_week(_series([100, 110, 120, 130])) == pytest.approx(70.0)
    assert growth_per_week(_series([5.0])) is None


def _trend(values: list[float]) -> dict:
    return {
        "disk": {("h1", "/srv"): _series(values)},
        "db_size": {("h1", "postgresql/app"): _series([1e6, 2e6, 3e6])},
        "cert_days": {("h1", "/etc/ssl/a.pem"): _series([42, 41, 40])},
        "backup_age_h": {},
    }


def test_a_forecast_under_the_threshold_becomes_a_finding() -> None:
    latest = {"h1": {"mounts": [{"mount": "/srv", "used_pct": 90}], "findings": []}}
    out = forecasts(_trend([70, 80, 90]), latest, Thresholds())  # 10 %/day: full in 1 day
    disk = [f for f in out["findings"] if f["check"] == "disk_forecast"]
    assert len(disk) == 1 and disk[0]["severity"] == "critical" and disk[0]["forecast"] is True
    assert out["db_growth"][0]["growth_bytes_per_week"] == 7_000_000
    assert [f["check"] for f in out["findings"] if f["check"] == "certificate_forecast"] == ["certificate_forecast"]
    slow = forecasts(_trend([70, 71, 72]), latest, Thresholds())  # 1 %/day: 28 days, no finding
    assert [f for f in slow["findings"] if f["check"] == "disk_forecast"] == []
    assert slow["disk"][0]["status"] == "ok" and slow["disk"][0]["days_left"] == pytest.approx(28)
