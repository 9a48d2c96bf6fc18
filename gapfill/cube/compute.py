"""The cube's values per day and tile: S2 mosaic, clear mask, per-pixel S1 matching.

One tile of one day is one unit of work (`tile_values`): its COG windows are read, and
every variable computed from them, in one pass, as the build's floor does (no Dask graph
of intermediate arrays, memory bounded by a tile whatever the region). `tile_has_data`
is the cheap pass before: a day with no data in the AOI is dropped before anything is
written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from rasterio.enums import Resampling
from scipy import ndimage

from gapfill.bands import S1_POLS, S2_SCL, band_resolution
from gapfill.cube import layout
from gapfill.cube.config import CubeConfig
from gapfill.cube.loader import read_window, stac_dicts
from gapfill.grid import Grid
from gapfill.stac.providers import SensorProfile, asset_key, s2_scale_offset

__all__ = [
    "S1Scene",
    "S2Day",
    "DayTile",
    "tile_has_data",
    "tile_values",
    "reflectance_resampling",
]


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
    """Item dicts whose assets are renamed to the canonical band names, with hrefs as they
    should be opened now (signed at read time where the profile signs: tasks run long
    after the search)."""
    out = []
    for d in stac_dicts(items):
        assets = {n: dict(d["assets"][asset_key(d, n, profile)]) for n in names}
        for asset in assets.values():
            asset["href"] = profile.href_for_reading(asset["href"])
        d["assets"] = assets
        out.append(d)
    return out


def _first_valid(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the entry (along axis 0) of the first valid candidate, and which one.

    values: (k, c, y, x); valid: (k, y, x). Returns (c, y, x) with NaN where none is
    valid, and the candidate index (y, x) with -1 there.
    """
    out = np.full(values.shape[1:], np.nan, values.dtype)
    idx = np.full(valid.shape[1:], -1, np.int64)
    for k in range(values.shape[0] - 1, -1, -1):  # the last written is the first valid
        np.copyto(out, values[k], where=valid[k][None])
        np.copyto(idx, k, where=valid[k])
    return out, idx


