"""The "Time and grid" contract: AOIs, inclusive UTC date ranges, the UTM 10 m grid.

Every stage takes its AOI, dates and grid from here so that they agree to the pixel.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated

import numpy as np
import shapely
import shapely.geometry
import shapely.ops
import shapely.validation
from pydantic import BeforeValidator
from shapely.geometry.base import BaseGeometry

from gapfill.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "GRID_CONTRACT_VERSION",
    "AOI",
    "DateRange",
    "Grid",
    "parse_aoi",
    "parse_date_range",
    "parse_day",
    "UTCDay",
    "utm_epsg",
    "to_naive_utc",
    "within_days",
    "tile_boxes",
    "inset_lonlat_wkt",
    "east_half",
]

GRID_CONTRACT_VERSION = "1"
DEFAULT_RESOLUTION = 10.0


@dataclass(frozen=True)
class AOI:
    """An area of interest in lon/lat (EPSG:4326)."""

    geometry: BaseGeometry

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in degrees."""
        return tuple(float(v) for v in self.geometry.bounds)  # type: ignore[return-value]

    @property
    def geojson(self) -> dict:
        """The geometry as a GeoJSON mapping (for STAC `intersects` and cube attrs)."""
        return dict(shapely.geometry.mapping(self.geometry))


def _geometry_from_geojson(obj: dict) -> BaseGeometry:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        geoms = [shapely.geometry.shape(f["geometry"]) for f in obj.get("features", [])]
        if not geoms:
            raise InputError("AOI GeoJSON FeatureCollection has no features")
        geom = shapely.union_all(geoms)
    elif kind == "Feature":
        geom = shapely.geometry.shape(obj["geometry"])
    else:
        geom = shapely.geometry.shape(obj)
    return _to_lonlat(geom, obj.get("crs"))


def _to_lonlat(geom: BaseGeometry, crs_member: object) -> BaseGeometry:
    """GeoJSON is lon/lat (RFC 7946), but files written before it (GeoJSON 2008, QGIS and
    OGR exports) may name another CRS in a `crs` member: reproject from it, as GDAL does,
    rather than read metres as degrees."""
    if not crs_member:
        return geom
    import pyproj

    try:
        name = crs_member["properties"]["name"]  # type: ignore[index]
        crs = pyproj.CRS.from_user_input(name)
    except (KeyError, TypeError, pyproj.exceptions.CRSError):
        raise InputError(
            f"AOI GeoJSON names a CRS gapfill cannot read ({crs_member}): "
            "give lon/lat coordinates (EPSG:4326) without a crs member"
        ) from None
    lonlat = pyproj.CRS.from_epsg(4326)
    if crs.equals(lonlat, ignore_axis_order=True):
        return geom
    to_lonlat = pyproj.Transformer.from_crs(crs, lonlat, always_xy=True)
    log.info("AOI GeoJSON is in %s: reprojected to lon/lat", crs.to_string())
    return shapely.ops.transform(to_lonlat.transform, geom)


def _all_floats(parts: list[str]) -> bool:
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


def _looks_like_file(text: str) -> bool:
    if Path(text).suffix.lower() in {".json", ".geojson"}:
        return True
    try:
        return Path(text).is_file()
    except OSError:  # a long WKT is no file name
        return False


def parse_aoi(text: str) -> AOI:
    """Read an AOI from a GeoJSON file path, a `minx,miny,maxx,maxy` lon/lat bbox, or WKT."""
    text = text.strip()
    geom: BaseGeometry
    try:
        if _looks_like_file(text):
            path = Path(text)
            if not path.is_file():
                raise InputError(f"AOI file {text} does not exist")
            try:
                geom = _geometry_from_geojson(json.loads(path.read_text()))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InputError(f"AOI file {text} is not valid GeoJSON ({exc})") from None
        elif len(parts := text.split(",")) == 4 and _all_floats(parts):
            minx, miny, maxx, maxy = (float(p) for p in parts)
            if miny < maxy and -180 <= maxx < 0 < minx <= 180 and maxx + 360 - minx < 180:
                raise InputError(
                    f"AOI bbox {text!r} crosses the antimeridian (minx > maxx): split it at "
                    "180 degrees into two AOIs and build a cube of each"
                )
            if minx >= maxx or miny >= maxy:
                raise InputError(
                    f"AOI bbox {text!r} has zero or negative area: need minx<maxx and miny<maxy"
                )
            geom = shapely.geometry.box(minx, miny, maxx, maxy)
        else:
            try:
                geom = shapely.from_wkt(text)
            except shapely.errors.GEOSException:
                raise InputError(
                    f"AOI {text!r} is neither a GeoJSON file, a minx,miny,maxx,maxy bbox nor WKT"
                ) from None
    except ValueError as exc:
        raise InputError(f"AOI {text!r} could not be read: {exc}") from None
    if geom.is_empty:
        raise InputError("AOI is empty: give a polygon with a non-zero area")
    if not geom.is_valid:
        reason = shapely.validation.explain_validity(geom)
        raise InputError(f"AOI is not a valid geometry ({reason}): fix it, e.g. with make_valid")
    if geom.area <= 0:
        raise InputError("AOI has zero area: give a polygon or a bbox, not a point or a line")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InputError(
            f"AOI bounds {geom.bounds} are outside lon/lat range: AOIs are in EPSG:4326 degrees"
        )
    return AOI(geom)


