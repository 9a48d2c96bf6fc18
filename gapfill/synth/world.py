"""Write a synthetic world: COGs + a self-contained static STAC catalog + the truth.

The catalog looks like the real products (Planetary Computer or Earth Search
`sentinel-2-l2a`, Planetary Computer `sentinel-1-rtc`); the true cloud-free
reflectance of every date is written beside it (`truth/`), not in it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from pyproj import Transformer
from rasterio.transform import Affine
from rasterio.windows import Window

from gapfill._provenance import __version__, git_sha
from gapfill.bands import band_resolution
from gapfill.errors import InputError
from gapfill.stac.providers import EARTH_SEARCH_S2_KEYS
from gapfill.synth._noise import hash_uniform, speckle
from gapfill.synth.landscape import BANDS, WATER, Landscape, Static
from gapfill.synth.spec import WorldSpec

__all__ = ["make_world", "WorldSchedule", "S1Acquisition", "S2Acquisition", "schedule"]

log = logging.getLogger(__name__)

S1_NODATA = -32768.0
# PC/ES: from processing baseline 04.00 (25 Jan 2022) DN carry a +1000 offset.
_BASELINE_04_START = datetime(2022, 1, 25)
# Cloud tops per band of BANDS: bright and flat, darker in the short-wave infrared.
_CLOUD_REFLECTANCE = np.array(
    [0.42, 0.41, 0.42, 0.43, 0.45, 0.46, 0.47, 0.47, 0.38, 0.30], np.float32
)[:, None, None]
_COG_OPTIONS = {"COMPRESS": "DEFLATE", "PREDICTOR": "2", "BLOCKSIZE": "512", "OVERVIEWS": "AUTO"}
_ES_KEYS = {b: EARTH_SEARCH_S2_KEYS[b][0] for b in (*BANDS, "SCL")}
_B04, _B08 = BANDS.index("B04"), BANDS.index("B08")
_GDAL_CACHE_MB = 256
_EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "mgrs": "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
}


@dataclass(frozen=True)
class S2Acquisition:
    """One Sentinel-2 day: when, how cloudy it is meant to be, whether a tile edge cuts it."""

    index: int
    datetime: datetime
    cover: float
    nodata_west: float


@dataclass(frozen=True)
class S1Acquisition:
    """One Sentinel-1 RTC scene: when, which orbit, how much of the world it covers."""

    index: int
    datetime: datetime
    relative_orbit: int
    ascending: bool
    cover_from: float
    incidence_offset: float
    platform: str


@dataclass(frozen=True)
class WorldSchedule:
    """All acquisitions of a world, in time order."""

    s2: list[S2Acquisition]
    s1: list[S1Acquisition]
    start: datetime

    def days(self, when: datetime) -> float:
        """Days since the first S2 day (the landscape's time axis)."""
        return (when - self.start).total_seconds() / 86400.0


def schedule(spec: WorldSpec) -> WorldSchedule:
    """The acquisition plan of a world: S2 days with cloud cover, S1 scenes within 5 days."""
    loc = spec.location
    rng = np.random.default_rng(spec.seed + 17)
    s2_hour = (10.5 - loc.lon / 15.0) % 24
    start = datetime.combine(spec.start, datetime.min.time()) + timedelta(hours=s2_hour)
    s2: list[S2Acquisition] = []
    for i in range(spec.dates):
        when = start + timedelta(days=i * spec.revisit_days, seconds=int(rng.integers(0, 60)))
        u = rng.uniform()
        if i == 0:
            cover = 0.0
        elif i == 1:
            cover = float(rng.uniform(0.25, 0.55))
        elif u < 0.3:
            cover = float(rng.uniform(0.0, 0.02))
        elif u < 0.55:
            cover = float(rng.uniform(0.97, 1.0))
        else:
            cover = float(rng.uniform(0.1, 0.85))
        nodata_west = 0.15 if (i == 2 and spec.dates >= 4) else 0.0
        s2.append(S2Acquisition(i, when, cover, nodata_west))
    # Two relative orbits: A (ascending, whole world, 6-day repeat), B (descending,
    # the eastern 65 %, 12-day repeat) with a different incidence angle.
    asc_hour = (18.0 - loc.lon / 15.0) % 24
    desc_hour = (6.0 - loc.lon / 15.0) % 24
    day0 = datetime.combine(spec.start, datetime.min.time())
    last = s2[-1].datetime + timedelta(days=5)
    plans = [
        (loc.s1_orbits[0], True, 0.0, 0.0, 6, -1, asc_hour),
        (loc.s1_orbits[1], False, 0.35, -1.2, 12, 2, desc_hour),
    ]
    scenes: list[tuple[datetime, int, bool, float, float]] = []
    for orbit, asc, cover_from, inc, step, offset, hour in plans:
        when = day0 + timedelta(days=offset, hours=hour)
        while when - timedelta(days=step) > day0 - timedelta(days=5):
            when -= timedelta(days=step)
        while when <= last:
            if any(abs(when - a.datetime) <= timedelta(days=5) for a in s2):
                scenes.append((when, orbit, asc, cover_from, inc))
            when += timedelta(days=step)
    scenes.sort()
    s1 = [
        S1Acquisition(j, w, o, a, c, inc, "SENTINEL-1A" if j % 2 == 0 else "SENTINEL-1B")
        for j, (w, o, a, c, inc) in enumerate(scenes)
    ]
    return WorldSchedule(s2, s1, s2[0].datetime)


def _s2_offset(when: datetime) -> int:
    return 1000 if when >= _BASELINE_04_START else 0


def _baseline(when: datetime) -> str:
    return "04.00" if when >= _BASELINE_04_START else "03.01"


def _s2_id(spec: WorldSpec, acq: S2Acquisition) -> str:
    loc = spec.location
    sat = "S2A" if acq.index % 2 == 0 else "S2B"
    stamp = acq.datetime.strftime("%Y%m%dT%H%M%S")
    if spec.s2_conventions == "earth-search":
        return f"{sat}_{loc.mgrs_tile}_{acq.datetime:%Y%m%d}_{spec.seed}_L2A"
    return f"{sat}_MSIL2A_{stamp}_R{loc.s2_relative_orbit:03d}_T{loc.mgrs_tile}_SYN{spec.seed:04d}"


def _s1_id(spec: WorldSpec, acq: S1Acquisition) -> str:
    stamp = acq.datetime.strftime("%Y%m%dT%H%M%S")
    end = (acq.datetime + timedelta(seconds=25)).strftime("%Y%m%dT%H%M%S")
    sat = "S1A" if acq.platform.endswith("A") else "S1B"
    return f"{sat}_IW_GRDH_1SDV_{stamp}_{end}_{acq.relative_orbit:06d}_SYN{spec.seed:04d}_rtc"


@dataclass(frozen=True)
class _Geo:
    """A square north-up raster: size in pixels, resolution, top-left corner."""

    size: int
    res: float
    x0: float
    y0: float


class _Writers:
    """Temporary tiled GeoTIFFs, written block by block, turned into COGs at the end."""

    def __init__(self, tmp: Path, crs: str) -> None:
        self.tmp = tmp
        self.crs = crs
        self.files: dict[str, rasterio.io.DatasetWriter] = {}
        self.targets: dict[str, tuple[Path, str]] = {}

    def open(
        self,
        key: str,
        target: Path,
        *,
        geo: _Geo,
        dtype: str,
        count: int,
        nodata: float | None,
        resampling: str,
    ) -> None:
        path = self.tmp / f"{len(self.files):05d}.tif"
        self.files[key] = rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=geo.size,
            height=geo.size,
            count=count,
            dtype=dtype,
            crs=self.crs,
            transform=Affine(geo.res, 0, geo.x0, 0, -geo.res, geo.y0),
            nodata=nodata,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
        )
        self.targets[key] = (target, resampling)

    def write(self, key: str, data: np.ndarray, window: Window) -> None:
        self.files[key].write(data if data.ndim == 3 else data[None], window=window)

    def finish(self) -> None:
        for key, ds in self.files.items():
            src = ds.name
            ds.close()
            target, resampling = self.targets[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            rasterio.shutil.copy(src, target, driver="COG", RESAMPLING=resampling, **_COG_OPTIONS)
            os.unlink(src)


def _blocks(n: int, block: int) -> list[tuple[int, int]]:
    return [(o, min(block, n - o)) for o in range(0, n, block)]


def _scl(
    land: Landscape,
    st: Static,
    u: np.ndarray,
    v: np.ndarray,
    acq: S2Acquisition,
    t: float,
    width_m: float,
) -> np.ndarray:
    """The scene classification of one day at the given (20 m) positions."""
    refl = land.reflectance(st, t)
    ndvi = (refl[_B08] - refl[_B04]) / (refl[_B08] + refl[_B04] + 1e-6)
    cls = land.landcover(st, t)
    scl = np.where(ndvi > 0.35, 4, 5).astype(np.uint8)
    scl[refl.mean(axis=0) < 0.02] = 2
    scl[cls == WATER] = 6
    scl[refl[:3].mean(axis=0) > 0.6] = 11
    scl[hash_uniform(land.seed + 77 + acq.index, np.floor(u), np.floor(v)) < 0.005] = 7
    alpha = land.cloud_opacity(u, v, acq.index, acq.cover)
    if acq.cover > 0.005:
        sx, sy = land.shadow_offset()
        shadow = land.cloud_opacity(u - sx, v - sy, acq.index, acq.cover)
        scl[(shadow > 0.5) & (alpha < 0.3)] = 3
    thin = 10 if acq.index % 3 == 1 else 8
    scl[(alpha >= 0.1) & (alpha < 0.3)] = thin
    scl[(alpha >= 0.3) & (alpha < 0.6)] = 8
    scl[alpha >= 0.6] = 9
    scl[u < acq.nodata_west * width_m] = 0
    return scl


def _digital_numbers(
    obs: np.ndarray, nodata: np.ndarray, acq: S2Acquisition, win: Window
) -> Iterator[tuple[str, np.ndarray, Window]]:
    """(band, DN, window) of one block's observed reflectance (band, h, w) at 10 m: 10 m
    bands as they are, 20 m bands as the mean of each 2 x 2 pixels (a 20 m detector
    pixel sees their area), no data where any of them has none."""
    h, w = obs.shape[1:]
    half = Window(win.col_off // 2, win.row_off // 2, w // 2, h // 2)
    nodata20 = np.asarray(nodata.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3)))
    for b, band in enumerate(BANDS):
        refl, mask, at = obs[b], nodata, win
        if band_resolution(band) == 20:
            refl = refl.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            mask, at = nodata20, half
        dn = np.clip(np.round(refl * 10000) + _s2_offset(acq.datetime), 1, 65535)
        dn = dn.astype(np.uint16)
        dn[mask] = 0
        yield band, dn, at


