"""The STAC Item that describes a filled product, written beside the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pystac
import shapely
import xarray as xr
from pyproj import Transformer
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from gapfill import store
from gapfill.bands import EO_BANDS
from gapfill.cube import layout
from gapfill.fill import product
from gapfill.storage import absolute, is_url

__all__ = ["write_item", "item_path"]

ZARR_MEDIA_TYPE = "application/vnd+zarr"


def item_path(out: str | Path) -> str:
    """`filled.zarr` -> `filled.item.json` beside it (a path, or a URL for a store URL)."""
    location = absolute(str(out)).rstrip("/")
    parent, _, name = location.rpartition("/")
    return f"{parent}/{name.removesuffix('.zarr')}.item.json"


def _utc(t: np.datetime64) -> datetime:
    return datetime.fromisoformat(str(t.astype("datetime64[s]"))).replace(tzinfo=UTC)


def write_item(out: str | Path, storage_options: dict[str, Any] | None = None) -> str:
    """Write (or rewrite) the product's Item: footprint, time span, projection and raster
    extensions, one asset for the Zarr store; returns where (a path or URL)."""
    location = absolute(str(out)).rstrip("/")
    name = location.rpartition("/")[2]
    ds = xr.open_zarr(store.zarr_store(location, storage_options))
    grid = layout.grid_of(ds)
    footprint = shapely.box(*grid.bounds)
    to_lonlat = Transformer.from_crs(grid.epsg, 4326, always_xy=True)
    geom = shapely.transform(
        footprint.segmentize(grid.resolution * 64), to_lonlat.transform, interleaved=False
    )
    times = ds["time"].values
    done = ds[product.COMPLETE].values
    bands = layout.bands_of(ds)
    item = pystac.Item(
        id=name.removesuffix(".zarr"),
        geometry=json.loads(shapely.to_geojson(geom)),
        bbox=list(geom.bounds),
        datetime=None,
        start_datetime=_utc(times.min()),
        end_datetime=_utc(times.max()),
        properties={
            "gapfill:product_contract_version": product.PRODUCT_CONTRACT_VERSION,
            "gapfill:model_sha256": ds.attrs.get(product.MODEL_SHA256_ATTR, ""),
            "gapfill:fill_method": ds.attrs.get(product.FILL_METHOD_ATTR, "model"),
            "gapfill:uses_later_days": bool(ds.attrs.get(product.USES_LATER_DAYS_ATTR, False)),
            "gapfill:method_choice": ds.attrs.get(product.METHOD_CHOICE_ATTR, ""),
            "gapfill:days": len(times),
            "gapfill:days_complete": int(done.sum()),
        },
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = f"EPSG:{grid.epsg}"
    proj.shape = list(grid.shape)
    proj.transform = list(grid.transform)
    proj.bbox = list(grid.bounds)
    asset = pystac.Asset(
        href=f"./{name}",
        media_type=ZARR_MEDIA_TYPE,
        roles=["data"],
        title="filled Sentinel-2 reflectance, status flags and reference age (Zarr v3)",
        extra_fields={"xarray:open_kwargs": {"engine": "zarr", "chunks": {}}},
    )
    item.add_asset("zarr", asset)
    scale = layout.ENCODINGS[layout.S2]["scale_factor"]
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=0,
            data_type=DataType.UINT16,
            scale=scale,
            offset=0.0,
            spatial_resolution=grid.resolution,
        )
        for _ in bands
    ]
    for band, rb in zip(bands, asset.extra_fields["raster:bands"], strict=True):
        rb["name"] = band
    # eo:bands per band, in the store's order: name, common name, centre wavelength (µm).
    EOExtension.ext(asset, add_if_missing=True).bands = [
        Band.create(name=b, common_name=EO_BANDS[b][0], center_wavelength=EO_BANDS[b][1])
        for b in bands
    ]
    item.properties["gapfill:bands"] = list(bands)
    path = item_path(location)
    text = json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=2)
    if is_url(path):  # an object is replaced whole by one PUT: no temporary needed
        fs, key = fsspec.core.url_to_fs(path, **(storage_options or {}))
        fs.pipe_file(key, text.encode())
        return path
    local = Path(path)
    tmp = local.with_name(f".{local.name}.tmp")
    tmp.write_text(text)
    tmp.replace(local)
    return path
