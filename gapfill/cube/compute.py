"""Lazy per-day arrays of the cube: S2 mosaic, clear mask, per-pixel S1 matching.

Everything here is a Dask graph over spatial chunks; nothing is read until written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import dask.array as da
import numpy as np
import xarray as xr
from rasterio.enums import Resampling
from scipy import ndimage

from gapfill.bands import S1_POLS, S2_BANDS, S2_SCL
from gapfill.cube import layout
from gapfill.cube.config import CubeConfig
from gapfill.cube.loader import load, stac_dicts
from gapfill.grid import Grid
from gapfill.stac.providers import SensorProfile, asset_key, s2_scale_offset

__all__ = ["S1Scene", "S2Day", "day_dataset", "valid_fraction"]


@dataclass(frozen=True)
class S2Day:
    """One Sentinel-2 day: its items (mosaicked in this order) and acquisition time."""

    day: datetime
    time: datetime
    items: tuple[dict, ...]


@dataclass(frozen=True)
class S1Scene:
    """One Sentinel-1 item with its time and (pseudo-)orbit."""

    item: dict
    time: datetime
    orbit: int


def _canonical(items: Sequence[dict], names: Sequence[str], profile: SensorProfile) -> list[dict]:
    """Item dicts whose assets are renamed to the canonical band names, for stackstac."""
    out = []
    for d in stac_dicts(items):
        d["assets"] = {n: d["assets"][asset_key(d, n, profile)] for n in names}
        out.append(d)
    return out


def _first_valid(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the entry (along axis 0) of the first valid candidate, and which one.

    values: (k, c, y, x); valid: (k, y, x). Returns (c, y, x) with NaN where none is
    valid, and the candidate index (y, x) with -1 there.
    """
    idx = np.argmax(valid, axis=0)
    found = valid.any(axis=0)
    out = np.take_along_axis(values, idx[None, None], axis=0)[0]
    out[:, ~found] = np.nan
    return out, np.where(found, idx, -1)


