"""A filled day never depends on which other days a run selects or groups with it."""

from __future__ import annotations

import numpy as np
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from gapfill.cube import layout
from gapfill.fill.infer import fill_window
from gapfill.fill.task import read_window
from tests.conftest import untrained_model

N_DAYS, SIZE = 12, 20
SPACE = {"y": slice(0, SIZE), "x": slice(0, SIZE)}


def _cube(seed: int = 1) -> xr.Dataset:
    """An in-memory cube: irregular dates over ~6 months (look-back 60 d spans 2-6 days),
    patchy clear masks and two relative orbits, so references differ per pixel."""
    rng = np.random.default_rng(seed)
    gaps = rng.integers(5, 26, N_DAYS)
    times = np.datetime64("2022-01-01", "ns") + np.cumsum(gaps).astype("timedelta64[D]")
    s2 = rng.uniform(0.02, 0.4, (N_DAYS, 4, SIZE, SIZE)).astype(np.float32)
    s1 = rng.uniform(-20, -5, (N_DAYS, 2, SIZE, SIZE)).astype(np.float32)
    clear = rng.random((N_DAYS, SIZE, SIZE)) < 0.35
    orbit = np.where(rng.random((N_DAYS, 1, 1)) < 0.7, 11, 88).astype(np.int16)
    orbit = np.broadcast_to(orbit, (N_DAYS, SIZE, SIZE)).copy()
    dims3, dims4 = ("time", "y", "x"), ("time", "band", "y", "x")
    return xr.Dataset(
        {
            layout.S2: (dims4, s2),
            layout.S1: (("time", "pol", "y", "x"), s1),
            layout.CLEAR: (dims3, clear),
            layout.S1_ORBIT: (dims3, orbit),
        },
        coords={"time": times},
    )


CUBE = _cube()
MODEL, CARD = untrained_model()


def _fill(targets: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    win, local = read_window(CUBE, targets, [True] * len(targets), SPACE, CARD)
    res = fill_window(win, local, [True] * len(targets), MODEL, CARD, tile=64, batch=1)
    return {t: (res.s2[j], res.status[j], res.reference_dt[j]) for j, t in enumerate(targets)}


ALONE = {t: _fill([t])[t] for t in range(N_DAYS)}


@settings(max_examples=25, deadline=None)
@given(
    days=st.lists(st.integers(0, N_DAYS - 1), min_size=1, max_size=N_DAYS, unique=True),
    per_task=st.integers(1, 5),
)
def test_any_subset_and_grouping_of_days_fills_each_day_as_it_is_filled_alone(days, per_task):
    days = sorted(days)
    for first in range(0, len(days), per_task):
        for t, (s2, status, age) in _fill(days[first : first + per_task]).items():
            np.testing.assert_array_equal(status, ALONE[t][1], err_msg=f"status of day {t}")
            np.testing.assert_array_equal(age, ALONE[t][2], err_msg=f"reference_dt of day {t}")
            np.testing.assert_array_equal(s2, ALONE[t][0], err_msg=f"s2 of day {t}")


def test_an_early_day_grouped_with_a_late_one_keeps_its_references():
    """A task of an early and a late day (> the look-back apart) must reach back from the
    early one, or the early day loses every reference (what fill did before)."""
    times = CUBE["time"].values
    early = next(t for t in range(N_DAYS) if (ALONE[t][1] == 2).any())
    late = next(t for t in range(N_DAYS) if times[t] - times[early] > np.timedelta64(60, "D"))
    grouped = _fill([early, late])
    for t in (early, late):
        np.testing.assert_array_equal(grouped[t][1], ALONE[t][1])
        np.testing.assert_array_equal(grouped[t][0], ALONE[t][0])
