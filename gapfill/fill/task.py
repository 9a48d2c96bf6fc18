"""One unit of fill work: a spatial chunk x a group of days, on a Dask worker.

A task reads its window of the cube (plus a halo of half the model's receptive field)
over the days it fills and the days their references come from, fills it and writes
whole chunks of the product itself. What a day gets never depends on which other days
share its task: the days read cover every target's whole look-back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import xarray as xr

from gapfill import store
from gapfill.cube import layout
from gapfill.cube.reference import (
    NONE,
    ReferenceRule,
    lookahead_last,
    lookback_first,
    pick_next_reference,
    pick_reference,
)
from gapfill.fill import product
from gapfill.fill.baselines import BASELINES, fill_window_baseline
from gapfill.fill.calibrate import Calibration
from gapfill.fill.infer import Window, cached_model, fill_window, halo_of
from gapfill.models.card import ModelCard
from gapfill.storage import is_url

__all__ = ["Job", "TaskResult", "reach", "read_window", "read_baseline_window", "fill_task"]


@dataclass(frozen=True)
class Job:
    """What every task of one run shares (absolute paths: workers may run elsewhere)."""

    cube: str
    n_times: int
    out: str
    model_dir: str
    sha: str
    device: str
    chunk: int
    tile: int | None
    batch: int
    method: str = "model"
    horizon_days: int = 60
    calibration: Calibration = field(default_factory=Calibration)
    storage_options: dict[str, Any] | None = None  # of cube and product URLs
    uncertainty: int | None = None  # Monte-Carlo dropout passes


@dataclass(frozen=True)
class TaskResult:
    """Pixel counts and per-phase seconds of one task."""

    clear: int
    filled: int
    unfilled: int
    model_px: int
    windows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def reach(method: str, card: ModelCard | None, horizon_days: int) -> ReferenceRule:
    """How far from a target day its fill may read: the model's reference rule, or a
    baseline's horizon (both sides for a baseline that uses later days)."""
    if method == "model":
        assert card is not None
        return card.reference
    return ReferenceRule(
        lookback_days=horizon_days,
        lookahead_days=horizon_days,
        rule="both" if BASELINES[method].uses_later_days else "causal",
    )


def read_window(
    ds: xr.Dataset,
    targets: list[int],
    fill_days: list[bool],
    space: dict[str, slice],
    card: ModelCard,
) -> tuple[Window, list[int]]:
    """The cube window (`space` of y/x slices) over the target days and every day their
    references come from, and the targets' indices in it.

    For each target day to fill, the reference rule runs over the target's whole
    look-back (and look-ahead under rule `both`), so the days read (and hence the result)
    are the same whichever other days the task fills.
    """
    times = ds["time"].values
    needed = set(targets)
    if card.task == "B" and any(fill_days):
        first = lookback_first(times, min(targets), card.reference)
        last = lookahead_last(times, max(targets), card.reference)
        span = list(range(first, last + 1))
        clear = ds[layout.CLEAR].isel({"time": span, **space}).values
        orbit = ds[layout.S1_ORBIT].isel({"time": span, **space}).values
        rule = card.reference
        for t, do in zip(targets, fill_days, strict=True):
            if do:
                ref, _ = pick_reference(times[span], span.index(t), clear, orbit, rule)
                needed.update(span[int(k)] for k in np.unique(ref[ref != NONE]))
                if rule.rule == "both":
                    nxt, _ = pick_next_reference(times[span], span.index(t), clear, orbit, rule)
                    needed.update(span[int(k)] for k in np.unique(nxt[nxt != NONE]))
    days = sorted(needed)
    sub = ds.isel({"time": days, **space})
    win = Window(
        times=times[days],
        s2=np.asarray(sub[layout.S2].values, np.float32),
        s1=np.asarray(sub[layout.S1].values, np.float32),
        clear=np.asarray(sub[layout.CLEAR].values, bool),
        orbit=np.asarray(sub[layout.S1_ORBIT].values),
    )
    return win, [days.index(t) for t in targets]


def read_baseline_window(
    ds: xr.Dataset, targets: list[int], space: dict[str, slice], method: str, horizon_days: int
) -> tuple[Window, list[int]]:
    """The cube window over every day within `horizon_days` of the targets (before them;
    after them too for a baseline that uses later days), and the targets' indices in it."""
    times = ds["time"].values
    span = reach(method, None, horizon_days)
    first = lookback_first(times, min(targets), span)
    last = lookahead_last(times, max(targets), span)
    sub = ds.isel({"time": slice(first, last + 1), **space})
    win = Window(
        times=times[first : last + 1],
        s2=np.asarray(sub[layout.S2].values, np.float32),
        s1=np.zeros((last + 1 - first, 0, *sub[layout.CLEAR].shape[1:]), np.float32),
        clear=np.asarray(sub[layout.CLEAR].values, bool),
        orbit=np.zeros((last + 1 - first, *sub[layout.CLEAR].shape[1:]), np.int16),
    )
    return win, [t - first for t in targets]


