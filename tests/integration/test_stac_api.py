"""Search a real stac-fastapi-pgstac serving the synthetic worlds and the real sample."""

import json
from pathlib import Path

import httpx
import pystac
import pytest

from gapfill.grid import parse_aoi, parse_date_range
from gapfill.stac import asset_key, profiles_for, search
from tests.conftest import world_meta

pytestmark = pytest.mark.integration

REAL_AOI = "3.0195,50.8131,3.0283,50.8188"


def _real_items(real_sample: Path) -> dict[str, list[dict]]:
    cat = pystac.Catalog.from_file(str(real_sample / "catalog.json"))
    out: dict[str, list[dict]] = {}
    for item in cat.get_items(recursive=True):
        out.setdefault(item.collection_id, []).append(
            json.loads(Path(item.get_self_href()).read_text())
        )
    return out


def test_collections_sharing_an_id_are_merged(stac_api, catalogs):
    colls = httpx.get(f"{stac_api.url}/collections").json()["collections"]
    assert sorted(c["id"] for c in colls) == ["sentinel-1-rtc", "sentinel-2-l2a"]
    s2 = next(c for c in colls if c["id"] == "sentinel-2-l2a")
    overall = s2["extent"]["spatial"]["bbox"][0]
    assert overall[0] < 3.1 and overall[2] > 113.0  # Belgium/France .. China
    assert len(s2["extent"]["spatial"]["bbox"]) == 1 + len(catalogs)  # overall + one each
    start, end = s2["extent"]["temporal"]["interval"][0]
    assert start.startswith("2017") and end.startswith("2023")  # real 2017 .. broken world 2023


def test_synthetic_world_by_bbox_and_inclusive_dates(stac_api, world_pc):
    meta = world_meta(world_pc)
    s2p, s1p = profiles_for(stac_url=stac_api.url)
    aoi = parse_aoi(",".join(str(v) for v in meta["bbox_lonlat"]))
    # The 3rd..5th S2 days, both ends inclusive.
    days = [d["datetime"][:10] for d in meta["s2"]]
    r = search(aoi, parse_date_range(days[2], days[4]), s2p, s1p)
    assert [i.id for i in r.s2] == [d["id"] for d in meta["s2"][2:5]]
    expected_s1 = [a["id"] for a in meta["s1"] if days[2] <= a["datetime"][:10] <= days[4]]
    assert [i.id for i in r.s1] == expected_s1
    for item in r.s2:
        for band in ("B02", "SCL"):
            href = item.assets[asset_key(item, band, s2p)].href
            assert Path(href).is_absolute() and Path(href).is_file()


def test_real_sample_counts_cloud_filter_and_paging(stac_api, real_sample):
    truth = _real_items(real_sample)
    s2p, s1p = profiles_for(stac_url=stac_api.url)
    aoi, days = parse_aoi(REAL_AOI), parse_date_range("2017-08-01", "2018-11-30")
    everything = search(aoi, days, s2p, s1p, page_size=100)
    assert len(everything.s2) == len(truth["sentinel-2-l2a"]) == 118
    assert len(everything.s1) == len(truth["sentinel-1-rtc"]) == 159
    paged = search(aoi, days, s2p, s1p, page_size=7)
    assert [i.id for i in paged.s2] == [i.id for i in everything.s2]
    # eo:cloud_cover compares as a number (registered queryable), not as text.
    low = search(aoi, days, s2p, s1p, max_cloud=20, page_size=13)
    expected = sorted(
        i["id"] for i in truth["sentinel-2-l2a"] if i["properties"]["eo:cloud_cover"] < 20
    )
    assert sorted(i.id for i in low.s2) == expected
    assert 0 < len(expected) < 118
    assert len(low.s1) == 159  # Sentinel-1 is never cloud-filtered
    assert any(i["properties"]["eo:cloud_cover"] == 100 for i in truth["sentinel-2-l2a"])


def test_numeric_sort_and_cql2_filter(stac_api):
    body = {
        "collections": ["sentinel-2-l2a"],
        "bbox": [3.0, 50.8, 3.1, 50.9],
        "limit": 40,
        "sortby": [{"field": "properties.eo:cloud_cover", "direction": "desc"}],
        "filter-lang": "cql2-json",
        "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 50]},
    }
    feats = httpx.post(f"{stac_api.url}/search", json=body).json()["features"]
    cc = [f["properties"]["eo:cloud_cover"] for f in feats]
    assert cc and all(c < 50 for c in cc) and cc == sorted(cc, reverse=True)
    assert max(cc) > 10 > min(cc)  # "9.x" would sort above "10.x" as text


def test_earth_search_convention_world_is_served_as_is(stac_api, world_es):
    meta = world_meta(world_es)
    s2p, s1p = profiles_for(stac_url=stac_api.url)
    r = search(
        parse_aoi(",".join(str(v) for v in meta["bbox_lonlat"])),
        parse_date_range(meta["s2"][0]["datetime"][:10], meta["s2"][-1]["datetime"][:10]),
        s2p,
        s1p,
    )
    assert len(r.s2) == 6
    item = r.s2[0]
    assert asset_key(item, "B02", s2p) == "blue"
    assert item.assets["blue"].extra_fields["raster:bands"][0]["offset"] == -0.1
    raw = httpx.get(f"{stac_api.url}/collections/sentinel-2-l2a/items/{item.id}").json()
    assert raw["properties"]["proj:epsg"] == 32638  # served as written, not migrated away