def _observed(
    land: Landscape, truth: np.ndarray, u: np.ndarray, v: np.ndarray, acq: S2Acquisition
) -> np.ndarray:
    """Cloudy top-of-canopy reflectance: truth blended with cloud, darkened under shadow."""
    if acq.cover <= 0.005:
        return truth
    alpha = land.cloud_opacity(u, v, acq.index, acq.cover)
    sx, sy = land.shadow_offset()
    shadow = land.cloud_opacity(u - sx, v - sy, acq.index, acq.cover)
    dark = 1.0 - 0.65 * np.clip((shadow - 0.3) / 0.4, 0, 1) * (1 - alpha)
    return truth * dark * (1 - alpha) + _CLOUD_REFLECTANCE * (0.85 + 0.3 * alpha) * alpha


def make_world(out: str | Path, spec: WorldSpec, *, overwrite: bool = False) -> Path:
    """Generate the world of `spec` into `out` (a new folder); returns the catalog path.

    The world is rendered in blocks of `spec.block` pixels, so memory does not grow
    with its size; it is written to a sibling temp folder and moved into place at the end.
    """
    out = Path(out).resolve()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out} exists and is not empty: choose a new folder or --overwrite")
    if not out.parent.exists():
        raise InputError(f"parent folder {out.parent} does not exist: create it first")
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    try:
        # A fixed GDAL block cache keeps memory bounded whatever the machine's RAM.
        with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB):
            _render(work, spec)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return out / "catalog.json"


