"""Filling one window of a cube: reference per pixel, model input, tiled inference, output.

Pure functions of numpy arrays (plus the model), so that a Dask task, a benchmark and a
test call the same code. Tiles carry a halo of half the model's receptive field, so a
tile's output equals a full-image pass (eval() BatchNorm is per pixel): tiling changes
nothing but memory.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from gapfill.cube import layout
from gapfill.cube.reference import (
    NONE,
    compose_reference,
    pick_next_reference,
    pick_reference,
)
from gapfill.fill import product
from gapfill.fill.calibrate import Calibration, calibrate, fit_mask
from gapfill.models.card import ModelCard, load_model
from gapfill.models.generator import Generator
from gapfill.normalize import model_input

__all__ = [
    "Window",
    "FilledWindow",
    "fill_window",
    "tiled_forward",
    "mc_dropout_spread",
    "cached_model",
    "halo_of",
    "empty_product",
    "copy_observed",
    "calibrate_day",
]


def halo_of(card: ModelCard) -> int:
    """Pixels of context a tile needs on each side for an exact output."""
    return card.receptive_field_px // 2


@dataclass
class Window:
    """Cube arrays of one spatial window (with halo) over the days a fill needs.

    `s2` (T, band, y, x) reflectance and `s1` (T, pol, y, x) dB are NaN where missing;
    `clear` (T, y, x); `orbit` (T, y, x) with the cube's missing value; `times` (T,).
    """

    times: np.ndarray
    s2: np.ndarray
    s1: np.ndarray
    clear: np.ndarray
    orbit: np.ndarray
    # (y, x) of the window's first pixel in the cube: seeds the Monte-Carlo dropout passes
    # by position, so a pixel's spread does not depend on which task computed it.
    origin: tuple[int, int] = (0, 0)


@dataclass
class FilledWindow:
    """Product arrays for the target days of a window: s2 (N, band, y, x), status,
    reference_dt and reference_next_dt (N, y, x; None: no later side used anywhere);
    `model_px` counts pixels that went through the network; `model_seconds` the network's
    time, `calibrate_seconds` the day calibration's."""

    s2: np.ndarray
    status: np.ndarray
    reference_dt: np.ndarray
    model_px: int
    model_seconds: float = 0.0
    reference_next_dt: np.ndarray | None = None
    calibrate_seconds: float = 0.0
    # (N, band, y, x) reflectance: the Monte-Carlo dropout spread where filled, else NaN
    # (None: not asked for).
    uncertainty: np.ndarray | None = field(default=None)


TILE_CPU = 256
TILE_GPU = 1024


def default_tile(device: torch.device) -> int:
    """The inference tile (px, before halo) when none is asked for: small on a CPU, where
    larger boxes cost more per pixel (caches; benchmarks/fill_tiles.py), a whole 1024 px
    chunk on a GPU, where smaller tiles spend more of the pass on halo and copies
    (benchmarks/results/gpu_check.json)."""
    return TILE_GPU if device.type == "cuda" else TILE_CPU


def _device(kind: str) -> torch.device:
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(run_dir: str, sha256: str, device: str) -> tuple[Generator, ModelCard]:
    # Denormal activations of a trained net slow CPU convolutions (~15 % measured); at
    # inference values below 1e-38 are as good as 0.
    torch.set_flush_denormal(True)
    generator, card = load_model(run_dir)
    generator = generator.to(torch.device(device))
    if device == "cuda":
        generator = generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return generator.eval(), card


def cached_model(
    run_dir: str | Path, sha256: str, device: str = "auto"
) -> tuple[Generator, ModelCard]:
    """The generator of a run directory, loaded once per process (Dask worker) and device;
    `sha256` keys the cache, so a retrained model in the same folder is reloaded."""
    with _lock:
        return _load(str(run_dir), sha256, _device(device).type)


# id -> (the model, its copy with dropout on); holding the model keeps its id unique.
_dropout_copies: dict[int, tuple[Generator, Generator]] = {}


