"""Baselines on hand-made series: what a user computes without the model."""

from __future__ import annotations

import numpy as np
import pytest

from gapfill.fill.baselines import BASELINES, baseline_fill, clear_neighbours

DAYS = np.array(["2022-01-01", "2022-01-06", "2022-01-11", "2022-01-31"], dtype="datetime64[ns]")


def _series() -> tuple[np.ndarray, np.ndarray]:
    """4 days x 1 band-stack x 1 x 3 pixels; day 1 (Jan 6) is the cloudy target."""
    s2 = np.zeros((4, 4, 1, 3), np.float32)
    s2[0], s2[2], s2[3] = 0.1, 0.3, 0.5
    clear = np.ones((4, 1, 3), bool)
    clear[1] = False
    clear[2, 0, 1] = False  # pixel 1: next clear day is Jan 31
    clear[2:, 0, 2] = False  # pixel 2: nothing after
    return s2, clear


def test_a_pixel_clear_on_days_0_and_10_cloudy_on_5_interpolates_to_the_midpoint():
    s2, clear = _series()
    out = baseline_fill("interpolate", DAYS, s2, clear, 1)
    assert out[:, 0, 0] == pytest.approx([0.2] * 4)  # Jan 1 (0.1) .. Jan 11 (0.3), halfway
    assert out[:, 0, 1] == pytest.approx([0.1 + 0.4 * 5 / 30] * 4)  # Jan 1 .. Jan 31
    assert np.isnan(out[:, 0, 2]).all()  # no later clear day: no value


def test_persistence_and_nearest():
    s2, clear = _series()
    assert baseline_fill("persistence", DAYS, s2, clear, 1)[0, 0].tolist() == pytest.approx(
        [0.1] * 3
    )
    near = baseline_fill("nearest", DAYS, s2, clear, 1)[0, 0]
    # pixel 0: Jan 1 and Jan 11 both 5 days away -> the earlier; pixel 1: Jan 1 (5 d) vs
    # Jan 31 (25 d); pixel 2: only Jan 1
    assert near.tolist() == pytest.approx([0.1, 0.1, 0.1])
    clear[0, 0, 0] = False
    assert baseline_fill("nearest", DAYS, s2, clear, 1)[0, 0, 0] == pytest.approx(0.3)
    assert np.isnan(baseline_fill("persistence", DAYS, s2, clear, 1)[0, 0, 0])


def test_horizon_and_missing_data_and_names():
    s2, clear = _series()
    prev, nxt = clear_neighbours(DAYS, clear, 1, horizon_days=4)
    assert (prev == -1).all() and (nxt == -1).all()
    prev, nxt = clear_neighbours(DAYS, clear, 1, horizon_days=30)
    assert prev.tolist() == [[0, 0, 0]] and nxt.tolist() == [[2, 3, -1]]
    s2[0, :, 0, 0] = np.nan  # no observation is never a clear value
    assert np.isnan(baseline_fill("persistence", DAYS, s2, clear, 1)[0, 0, 0])
    assert [n for n, b in BASELINES.items() if b.uses_later_days] == ["nearest", "interpolate"]
