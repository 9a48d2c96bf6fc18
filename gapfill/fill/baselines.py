"""Baselines: what a user gets without the model, per pixel, from clear days alone.

- `persistence`: the last clear day before the target (the paper's O1, without its
  same-orbit S1 condition: a user copying the last clear image needs no SAR);
- `nearest`: the clear day nearest in time, before or after (uses a later day);
- `interpolate`: time-weighted linear interpolation between the last clear day before
  and the first after (uses a later day; no value where either side is missing).

All look at most `horizon_days` away. A fill or an evaluation that uses a baseline says
so (`uses_later_days` names those that read days after the target).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from gapfill.cube import layout
from gapfill.cube.reference import NONE
from gapfill.fill import product
from gapfill.fill.calibrate import Calibration
from gapfill.fill.infer import FilledWindow, Window, calibrate_day, copy_observed, empty_product

__all__ = ["BASELINES", "Baseline", "clear_neighbours", "baseline_fill", "fill_window_baseline"]


@dataclass(frozen=True)
class Baseline:
    """A baseline fill method and whether it reads days after the target."""

    name: str
    uses_later_days: bool
    description: str


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("persistence", False, "last clear day before"),
        Baseline("nearest", True, "nearest clear day, before or after (uses later days)"),
        Baseline(
            "interpolate", True, "linear in time between the clear days around (uses later days)"
        ),
    )
}


def clear_neighbours(
    times: np.ndarray, usable: np.ndarray, target: int, horizon_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the index of the last usable day before `target` and of the first after
    it, within `horizon_days` (NONE where there is none). `usable` (T, y, x) bool."""
    shape = usable.shape[1:]
    prev = np.full(shape, NONE, np.int32)
    nxt = np.full(shape, NONE, np.int32)
    limit = np.timedelta64(horizon_days, "D")
    for k in range(target - 1, -1, -1):
        if times[target] - times[k] > limit:
            break
        prev[(prev == NONE) & usable[k]] = k
    for k in range(target + 1, len(times)):
        if times[k] - times[target] > limit:
            break
        nxt[(nxt == NONE) & usable[k]] = k
    return prev, nxt


def _gather(s2: np.ndarray, index: np.ndarray) -> np.ndarray:
    out = np.full((s2.shape[1], *index.shape), np.nan, np.float32)
    for k in np.unique(index[index != NONE]):
        at = index == k
        out[:, at] = s2[k][:, at]
    return out


def baseline_fill(
    method: str,
    times: np.ndarray,
    s2: np.ndarray,
    clear: np.ndarray,
    target: int,
    horizon_days: int = 60,
) -> np.ndarray:
    """The baseline `method`'s reflectance (band, y, x) for day `target` of the series
    `s2` (T, band, y, x) with clear masks `clear` (T, y, x); NaN where it has no value."""
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}")
    usable = clear & np.isfinite(s2).all(axis=1)
    prev, nxt = clear_neighbours(times, usable, target, horizon_days)
    before, after = _gather(s2, prev), _gather(s2, nxt)
    if method == "persistence":
        return before
    day = times.astype("datetime64[s]").astype(np.float64) / 86400.0
    t_prev = np.where(prev == NONE, np.nan, day[np.maximum(prev, 0)])
    t_next = np.where(nxt == NONE, np.nan, day[np.maximum(nxt, 0)])
    if method == "nearest":
        take_after = (nxt != NONE) & (
            (prev == NONE) | (t_next - day[target] < day[target] - t_prev)
        )
        return np.where(take_after[None], after, before)
    w = (day[target] - t_prev) / (t_next - t_prev)  # NaN where a side is missing
    return ((1 - w)[None] * before + w[None] * after).astype(np.float32)


def fill_window_baseline(
    win: Window,
    targets: list[int],
    fill_days: list[bool],
    method: str,
    horizon_days: int,
    calibration: Calibration | None = None,
) -> FilledWindow:
    """What `fill_window` does with the model, with baseline `method` instead: clear
    pixels kept, cloudy ones filled where the baseline has a value (`reference_dt`: days
    since the earlier clear day it used, where it used one), else unfilled; fitted to the
    day's clear pixels with `calibration`."""
    s2_out, status, ref_dt, next_dt = empty_product(win, len(targets))
    usable = win.clear & np.isfinite(win.s2).all(axis=1)
    cal_s = 0.0
    for j, t in enumerate(targets):
        cloudy = copy_observed(win, t, s2_out[j], status[j])
        if not fill_days[j] or not cloudy.any():
            continue
        values = baseline_fill(method, win.times, win.s2, win.clear, t, horizon_days)
        if calibration is not None and calibration.enabled:
            has_value = np.isfinite(values).all(axis=0)
            t_cal = time.perf_counter()
            values = calibrate_day(values, win, t, has_value, calibration)
            cal_s += time.perf_counter() - t_cal
        todo = cloudy & np.isfinite(values).all(axis=0)
        s2_out[j][:, todo] = np.maximum(values[:, todo], layout.S2_MIN_VALID)
        status[j][todo] = product.FILLED
        prev, nxt = clear_neighbours(win.times, usable, t, horizon_days)
        age = (win.times[t] - win.times).astype("timedelta64[D]").astype(np.int32)
        used_prev, used_next = prev != NONE, nxt != NONE
        if method == "nearest":  # one side only: the nearer (the earlier on a tie)
            after = used_next & (~used_prev | (-age[np.maximum(nxt, 0)] < age[np.maximum(prev, 0)]))
            used_prev, used_next = used_prev & ~after, after
        elif method == "persistence":
            used_next = np.zeros_like(used_next)
        ref_dt[j][todo & used_prev] = age[prev[todo & used_prev]]
        next_dt[j][todo & used_next] = -age[nxt[todo & used_next]]
    later = BASELINES[method].uses_later_days
    return FilledWindow(s2_out, status, ref_dt, 0, 0.0, next_dt if later else None, cal_s)