def with_dropout(model: Generator) -> Generator:
    """A copy of `model` whose dropout layers stay active (everything else in eval mode:
    BatchNorm keeps its running statistics), made once per model object: the cached
    eval-mode model is never switched, so threads sharing it are not disturbed."""
    with _lock:
        held = _dropout_copies.get(id(model))
        if held is None or held[0] is not model:
            mc = copy.deepcopy(model).eval()
            for m in mc.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.train()
            _dropout_copies.clear()
            held = _dropout_copies[id(model)] = (model, mc)
        return held[1]


def _pass_seed(day: np.datetime64, y: int, x: int) -> int:
    """A seed per target day and tile position in the cube."""
    days = int(np.asarray(day).astype("datetime64[D]").astype(np.int64))
    return int(np.random.SeedSequence([days + 100_000, y, x]).generate_state(1)[0])


def _axis_tiles(n: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """One axis of `_haloed_tiles`: (outer0, outer1, inner0, inner1) per tile.

    As few tiles as keep each inner part within `tile` px, cut evenly, so every outer box
    has one length (at most `tile + 2 * halo`): the first and last tiles take the array's
    edge as their context, the others `halo` px each side. One shape means full GPU
    batches and one kernel choice; even cuts keep the boxes small where a CPU's caches
    want them (fill's window, a chunk plus its halo, is two tiles of ~half a chunk a side
    rather than a chunk and a thin strip)."""
    k = max(1, math.ceil((n - 2 * halo) / tile))
    if k == 1:
        return [(0, n, 0, n)]
    inner = math.ceil((n - 2 * halo) / k)
    size = inner + 2 * halo
    starts = [min(i * inner, n - size) for i in range(k)]
    cuts = [0] + [s + halo + inner for s in starts[:-1]] + [n]
    return [(s, s + size, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


def _haloed_tiles(
    h: int, w: int, tile: int, halo: int
) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """Each tile of an (h, w) array as (outer, inner): the box read (the tile with `halo`
    px of context, all boxes one shape; `_axis_tiles`), and where the part it writes lies
    inside that box; both (y0, y1, x0, x1). The inner parts partition the array."""
    for ya, yb, y0, y1 in _axis_tiles(h, tile, halo):
        for xa, xb, x0, x1 in _axis_tiles(w, tile, halo):
            yield (ya, yb, xa, xb), (y0 - ya, y1 - ya, x0 - xa, x1 - xa)


@torch.inference_mode()
def mc_dropout_spread(
    model: Generator,
    x: np.ndarray,
    days: list[np.datetime64],
    *,
    passes: int,
    tile: int | None,
    halo: int,
    batch: int,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Per-pixel standard deviation (N, out, H, W), in the generator's [-1, 1] units, of
    `passes` forward passes of inputs `x` (N, C, H, W) with dropout active.

    Each tile's passes are seeded by its target day and position in the cube (`origin` +
    tile offset), so the spread is reproducible and the same whichever task or run
    computes it; a model without dropout gives zeros. Tiles carry `halo` px as in
    `tiled_forward`."""
    mc = with_dropout(model)
    device = next(mc.parameters()).device
    tile = tile or default_tile(device)
    n, _, h, w = x.shape
    out = np.zeros((n, mc.cfg.out_channels, h, w), np.float32)
    per_pass = max(1, batch if device.type == "cuda" else 1)
    devices = [device] if device.type == "cuda" else []
    for (ya, yb, xa, xb), (iy0, iy1, ix0, ix1) in _haloed_tiles(h, w, tile, halo):
        y0, y1, x0, x1 = ya + iy0, ya + iy1, xa + ix0, xa + ix1
        for i in range(n):
            inp = torch.from_numpy(np.ascontiguousarray(x[i : i + 1, :, ya:yb, xa:xb])).to(device)
            total = torch.zeros((mc.cfg.out_channels, y1 - y0, x1 - x0), dtype=torch.float64)
            square = torch.zeros_like(total)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(_pass_seed(days[i], origin[0] + y0, origin[1] + x0))
                for start in range(0, passes, per_pass):
                    k = min(per_pass, passes - start)
                    res = mc(inp.expand(k, *inp.shape[1:])).double().cpu()
                    res = res[:, :, iy0:iy1, ix0:ix1]
                    total += res.sum(0)
                    square += (res * res).sum(0)
            mean = total / passes
            var = torch.clamp(square / passes - mean * mean, min=0.0) * passes / (passes - 1)
            out[i, :, y0:y1, x0:x1] = var.sqrt().float().numpy()
    return out


@torch.inference_mode()
def tiled_forward(
    model: Generator, x: np.ndarray, *, tile: int | None, halo: int, batch: int
) -> np.ndarray:
    """Generator output (N, 4, H, W) of inputs (N, C, H, W) in [-1, 1], computed on tiles of
    `tile` px (None: `default_tile`) with `halo` px of context, all one shape
    (`_haloed_tiles`).

    On CUDA: `batch` tiles per forward pass in bf16 autocast and channels_last, the last
    batch padded to full size. On CPU: one tile per pass (batching gains little there).
    Either way a tile's output never depends on which other tiles share its pass (oneDNN
    picks kernels by batch size, which moves results by ~1e-7), so a resumed run or a run
    on other days gives bit-identical pixels.
    """
    device = next(model.parameters()).device
    tile = tile or default_tile(device)
    n, _, h, w = x.shape
    out = np.empty((n, model.cfg.out_channels, h, w), np.float32)
    jobs = [(i, outer, inner) for outer, inner in _haloed_tiles(h, w, tile, halo) for i in range(n)]
    cuda = device.type == "cuda"
    per_pass = batch if cuda else 1
    for start in range(0, len(jobs), per_pass):
        part = jobs[start : start + per_pass]
        stack = np.stack([x[i, :, ya:yb, xa:xb] for i, (ya, yb, xa, xb), _ in part])
        if len(part) < per_pass:
            pad = np.zeros((per_pass - len(part), *stack.shape[1:]), stack.dtype)
            stack = np.concatenate([stack, pad])
        inp = torch.from_numpy(stack).to(device)
        if cuda:
            inp = inp.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            res = model(inp).float().cpu().numpy()
        for k, (i, (ya, _, xa, _), (iy0, iy1, ix0, ix1)) in enumerate(part):
            out[i, :, ya + iy0 : ya + iy1, xa + ix0 : xa + ix1] = res[k, :, iy0:iy1, ix0:ix1]
    return out


def empty_product(win: Window, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """s2 (n, band, y, x), status, reference_dt, reference_next_dt (n, y, x) for `n` days
    of the window, all missing (nodata)."""
    _, nb, h, w = win.s2.shape
    return (
        np.full((n, nb, h, w), np.nan, np.float32),
        np.full((n, h, w), product.NODATA, np.uint8),
        np.full((n, h, w), product.REFERENCE_DT_MISSING, np.int16),
        np.full((n, h, w), product.REFERENCE_DT_MISSING, np.int16),
    )


def copy_observed(win: Window, t: int, s2_out: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Day `t`'s clear observations into `s2_out` (band, y, x), flagged clear; its cloudy
    pixels flagged unfilled (for a fill to change); returns where it is cloudy."""
    obs = win.s2[t]
    has_data = np.isfinite(obs).all(axis=0)
    clear = win.clear[t] & has_data
    cloudy = has_data & ~clear
    s2_out[:, clear] = obs[:, clear]
    status[clear] = product.CLEAR
    status[cloudy] = product.UNFILLED
    return cloudy


def calibrate_day(
    values: np.ndarray, win: Window, t: int, usable: np.ndarray, cfg: Calibration
) -> np.ndarray:
    """`values` (band, y, x) for day `t` of the window fitted to that day's clear pixels
    (those of `usable`, where the values mean something)."""
    has_data = np.isfinite(win.s2[t]).all(axis=0)
    fit = fit_mask(win.clear[t], has_data, cfg.buffer_px) & usable
    return calibrate(values, win.s2[t], fit, cfg)


def fill_window(
    win: Window,
    targets: list[int],
    fill_days: list[bool],
    model: Generator,
    card: ModelCard,
    *,
    tile: int | None,
    batch: int,
    calibration: Calibration | None = None,
    uncertainty: int | None = None,
) -> FilledWindow:
    """The product for days `targets` (indices into the window's days) of one window.

    Clear observed pixels are kept as observed; cloudy pixels of a day whose `fill_days`
    entry is true are simulated where the reference rule (from the card) finds a reference
    and S1 is present, else flagged unfilled; pixels without an observation are nodata.
    With `calibration`, the simulation is fitted to the day's clear pixels (where the
    model had a reference) before it is written (`gapfill.fill.calibrate`). With
    `uncertainty` = N, also the spread of N Monte-Carlo dropout passes (reflectance units,
    where filled; the filled values stay the deterministic pass's): the network's own
    uncertainty, before calibration.
    """
    norm = card.normalisation
    n = len(targets)
    _, _, h, w = win.s2.shape
    s2_out, status, ref_dt, next_dt = empty_product(win, n)
    both = card.task == "B" and card.reference.rule == "both"
    inputs, slots, masks, fits, ages, aheads = [], [], [], [], [], []
    for j, t in enumerate(targets):
        cloudy = copy_observed(win, t, s2_out[j], status[j])
        if not fill_days[j] or not cloudy.any():
            continue
        ahead = np.full((h, w), product.REFERENCE_DT_MISSING)
        if card.task == "B":
            ref, age = pick_reference(win.times, t, win.clear, win.orbit, card.reference)
            o1, s1_t1 = compose_reference(ref, win.s2, win.s1)
            later = None
            if both:
                nxt, ahead = pick_next_reference(win.times, t, win.clear, win.orbit, card.reference)
                o3, s1_t3 = compose_reference(nxt, win.s2, win.s1)
                later = (s1_t3, o3, age.astype(np.float32), ahead.astype(np.float32))
            x, valid = model_input(norm, "B", win.s1[t], s1_t1, o1, later)
            usable = (ref != NONE) & valid
        else:
            x, valid = model_input(norm, "A", win.s1[t])
            age, usable = np.full((h, w), product.REFERENCE_DT_MISSING), valid
        todo = cloudy & usable
        if todo.any():
            inputs.append(x)
            slots.append(j)
            masks.append(todo)
            fits.append(usable)
            ages.append(age)
            aheads.append(ahead)
    model_px, t0, cal_s = 0, time.perf_counter(), 0.0
    spread_out = None if uncertainty is None else np.full_like(s2_out, np.nan)
    if inputs:
        stacked = np.stack(inputs)
        sim = tiled_forward(model, stacked, tile=tile, halo=halo_of(card), batch=batch)
        spread = None
        if uncertainty is not None:
            spread = mc_dropout_spread(
                model,
                stacked,
                [win.times[targets[j]] for j in slots],
                passes=uncertainty,
                tile=tile,
                halo=halo_of(card),
                batch=batch,
                origin=win.origin,
            )
        for k, j in enumerate(slots):
            todo = masks[k]
            refl = norm.optical_inverse(sim[k])
            if calibration is not None and calibration.enabled:
                t_cal = time.perf_counter()
                refl = calibrate_day(refl, win, targets[j], fits[k], calibration)
                cal_s += time.perf_counter() - t_cal
            refl = np.maximum(refl, layout.S2_MIN_VALID)
            s2_out[j][:, todo] = refl[:, todo]
            status[j][todo] = product.FILLED
            ref_dt[j][todo] = ages[k][todo]
            next_dt[j][todo] = aheads[k][todo]
            if spread is not None and spread_out is not None:
                # optical_inverse is affine: a spread in [-1, 1] units times its slope
                slope = 0.5 * norm.maxima(spread.shape[1])[:, None, None]
                sigma = spread[k] * slope
                spread_out[j][:, todo] = sigma[:, todo]
        model_px = len(inputs) * h * w
    return FilledWindow(
        s2_out,
        status,
        ref_dt,
        model_px,
        time.perf_counter() - t0 - cal_s,
        next_dt if both else None,
        cal_s,
        spread_out,
    )