def _s2_kernel(raw: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(item, band+SCL, y, x) DN -> (band+SCL, y, x): reflectance mosaic, SCL of the same item."""
    nb = scale.shape[1]
    refl = raw[:, :nb] * scale[:, :, None, None] + offset[:, :, None, None]
    # Reflectance <= 0 would pack to the fill value: clip valid pixels to the smallest step.
    refl = np.where(np.isnan(refl), np.nan, np.clip(refl, 1e-4, 6.5))
    valid = np.asarray(np.isfinite(refl).all(axis=1))
    stacked = np.concatenate([refl, raw[:, nb:]], axis=1)
    out, _ = _first_valid(stacked, valid)
    return out.astype(np.float32)


def _s1_kernel(lin: np.ndarray, dt: np.ndarray, orbit: np.ndarray) -> np.ndarray:
    """(scene, pol, y, x) linear power, scenes nearest first -> (pol dB..., dt, orbit, y, x)."""
    lin = np.where(lin > 0, lin, np.nan)
    valid = np.asarray(np.isfinite(lin).all(axis=1))
    chosen, idx = _first_valid(lin, valid)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(chosen)
    has = idx >= 0
    s1_dt = np.where(has, dt[np.maximum(idx, 0)], np.nan)
    s1_orbit = np.where(has, orbit[np.maximum(idx, 0)], np.nan)
    return np.concatenate([db, s1_dt[None], s1_orbit[None]]).astype(np.float32)


def _dilate(mask: da.Array, radius: int) -> da.Array:
    if radius <= 0:
        return mask
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = (yy**2 + xx**2) <= radius**2

    def grow(block: np.ndarray) -> np.ndarray:
        return ndimage.binary_dilation(block, structure=disk)

    return da.map_overlap(grow, mask, depth=radius, boundary=False, dtype=bool)


def _lee(block: np.ndarray, size: int = 5, looks: float = 4.4) -> np.ndarray:
    """Lee filter in linear power (window `size`, equivalent number of looks)."""
    finite = np.isfinite(block)
    x = np.where(finite, block, 0.0)
    w = ndimage.uniform_filter(finite.astype(np.float64), size)
    mean = ndimage.uniform_filter(x, size) / np.maximum(w, 1e-9)
    sq = ndimage.uniform_filter(x * x, size) / np.maximum(w, 1e-9)
    var = np.maximum(sq - mean * mean, 0.0)
    noise = mean * mean / looks
    gain = np.where(var > 0, np.maximum(var - noise, 0.0) / np.maximum(var, 1e-12), 0.0)
    out = mean + gain * (x - mean)
    return np.where(finite, out, np.nan).astype(block.dtype)


def valid_fraction(day: S2Day, grid: Grid, chunk: int, profile: SensorProfile) -> da.Array:
    """Fraction of the grid with data on a day, from SCL (20 m: the cheapest asset)."""
    scl = load(_canonical(day.items, [S2_SCL], profile), [S2_SCL], grid, chunk)
    return (scl.fillna(0) > 0).any("time").mean().data


def day_dataset(
    day: S2Day,
    scenes: Sequence[S1Scene],
    grid: Grid,
    cfg: CubeConfig,
    s2_profile: SensorProfile,
    s1_profile: SensorProfile,
) -> xr.Dataset:
    """The cube's variables for one day (time length 1), lazy."""
    names = [*S2_BANDS, S2_SCL]
    nb = len(S2_BANDS)
    items = _canonical(day.items, names, s2_profile)
    raw = load(items, names, grid, cfg.chunk).data.rechunk({0: -1, 1: -1})
    so = np.array(
        [[s2_scale_offset(d, b, s2_profile) for b in S2_BANDS] for d in items], np.float32
    )
    s2_scl = raw.map_blocks(
        _s2_kernel,
        so[..., 0],
        so[..., 1],
        drop_axis=0,
        chunks=((nb + 1,), *raw.chunks[2:]),
        dtype=np.float32,
    )
    s2, scl = s2_scl[:nb], s2_scl[nb]
    valid = da.isfinite(s2).all(axis=0)
    radius = int(math.ceil(cfg.dilation_m / grid.resolution))
    cloudy = _dilate(da.isin(scl, list(cfg.cloud_classes)), radius)
    clear = da.isin(scl, list(cfg.clear_classes)) & valid & ~cloudy

    h, w = grid.shape
    npol = len(S1_POLS)
    if scenes:
        s1_items = _canonical([s.item for s in scenes], S1_POLS, s1_profile)
        lin = load(s1_items, list(S1_POLS), grid, cfg.chunk, Resampling.bilinear).data
        lin = lin.rechunk({0: -1, 1: -1})
        if cfg.despeckle == "lee":
            lin = da.map_overlap(
                _lee, lin, depth={0: 0, 1: 0, 2: 2, 3: 2}, boundary="none", dtype=lin.dtype
            )
        dt = np.array([(s.time.date() - day.time.date()).days for s in scenes], np.float32)
        orbit = np.array([s.orbit for s in scenes], np.float32)
        s1_all = lin.map_blocks(
            _s1_kernel,
            dt,
            orbit,
            drop_axis=0,
            chunks=((npol + 2,), *lin.chunks[2:]),
            dtype=np.float32,
        )
    else:
        chunks = (min(cfg.chunk, h), min(cfg.chunk, w))
        s1_all = da.full((npol + 2, h, w), np.nan, np.float32, chunks=(npol + 2, *chunks))
    s1 = s1_all[:npol]
    s1_dt = da.where(da.isnan(s1_all[npol]), layout.S1_DT_MISSING, s1_all[npol]).astype(np.int8)
    s1_orbit = da.where(
        da.isnan(s1_all[npol + 1]), layout.S1_ORBIT_MISSING, s1_all[npol + 1]
    ).astype(np.int16)
    yx = ("y", "x")
    out = xr.Dataset(
        {
            layout.S2: (("band", *yx), s2),
            layout.CLEAR: (yx, clear),
            layout.S1: (("pol", *yx), s1),
            layout.S1_DT: (yx, s1_dt),
            layout.S1_ORBIT: (yx, s1_orbit),
        }
    )
    out = out.expand_dims("time")
    return out.chunk({"time": 1, "band": -1, "pol": -1, "y": cfg.chunk, "x": cfg.chunk})
