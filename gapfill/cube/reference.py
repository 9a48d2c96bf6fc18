"""The reference (O1, S1_t1) of a target day: the same rule in training and in filling.

For a target day t2 the reference is, per pixel, the most recent earlier day within the
look-back where that pixel was clear, and S1_t1 is the S1 of that same day and pixel,
from the same relative orbit as S1_t2 (by default) and present on both days.

Rule `both` (beyond the paper) adds the later side: per pixel the first LATER clear day
within the look-ahead (O3, S1_t3, same orbit rule), when one exists.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gapfill.cube import layout

__all__ = [
    "ReferenceRule",
    "pick_reference",
    "pick_next_reference",
    "compose_reference",
    "lookback_first",
    "lookahead_last",
    "NONE",
]

NONE = -1


class ReferenceRule(BaseModel):
    """How far back to look and whether S1_t1 must share S1_t2's relative orbit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lookback_days: int = Field(60, ge=1)
    same_orbit: bool = True
    rule: Literal["causal", "both"] = Field(
        "causal", description="causal: earlier clear days only (the paper); both: and later"
    )
    lookahead_days: int = Field(60, ge=1, description="rule both: how far to look forward")


def lookback_first(times: np.ndarray, target: int, rule: ReferenceRule) -> int:
    """Index of the earliest day within the look-back of day `target` (`target` itself if
    none): the days `target..first` are all the rule may ever read for that target."""
    limit = np.timedelta64(rule.lookback_days, "D")
    first = target
    while first > 0 and times[target] - times[first - 1] <= limit:
        first -= 1
    return first


def lookahead_last(times: np.ndarray, target: int, rule: ReferenceRule) -> int:
    """Index of the last day within the look-ahead of day `target` under rule `both`
    (`target` itself under the causal rule)."""
    if rule.rule != "both":
        return target
    limit = np.timedelta64(rule.lookahead_days, "D")
    last = target
    while last + 1 < len(times) and times[last + 1] - times[target] <= limit:
        last += 1
    return last


def _scan(
    times: np.ndarray,
    target: int,
    clear: np.ndarray,
    s1_orbit: np.ndarray,
    rule: ReferenceRule,
    step: int,
) -> np.ndarray:
    """Per pixel, the nearest day from `target` in direction `step` (-1 back, +1 forward)
    within the look-back / look-ahead that is clear, has S1 (of S1_t2's orbit when the rule
    says so) while the target has S1; NONE where there is none."""
    ref = np.full(clear.shape[1:], NONE, dtype=np.int32)
    orbit2 = s1_orbit[target]
    has_s1 = layout.has_s1(orbit2)
    days = rule.lookback_days if step < 0 else rule.lookahead_days
    limit = np.timedelta64(days, "D")
    k = target + step
    while 0 <= k < len(times) and abs(times[k] - times[target]) <= limit:
        ok = (ref == NONE) & clear[k] & has_s1 & layout.has_s1(s1_orbit[k])
        if rule.same_orbit:
            ok &= s1_orbit[k] == orbit2
        ref[ok] = k
        k += step
    return ref


def _days_between(times: np.ndarray, target: int, ref: np.ndarray, sign: int) -> np.ndarray:
    days = (sign * (times[target] - times)).astype("timedelta64[D]").astype(np.int32)
    return np.where(ref == NONE, -1, days[np.maximum(ref, 0)])


def pick_reference(
    times: np.ndarray,
    target: int,
    clear: np.ndarray,
    s1_orbit: np.ndarray,
    rule: ReferenceRule,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the time index of the reference day (NONE where there is none) and its
    age in days.

    times: (T,) datetime64; clear: (T, y, x) bool; s1_orbit: (T, y, x) int, with
    `layout.S1_ORBIT_MISSING` or NaN where a day has no S1.
    """
    ref = _scan(times, target, clear, s1_orbit, rule, -1)
    return ref, _days_between(times, target, ref, 1)


def pick_next_reference(
    times: np.ndarray,
    target: int,
    clear: np.ndarray,
    s1_orbit: np.ndarray,
    rule: ReferenceRule,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the time index of the first LATER clear day within the look-ahead (same
    orbit and S1 conditions as `pick_reference`; NONE where there is none) and how many
    days after the target it is."""
    ref = _scan(times, target, clear, s1_orbit, rule, 1)
    return ref, _days_between(times, target, ref, -1)


def compose_reference(
    ref: np.ndarray, s2: np.ndarray, s1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """O1 (band, y, x) and S1_t1 (pol, y, x) gathered per pixel from the days `ref` names.

    `ref` (y, x) indexes the first axis of `s2` (T, band, y, x) and `s1` (T, pol, y, x);
    pixels without a reference are NaN.
    """
    o1 = np.full(s2.shape[1:], np.nan, np.float32)
    s1_t1 = np.full(s1.shape[1:], np.nan, np.float32)
    for k in np.unique(ref[ref != NONE]):
        at = ref == k
        o1[:, at] = s2[k][:, at]
        s1_t1[:, at] = s1[k][:, at]
    return o1, s1_t1