def _render(work: Path, spec: WorldSpec) -> None:
    loc = spec.location
    land = Landscape(spec)
    plan = schedule(spec)
    n, res = spec.size, spec.resolution
    crs = f"EPSG:{loc.epsg}"
    tmp = work / ".tmp"
    tmp.mkdir()
    writers = _Writers(tmp, crs)
    s2_ids = [_s2_id(spec, a) for a in plan.s2]
    s1_ids = [_s1_id(spec, a) for a in plan.s1]
    geo10 = _Geo(n, res, loc.x0, loc.y0)
    geo20 = _Geo(n // 2, 2 * res, loc.x0, loc.y0)
    for item_id in s2_ids:
        for band in BANDS:
            writers.open(
                f"{item_id}/{band}",
                work / "s2" / item_id / f"{band}.tif",
                dtype="uint16",
                count=1,
                nodata=0,
                resampling="AVERAGE",
                geo=geo10 if band_resolution(band) == 10 else geo20,
            )
        writers.open(
            f"{item_id}/SCL",
            work / "s2" / item_id / "SCL.tif",
            dtype="uint8",
            count=1,
            nodata=0,
            resampling="NEAREST",
            geo=geo20,
        )
        writers.open(
            f"truth/{item_id}",
            work / "truth" / f"{item_id}.tif",
            dtype="uint16",
            count=len(BANDS),
            nodata=None,
            resampling="AVERAGE",
            geo=geo10,
        )
    for item_id in s1_ids:
        for pol in ("vv", "vh"):
            writers.open(
                f"{item_id}/{pol}",
                work / "s1" / item_id / f"{pol}.tif",
                dtype="float32",
                count=1,
                nodata=S1_NODATA,
                resampling="AVERAGE",
                geo=geo10,
            )
    writers.open(
        "landcover",
        work / "truth" / "landcover.tif",
        dtype="uint8",
        count=1,
        nodata=None,
        resampling="NEAREST",
        geo=geo10,
    )

    width_m = n * res
    cloud_px = np.zeros(len(plan.s2))
    valid_px = np.zeros(len(plan.s2))
    for r0, h in _blocks(n, spec.block):
        for c0, w in _blocks(n, spec.block):
            win = Window(c0, r0, w, h)
            ix, iy = np.meshgrid(np.arange(c0, c0 + w), np.arange(r0, r0 + h))
            u, v = (ix + 0.5) * res, (iy + 0.5) * res
            st = land.static(u, v)
            writers.write("landcover", land.landcover(st, 0.0), win)
            for a, item_id in zip(plan.s2, s2_ids, strict=True):
                t = plan.days(a.datetime)
                truth = land.reflectance(st, t)
                writers.write(f"truth/{item_id}", np.round(truth * 10000).astype(np.uint16), win)
                obs = _observed(land, truth, u, v, a)
                for band, dn, at in _digital_numbers(obs, u < a.nodata_west * width_m, a, win):
                    writers.write(f"{item_id}/{band}", dn, at)
            for sc, item_id in zip(plan.s1, s1_ids, strict=True):
                t = plan.days(sc.datetime)
                db = land.backscatter_db(st, t, sc.ascending, sc.incidence_offset)
                lin = np.power(10.0, db / 10.0) * np.stack(
                    [speckle(land.seed + 500 + 2 * sc.index + p, ix, iy) for p in range(2)]
                )
                lin[:, u < sc.cover_from * width_m] = S1_NODATA
                for p, pol in enumerate(("vv", "vh")):
                    writers.write(f"{item_id}/{pol}", lin[p].astype(np.float32), win)
    half = spec.block // 2
    for r0, h in _blocks(n // 2, half):
        for c0, w in _blocks(n // 2, half):
            win = Window(c0, r0, w, h)
            ix, iy = np.meshgrid(np.arange(c0, c0 + w), np.arange(r0, r0 + h))
            u, v = (ix + 0.5) * 2 * res, (iy + 0.5) * 2 * res
            st = land.static(u, v)
            for a, item_id in zip(plan.s2, s2_ids, strict=True):
                scl = _scl(land, st, u, v, a, plan.days(a.datetime), width_m)
                writers.write(f"{item_id}/SCL", scl, win)
                valid = scl > 0
                valid_px[a.index] += valid.sum()
                cloud_px[a.index] += np.isin(scl, (8, 9, 10)).sum()
    writers.finish()
    tmp.rmdir()
    cloud_cover = [float(100.0 * c / max(v, 1)) for c, v in zip(cloud_px, valid_px, strict=True)]
    nodata_pct = [float(100.0 * (1 - v / (n // 2) ** 2)) for v in valid_px]
    _write_catalog(work, spec, plan, s2_ids, s1_ids, cloud_cover, nodata_pct)


def _footprint(epsg: int, x0: float, y0: float, x1: float, y1: float) -> tuple[dict, list[float]]:
    tr = Transformer.from_crs(epsg, 4326, always_xy=True)
    xs = np.concatenate(
        [np.linspace(x0, x1, 5), np.full(5, x1), np.linspace(x1, x0, 5), np.full(5, x0)]
    )
    ys = np.concatenate(
        [np.full(5, y1), np.linspace(y1, y0, 5), np.full(5, y0), np.linspace(y0, y1, 5)]
    )
    lon, lat = tr.transform(xs, ys)
    ring = [[float(a), float(b)] for a, b in zip(lon, lat, strict=True)]
    ring.append(ring[0])
    bbox = [float(min(lon)), float(min(lat)), float(max(lon)), float(max(lat))]
    return {"type": "Polygon", "coordinates": [ring]}, bbox


def _asset_proj(shape: int, res: float, x0: float, y0: float) -> dict:
    return {
        "proj:shape": [shape, shape],
        "proj:transform": [res, 0.0, x0, 0.0, -res, y0, 0.0, 0.0, 1.0],
    }


def _write_catalog(
    work: Path,
    spec: WorldSpec,
    plan: WorldSchedule,
    s2_ids: list[str],
    s1_ids: list[str],
    cloud_cover: list[float],
    nodata_pct: list[float],
) -> None:
    loc = spec.location
    n, res = spec.size, spec.resolution
    x1, y_bottom = loc.x0 + n * res, loc.y0 - n * res
    _, full_bbox = _footprint(loc.epsg, loc.x0, y_bottom, x1, loc.y0)
    es = spec.s2_conventions == "earth-search"
    catalog = pystac.Catalog(
        id=f"gapfill-synth-{spec.landscape}-{spec.seed}",
        description=f"Synthetic Sentinel-1/2 world ({spec.landscape}, seed {spec.seed}) by gapfill",
    )
    s2_items: list[pystac.Item] = []
    for a, item_id, cc, nd in zip(plan.s2, s2_ids, cloud_cover, nodata_pct, strict=True):
        x_start = loc.x0 + a.nodata_west * n * res
        geom, bbox = _footprint(loc.epsg, x_start, y_bottom, x1, loc.y0)
        props: dict = {
            "platform": ("sentinel-2a" if es else "Sentinel-2A")
            if a.index % 2 == 0
            else ("sentinel-2b" if es else "Sentinel-2B"),
            "constellation": "sentinel-2" if es else "Sentinel 2",
            "instruments": ["msi"],
            "eo:cloud_cover": round(float(cc), 4),
            "proj:epsg": loc.epsg,
            "proj:code": f"EPSG:{loc.epsg}",
            "s2:processing_baseline": _baseline(a.datetime),
            "s2:nodata_pixel_percentage": round(float(nd), 4),
            "s2:product_type": "S2MSI2A",
            "sat:relative_orbit": loc.s2_relative_orbit,
            "sat:orbit_state": "descending",
        }
        if es:
            props.update(
                {
                    "grid:code": f"MGRS-{loc.mgrs_tile}",
                    "mgrs:utm_zone": int(loc.mgrs_tile[:2]),
                    "mgrs:latitude_band": loc.mgrs_tile[2],
                    "mgrs:grid_square": loc.mgrs_tile[3:],
                }
            )
        else:
            props["s2:mgrs_tile"] = loc.mgrs_tile
        item = pystac.Item(
            item_id,
            geom,
            bbox,
            a.datetime,
            props,
            stac_extensions=[_EXT["eo"], _EXT["proj"], _EXT["raster"], _EXT["sat"]]
            + ([_EXT["grid"], _EXT["mgrs"]] if es else []),
        )
        for key in (*BANDS, "SCL"):
            is_scl = key == "SCL"
            coarse = is_scl or band_resolution(key) == 20
            r = 2 * res if coarse else res
            band: dict = {
                "nodata": 0,
                "data_type": "uint8" if is_scl else "uint16",
                "spatial_resolution": r,
            }
            if es and not is_scl:
                band.update({"scale": 0.0001, "offset": -0.1 if _s2_offset(a.datetime) else 0.0})
            extra = {**_asset_proj(n // 2 if coarse else n, r, loc.x0, loc.y0), "gsd": r}
            if es:
                extra["raster:bands"] = [band]
            item.add_asset(
                _ES_KEYS[key] if es else key,
                pystac.Asset(
                    str(work / "s2" / item_id / f"{key}.tif"),
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields=extra,
                ),
            )
        s2_items.append(item)
    s1_items: list[pystac.Item] = []
    for sc, item_id in zip(plan.s1, s1_ids, strict=True):
        x_start = loc.x0 + sc.cover_from * n * res
        geom, bbox = _footprint(loc.epsg, x_start, y_bottom, x1, loc.y0)
        props = {
            "platform": sc.platform,
            "constellation": "Sentinel-1",
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "GRD",
            "sar:instrument_mode": "IW",
            "sar:frequency_band": "C",
            "sar:center_frequency": 5.405,
            "sar:observation_direction": "right",
            "sat:orbit_state": "ascending" if sc.ascending else "descending",
            "sat:relative_orbit": sc.relative_orbit,
            "proj:epsg": loc.epsg,
            "proj:code": f"EPSG:{loc.epsg}",
        }
        item = pystac.Item(
            item_id,
            geom,
            bbox,
            sc.datetime,
            props,
            stac_extensions=[_EXT["sar"], _EXT["sat"], _EXT["proj"], _EXT["raster"]],
        )
        for pol in ("vv", "vh"):
            band = {
                "nodata": S1_NODATA,
                "data_type": "float32",
                "spatial_resolution": res,
                "unit": "linear gamma0",
            }
            item.add_asset(
                pol,
                pystac.Asset(
                    str(work / "s1" / item_id / f"{pol}.tif"),
                    media_type=pystac.MediaType.COG,
                    roles=["data"],
                    extra_fields={
                        **_asset_proj(n, res, loc.x0, loc.y0),
                        "gsd": res,
                        "raster:bands": [band],
                    },
                ),
            )
        s1_items.append(item)
    for cid, items, title in (
        ("sentinel-2-l2a", s2_items, "Sentinel-2 Level-2A"),
        ("sentinel-1-rtc", s1_items, "Sentinel-1 Radiometrically Terrain Corrected (RTC)"),
    ):
        times = [i.datetime for i in items if i.datetime is not None]
        coll = pystac.Collection(
            id=cid,
            description=f"{title} (synthetic, gapfill)",
            title=title,
            extent=pystac.Extent(
                pystac.SpatialExtent([full_bbox]), pystac.TemporalExtent([[min(times), max(times)]])
            ),
            license="CC-BY-4.0",
        )
        coll.add_items(items)
        catalog.add_child(coll)
    catalog.normalize_hrefs(str(work) + "/")
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    truth_index = {
        item_id: {
            "datetime": a.datetime.isoformat() + "Z",
            "path": f"{item_id}.tif",
            "scale_factor": 1e-4,
            "bands": list(BANDS),
        }
        for a, item_id in zip(plan.s2, s2_ids, strict=True)
    }
    (work / "truth" / "index.json").write_text(json.dumps(truth_index, indent=2))
    meta = {
        "spec": json.loads(spec.model_dump_json()),
        "epsg": loc.epsg,
        "bounds": [loc.x0, y_bottom, x1, loc.y0],
        "bbox_lonlat": full_bbox,
        "s2": [
            {
                "id": i,
                "datetime": a.datetime.isoformat() + "Z",
                "target_cover": a.cover,
                "eo:cloud_cover": float(cc),
            }
            for a, i, cc in zip(plan.s2, s2_ids, cloud_cover, strict=True)
        ],
        "s1": [
            {
                "id": i,
                "datetime": sc.datetime.isoformat() + "Z",
                "relative_orbit": sc.relative_orbit,
                "ascending": sc.ascending,
                "covers_from_x_fraction": sc.cover_from,
            }
            for sc, i in zip(plan.s1, s1_ids, strict=True)
        ],
        "software": {"gapfill": __version__, "git_sha": git_sha()},
    }
    (work / "world.json").write_text(json.dumps(meta, indent=2))
