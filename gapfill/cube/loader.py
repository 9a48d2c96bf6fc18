"""The one place that calls stackstac, with its pitfalls handled (see STACK-NOTES.md).

- it reads only `proj:epsg`: copied from `proj:code` when an item has only that;
- float32 needs a NaN fill and `rescale=False` (scale/offset are applied by the caller);
- `xy_coords="center"` (the default is pixel corners, half a pixel off);
- bounds are already snapped to the grid, so `snap_bounds=False`;
- stackstac sets no HTTP retries: a remote COG answering 429/5xx once would fail a whole
  build, so GDAL retries (`HTTP_RETRY`) with a growing delay.
Swapping in odc-stac means rewriting this module only.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import stackstac
import xarray as xr
from rasterio.enums import Resampling

from gapfill.grid import Grid
from gapfill.stac.providers import item_epsg

__all__ = ["stac_dicts", "load", "HTTP_RETRY"]

# GDAL's own retry of HTTP 429, 502, 503 and 504 answers (and connection failures), for
# every read of a remote COG (`load`, and the cube build's probe).
HTTP_RETRY = {"GDAL_HTTP_MAX_RETRY": "5", "GDAL_HTTP_RETRY_DELAY": "1"}
_GDAL_ENV = stackstac.DEFAULT_GDAL_ENV.updated(always=HTTP_RETRY)


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
) -> xr.DataArray:
    """Lazy (item, asset, y, x) float32 on `grid`, NaN where an asset has no data."""
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
