"""The synthetic world looks like the real products and is deterministic."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from gapfill.bands import DEFAULT_BANDS, PAPER_BANDS, band_resolution
from gapfill.errors import InputError
from gapfill.stac.providers import asset_key, get_profile, s2_scale_offset
from gapfill.synth import WorldSpec, make_world
from tests.conftest import world_meta


def _items(world: Path) -> dict[str, list[pystac.Item]]:
    cat = pystac.Catalog.from_file(str(world / "catalog.json"))
    out: dict[str, list[pystac.Item]] = {}
    for item in cat.get_items(recursive=True):
        out.setdefault(item.collection_id, []).append(item)
    for v in out.values():
        v.sort(key=lambda i: i.datetime)
    return out


def _read(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as ds:
        return ds.read(1)


def _truth(world: Path, item_id: str, bands=PAPER_BANDS) -> np.ndarray:
    """The true reflectance of `bands` (10 m), from the truth file of every band."""
    with rasterio.open(world / "truth" / f"{item_id}.tif") as ds:
        return ds.read([DEFAULT_BANDS.index(b) + 1 for b in bands]).astype(np.float64) / 10000.0


def _reflectance(item: pystac.Item, provider: str, bands=PAPER_BANDS) -> np.ndarray:
    profile = get_profile("s2", provider)
    out = []
    for b in bands:
        key = asset_key(item, b, profile)
        scale, offset = s2_scale_offset(item, key, profile)
        out.append(_read(item, key) * scale + offset)
    return np.stack(out)


def test_catalog_is_valid_stac_with_pc_conventions(world_pc, real_sample):
    items = _items(world_pc)
    meta = world_meta(world_pc)
    assert set(items) == {"sentinel-2-l2a", "sentinel-1-rtc"}
    assert len(items["sentinel-2-l2a"]) == 12 == len(meta["s2"])
    real_ids = {
        i.id
        for i in pystac.Catalog.from_file(str(real_sample / "catalog.json")).get_items(
            recursive=True
        )
    }
    assert not real_ids & {i.id for v in items.values() for i in v}
    s2 = items["sentinel-2-l2a"][0]
    assert set(s2.assets) == {*DEFAULT_BANDS, "SCL"}
    # pystac migrates projection v1 to v2 on read (dropping proj:epsg): check the file.
    raw_props = json.loads((world_pc / "sentinel-2-l2a" / s2.id / f"{s2.id}.json").read_text())[
        "properties"
    ]
    assert raw_props["proj:epsg"] == 32649 and raw_props["proj:code"] == "EPSG:32649"
    assert s2.properties["s2:processing_baseline"] == "04.00"
    assert s2.properties["s2:mgrs_tile"] == "49RFP"
    assert 0 <= s2.properties["eo:cloud_cover"] <= 100
    s1 = items["sentinel-1-rtc"]
    assert {tuple(i.properties["sar:polarizations"]) for i in s1} == {("VV", "VH")}
    assert len({i.properties["sat:relative_orbit"] for i in s1}) == 2
    assert {i.properties["sat:orbit_state"] for i in s1} == {"ascending", "descending"}
    for item in items["sentinel-2-l2a"] + s1:
        assert item.geometry["type"] == "Polygon" and len(item.bbox) == 4
    # Relative hrefs inside a self-contained catalog.
    raw = (world_pc / "sentinel-2-l2a" / s2.id / f"{s2.id}.json").read_text()
    assert '"href": "../../s2/' in raw


def test_pixels_follow_the_pc_dn_convention_and_the_truth(world_pc):
    items = _items(world_pc)["sentinel-2-l2a"]
    meta = world_meta(world_pc)
    clear = items[0]
    assert meta["s2"][0]["target_cover"] == 0.0
    truth = _truth(world_pc, clear.id)
    dn = np.stack([_read(clear, b) for b in PAPER_BANDS]).astype(np.int64)
    # Baseline 04.00: DN = reflectance * 10000 + 1000, exactly, on a clear day.
    np.testing.assert_array_equal(dn - 1000, np.round(truth * 10000).astype(np.int64))
    np.testing.assert_allclose(_reflectance(clear, "planetary-computer"), truth, atol=1e-9)
    scl = _read(clear, "SCL")
    assert scl.shape == (32, 32)
    assert not np.isin(scl, (0, 3, 8, 9, 10)).any()
    with (
        rasterio.open(clear.assets["SCL"].get_absolute_href()) as ds,
        rasterio.open(clear.assets["B02"].get_absolute_href()) as b02,
    ):
        assert ds.res == (20.0, 20.0) and b02.res == (10.0, 10.0)
        assert ds.transform.c == b02.transform.c and ds.transform.f == b02.transform.f
        assert b02.crs.to_epsg() == 32649 and b02.nodata == 0


def test_clouds_brighten_and_scl_marks_them(world_pc):
    items = _items(world_pc)["sentinel-2-l2a"]
    meta = world_meta(world_pc)
    pairs = zip(items, meta["s2"], strict=True)
    partial = next(i for i, d in pairs if 20 < d["eo:cloud_cover"] < 80)
    refl = _reflectance(partial, "planetary-computer")
    truth = _truth(world_pc, partial.id)
    scl = np.kron(_read(partial, "SCL"), np.ones((2, 2), dtype=np.uint8))
    cloudy = scl == 9
    surface = np.isin(scl, (4, 5, 6))
    assert cloudy.mean() > 0.05 and surface.mean() > 0.05
    assert np.median(refl[0][cloudy] - truth[0][cloudy]) > 0.15
    assert np.median(np.abs(refl[:, surface] - truth[:, surface])) < 0.01
    assert any(d["eo:cloud_cover"] > 95 for d in meta["s2"])
    assert any(d["eo:cloud_cover"] < 5 for d in meta["s2"])


def test_tile_edge_day_has_nodata_and_a_smaller_footprint(world_pc):
    items = _items(world_pc)["sentinel-2-l2a"]
    edge = items[2]
    b02 = _read(edge, "B02")
    assert (b02[:, :9] == 0).all() and (b02[:, 10:] > 0).all()
    assert (_read(edge, "SCL")[:, :4] == 0).all()
    assert edge.bbox[0] > items[0].bbox[0]


def test_s1_rtc_is_linear_power_with_nodata_and_near_every_s2_day(world_pc):
    items = _items(world_pc)
    s2_times = [i.datetime for i in items["sentinel-2-l2a"]]
    s1 = items["sentinel-1-rtc"]
    for t in s2_times:
        assert min(abs(i.datetime - t) for i in s1) <= timedelta(days=5)
    for i in s1:
        assert min(abs(i.datetime - t) for t in s2_times) <= timedelta(days=5)
    full = next(i for i in s1 if i.properties["sat:orbit_state"] == "ascending")
    part = next(i for i in s1 if i.properties["sat:orbit_state"] == "descending")
    vv = _read(full, "vv")
    assert (vv > 0).all()
    assert -16 < np.median(10 * np.log10(vv)) < -5
    vh_part = _read(part, "vh")
    assert (vh_part[:, :22] == -32768).all() and (vh_part[:, 23:] > 0).all()
    assert full.assets["vv"].extra_fields["raster:bands"][0]["nodata"] == -32768


def test_earth_search_conventions(world_es):
    items = _items(world_es)["sentinel-2-l2a"]
    item = items[0]
    assert set(item.assets) == {
        "blue",
        "green",
        "red",
        "rededge1",
        "rededge2",
        "rededge3",
        "nir",
        "nir08",
        "swir16",
        "swir22",
        "scl",
    }
    assert item.properties["grid:code"] == "MGRS-38SMF"
    assert "s2:mgrs_tile" not in item.properties
    rb = item.assets["blue"].extra_fields["raster:bands"][0]
    assert rb["scale"] == 0.0001 and rb["offset"] == -0.1
    # raster:bands alone decide: same reflectance as the truth, no double offset.
    np.testing.assert_allclose(
        _reflectance(item, "earth-search"), _truth(world_es, item.id), atol=1e-9
    )


def test_ten_bands_at_their_native_resolution_with_plausible_spectra(world_pc, world_es):
    clear = _items(world_pc)["sentinel-2-l2a"][0]
    twenty = [b for b in DEFAULT_BANDS if band_resolution(b) == 20]
    assert twenty == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    for b in DEFAULT_BANDS:
        with rasterio.open(clear.assets[b].get_absolute_href()) as ds:
            assert ds.res == (float(band_resolution(b)),) * 2 and ds.dtypes[0] == "uint16"
    # A 20 m pixel is the mean of the four 10 m pixels of its area (truth is 10 m).
    truth = _truth(world_pc, clear.id, DEFAULT_BANDS)
    refl20 = _reflectance(clear, "planetary-computer", twenty)
    mean4 = truth[[DEFAULT_BANDS.index(b) for b in twenty]].reshape(6, 32, 2, 32, 2).mean((2, 4))
    # (Both sides rounded to 1e-4: the truth per 10 m pixel, the DN after the mean.)
    np.testing.assert_allclose(refl20, mean4, atol=1.001e-4)
    # Spectra where it matters: vegetation climbs the red edge and falls in the SWIR;
    # water is dark beyond the red; bare arid soil rises into the SWIR.
    with rasterio.open(world_pc / "truth" / "landcover.tif") as ds:
        cover = ds.read(1)
    i = {b: DEFAULT_BANDS.index(b) for b in DEFAULT_BANDS}
    forest = truth[:, cover == 2]
    assert forest.shape[1] > 20
    assert np.median(forest[i["B8A"]] / forest[i["B05"]]) > 2
    assert np.median(forest[i["B11"]] / forest[i["B08"]]) < 0.7
    water = truth[:, cover == 0]
    assert water.shape[1] > 5 and np.median(water[i["B11"]]) < 0.03
    arid = _truth(world_es, _items(world_es)["sentinel-2-l2a"][0].id, DEFAULT_BANDS)
    with rasterio.open(world_es / "truth" / "landcover.tif") as ds:
        bare = arid[:, ds.read(1) == 4]
    assert bare.shape[1] > 20 and np.median(bare[i["B11"]] / bare[i["B04"]]) > 1.2


def _all_pixels(world: Path) -> dict[str, np.ndarray]:
    out = {}
    for tif in sorted(world.rglob("*.tif")):
        with rasterio.open(tif) as ds:
            out[str(tif.relative_to(world))] = ds.read()
    return out


def test_deterministic_and_independent_of_block_size(tmp_path):
    a = make_world(tmp_path / "a", WorldSpec(size=128, dates=3, seed=4, block=64)).parent
    b = make_world(tmp_path / "b", WorldSpec(size=128, dates=3, seed=4, block=1024)).parent
    pa, pb = _all_pixels(a), _all_pixels(b)
    assert pa.keys() == pb.keys() and len(pa) > 20
    for key in pa:
        np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)
    c = make_world(tmp_path / "c", WorldSpec(size=128, dates=3, seed=5)).parent
    assert not np.array_equal(pa["truth/landcover.tif"], _all_pixels(c)["truth/landcover.tif"])


def test_refuses_to_overwrite_and_leaves_nothing_partial(tmp_path, monkeypatch):
    out = tmp_path / "w"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        make_world(out, WorldSpec(size=64, dates=2))
    assert (out / "keep.txt").read_text() == "mine"

    import gapfill.synth.world as world_mod

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(world_mod, "_write_catalog", boom)
    with pytest.raises(RuntimeError):
        make_world(tmp_path / "new", WorldSpec(size=64, dates=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_world_spec_bounds():
    with pytest.raises(ValueError):
        WorldSpec(size=65)
    with pytest.raises(ValueError):
        WorldSpec(size=32)
    with pytest.raises(ValueError):
        WorldSpec(landscape="moon")  # type: ignore[arg-type]
    assert WorldSpec().location.epsg == 32649
    assert datetime(2022, 1, 25) < datetime.combine(WorldSpec().start, datetime.min.time())
