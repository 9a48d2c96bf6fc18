"""Several models and the baselines on the same whole hidden days: the paper's protocol.

He & Yokoya simulate a whole clear optical image O2 of a test area and score it against
the observed O2. Here every clear day of the test area (clear on `min_clear` of it, with
an earlier clear day to take O1 from) is hidden whole, each model simulates it through
`fill_window` (as `gapfill fill` does, its card's reference rule, no calibration: a
whole hidden day leaves nothing to fit), and every model and baseline is scored on the
pixels all of them could fill. O1 is `persistence`: the last clear value of each pixel.
Figures per day and their mean over days with a bootstrap 90 % interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gapfill.cube import layout
from gapfill.cube.check import require_intact
from gapfill.errors import InputError
from gapfill.evaluate._region import region_mask
from gapfill.evaluate.hidden import simulate_hidden
from gapfill.fill.baselines import baseline_fill
from gapfill.fill.run import check_fit
from gapfill.metrics import METRICS, Scores, masked_scores, mean_interval
from gapfill.models.card import load_model

__all__ = ["Comparison", "compare_models", "O1"]

O1 = "persistence"
_BASELINES = (O1, "interpolate")


@dataclass
class Comparison:
    """Scores of each method on the same pixels of each scored day, and a sample day's
    images for a figure."""

    days: list[str]
    methods: list[str]
    pixels: list[int]
    per_day: dict[str, list[Scores]]
    skipped: dict[str, str] = field(default_factory=dict)
    figure: dict[str, np.ndarray] = field(default_factory=dict)

    def overall(self, n_boot: int = 2000, seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
        """Method -> metric -> mean over days with its bootstrap 90 % interval."""
        return {
            m: {
                k: mean_interval(np.array([getattr(s, k) for s in self.per_day[m]]), n_boot, seed)
                for k in METRICS
            }
            for m in self.methods
        }

    def versus(
        self, other: str = O1, n_boot: int = 2000, seed: int = 0
    ) -> dict[str, dict[str, dict[str, float]]]:
        """Method -> metric -> mean paired difference to `other` over days, with its
        bootstrap 90 % interval (PSNR > 0: better than `other`)."""
        base = self.per_day[other]
        return {
            m: {
                k: mean_interval(
                    np.array([getattr(a, k) - getattr(b, k) for a, b in zip(s, base, strict=True)]),
                    n_boot,
                    seed,
                )
                for k in METRICS
            }
            for m, s in self.per_day.items()
            if m != other
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "pixels": self.pixels,
            "methods": self.methods,
            "per_day": {m: [s.to_json() for s in v] for m, v in self.per_day.items()},
            "overall": self.overall(),
            "versus_O1": self.versus(),
            "skipped": self.skipped,
        }


def compare_models(
    cube_path: str | Path,
    models: dict[str, str],
    region: str,
    *,
    min_clear: float = 0.9,
    max_days: int = 12,
    min_pixels: int = 32,
    tile: int = 256,
) -> Comparison:
    """Score `models` (name -> RUN_DIR) and the baselines on whole hidden clear days of
    `region` (AOI text) in the cube; the figure holds the day with most scored pixels."""
    cube = layout.open_cube(str(cube_path), chunks=None)
    require_intact(str(cube_path), cube)
    loaded = {name: load_model(run) for name, run in models.items()}
    for name, (_, card) in loaded.items():
        check_fit(card, cube, models[name])
    inside_full = region_mask(cube, region)
    if not inside_full.any():
        raise InputError(f"region {region!r} holds no pixel of cube {cube_path}")
    rows = np.nonzero(inside_full.any(axis=1))[0]
    cols = np.nonzero(inside_full.any(axis=0))[0]
    halo = max(card.receptive_field_px // 2 for _, card in loaded.values())
    ys = slice(max(rows[0] - halo, 0), min(rows[-1] + 1 + halo, cube.sizes["y"]))
    xs = slice(max(cols[0] - halo, 0), min(cols[-1] + 1 + halo, cube.sizes["x"]))
    crop = cube.isel(y=ys, x=xs)
    inside = inside_full[ys, xs]
    times = crop["time"].values
    s2 = np.asarray(crop[layout.S2].values, np.float32)
    s1 = np.asarray(crop[layout.S1].values, np.float32)
    orbit = np.asarray(crop[layout.S1_ORBIT].values)
    complete = np.asarray(crop[layout.COMPLETE].values, bool)
    clear = np.asarray(crop[layout.CLEAR].values, bool)
    clear &= np.isfinite(s2).all(axis=1) & complete[:, None, None]
    share = (clear & inside).sum(axis=(1, 2)) / inside.sum()
    names = [str(t)[:10] for t in times]
    horizon = max(card.reference.lookback_days for _, card in loaded.values())
    methods = [*models, *_BASELINES]
    result = Comparison([], methods, [], {m: [] for m in methods})
    best = -1
    rng = max(card.normalisation.reflectance_max for _, card in loaded.values())
    ri, ci = np.nonzero(inside.any(axis=1))[0], np.nonzero(inside.any(axis=0))[0]
    box = (slice(ri[0], ri[-1] + 1), slice(ci[0], ci[-1] + 1))
    candidates = [t for t in range(1, len(times)) if share[t] >= min_clear]
    for t in candidates[-max_days:]:
        hidden = clear[t] & inside
        preds = {
            name: simulate_hidden(t, hidden, times, s2, s1, clear, orbit, model, card, tile=tile)[0]
            for name, (model, card) in loaded.items()
        }
        for name in _BASELINES:
            preds[name] = baseline_fill(name, times, s2, clear, t, horizon)
        common = hidden & np.logical_and.reduce(
            [np.isfinite(p).all(axis=0) for p in preds.values()]
        )
        if common.sum() < min_pixels:
            result.skipped[names[t]] = f"only {int(common.sum())} pixels every method fills"
            continue
        result.days.append(names[t])
        result.pixels.append(int(common.sum()))
        for m in methods:
            result.per_day[m].append(masked_scores(preds[m], s2[t], common, rng))
        if common.sum() > best:
            best = int(common.sum())
            result.figure = {
                "day": np.array(names[t]),
                "S1_t2": s1[t][(slice(None), *box)],
                "O2": s2[t][(slice(None), *box)],
                **{m: np.where(common, p, np.nan)[(slice(None), *box)] for m, p in preds.items()},
            }
    if not result.days:
        raise InputError(
            f"no day of {cube_path} is clear on {min_clear:.0%} of region {region!r} after an "
            f"earlier clear day ({len(candidates)} candidates): use a longer or clearer series"
        )
    return result
