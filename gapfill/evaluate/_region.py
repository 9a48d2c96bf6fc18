"""Pixels of a cube or product grid inside an AOI given in lon/lat."""

from __future__ import annotations

import numpy as np
import xarray as xr

from gapfill.cube import layout


def region_mask(ds: xr.Dataset, region: str | None) -> np.ndarray:
    """(y, x) bool: pixel centres inside `region` (AOI text: bbox, WKT or GeoJSON file);
    every pixel when None."""
    if region is None:
        return np.ones((ds.sizes["y"], ds.sizes["x"]), bool)
    import shapely
    from pyproj import Transformer

    from gapfill.grid import parse_aoi

    to_grid = Transformer.from_crs(4326, int(ds.attrs[layout.EPSG_ATTR]), always_xy=True)
    geom = shapely.transform(
        parse_aoi(region).geometry.segmentize(0.01), to_grid.transform, interleaved=False
    )
    xx, yy = np.meshgrid(ds["x"].values, ds["y"].values)
    return np.asarray(shapely.contains_xy(geom, xx, yy), bool)
