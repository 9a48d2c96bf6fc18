"""The one place that reads COGs onto the cube grid: `load`, with two engines.

`direct` (the default) reads each spatial chunk of every item and asset in one task.
An asset on the cube's pixel grid (same CRS, a pixel an integer multiple of the cube's,
edges on cube pixel edges: Sentinel-2 at 10/20 m, RTC Sentinel-1 on the tile grid) is
read with a plain windowed read and repeated to the cube's resolution, exactly what a
nearest-neighbour warp gives (and, at the same resolution, any warp), or, for a coarser
band of integer samples read bilinearly (a 20 m reflectance band on a 10 m cube),
interpolated from the same window as GDAL's warper does, value for value; any other asset
is warped through the same GDAL WarpedVRT that stackstac builds. Values equal
stackstac's (a test compares); measured in benchmarks/cube_build.py, it is the read
cost that kept build-cube at 0.2x its floor.

`stackstac` keeps stackstac behind the same seam, with its pitfalls handled (see
STACK-NOTES.md):
- it reads only `proj:epsg`: copied from `proj:code` when an item has only that;
- float32 needs a NaN fill and `rescale=False` (scale/offset are applied by the caller);
- `xy_coords="center"` (the default is pixel corners, half a pixel off);
- bounds are already snapped to the grid, so `snap_bounds=False`.
Neither sets HTTP retries by default: a remote COG answering 429/5xx once would fail a
whole build, so both read with GDAL's retries (`HTTP_RETRY`) and a growing delay.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, Literal

import dask.array as da
import numpy as np
import rasterio
import stackstac
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from gapfill.grid import Grid
from gapfill.stac.providers import item_epsg

__all__ = ["stac_dicts", "load", "read_window", "HTTP_RETRY", "Engine"]

Engine = Literal["direct", "stackstac"]

# GDAL's own retry of HTTP 429, 502, 503 and 504 answers (and connection failures), for
# every read of a remote COG (`load`, and the cube build's probe).
HTTP_RETRY = {"GDAL_HTTP_MAX_RETRY": "5", "GDAL_HTTP_RETRY_DELAY": "1"}
_GDAL_ENV = stackstac.DEFAULT_GDAL_ENV.updated(always=HTTP_RETRY)
# The direct engine opens with stackstac's options (HTTP range merging, no directory
# listing, a VSI cache) plus the retries.
_OPEN_ENV = {**stackstac.DEFAULT_GDAL_ENV.open.options, **HTTP_RETRY}


def stac_dicts(items: Sequence[Any]) -> list[dict]:
    """Item dicts that stackstac reads correctly (proj:epsg filled from proj:code)."""
    out = []
    for item in items:
        d = copy.deepcopy(item.to_dict() if hasattr(item, "to_dict") else item)
        epsg = item_epsg(d)
        if epsg is not None:
            d["properties"]["proj:epsg"] = epsg
        out.append(d)
    return out


def load(
    items: Sequence[dict],
    assets: Sequence[str],
    grid: Grid,
    chunk: int,
    resampling: Resampling = Resampling.nearest,
    engine: Engine = "direct",
) -> xr.DataArray:
    """Lazy (item, asset, y, x) float32 on `grid`, NaN where an asset has no data."""
    if engine == "stackstac":
        return _stackstac(items, assets, grid, chunk, resampling)
    hrefs = _hrefs(items, assets)
    h, w = grid.shape
    ys = _splits(h, chunk)
    xs = _splits(w, chunk)
    name = "read-cogs-" + tokenize(hrefs, grid, chunk, resampling.name)
    dsk: dict[Any, Any] = {
        (name, 0, 0, i, j): (_read_chunk, hrefs, grid, y0, x0, ny, nx, resampling)
        for i, (y0, ny) in enumerate(_starts(ys))
        for j, (x0, nx) in enumerate(_starts(xs))
    }
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    arr = da.Array(graph, name, ((len(items),), (len(assets),), ys, xs), dtype=np.float32)
    minx, _, _, maxy = grid.bounds
    res = grid.resolution
    return xr.DataArray(
        arr,
        dims=("time", "band", "y", "x"),
        coords={"y": maxy - (np.arange(h) + 0.5) * res, "x": minx + (np.arange(w) + 0.5) * res},
    )


def read_window(
    items: Sequence[dict],
    assets: Sequence[str],
    grid: Grid,
    window: tuple[int, int, int, int],
    resampling: Resampling = Resampling.nearest,
    engine: Engine = "direct",
) -> np.ndarray:
    """(item, asset, y, x) float32 of the grid's rows ya:yb and columns xa:xb (`window`),
    now: the values `load` gives there (warps are of the whole grid, as in `load`)."""
    ya, yb, xa, xb = window
    if engine == "stackstac":
        chunk = max(yb - ya, xb - xa)
        arr = _stackstac(items, assets, grid, chunk, resampling)
        return np.asarray(arr.data[..., ya:yb, xa:xb].compute(scheduler="synchronous"))
    return _read_chunk(_hrefs(items, assets), grid, ya, xa, yb - ya, xb - xa, resampling)


def _hrefs(items: Sequence[dict], assets: Sequence[str]) -> tuple[tuple[str | None, ...], ...]:
    return tuple(
        tuple(str(d["assets"][a]["href"]) if a in d["assets"] else None for a in assets)
        for d in items
    )


def _splits(n: int, chunk: int) -> tuple[int, ...]:
    return tuple(min(chunk, n - s) for s in range(0, n, chunk))


def _starts(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    out, at = [], 0
    for n in sizes:
        out.append((at, n))
        at += n
    return out


def _read_chunk(
    hrefs: tuple[tuple[str | None, ...], ...],
    grid: Grid,
    y0: int,
    x0: int,
    h: int,
    w: int,
    resampling: Resampling,
) -> np.ndarray:
    """(item, asset, h, w) float32 of the grid window at (y0, x0), NaN where no data."""
    out = np.full((len(hrefs), len(hrefs[0]) if hrefs else 0, h, w), np.nan, np.float32)
    with rasterio.Env(**_OPEN_ENV):
        for i, row in enumerate(hrefs):
            for j, href in enumerate(row):
                if href is None:
                    continue
                try:
                    with rasterio.open(href) as ds:
                        _read_into(out[i, j], ds, grid, y0, x0, resampling)
                except Exception as exc:
                    raise RuntimeError(
                        f"Error reading {Window(x0, y0, w, h)} from {href!r}: {exc!r}"
                    ) from exc
    return out


# Sample types read bilinearly without a warp (`_bilinear_up`): integers, whose weighted
# means at the quarter-pixel weights of a 2x finer grid are exact in float64 whatever the
# order of the sums, so the result rounds to GDAL's to the last bit.
_INTEGERS = ("uint8", "int8", "uint16", "int16")


def _aligned(ds: Any, grid: Grid, resampling: Resampling) -> tuple[int, int, int] | None:
    """(k, dy, dx) when `ds` lies on the cube's pixel grid with pixels k cube pixels wide,
    its top-left corner dy rows and dx columns from the grid's (in cube pixels); None when
    a warp is needed (another CRS, rotation, a non-integer factor, k > 1 other than
    nearest or bilinear of integer samples)."""
    a, b, c, d, e, f = tuple(ds.transform)[:6]
    if ds.crs is None or ds.crs.to_epsg() != grid.epsg or b or d or a <= 0 or e >= 0:
        return None
    res = grid.resolution
    k = a / res
    if abs(k - round(k)) > 1e-9 or abs(-e / res - k) > 1e-9 or round(k) < 1:
        return None
    if round(k) > 1 and not (
        resampling == Resampling.nearest
        or (resampling == Resampling.bilinear and round(k) == 2 and ds.dtypes[0] in _INTEGERS)
    ):
        return None
    minx, _, _, maxy = grid.bounds
    dy, dx = (maxy - f) / res, (c - minx) / res
    if abs(dy - round(dy)) > 1e-6 or abs(dx - round(dx)) > 1e-6:
        return None
    return round(k), round(dy), round(dx)


def _read_into(
    out: np.ndarray, ds: Any, grid: Grid, y0: int, x0: int, resampling: Resampling
) -> None:
    h, w = out.shape
    fit = _aligned(ds, grid, resampling)
    if fit is None:
        _warped_into(out, ds, grid, y0, x0, resampling)
        return
    k, dy, dx = fit
    # The window in the asset's pixels at the cube's resolution ("fine" pixels).
    r0, r1 = max(y0 - dy, 0), min(y0 - dy + h, ds.height * k)
    c0, c1 = max(x0 - dx, 0), min(x0 - dx + w, ds.width * k)
    if r0 >= r1 or c0 >= c1:
        return
    if k > 1 and resampling == Resampling.bilinear:
        sub = _bilinear_up(ds, k, (r0, r1), (c0, c1))
    else:
        ar0, ac0 = r0 // k, c0 // k
        win = Window(ac0, ar0, math.ceil(c1 / k) - ac0, math.ceil(r1 / k) - ar0)
        data = _read_masked(ds, win)
        if k > 1:
            data = np.repeat(np.repeat(data, k, axis=0), k, axis=1)
        sub = data[r0 - ar0 * k : r1 - ar0 * k, c0 - ac0 * k : c1 - ac0 * k]
    out[r0 + dy - y0 : r1 + dy - y0, c0 + dx - x0 : c1 + dx - x0] = sub


def _taps(start: int, stop: int, k: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """For fine pixels start:stop of an axis k times finer than the asset's: the asset
    pixel before each fine centre (relative to the first one read), the weight of the one
    after it, and the asset pixels lo..hi (inclusive; may lie one outside) they touch."""
    centre = (np.arange(start, stop) + 0.5) / k - 0.5  # in asset pixel-centre units
    before = np.floor(centre).astype(np.int64)
    lo, hi = int(before.min()), int(before.max()) + 1
    return before - lo, centre - before, lo, hi


def _bilinear_up(ds: Any, k: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Fine rows x cols (the asset's pixels split k x k) of an integer asset, resampled
    bilinearly as GDAL's warper does, without building a warp: each value is the weighted
    mean of the valid ones of its 2 x 2 asset pixels (weights renormalised over the valid;
    pixels outside the asset count as invalid), no data where the asset pixel under the
    fine pixel's centre has none, rounded to the asset's integers as a warp of the asset's
    type is. Equal to `WarpedVRT(resampling=bilinear)` value for value (tested)."""
    (r0, r1), (c0, c1) = rows, cols
    ry, wy, ylo, yhi = _taps(r0, r1, k)
    rx, wx, xlo, xhi = _taps(c0, c1, k)
    h, w = ds.height, ds.width
    a0, a1, b0, b1 = max(ylo, 0), min(yhi, h - 1), max(xlo, 0), min(xhi, w - 1)
    read = _read_masked(ds, Window(b0, a0, b1 - b0 + 1, a1 - a0 + 1)).astype(np.float64)
    pad = ((a0 - ylo, yhi - a1), (b0 - xlo, xhi - b1))
    whole = not np.isnan(read).any()  # the common case
    if whole:
        # Past the asset's edge GDAL renormalises over the pixels inside, which is what
        # repeating the edge pixel gives (0.75 a + 0.25 a = a, exactly).
        values = np.pad(read, pad, mode="edge")
    else:
        values = np.pad(read, pad, constant_values=np.nan)
        valid = np.isfinite(values)
        values[~valid] = 0.0

    def along(a: np.ndarray, taps: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
        shape = [1, 1]
        shape[axis] = -1
        out = np.take(a, taps + 1, axis=axis)
        low = np.take(a, taps, axis=axis)
        out -= low
        out *= weight.reshape(shape)
        out += low
        return out

    num = along(along(values, ry, wy, 0), rx, wx, 1)
    if whole:
        return np.floor(num + 0.5).astype(np.float32)
    den = along(along(valid.astype(np.float64), ry, wy, 0), rx, wx, 1)
    # The asset pixel containing each fine centre: `before` or the one after it.
    under_y = ry + (wy >= 0.5)
    under_x = rx + (wx >= 0.5)
    ok = valid[np.ix_(under_y, under_x)] & (den > 0)
    out = np.full(ok.shape, np.nan, np.float32)
    out[ok] = np.floor(num[ok] / den[ok] + 0.5)
    return out


def _read_masked(ds: Any, win: Window) -> np.ndarray:
    """Band 1 in `win` as float32, NaN where GDAL's mask says no data. A nodata value is
    compared here rather than through `masked=True`, which reads the band a second time
    to build the mask."""
    flags = ds.mask_flag_enums[0]
    if MaskFlags.nodata in flags and ds.nodata is not None:
        raw = ds.read(1, window=win)
        data = raw.astype(np.float32)
        data[np.isnan(raw) if np.isnan(ds.nodata) else raw == ds.nodata] = np.nan
        return data
    if flags == [MaskFlags.all_valid]:
        return ds.read(1, window=win, out_dtype=np.float32)
    return np.ma.filled(ds.read(1, window=win, masked=True, out_dtype=np.float32), np.nan)


def _warped_into(
    out: np.ndarray, ds: Any, grid: Grid, y0: int, x0: int, resampling: Resampling
) -> None:
    """The window through a WarpedVRT of the whole grid, as stackstac reads it."""
    h, w = out.shape
    gh, gw = grid.shape
    with WarpedVRT(
        ds,
        sharing=False,
        resampling=resampling,
        add_alpha=ds.nodata is None,
        crs=f"EPSG:{grid.epsg}",
        transform=rasterio.Affine(*grid.transform),
        height=gh,
        width=gw,
    ) as vrt:
        data = vrt.read(window=Window(x0, y0, w, h), out_dtype=np.float32, masked=True)
    if data.shape[0] == 2:
        out[:] = np.where(data[1].filled(0) == 0, np.nan, np.ma.filled(data[0], np.nan))
    else:
        out[:] = np.ma.filled(data[0], np.nan)


def _stackstac(
    items: Sequence[dict],
    assets: Sequence[str],
    grid: Grid,
    chunk: int,
    resampling: Resampling,
) -> xr.DataArray:
    arr = stackstac.stack(
        list(items),
        assets=list(assets),
        epsg=grid.epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        resampling=resampling,
        chunksize=(1, 1, chunk, chunk),
        dtype=np.dtype("float32"),
        fill_value=np.float32("nan"),
        rescale=False,
        sortby_date=False,
        xy_coords="center",
        properties=False,
        band_coords=False,
        gdal_env=_GDAL_ENV,
    )
    # Only the grid coordinates: item metadata coords (id, epsg, ...) would clash
    # when arrays of different items are combined.
    return arr.drop_vars([c for c in arr.coords if c not in ("x", "y")])
