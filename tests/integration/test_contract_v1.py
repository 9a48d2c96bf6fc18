"""Stores written before band sets (cube contract 1, product contract 2: the four bands
hard-wired) still open, extend and fill with today's code, read as their four bands.

The stores in tests/data/contract-v1 were written by gapfill at 83b8bb8 from the real
sample (see the README there) and are never regenerated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gapfill.bands import DEFAULT_BANDS, PAPER_BANDS
from gapfill.cube import CubeConfig, build_cube, cube_info
from gapfill.cube.layout import open_cube
from gapfill.errors import InputError
from gapfill.fill import FillConfig, fill, quicklook
from tests.conftest import save_untrained_model

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "data" / "contract-v1"


@pytest.fixture
def old(tmp_path) -> dict[str, Path]:
    """Writable copies of the old cube and product (the product's cube link is the path
    it was written with; it names the cube by id, which the copy keeps)."""
    out = {}
    for name in ("cube-v1.zarr", "filled-v1.zarr"):
        shutil.copytree(FIXTURE / name, tmp_path / name)
        out[name.split("-")[0]] = tmp_path / name
    return out


def _extension(cube: Path, url: str, end: str, **kw) -> CubeConfig:
    stored = CubeConfig.model_validate_json(xr.open_zarr(cube).attrs["search"])
    return CubeConfig(aoi=stored.aoi, start=stored.start, end=end, stac_url=url, chunk=32, **kw)


def test_an_old_cube_opens_as_four_bands_extends_and_fills(tmp_path, old, stac_api, dask_address):
    ds = open_cube(old["cube"])
    assert ds.attrs["cube_contract_version"] == "1"
    assert tuple(ds.band.values) == PAPER_BANDS and cube_info(old["cube"])["bands"] == list(
        PAPER_BANDS
    )
    first = ds.s2.isel(time=0).values
    # Extended with later days: its own four bands (a ten-band request is refused).
    with pytest.raises(InputError, match="holds bands B02,B03,B04,B08, not B02,B03,B04,B05"):
        build_cube(
            old["cube"], _extension(old["cube"], stac_api.url, "2018-05-06", bands="default")
        )
    report = build_cube(
        old["cube"],
        _extension(old["cube"], stac_api.url, "2018-05-06"),
        dask_scheduler=dask_address,
    )
    assert report.days_written == ["2018-04-26", "2018-05-01", "2018-05-04", "2018-05-06"]
    grown = open_cube(old["cube"])
    assert tuple(grown.band.values) == PAPER_BANDS and grown.sizes["time"] == 12
    assert bool(grown.complete.all()) and grown.attrs["cube_contract_version"] == "1"
    np.testing.assert_array_equal(grown.s2.isel(time=0).values, first)
    # The new days hold what a cube of today's contract with the paper's bands holds.
    fresh = tmp_path / "fresh.zarr"
    build_cube(
        fresh,
        _extension(old["cube"], stac_api.url, "2018-05-06", bands="paper"),
        dask_scheduler=dask_address,
    )
    new = xr.open_zarr(fresh)
    assert new.attrs["cube_contract_version"] == "2"
    xr.testing.assert_identical(
        grown.s2.isel(time=slice(8, None)), new.s2.isel(time=slice(8, None))
    )

    # The old product grows with them (same cube id, its four bands) ...
    report = fill(
        FillConfig(cube=str(old["cube"]), out=str(old["filled"]), method="interpolate"),
        dask_scheduler=dask_address,
    )
    assert report.days_filled[-1] == "2018-05-06"
    product = xr.open_zarr(old["filled"])
    assert product.attrs["product_contract_version"] == "2"
    assert tuple(product.band.values) == PAPER_BANDS and product.sizes["time"] == 12
    assert bool(product.complete.all())
    png = quicklook(old["filled"], "2018-05-04", tmp_path / "q.png")
    assert png.stat().st_size > 1000
    # ... and a four-band model fills the old cube; a ten-band one is refused.
    four = save_untrained_model(tmp_path / "four", bands=PAPER_BANDS)
    fill(
        FillConfig(
            cube=str(old["cube"]), out=str(tmp_path / "m.zarr"), model=str(four), quicklooks=False
        ),
        dask_scheduler=dask_address,
    )
    made = xr.open_zarr(tmp_path / "m.zarr")
    assert made.attrs["product_contract_version"] == "3"
    assert tuple(made.band.values) == PAPER_BANDS and int((made.status == 2).sum()) > 0
    ten = save_untrained_model(tmp_path / "ten", bands=DEFAULT_BANDS)
    with pytest.raises(InputError, match="reads and writes bands B02,B03,B04,B05") as err:
        fill(
            FillConfig(cube=str(old["cube"]), out=str(tmp_path / "n.zarr"), model=str(ten)),
            dask_scheduler=dask_address,
        )
    assert "holds B02,B03,B04,B08" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "n.zarr").exists()


def test_the_old_product_opens_plainly(old):
    import rioxarray  # noqa: F401  (registers .rio)

    ds = xr.open_zarr(old["filled"])
    assert tuple(ds.band.values) == PAPER_BANDS and ds.rio.crs.to_epsg() == 32631
    assert json.loads(ds.attrs["fill_runs"])[0]["config"]["method"] == "interpolate"
    assert int((ds.status == 1).sum()) > 0 and bool(ds.complete.all())
    clear = ds.s2.where(ds.status == 1)
    assert float(clear.min()) > 0 and float(clear.max()) < 1
