"""A filled day never depends on which other days a run selects or groups with it."""

from __future__ import annotations

import numpy as np
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from gapfill.bands import PAPER_BANDS
from gapfill.cube import layout
from gapfill.fill.infer import fill_window
from gapfill.fill.task import read_window
from tests.conftest import untrained_both_model, untrained_model

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
MODELS = {
    "causal": untrained_model(bands=PAPER_BANDS),
    "both": untrained_both_model(bands=PAPER_BANDS),
}
MODEL, CARD = MODELS["causal"]


def _fill(targets: list[int], rule: str = "causal") -> dict[int, tuple[np.ndarray, ...]]:
    model, card = MODELS[rule]
    win, local = read_window(CUBE, targets, [True] * len(targets), SPACE, card)
    res = fill_window(win, local, [True] * len(targets), model, card, tile=64, batch=1)
    nxt = res.reference_next_dt if res.reference_next_dt is not None else res.reference_dt
    return {
        t: (res.s2[j], res.status[j], res.reference_dt[j], nxt[j]) for j, t in enumerate(targets)
    }


ALONE = {rule: {t: _fill([t], rule)[t] for t in range(N_DAYS)} for rule in MODELS}


@settings(max_examples=20, deadline=None)
@given(
    days=st.lists(st.integers(0, N_DAYS - 1), min_size=1, max_size=N_DAYS, unique=True),
    per_task=st.integers(1, 5),
    rule=st.sampled_from(sorted(MODELS)),
)
def test_any_subset_and_grouping_of_days_fills_each_day_as_it_is_filled_alone(days, per_task, rule):
    days = sorted(days)
    for first in range(0, len(days), per_task):
        for t, got in _fill(days[first : first + per_task], rule).items():
            names = ("s2", "status", "reference_dt", "next")
            for name, a, b in zip(names, got, ALONE[rule][t], strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{name} of day {t} ({rule})")


def test_an_early_day_grouped_with_a_late_one_keeps_its_references():
    """A task of an early and a late day (> the look-back apart) must reach back from the
    early one, or the early day loses every reference (what fill did before)."""
    times = CUBE["time"].values
    alone = ALONE["causal"]
    early = next(t for t in range(N_DAYS) if (alone[t][1] == 2).any())
    late = next(t for t in range(N_DAYS) if times[t] - times[early] > np.timedelta64(60, "D"))
    grouped = _fill([early, late])
    for t in (early, late):
        np.testing.assert_array_equal(grouped[t][1], alone[t][1])
        np.testing.assert_array_equal(grouped[t][0], alone[t][0])


def test_rule_both_uses_later_days_where_they_exist():
    both, causal = ALONE["both"], ALONE["causal"]
    ahead = np.concatenate([both[t][3][both[t][1] == 2] for t in range(N_DAYS)])
    assert (ahead > 0).any() and (ahead == -1).any()  # later side used, and sometimes absent
    assert (both[N_DAYS - 1][3] == -1).all()  # nothing after the last day
    same = [np.array_equal(both[t][1], causal[t][1]) for t in range(N_DAYS)]
    assert all(same)  # which pixels get filled follows the causal side alone
