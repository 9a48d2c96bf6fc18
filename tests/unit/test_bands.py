"""Band sets are data: parsed once, in Sentinel-2 order, refused in one line when wrong."""

import numpy as np
import pytest

from gapfill.bands import (
    BAND_SETS,
    DEFAULT_BANDS,
    PAPER_BANDS,
    display_bands,
    parse_bands,
)
from gapfill.cube import CubeConfig
from gapfill.cube.compute import reflectance_resampling
from gapfill.errors import InputError
from gapfill.normalize import Normalisation
from gapfill.stac.providers import custom_profiles, get_profile, missing_bands
from tests.conftest import load_item


def test_sets_and_lists_parse_to_sentinel2_order():
    assert parse_bands("default") == DEFAULT_BANDS
    assert len(DEFAULT_BANDS) == 10 and "B8A" in DEFAULT_BANDS and "B01" not in DEFAULT_BANDS
    assert parse_bands("paper") == PAPER_BANDS == ("B02", "B03", "B04", "B08")
    assert parse_bands("B8A,B02, B12,B08") == ("B02", "B08", "B8A", "B12")
    assert parse_bands(["B11", "B05"]) == ("B05", "B11") == parse_bands("B05,B11")
    assert parse_bands("20m") == ("B05", "B06", "B07", "B8A", "B11", "B12")
    assert len(BAND_SETS["all"]) == 12


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("B02,B13", "unknown band 'B13'"),
        ("b02", "unknown band 'b02'"),
        ("B02,B03,B02", "band B02 is named twice"),
        (",", "no bands given"),
        ("rgb", "unknown band 'rgb'"),
    ],
)
def test_bad_band_lists_are_refused_in_one_line(text, says):
    with pytest.raises(InputError, match=says) as err:
        parse_bands(text)
    assert "\n" not in str(err.value)
    # The cube config says the same through pydantic (what the CLI prints).
    with pytest.raises(ValueError, match=says):
        CubeConfig(aoi="0,0,1,1", start="2020-01-01", end="2020-01-02", bands=text)


def test_no_grid_finer_than_sentinel2s_finest_band():
    with pytest.raises(ValueError, match="resolution"):
        CubeConfig(aoi="0,0,1,1", start="2020-01-01", end="2020-01-02", resolution=5)
    assert CubeConfig(aoi="0,0,1,1", start="2020-01-01", end="2020-01-02", resolution=20)


def test_the_cube_config_defaults_to_the_ten_bands():
    cfg = CubeConfig(aoi="0,0,1,1", start="2020-01-01", end="2020-01-02")
    assert cfg.bands == DEFAULT_BANDS
    assert CubeConfig.model_validate_json(cfg.model_dump_json()).bands == DEFAULT_BANDS


def test_quicklooks_use_true_colour_else_a_named_false_colour():
    assert display_bands(DEFAULT_BANDS) == (("B04", "B03", "B02"), "true colour (B04, B03, B02)")
    assert display_bands(BAND_SETS["20m"])[0] == ("B11", "B8A", "B05")
    assert display_bands(BAND_SETS["20m"])[1].startswith("false colour")
    assert display_bands(("B05", "B11"))[0] == ("B05", "B11", "B05")


def test_reflectance_is_averaged_down_and_bilinear_up():
    from rasterio.enums import Resampling

    assert reflectance_resampling("B05", 10) == Resampling.bilinear
    assert reflectance_resampling("B02", 20) == Resampling.average
    assert reflectance_resampling("B02", 10) == Resampling.nearest
    assert reflectance_resampling("B11", 20) == Resampling.nearest


def test_a_catalog_without_a_band_is_found_before_any_read():
    pc = load_item("planetary-computer-s2.json")
    profile = get_profile("s2", "planetary-computer")
    assert missing_bands([pc], DEFAULT_BANDS, profile) == {}
    without = {**pc, "assets": {k: v for k, v in pc["assets"].items() if k != "B05"}}
    lacking = missing_bands([without, without], DEFAULT_BANDS, profile)
    assert list(lacking) == ["B05"] and "none of the 2 items" in lacking["B05"]
    # One item with the band is enough: the others are skipped with a reason at the probe.
    assert missing_bands([without, pc], DEFAULT_BANDS, profile) == {}
    es = load_item("earth-search-s2.json")
    assert missing_bands([es], BAND_SETS["all"], custom_profiles("http://x")[0]) == {}


def test_normalisation_is_recorded_per_band_and_equals_the_single_range_by_default():
    refl = np.random.default_rng(0).uniform(0, 0.7, (10, 4, 4)).astype(np.float32)
    flat = Normalisation()
    per_band = flat.for_bands(DEFAULT_BANDS)
    assert list(per_band.band_max) == list(DEFAULT_BANDS)
    np.testing.assert_array_equal(flat.optical(refl), per_band.optical(refl))
    wide = Normalisation(band_max={b: (1.0 if b == "B11" else 0.6) for b in DEFAULT_BANDS})
    unit = wide.optical(refl)
    assert unit[8].max() < 0.5 and unit[0].max() == 1.0  # 0.7 in B11 is not clipped
    np.testing.assert_allclose(wide.optical_inverse(unit)[8], refl[8], atol=1e-6)
    with pytest.raises(ValueError, match="4 bands given"):
        per_band.optical(refl[:4])