def to_naive_utc(value: datetime) -> datetime:
    """Convert an aware datetime to naive UTC (the stored convention); naive is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of UTC days."""

    start: date
    end: date

    @property
    def stac_interval(self) -> str:
        """The RFC 3339 interval covering both whole days, for a STAC `datetime` query."""
        first = datetime.combine(self.start, time(0, 0, 0))
        last = datetime.combine(self.end, time(23, 59, 59, 999999))
        return f"{first.isoformat()}Z/{last.isoformat()}Z"

    def days(self) -> int:
        """Number of days in the range, both ends counted."""
        return (self.end - self.start).days + 1


def parse_day(value: str | date, what: str = "the") -> date:
    """The UTC day of `value`: `YYYY-MM-DD`, or an ISO 8601 date-time whose offset is
    converted to UTC (`2022-05-01T23:30-05:00` is 2022-05-02); naive times are UTC. The one
    date parser of every verb and config."""
    if isinstance(value, datetime):
        return to_naive_utc(value).date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        raise InputError(f"{what} date is empty: use YYYY-MM-DD (UTC)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return to_naive_utc(datetime.fromisoformat(text.replace("z", "Z"))).date()
    except ValueError:
        raise InputError(
            f"{what} date {text!r} is not a date: use YYYY-MM-DD (UTC) or an ISO 8601 time"
        ) from None


def _utc_day(value: object) -> date:
    try:
        return parse_day(value)  # type: ignore[arg-type]
    except InputError as exc:
        raise ValueError(str(exc)) from None


# A pydantic field type for days: the same parsing as the CLI's (time zones to UTC).
UTCDay = Annotated[date, BeforeValidator(_utc_day)]


def parse_date_range(start: str, end: str) -> DateRange:
    """Parse inclusive UTC start and end days; end before start is an error."""
    first, last = parse_day(start, "start"), parse_day(end, "end")
    if last < first:
        raise InputError(f"end date {last} is before start date {first}: swap them")
    return DateRange(first, last)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 / UTM zone containing (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class Grid:
    """A north-up grid: CRS, resolution and outward-snapped bounds; x/y are pixel centres."""

    epsg: int
    resolution: float
    bounds: tuple[float, float, float, float]

    @classmethod
    def snapped(
        cls,
        epsg: int,
        bounds: tuple[float, float, float, float],
        resolution: float = DEFAULT_RESOLUTION,
    ) -> Grid:
        """Snap bounds outward to multiples of the resolution (the Sentinel-2 native grid)."""
        minx, miny, maxx, maxy = bounds
        r = resolution
        return cls(
            epsg,
            resolution,
            (
                math.floor(minx / r) * r,
                math.floor(miny / r) * r,
                math.ceil(maxx / r) * r,
                math.ceil(maxy / r) * r,
            ),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        minx, miny, maxx, maxy = self.bounds
        return (round((maxy - miny) / self.resolution), round((maxx - minx) / self.resolution))

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """The affine transform (a, b, c, d, e, f) of the top-left corner."""
        minx, _, _, maxy = self.bounds
        return (self.resolution, 0.0, minx, 0.0, -self.resolution, maxy)

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates (y descending, x ascending)."""
        minx, _, _, maxy = self.bounds
        h, w = self.shape
        r = self.resolution
        x = minx + r * (np.arange(w) + 0.5)
        y = maxy - r * (np.arange(h) + 0.5)
        return y, x


def within_days(t_a: datetime, t_b: datetime, max_days: float) -> bool:
    """ "Within N days" means |t_a - t_b| <= N x 24 h."""
    return abs(t_a - t_b) <= timedelta(days=max_days)


def tile_boxes(height: int, width: int, size: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of the `size`-square tiles covering a height x width array, row by
    row, the last row and column cut at the edge (how chunks and inference tiles are laid)."""
    return [
        (y0, min(y0 + size, height), x0, min(x0 + size, width))
        for y0 in range(0, height, size)
        for x0 in range(0, width, size)
    ]


def inset_lonlat_wkt(bounds: Sequence[float], epsg: int, inset: float = 5.0) -> str:
    """Lon/lat WKT of a projected box (minx, miny, maxx, maxy in `epsg`) inset by `inset`
    m: an AOI whose cube grid snaps back to the box (a synthetic world's extent)."""
    from pyproj import Transformer

    minx, miny, maxx, maxy = bounds
    square = shapely.geometry.box(minx + inset, miny + inset, maxx - inset, maxy - inset)
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    return shapely.transform(square.segmentize(50), to_lonlat.transform, interleaved=False).wkt


def east_half(bbox_lonlat: Sequence[float]) -> str:
    """The east half of a lon/lat bbox as `minx,miny,maxx,maxy` AOI text: the area a
    synthetic world's models are tested on (trained on the west half)."""
    minx, miny, maxx, maxy = bbox_lonlat
    return f"{(minx + maxx) / 2},{miny},{maxx},{maxy}"
