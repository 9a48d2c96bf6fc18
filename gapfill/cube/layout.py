"""The cube contract (`cube.zarr`, Zarr v3), version 2: names, dtypes, packing, chunks.

Train and fill import this module; nothing else spells a variable name, a fill value
or a scale factor. Layout (shared/DESIGN.md, "Cube"):

- dims `time` (one per kept S2 day, naive UTC), `band` (the cube's band set, in Sentinel-2
  order: `gapfill.bands`), `pol` (VV VH), `y`, `x`
- `s2` (time, band, y, x): reflectance, CF-packed uint16 (scale 1e-4, _FillValue 0)
- `clear` (time, y, x) bool: SCL clear classes after dilating cloud and shadow
- `s1` (time, pol, y, x): backscatter dB, CF-packed int16 (0.01 dB, _FillValue -32768)
- `s1_dt` (time, y, x) int8: days from the S2 day to the matched S1 (missing: -128)
- `s1_orbit` (time, y, x) int16: its relative orbit (missing: 0; > 175: pseudo-orbit)
- `complete` (time) bool, written last for each day
- scalar `spatial_ref` (CF grid mapping) and `grid_mapping` on every variable

Version 2 made the band set data (version 1 cubes hold B02 B03 B04 B08, and are read as
such: their layout is the same, `bands_of` reads the `band` coordinate of either).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from pyproj import CRS

from gapfill.bands import S1_POLS
from gapfill.grid import Grid

__all__ = [
    "pack",
    "CUBE_CONTRACT_VERSION",
    "READABLE_CUBE_CONTRACTS",
    "bands_of",
    "S2",
    "CLEAR",
    "S1",
    "S1_DT",
    "S1_ORBIT",
    "COMPLETE",
    "SPATIAL_REF",
    "DAY_VARS",
    "S1_VARS",
    "S1_DT_MISSING",
    "S1_ORBIT_MISSING",
    "ENCODINGS",
    "spatial_ref",
    "template",
    "encoding",
    "grid_of",
    "check_region_aligned",
    "open_cube",
    "has_s1",
    "S2_MIN_VALID",
    "consolidate",
    "CUBE_ID",
    "EVERY_CHUNK",
    "AOI_ATTR",
    "EPSG_ATTR",
    "RESOLUTION_ATTR",
    "BOUNDS_ATTR",
    "SEARCH_ATTR",
    "MAX_GAP_ATTR",
    "SKIPPED_ITEMS_ATTR",
    "DROPPED_DAYS_ATTR",
]

CUBE_CONTRACT_VERSION = "2"
# Contracts this code reads, writes into and extends (1: the four bands, hard-wired).
READABLE_CUBE_CONTRACTS = ("1", "2")
# A new id per cube created (kept when it is extended): a product names the cube it is of.
CUBE_ID = "cube_id"
# Set on cubes whose day writes store every chunk (even all-empty ones): a missing chunk of a
# complete day is then damage (`gapfill cube check`).
EVERY_CHUNK = "every_chunk_written"
# The cube group's attrs that other stages read: its grid (`grid_of`; a product copies them),
# the area and search it was built for, and what the build left out.
AOI_ATTR, EPSG_ATTR, RESOLUTION_ATTR, BOUNDS_ATTR = "aoi", "epsg", "resolution", "bounds"
SEARCH_ATTR, MAX_GAP_ATTR = "search", "max_gap_days"
SKIPPED_ITEMS_ATTR, DROPPED_DAYS_ATTR = "skipped_items", "dropped_days"

S2, CLEAR, S1, S1_DT, S1_ORBIT, COMPLETE = "s2", "clear", "s1", "s1_dt", "s1_orbit", "complete"
SPATIAL_REF = "spatial_ref"
DAY_VARS = (S2, CLEAR, S1, S1_DT, S1_ORBIT)
S1_VARS = (S1, S1_DT, S1_ORBIT)
S1_DT_MISSING = -128
S1_ORBIT_MISSING = 0
S2_SCALE = 1e-4
# The smallest reflectance the packing can hold: 0 packs to the _FillValue (no data).
S2_MIN_VALID = S2_SCALE
S1_SCALE = 0.01

ENCODINGS: dict[str, dict[str, Any]] = {
    S2: {"dtype": "uint16", "scale_factor": S2_SCALE, "_FillValue": 0},
    S1: {"dtype": "int16", "scale_factor": S1_SCALE, "_FillValue": -32768},
    CLEAR: {"dtype": "bool"},
    S1_DT: {"dtype": "int8", "_FillValue": S1_DT_MISSING},
    S1_ORBIT: {"dtype": "int16", "_FillValue": S1_ORBIT_MISSING},
    COMPLETE: {"dtype": "bool"},
}

_ATTRS: dict[str, dict[str, Any]] = {
    S2: {"long_name": "surface reflectance", "units": "1"},
    S1: {"long_name": "backscatter (gamma0, RTC)", "units": "dB"},
    CLEAR: {
        "long_name": "clear land or water after dilating cloud and shadow",
        "flag_values": [0, 1],
        "flag_meanings": "cloudy_or_invalid clear",
    },
    # No "units: days": xarray would decode it to a timedelta.
    S1_DT: {"long_name": "days from the S2 day to the matched S1 acquisition (days)"},
    S1_ORBIT: {
        "long_name": "relative orbit of the matched S1 acquisition",
        "comment": "values above 175 are pseudo-orbits (repeat phase and hour) "
        "for items that carry no orbit number",
    },
    COMPLETE: {
        "long_name": "day fully written",
        "flag_values": [0, 1],
        "flag_meanings": "incomplete complete",
    },
}


def pack(name: str, values: np.ndarray) -> np.ndarray:
    """`values` of day variable `name` as the store holds them (CF packing of `ENCODINGS`:
    scaled, rounded, NaN as _FillValue), by xarray's own Zarr encoder, so a block written
    directly equals one written through `to_zarr`."""
    from xarray.backends.zarr import encode_zarr_variable

    dims = tuple(f"d{i}" for i in range(values.ndim))
    var = xr.Variable(dims, values, encoding=dict(ENCODINGS[name]))
    return np.asarray(encode_zarr_variable(var, zarr_format=3).values)


def has_s1(orbit: Any) -> Any:
    """Where a day has matched S1, from `s1_orbit` as stored (0 = none) or as xarray
    decodes it (NaN = none); numpy, xarray and Dask arrays alike."""
    return (orbit == orbit) & (orbit != S1_ORBIT_MISSING)


def spatial_ref(grid: Grid) -> xr.DataArray:
    """The scalar CF grid-mapping variable of a grid (crs_wkt, GeoTransform)."""
    crs = CRS.from_epsg(grid.epsg)
    attrs = dict(crs.to_cf())
    a, b, c, d, e, f = grid.transform
    attrs["GeoTransform"] = f"{c} {a} {b} {f} {d} {e}"
    attrs["spatial_ref"] = crs.to_wkt()
    return xr.DataArray(np.int32(0), attrs=attrs)


def bands_of(ds: xr.Dataset) -> tuple[str, ...]:
    """The Sentinel-2 bands a cube or product holds, in its order (its `band` coordinate)."""
    return tuple(str(b) for b in ds["band"].values)


def template(
    grid: Grid,
    times: np.ndarray,
    chunk: int,
    attrs: Mapping[str, Any],
    bands: tuple[str, ...],
) -> xr.Dataset:
    """A lazy, all-missing cube of `bands` for `times` on `grid`: written with
    `compute=False` it creates every array (and `complete` = False) before any day is
    filled."""
    import dask.array as da

    h, w = grid.shape
    y, x = grid.coords()
    nt = len(times)
    cy, cx = min(chunk, h), min(chunk, w)

    def lazy(shape: tuple[int, ...], dtype: Any, fill: Any, chunks: tuple[int, ...]) -> Any:
        return da.full(shape, fill, dtype=dtype, chunks=chunks)

    ds = xr.Dataset(
        {
            S2: (
                ("time", "band", "y", "x"),
                lazy((nt, len(bands), h, w), np.float32, np.nan, (1, len(bands), cy, cx)),
            ),
            CLEAR: (("time", "y", "x"), lazy((nt, h, w), bool, False, (1, cy, cx))),
            S1: (
                ("time", "pol", "y", "x"),
                lazy((nt, len(S1_POLS), h, w), np.float32, np.nan, (1, len(S1_POLS), cy, cx)),
            ),
            S1_DT: (("time", "y", "x"), lazy((nt, h, w), np.int8, S1_DT_MISSING, (1, cy, cx))),
            S1_ORBIT: (
                ("time", "y", "x"),
                lazy((nt, h, w), np.int16, S1_ORBIT_MISSING, (1, cy, cx)),
            ),
            COMPLETE: (("time",), np.zeros(nt, dtype=bool)),
        },
        coords={
            "time": ("time", np.asarray(times, dtype="datetime64[ns]")),
            "band": ("band", np.array(bands, dtype=object)),
            "pol": ("pol", np.array(S1_POLS, dtype=object)),
            "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
            "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
            SPATIAL_REF: spatial_ref(grid),
        },
        attrs=dict(attrs),
    )
    for name in DAY_VARS + (COMPLETE,):
        ds[name].attrs.update(_ATTRS[name])
        if name != COMPLETE:
            ds[name].attrs["grid_mapping"] = SPATIAL_REF
    # Plain `xr.open_zarr` then returns spatial_ref as a coordinate, so `rio.crs` works.
    ds.attrs["coordinates"] = SPATIAL_REF
    return ds


def encoding(chunk: int, grid: Grid, nbands: int) -> dict[str, dict[str, Any]]:
    """Zarr encodings: CF packing plus chunks time=1, full band/pol, square spatial."""
    h, w = grid.shape
    cy, cx = min(chunk, h), min(chunk, w)
    out: dict[str, dict[str, Any]] = {}
    for name, enc in ENCODINGS.items():
        chunks: tuple[int, ...]
        if name == COMPLETE:
            chunks = (1,)
        elif name == S2:
            chunks = (1, nbands, cy, cx)
        elif name == S1:
            chunks = (1, len(S1_POLS), cy, cx)
        else:
            chunks = (1, cy, cx)
        out[name] = {**enc, "chunks": chunks}
    out["time"] = {"units": "nanoseconds since 1970-01-01", "dtype": "int64"}
    return out


def grid_of(ds: xr.Dataset) -> Grid:
    """The grid a cube (or product) was written on, from its attrs."""
    minx, miny, maxx, maxy = (float(v) for v in ds.attrs[BOUNDS_ATTR])
    epsg, resolution = int(ds.attrs[EPSG_ATTR]), float(ds.attrs[RESOLUTION_ATTR])
    return Grid(epsg, resolution, (minx, miny, maxx, maxy))


def check_region_aligned(
    region: Mapping[str, slice], chunks: Mapping[str, int], sizes: Mapping[str, int]
) -> None:
    """Every write must cover whole Zarr chunks: a misaligned region write corrupts silently."""
    for dim, sl in region.items():
        size = chunks.get(dim)
        if size is None:
            continue
        start, stop = sl.start or 0, sl.stop if sl.stop is not None else sizes[dim]
        if start % size or (stop % size and stop != sizes[dim]):
            raise AssertionError(
                f"region {dim}={start}:{stop} is not aligned to Zarr chunks of {size}"
            )


def consolidate(path: Any) -> None:
    """Consolidated metadata, so that a plain `xr.open_zarr` opens fast and without warning.
    Rewritten after every metadata change (shape, attrs) of a cube or a product; outside
    the v3 spec, but read by zarr-python and xarray."""
    import warnings

    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        zarr.consolidate_metadata(str(path) if isinstance(path, (str, Path)) else path)


def open_cube(
    path: str | Path, chunks: Any = "auto", storage_options: dict[str, Any] | None = None
) -> xr.Dataset:
    """Open a cube lazily (Dask chunks by default; `chunks=None`: lazily indexed numpy,
    best for reading small windows); a path or an fsspec URL (`s3://...`, with
    `storage_options`); anything that is not a cube is a user error."""
    from gapfill import store
    from gapfill.errors import InputError
    from gapfill.storage import shown

    where = shown(str(path))
    try:
        ds = xr.open_zarr(path, chunks=chunks, storage_options=storage_options)
    except ImportError as exc:
        raise InputError(
            f"{where}: {exc} — install the fsspec filesystem for it (s3fs: gapfill[s3])"
        ) from None
    except PermissionError as exc:
        raise InputError(
            f"{where} cannot be read ({exc.strerror}): give a cube you may read"
        ) from None
    except Exception:
        raise InputError(
            f"{where} is not a Zarr store: give a cube made by 'gapfill build-cube'"
        ) from None
    store.require(
        ds.attrs,
        store.CUBE,
        where,
        "give a cube made by 'gapfill build-cube'"
        + (
            f" (this product's cube: {ds.attrs[store.SOURCE_CUBE_ATTR]})"
            if store.SOURCE_CUBE_ATTR in ds.attrs
            else ""
        ),
    )
    if ds.attrs.get(store.CUBE_CONTRACT_ATTR) not in READABLE_CUBE_CONTRACTS:
        raise InputError(
            f"{where} is a gapfill cube of contract {ds.attrs.get(store.CUBE_CONTRACT_ATTR)}, "
            f"which this gapfill cannot read (it reads {', '.join(READABLE_CUBE_CONTRACTS)}): "
            "use the gapfill that wrote it, or rebuild it"
        )
    return ds