_CUBES: dict[tuple[str, int], xr.Dataset] = {}


def _cube_for_task(path: str, n_times: int, options: dict[str, Any] | None) -> xr.Dataset:
    key = (path, n_times)
    if key not in _CUBES:
        _CUBES.clear()
        opts = options if is_url(path) else None
        _CUBES[key] = layout.open_cube(path, chunks=None, storage_options=opts)
    return _CUBES[key]


def fill_task(
    job: Job, targets: list[int], fill_days: list[bool], box: tuple[int, int, int, int]
) -> TaskResult:
    """Fill days `targets` (cube time indices) over the chunk `box` = (y0, y1, x0, x1) and
    write it into the product; runs on a Dask worker."""
    t0 = time.perf_counter()
    ds = _cube_for_task(job.cube, job.n_times, job.storage_options)
    target = store.DayStore(job.out, job.storage_options)
    y0, y1, x0, x1 = box
    h, w = ds.sizes["y"], ds.sizes["x"]
    if job.method == "model":
        model, card = cached_model(job.model_dir, job.sha, job.device)
        halo = halo_of(card) + job.calibration.halo_px
    else:
        halo = job.calibration.halo_px  # baselines themselves are per pixel
    ya, yb, xa, xb = max(y0 - halo, 0), min(y1 + halo, h), max(x0 - halo, 0), min(x1 + halo, w)
    space = {"y": slice(ya, yb), "x": slice(xa, xb)}
    if job.method == "model":
        win, local = read_window(ds, targets, fill_days, space, card)
        win = replace(win, origin=(ya, xa))
        t1 = time.perf_counter()
        res = fill_window(
            win,
            local,
            fill_days,
            model,
            card,
            tile=job.tile,
            batch=job.batch,
            calibration=job.calibration,
            uncertainty=job.uncertainty,
        )
    else:
        win, local = read_baseline_window(ds, targets, space, job.method, job.horizon_days)
        t1 = time.perf_counter()
        res = fill_window_baseline(
            win, local, fill_days, job.method, job.horizon_days, job.calibration
        )
    t2 = time.perf_counter()
    inner = (slice(y0 - ya, y1 - ya), slice(x0 - xa, x1 - xa))
    next_dt = res.reference_next_dt
    if next_dt is None:
        next_dt = np.full(res.reference_dt.shape, product.REFERENCE_DT_MISSING, np.int16)
    for j, t in enumerate(targets):
        region = {"time": slice(t, t + 1), "y": slice(y0, y1), "x": slice(x0, x1)}
        layout.check_region_aligned(
            region,
            {"time": 1, "y": job.chunk, "x": job.chunk},
            {"time": job.n_times, "y": h, "x": w},
        )
        spread = res.uncertainty
        piece = xr.Dataset(
            {
                **(
                    {
                        product.UNCERTAINTY: (
                            ("time", "band", "y", "x"),
                            spread[j : j + 1, :, *inner],
                        )
                    }
                    if spread is not None
                    else {}
                ),
                product.S2: (("time", "band", "y", "x"), res.s2[j : j + 1, :, *inner]),
                product.STATUS: (("time", "y", "x"), res.status[j : j + 1, *inner]),
                product.REFERENCE_DT: (("time", "y", "x"), res.reference_dt[j : j + 1, *inner]),
                product.REFERENCE_NEXT_DT: (("time", "y", "x"), next_dt[j : j + 1, *inner]),
            }
        )
        target.write_region(piece, region)
    status = res.status[:, *inner]
    return TaskResult(
        clear=int((status == product.CLEAR).sum()),
        filled=int((status == product.FILLED).sum()),
        unfilled=int((status == product.UNFILLED).sum()),
        model_px=res.model_px,
        windows={f"{yb - ya}x{xb - xa}": res.model_px // ((yb - ya) * (xb - xa))}
        if res.model_px
        else {},
        seconds={
            "read": t1 - t0,
            "model": res.model_seconds,
            "calibrate": res.calibrate_seconds,
            "references": t2 - t1 - res.model_seconds - res.calibrate_seconds,
            "write": time.perf_counter() - t2,
        },
    )
