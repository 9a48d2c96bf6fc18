import json
from datetime import UTC, date, datetime

import numpy as np
import pytest

from gapfill.errors import InputError
from gapfill.grid import Grid, parse_aoi, parse_date_range, to_naive_utc, utm_epsg, within_days


def test_bbox_wkt_and_geojson_give_the_same_area(tmp_path):
    bbox = parse_aoi("3.0,50.8,3.1,50.9")
    wkt = parse_aoi("POLYGON((3.0 50.8, 3.1 50.8, 3.1 50.9, 3.0 50.9, 3.0 50.8))")
    path = tmp_path / "aoi.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {}, "geometry": bbox.geojson}],
            }
        )
    )
    from_file = parse_aoi(str(path))
    assert bbox.bbox == pytest.approx((3.0, 50.8, 3.1, 50.9))
    assert wkt.geometry.equals(bbox.geometry)
    assert from_file.geometry.equals(bbox.geometry)


@pytest.mark.parametrize(
    "text, message",
    [
        ("3.1,50.8,3.0,50.9", "zero or negative area"),
        ("POINT (3 50)", "zero area"),
        ("LINESTRING (3 50, 4 51)", "zero area"),
        ("POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", "not a valid geometry"),
        ("190,0,191,1", "outside lon/lat"),
        ("not an aoi", "neither a GeoJSON file"),
        ("missing.geojson", "does not exist"),
    ],
)
def test_bad_aois_are_refused_with_a_reason(text, message):
    with pytest.raises(InputError, match=message):
        parse_aoi(text)


def test_broken_geojson_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid GeoJSON"):
        parse_aoi(str(path))


def test_date_range_is_inclusive_utc():
    r = parse_date_range("2022-04-01", "2022-04-03")
    assert r.days() == 3
    assert r.stac_interval == "2022-04-01T00:00:00Z/2022-04-03T23:59:59.999999Z"
    assert parse_date_range("2022-04-01", "2022-04-01").days() == 1
    with pytest.raises(InputError, match="before start"):
        parse_date_range("2022-04-03", "2022-04-01")
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        parse_date_range("April", "2022-04-01")
    assert r.start == date(2022, 4, 1)


def test_utm_zone_of_known_places():
    assert utm_epsg(3.02, 50.81) == 32631  # the real sample, tile 31UDS
    assert utm_epsg(113.1, 30.4) == 32649
    assert utm_epsg(-70.6, -33.4) == 32719
    assert utm_epsg(180.0, 0.0) == 32601


def test_grid_snaps_outward_and_gives_pixel_centres():
    g = Grid.snapped(32631, (501363.0, 5629041.0, 501995.0, 5629679.0))
    assert g.bounds == (501360.0, 5629040.0, 502000.0, 5629680.0)
    assert g.shape == (64, 64)
    y, x = g.coords()
    assert x[0] == 501365.0 and y[0] == 5629675.0
    assert np.all(np.diff(x) == 10) and np.all(np.diff(y) == -10)


def test_times_are_naive_utc_and_within_days_is_inclusive():
    aware = datetime(2022, 4, 1, 12, tzinfo=UTC)
    assert to_naive_utc(aware) == datetime(2022, 4, 1, 12)
    assert within_days(datetime(2022, 4, 1), datetime(2022, 4, 6), 5)
    assert not within_days(datetime(2022, 4, 1), datetime(2022, 4, 6, 0, 0, 1), 5)


def test_cube_grid_of_an_aoi_across_two_utm_zones_says_which_it_chose(caplog):
    from gapfill.cube import cube_grid

    with caplog.at_level("WARNING"):
        grid = cube_grid(parse_aoi("113.95,30.0,114.1,30.05"), 10.0, None)
    assert grid.epsg == 32650  # centroid at 114.025 E: zone 50
    assert "spans UTM zones" in caplog.text and "32650" in caplog.text
    assert cube_grid(parse_aoi("113.95,30.0,114.1,30.05"), 10.0, 32649).epsg == 32649
    assert all(v % 10 == 0 for v in grid.bounds)


def test_one_day_parser_for_every_verb_converts_time_zones_to_utc():
    from datetime import date

    from gapfill.cube import CubeConfig
    from gapfill.fill import FillConfig
    from gapfill.grid import parse_date_range, parse_day

    late = "2022-05-01T23:30:00-05:00"  # 04:30 UTC the next day
    assert parse_day(late) == date(2022, 5, 2)
    assert parse_day("2022-05-02T01:00+02:00") == date(2022, 5, 1)
    assert parse_day("2022-05-01T12:00Z") == parse_day("2022-05-01") == date(2022, 5, 1)
    assert parse_date_range(late, late).start == date(2022, 5, 2)
    cube = CubeConfig(aoi="1,1,2,2", start=late, end="2022-05-03")
    assert cube.start == date(2022, 5, 2)
    filled = FillConfig(cube="c", model="m", out="o", dates=(late,), start=None)
    assert filled.dates == (date(2022, 5, 2),)
    for bad in ("", "  ", "2022-13-01", "yesterday"):
        with pytest.raises(InputError):
            parse_day(bad)
        with pytest.raises(ValueError):
            CubeConfig(aoi="1,1,2,2", start=bad, end="2022-05-03")


def test_a_bbox_across_the_antimeridian_is_told_to_split_and_a_swapped_one_is_not():
    with pytest.raises(InputError, match="crosses the antimeridian"):
        parse_aoi("179.5,0,-179.5,1")
    with pytest.raises(InputError, match="zero or negative area"):
        parse_aoi("3.1,50.8,3.0,50.9")


def test_geojson_naming_another_crs_is_reprojected_and_an_unknown_one_refused(tmp_path):
    """Pre-RFC 7946 GeoJSON (QGIS/OGR exports) may carry a `crs` member: UTM metres are
    reprojected to lon/lat, never read as degrees."""
    lonlat = parse_aoi("3.0,50.5,3.01,50.51")
    import pyproj
    import shapely.ops

    to_utm = pyproj.Transformer.from_crs(4326, 32631, always_xy=True).transform
    utm = shapely.ops.transform(to_utm, lonlat.geometry)
    doc = {
        "type": "Feature",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32631"}},
        "properties": {},
        "geometry": shapely.geometry.mapping(utm),
    }
    path = tmp_path / "utm.geojson"
    path.write_text(json.dumps(doc))
    back = parse_aoi(str(path)).geometry
    assert back.symmetric_difference(lonlat.geometry).area < 1e-3 * lonlat.geometry.area
    doc["crs"] = {"type": "name", "properties": {"name": "EPSG:999999"}}
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="names a CRS gapfill cannot read"):
        parse_aoi(str(path))