def _s2_kernel(raw: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(item, band+SCL, y, x) DN -> (band+SCL, y, x): reflectance mosaic, SCL of the same item."""
    nb = scale.shape[1]
    refl = raw[:, :nb] * scale[:, :, None, None] + offset[:, :, None, None]
    # Reflectance <= 0 would pack to the fill value: clip valid pixels to the smallest step.
    # (np.clip keeps NaN, no data, as NaN.)
    refl = np.clip(refl, 1e-4, 6.5, out=refl)
    valid = np.asarray(np.isfinite(refl).all(axis=1))
    if raw.shape[0] == 1:  # one item (most days): its values where all bands are valid
        out = np.empty(raw.shape[1:], np.float32)
        out[:nb], out[nb:] = refl[0], raw[0, nb:]
        out[:, ~valid[0]] = np.nan
        return out
    stacked = np.concatenate([refl, raw[:, nb:]], axis=1)
    mosaic, _ = _first_valid(stacked, valid)
    return mosaic.astype(np.float32, copy=False)


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
    return np.concatenate([db, s1_dt[None], s1_orbit[None]]).astype(np.float32, copy=False)


def _lee(block: np.ndarray, size: int = 5, looks: float = 4.4) -> np.ndarray:
    """Lee filter in linear power (window `size`, equivalent number of looks)."""
    finite = np.isfinite(block)
    x = np.where(finite, block, 0.0)
    # Over the last two (spatial) axes only: scenes and polarisations are not neighbours.
    win = (1,) * (block.ndim - 2) + (size, size)
    w = ndimage.uniform_filter(finite.astype(np.float64), win)
    mean = ndimage.uniform_filter(x, win) / np.maximum(w, 1e-9)
    sq = ndimage.uniform_filter(x * x, win) / np.maximum(w, 1e-9)
    var = np.maximum(sq - mean * mean, 0.0)
    noise = mean * mean / looks
    gain = np.where(var > 0, np.maximum(var - noise, 0.0) / np.maximum(var, 1e-12), 0.0)
    out = mean + gain * (x - mean)
    return np.where(finite, out, np.nan).astype(block.dtype)


# Pixels of the Lee filter's window on either side of a pixel (5 x 5).
_LEE_RADIUS = 2


@dataclass(frozen=True)
class DayTile:
    """One spatial chunk of one day: what a Dask task computes and writes on its own."""

    index: int  # the day's time index in the store
    day: S2Day
    scenes: tuple[S1Scene, ...]  # S1 candidates, nearest first
    y0: int
    x0: int
    h: int
    w: int
    names: tuple[str, ...]  # the variables to write (layout.DAY_VARS or layout.S1_VARS)


def _halo(tile: DayTile, grid: Grid, radius: int) -> tuple[int, int, int, int]:
    """(ya, yb, xa, xb): the tile grown by `radius` pixels, clipped to the grid."""
    h, w = grid.shape
    return (
        max(tile.y0 - radius, 0),
        min(tile.y0 + tile.h + radius, h),
        max(tile.x0 - radius, 0),
        min(tile.x0 + tile.w + radius, w),
    )


def reflectance_resampling(band: str, resolution: float) -> Resampling:
    """How a reflectance band reaches a grid of `resolution` m: read as it is at its
    native pixel size; averaged over the pixels of a coarser grid (the area mean keeps
    the reflectance of the footprint, as ESA's own 20 m and 60 m versions of 10 m bands
    do); bilinear onto a finer grid (a 20 m band on 10 m: smooth, no 2x2 blocks for a
    network to learn as texture; SNAP's S2 resampler does the same by default)."""
    native = band_resolution(band)
    if native < resolution:
        return Resampling.average
    if native > resolution:
        return Resampling.bilinear
    return Resampling.nearest


def _read_bands(
    items: list[dict],
    names: Sequence[str],
    grid: Grid,
    window: tuple[int, int, int, int],
    cfg: CubeConfig,
) -> np.ndarray:
    """(item, band+SCL, y, x) of `names` (bands, then SCL), each band read with its
    reflectance resampling and SCL (classes) with nearest; one read per kind."""
    kinds: dict[Resampling, list[int]] = {}
    for i, n in enumerate(names):
        kind = Resampling.nearest if n == S2_SCL else reflectance_resampling(n, grid.resolution)
        kinds.setdefault(kind, []).append(i)
    if len(kinds) == 1:
        return read_window(items, names, grid, window, next(iter(kinds)), cfg.loader)
    ya, yb, xa, xb = window
    out = np.empty((len(items), len(names), yb - ya, xb - xa), np.float32)
    for kind, idx in kinds.items():
        out[:, idx] = read_window(items, [names[i] for i in idx], grid, window, kind, cfg.loader)
    return out


def _s2_part(
    tile: DayTile, grid: Grid, cfg: CubeConfig, profile: SensorProfile
) -> dict[str, np.ndarray]:
    """S2 reflectance (band, y, x) and the clear mask (y, x) of a tile. The cloud mask is
    dilated over a halo read around the tile, so tiles agree with one whole-grid pass."""
    names = [*cfg.bands, S2_SCL]
    nb = len(cfg.bands)
    radius = int(math.ceil(cfg.dilation_m / grid.resolution))
    ya, yb, xa, xb = _halo(tile, grid, radius)
    items = _canonical(tile.day.items, names, profile)
    raw = _read_bands(items, names, grid, (ya, yb, xa, xb), cfg)
    so = np.array([[s2_scale_offset(d, b, profile) for b in cfg.bands] for d in items], np.float32)
    s2_scl = _s2_kernel(raw, so[..., 0], so[..., 1])
    s2, scl = s2_scl[:nb], s2_scl[nb]
    cloudy = np.isin(scl, list(cfg.cloud_classes))
    if radius > 0 and cloudy.any():
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        cloudy = ndimage.binary_dilation(cloudy, structure=(yy**2 + xx**2) <= radius**2)
    clear = np.isin(scl, list(cfg.clear_classes)) & np.isfinite(s2).all(axis=0) & ~cloudy
    inner = (
        slice(tile.y0 - ya, tile.y0 - ya + tile.h),
        slice(tile.x0 - xa, tile.x0 - xa + tile.w),
    )
    return {layout.S2: s2[(slice(None), *inner)], layout.CLEAR: clear[inner]}


def _s1_part(
    tile: DayTile, grid: Grid, cfg: CubeConfig, profile: SensorProfile
) -> dict[str, np.ndarray]:
    """Per pixel the nearest S1 scene with data: dB (pol, y, x), days from the S2 day and
    orbit (y, x), with the layout's missing values where no scene has data."""
    npol = len(S1_POLS)
    if not tile.scenes:
        shape = (tile.h, tile.w)
        return {
            layout.S1: np.full((npol, *shape), np.nan, np.float32),
            layout.S1_DT: np.full(shape, layout.S1_DT_MISSING, np.int8),
            layout.S1_ORBIT: np.full(shape, layout.S1_ORBIT_MISSING, np.int16),
        }
    radius = _LEE_RADIUS if cfg.despeckle == "lee" else 0
    ya, yb, xa, xb = _halo(tile, grid, radius)
    items = _canonical([s.item for s in tile.scenes], S1_POLS, profile)
    lin = read_window(items, S1_POLS, grid, (ya, yb, xa, xb), Resampling.bilinear, cfg.loader)
    if cfg.despeckle == "lee":
        lin = _lee(lin)
    lin = lin[..., tile.y0 - ya : tile.y0 - ya + tile.h, tile.x0 - xa : tile.x0 - xa + tile.w]
    dt = np.array([(s.time.date() - tile.day.time.date()).days for s in tile.scenes], np.float32)
    orbit = np.array([s.orbit for s in tile.scenes], np.float32)
    out = _s1_kernel(lin, dt, orbit)
    s1_dt, s1_orbit = out[npol], out[npol + 1]
    return {
        layout.S1: out[:npol],
        layout.S1_DT: np.where(np.isnan(s1_dt), layout.S1_DT_MISSING, s1_dt).astype(np.int8),
        layout.S1_ORBIT: np.where(np.isnan(s1_orbit), layout.S1_ORBIT_MISSING, s1_orbit).astype(
            np.int16
        ),
    }


def tile_has_data(tile: DayTile, grid: Grid, cfg: CubeConfig, profile: SensorProfile) -> bool:
    """Whether any pixel of the tile has data on the day, from SCL (20 m: the cheapest
    asset); a day with none in any tile is dropped before anything is written."""
    scl = read_window(
        _canonical(tile.day.items, [S2_SCL], profile),
        [S2_SCL],
        grid,
        (tile.y0, tile.y0 + tile.h, tile.x0, tile.x0 + tile.w),
        Resampling.nearest,
        cfg.loader,
    )
    return bool((scl > 0).any())


def tile_values(
    tile: DayTile,
    grid: Grid,
    cfg: CubeConfig,
    s2_profile: SensorProfile,
    s1_profile: SensorProfile,
) -> dict[str, np.ndarray]:
    """The cube's variables `tile.names` for one tile of one day, as values (unpacked):
    read, mosaicked, masked and matched in one pass over the tile's COG windows."""
    out: dict[str, np.ndarray] = {}
    if layout.S2 in tile.names or layout.CLEAR in tile.names:
        out.update(_s2_part(tile, grid, cfg, s2_profile))
    if any(n in tile.names for n in layout.S1_VARS):
        out.update(_s1_part(tile, grid, cfg, s1_profile))
    return {n: out[n] for n in tile.names}
