"""The direct loader gives stackstac's values: on the cube grid (plain windowed reads,
SCL repeated from 20 m), on grids it must warp to, and past the items' edges."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from gapfill.bands import DEFAULT_BANDS, S1_POLS, S2_SCL
from gapfill.cube.compute import _canonical
from gapfill.cube.loader import _aligned, load
from gapfill.grid import Grid, parse_aoi, parse_date_range
from gapfill.stac import profiles_for, search
from tests.conftest import REAL_BOUNDS, world_meta


def _items(url: str, bounds: tuple[float, float, float, float], epsg: int, meta=None):
    """S2 and S1 item dicts over `bounds` (those of world `meta` only, when given: other
    test worlds lie at the same place)."""
    from gapfill.grid import inset_lonlat_wkt

    s2p, s1p = profiles_for(stac_url=url)
    area = parse_aoi(inset_lonlat_wkt(list(bounds), epsg))
    found = search(area, parse_date_range("2000-01-01", "2100-01-01"), s2p, s1p)
    ours = {s["id"] for s in meta["s2"] + meta["s1"]} if meta else None
    s2, s1 = (
        [i.to_dict() for i in f if ours is None or i.id in ours] for f in (found.s2, found.s1)
    )
    return (
        _canonical(s2, [*DEFAULT_BANDS, S2_SCL], s2p),
        _canonical(s1, S1_POLS, s1p),
    )


def _both(items, assets, grid: Grid, chunk: int, resampling: Resampling) -> None:
    direct = load(items, assets, grid, chunk, resampling).compute(scheduler="synchronous")
    ref = load(items, assets, grid, chunk, resampling, engine="stackstac").compute(
        scheduler="synchronous"
    )
    assert direct.shape == ref.shape == (len(items), len(assets), *grid.shape)
    np.testing.assert_array_equal(direct.x.values, ref.x.values)
    np.testing.assert_array_equal(direct.y.values, ref.y.values)
    assert np.isfinite(direct.values).any()
    np.testing.assert_array_equal(direct.values, ref.values)


def _paths(items, asset: str) -> list[str]:
    return [d["assets"][asset]["href"] for d in items]


@pytest.mark.parametrize(
    "name, shift, resolution",
    [
        ("on the grid", 0.0, 10.0),
        ("past the items' edges", 370.0, 10.0),
        ("warped to 30 m", 0.0, 30.0),
    ],
)
def test_direct_reads_equal_stackstac_on_the_synthetic_world(
    world_pc, stac_api, name, shift, resolution
):
    meta = world_meta(world_pc)
    minx, miny, maxx, maxy = meta["bounds"]
    s2, s1 = _items(stac_api.url, (minx, miny, maxx, maxy), meta["epsg"], meta)
    grid = Grid.snapped(meta["epsg"], (minx - shift, miny, maxx, maxy + shift), resolution)
    with rasterio.open(_paths(s2, S2_SCL)[0]) as ds:
        fit = _aligned(ds, grid, Resampling.nearest)
    assert (fit is None) == (resolution != 10.0)  # each case takes the path it names
    if fit is not None:
        assert fit[0] == 2  # SCL: 20 m pixels repeated onto the 10 m grid
    with rasterio.open(_paths(s2, "B05")[0]) as ds:  # a 20 m band, bilinear: no warp either
        assert (_aligned(ds, grid, Resampling.bilinear) is None) == (resolution != 10.0)
    _both(s2[:3], [*DEFAULT_BANDS, S2_SCL], grid, 32, Resampling.nearest)
    _both(s2[:3], ["B05", "B11"], grid, 32, Resampling.bilinear)  # 20 m bands onto 10 m
    _both(s1[:3], list(S1_POLS), grid, 48, Resampling.bilinear)


def test_direct_reads_equal_stackstac_on_the_real_sample(stac_api):
    s2, s1 = _items(stac_api.url, REAL_BOUNDS, 32631)
    grid = Grid(32631, 10.0, REAL_BOUNDS)
    _both(s2[:4], [*DEFAULT_BANDS, S2_SCL], grid, 40, Resampling.nearest)
    _both(s2[:4], ["B05", "B8A", "B12"], grid, 40, Resampling.bilinear)
    _both(s2[:4], ["B02", "B08"], Grid(32631, 20.0, REAL_BOUNDS), 16, Resampling.average)
    _both(s1[:4], list(S1_POLS), grid, 40, Resampling.bilinear)


def test_a_missing_file_names_its_href(tmp_path):
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "x",
        "properties": {"datetime": "2022-01-01T00:00:00Z", "proj:epsg": 32631},
        "geometry": None,
        "assets": {"b": {"href": str(tmp_path / "nothing.tif")}},
        "links": [],
    }
    grid = Grid(32631, 10.0, (500000.0, 5000000.0, 500320.0, 5000320.0))
    with pytest.raises(RuntimeError, match="nothing.tif"):
        load([item], ["b"], grid, 32).compute(scheduler="synchronous")
