"""Provider profiles map each provider's items onto the cube's bands."""

from datetime import UTC

import pytest

from gapfill.bands import BAND_SETS, DEFAULT_BANDS, S1_POLS, S2_SCL
from gapfill.errors import InputError
from gapfill.stac.providers import (
    asset_key,
    custom_profiles,
    get_profile,
    item_epsg,
    profiles_for,
    relative_orbit,
    s2_scale_offset,
)
from tests.conftest import load_item


def test_earth_search_s2_maps_common_names_and_uses_raster_bands():
    item = load_item("earth-search-s2.json")
    p = get_profile("s2", "earth-search")
    keys = [asset_key(item, b, p) for b in (*BAND_SETS["all"], S2_SCL)]
    assert keys == [
        "coastal",
        "blue",
        "green",
        "red",
        "rededge1",
        "rededge2",
        "rededge3",
        "nir",
        "nir08",
        "nir09",
        "swir16",
        "swir22",
        "scl",
    ]
    assert s2_scale_offset(item, "red", p) == (0.0001, -0.1)
    assert item_epsg(item) == 32631
    assert not p.sign


def test_planetary_computer_s2_uses_the_baseline_rule():
    item = load_item("planetary-computer-s2.json")
    p = get_profile("s2", "planetary-computer")
    assert [asset_key(item, b, p) for b in DEFAULT_BANDS] == list(DEFAULT_BANDS)
    assert s2_scale_offset(item, "B04", p) == (1e-4, -0.1)
    item["properties"]["s2:processing_baseline"] = "03.01"
    assert s2_scale_offset(item, "B04", p) == (1e-4, 0.0)
    # raster:bands, when an item has them, win over the rule: never both.
    item["properties"]["s2:processing_baseline"] = "05.09"
    item["assets"]["B04"]["raster:bands"] = [{"scale": 0.0001, "offset": -0.1}]
    assert s2_scale_offset(item, "B04", p) == (0.0001, -0.1)
    assert p.sign and p.modifier() is not None


def test_planetary_computer_s1_rtc():
    item = load_item("planetary-computer-s1-rtc.json")
    p = get_profile("s1", "planetary-computer")
    assert [asset_key(item, b, p) for b in S1_POLS] == ["vv", "vh"]
    # Only proj:code (as current stactools write it).
    assert item_epsg(item) == 32631
    orbit = relative_orbit(item)
    assert orbit is not None and 1 <= orbit <= 175


def test_relative_orbit_prefers_the_property_and_repeats_every_175_orbits():
    item = load_item("planetary-computer-s1-rtc.json")
    a = relative_orbit(item)
    item["properties"]["sat:absolute_orbit"] += 175
    assert relative_orbit(item) == a
    item["properties"]["sat:relative_orbit"] = 88
    assert relative_orbit(item) == 88
    item["properties"].pop("sat:relative_orbit")
    item["properties"]["platform"] = "SENTINEL-1B"
    assert relative_orbit(item) != a
    assert relative_orbit({"properties": {"platform": "SENTINEL-1A"}}) is None


def test_earth_search_s1_is_refused_with_what_to_do():
    load_item("earth-search-s1-grd.json")  # radar geometry: no proj fields at all
    with pytest.raises(InputError, match="radar geometry.*planetary-computer"):
        get_profile("s1", "earth-search")
    with pytest.raises(InputError, match="radar geometry"):
        profiles_for("earth-search", s1_provider="earth-search")


def test_profile_choices():
    s2, s1 = profiles_for()
    assert (s2.provider, s1.provider) == ("planetary-computer", "planetary-computer")
    s2, s1 = profiles_for("earth-search")
    assert (s2.provider, s1.provider, s1.collection) == (
        "earth-search",
        "planetary-computer",
        "sentinel-1-rtc",
    )
    with pytest.raises(InputError, match="unknown S2 provider"):
        profiles_for("copernicus")
    with pytest.raises(InputError, match="not both"):
        profiles_for("earth-search", stac_url="http://127.0.0.1:1")


def test_custom_url_accepts_both_key_conventions_and_a_mapping(tmp_path):
    s2, s1 = custom_profiles("http://127.0.0.1:8082/")
    assert s2.url == "http://127.0.0.1:8082"
    assert asset_key(load_item("earth-search-s2.json"), "B02", s2) == "blue"
    assert asset_key(load_item("planetary-computer-s2.json"), "B02", s2) == "B02"
    mapping = tmp_path / "profile.yaml"
    mapping.write_text(
        "s2:\n  collection: my-s2\n"
        "  assets: {B02: [b2], B03: [b3], B04: [b4], B08: [b8], SCL: [mask]}\n"
    )
    s2, s1 = custom_profiles("https://stac.example", mapping)
    assert (
        s2.collection == "my-s2"
        and s2.assets["SCL"] == ["mask"]
        and s1.collection == "sentinel-1-rtc"
    )
    with pytest.raises(InputError, match="has no asset for B02"):
        asset_key(load_item("earth-search-s2.json"), "B02", s2)
    mapping.write_text("s2:\n  collection: x\n  assets: {B02: [b2]}\n")
    with pytest.raises(InputError, match="lacks asset keys for SCL"):
        custom_profiles("https://stac.example", mapping)
    mapping.write_text("s3: {}\n")
    with pytest.raises(InputError, match="invalid"):
        custom_profiles("https://stac.example", mapping)
    with pytest.raises(InputError, match="http"):
        custom_profiles("ftp://stac.example")


def test_planetary_computer_hrefs_are_signed_again_when_read(monkeypatch):
    """A SAS token from search time expires during a long build: each read signs the
    href with planetary_computer's current token (its cache, primed here: no network)."""
    from datetime import datetime, timedelta

    import planetary_computer.sas as sas

    from gapfill.cube.compute import _canonical

    item = load_item("planetary-computer-s2.json")
    p = get_profile("s2", "planetary-computer")
    key = asset_key(item, "B04", p)
    base = item["assets"][key]["href"].split("?", 1)[0]
    account, container = sas.parse_blob_url(sas.urlparse(base))
    url = f"{sas.Settings.get().sas_url}/{account}/{container}"
    later = datetime.now(UTC) + timedelta(hours=1)
    monkeypatch.setitem(sas.TOKEN_CACHE, url, sas.SASToken(token="sv=now&sig=fresh", expiry=later))
    item["assets"][key]["href"] = base + "?st=old&se=old&sp=r&sig=stale"
    (read,) = _canonical([item], ["B04"], p)
    assert read["assets"]["B04"]["href"] == base + "?sv=now&sig=fresh"
    assert "stale" in item["assets"][key]["href"]  # the caller's item is left as it was
    es = get_profile("s2", "earth-search")
    assert es.href_for_reading(base + "?x=1") == base + "?x=1"  # not a signing profile
