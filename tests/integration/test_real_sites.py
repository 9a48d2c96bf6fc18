"""The three real places build and fill: Flanders A (10 m and 20 m bands), Flanders C and
Tanzania D (20 m bands only, so 20 m cubes), each through the real local STAC API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.enums import Resampling
from rasterio.warp import reproject

from gapfill.bands import BAND_SETS
from gapfill.cube import CubeConfig, build_cube
from gapfill.errors import InputError
from gapfill.fill import FillConfig, fill
from gapfill.grid import inset_lonlat_wkt
from tests.conftest import site_square

pytestmark = pytest.mark.integration


def _config(site, url: str, bands: str, start: str, end: str) -> CubeConfig:
    epsg, bounds = site_square(site)
    return CubeConfig(
        aoi=inset_lonlat_wkt(list(bounds), epsg),
        start=start,
        end=end,
        stac_url=url,
        bands=bands,
        resolution=20,
        chunk=32,
    )


@pytest.mark.parametrize(
    ("name", "bands", "start", "end"),
    [
        ("A", "default", "2018-03-01", "2018-06-30"),  # its 10 m bands averaged to 20 m
        ("C", "20m", "2019-03-01", "2019-06-30"),
        ("D", "20m", "2020-01-01", "2020-04-30"),  # the short rains, sparse Sentinel-1
    ],
)
def test_each_real_site_builds_a_20m_cube_and_fills_it_with_a_baseline(
    tmp_path, real_sites, stac_api, dask_address, name, bands, start, end
):
    site = real_sites[name]
    cube = tmp_path / f"cube-{name}.zarr"
    report = build_cube(
        cube, _config(site, stac_api.url, bands, start, end), dask_scheduler=dask_address
    )
    assert len(report.days_written) >= 10 and not report.skipped_items
    ds = xr.open_zarr(cube)
    assert tuple(ds.band.values) == BAND_SETS[bands] and ds.sizes["y"] == ds.sizes["x"] == 32
    assert float(ds.attrs["resolution"]) == 20.0 and bool(ds.complete.all())
    assert float(ds.clear.mean()) > 0.1 and float(ds.s1.notnull().mean()) > 0.3
    if name == "A":  # B02 (10 m COG) on the 20 m grid: GDAL's area average, to the packing
        items = json.loads(ds.attrs["items_per_day"])
        t = ds.time.values[int(np.argmax(ds.clear.mean(("y", "x")).values))]
        (item_id,) = items[str(t)[:10]]
        path = site / "sentinel-2-l2a" / item_id / f"{item_id}.json"
        cog = path.parent / json.loads(path.read_text())["assets"]["B02"]["href"]
        want = np.zeros((32, 32))
        with rasterio.open(cog) as src:
            reproject(
                rasterio.band(src, 1),
                want,
                dst_transform=rasterio.Affine(
                    20, 0, float(ds.x[0]) - 10, 0, -20, float(ds.y[0]) + 10
                ),
                dst_crs=src.crs,
                dst_nodata=0,
                resampling=Resampling.average,
            )
        got = ds.s2.sel(time=t, band="B02").values
        np.testing.assert_allclose(got, np.maximum(want / 1e4, 1e-4), atol=0.5001e-4)

    out = tmp_path / f"filled-{name}.zarr"
    filled = fill(
        FillConfig(cube=str(cube), out=str(out), method="interpolate"),
        dask_scheduler=dask_address,
    )
    assert filled.pixels_filled > 0
    product = xr.open_zarr(out)
    assert tuple(product.band.values) == BAND_SETS[bands]
    done = product.status == 2
    values = product.s2.where(done).values
    assert np.isfinite(values).sum() == int(done.sum()) * len(BAND_SETS[bands])
    assert np.nanmin(values) > 0 and np.nanmax(values) < 1.5
    item = json.loads((tmp_path / f"filled-{name}.item.json").read_text())
    eo = item["assets"]["zarr"]["eo:bands"]
    assert [b["name"] for b in eo] == list(BAND_SETS[bands])
    assert [b["name"] for b in item["assets"]["zarr"]["raster:bands"]] == list(BAND_SETS[bands])
    look = sorted((tmp_path / f"filled-{name}-quicklooks").glob("*.png"))
    assert look, "no quicklook written"


def test_a_20m_only_site_refuses_the_ten_bands_in_one_line(tmp_path, real_sites, stac_api):
    out = tmp_path / "c.zarr"
    cfg = _config(real_sites["C"], stac_api.url, "default", "2019-03-01", "2019-04-30")
    with pytest.raises(InputError) as err:
        build_cube(out, cfg)
    text = str(err.value)
    assert "lacks band B02, B03, B04, B08" in text and "\n" not in text
    assert "--bands B05,B06,B07,B8A,B11,B12" in text
    assert not out.exists()
    # At 10 m the hint also names the 20 m grid those bands allow.
    with pytest.raises(InputError, match="and --resolution 20"):
        build_cube(out, cfg.model_copy(update={"resolution": 10.0}))
    # A request of 10 m bands only cannot be met at 20 m either: the bands are not there.
    with pytest.raises(InputError, match="lacks band B02, B03, B04, B08: none of the"):
        build_cube(out, cfg.model_copy(update={"bands": ("B02", "B03", "B04", "B08")}))
    assert not out.exists()
