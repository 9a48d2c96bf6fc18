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

from dataclasses import dataclass

import numpy as np

from gapfill.cube.reference import NONE

__all__ = ["BASELINES", "Baseline", "clear_neighbours", "baseline_fill"]


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
