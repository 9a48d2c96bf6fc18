"""`build_cube`: search -> probe -> per tile: read -> masks -> S1 matching -> Zarr;
incremental and resumable.

The unit of work is one Dask task per spatial chunk (tile) of one day, which reads its
COG windows and writes that chunk of every variable (`compute.tile_values`). A day's
`complete` flag is written after all its tiles, so a killed run re-run redoes exactly
the days whose flag is false and ends with the same values as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import shapely
import xarray as xr
import zarr
from distributed import as_completed
from pyproj import Transformer

from gapfill import store
from gapfill._provenance import __version__, git_sha
from gapfill.bands import ASSET_DTYPES, BAND_SETS, S1_POLS, S2_SCL, band_resolution
from gapfill.cluster import dask_client
from gapfill.cube import layout
from gapfill.cube.compute import DayTile, S1Scene, S2Day, tile_has_data, tile_values
from gapfill.cube.config import CubeConfig
from gapfill.cube.loader import HTTP_RETRY
from gapfill.errors import InputError
from gapfill.grid import AOI, DateRange, Grid, parse_aoi, utm_epsg
from gapfill.stac import profiles_for, search
from gapfill.stac.providers import (
    SensorProfile,
    asset_key,
    item_datetime,
    missing_bands,
    relative_orbit,
)
from gapfill.storage import absolute, exclusive_run, redact_text, require_writable, shown

__all__ = ["build_cube", "BuildReport", "cube_grid", "FAULT_ENV"]

log = logging.getLogger(__name__)

# Deterministic fault injection for tests: SIGKILL this process after N written chunks.
FAULT_ENV = "GAPFILL_FAULT_AFTER_CHUNKS"


@dataclass
class BuildReport:
    """What a build did."""

    path: str
    days_total: int
    days_written: list[str] = field(default_factory=list)
    days_s1_rematched: list[str] = field(default_factory=list)
    days_dropped: dict[str, str] = field(default_factory=dict)
    skipped_items: dict[str, str] = field(default_factory=dict)
    # Wall seconds per phase (search, probe, has_data, write, metadata): where a
    # build's time went, for users sizing a region and for the cube benchmark.
    seconds: dict[str, float] = field(default_factory=dict)


def cube_grid(
    aoi: AOI, resolution: float, epsg: int | None, max_pixels: int = 1_000_000_000
) -> Grid:
    """The cube's grid: UTM zone of the AOI centroid (unless `epsg`), bounds snapped outward;
    a grid above `max_pixels` is refused."""
    c = aoi.geometry.centroid
    chosen = epsg or utm_epsg(c.x, c.y)
    minx, _, maxx, _ = aoi.bbox
    zones = {utm_epsg(minx, c.y), utm_epsg(maxx, c.y)}
    if epsg is None and len(zones) > 1:
        log.warning(
            "the AOI spans UTM zones %s; using EPSG:%d (zone of its centroid). "
            "Pass --epsg to choose another.",
            sorted(zones),
            chosen,
        )
    to_utm = Transformer.from_crs(4326, chosen, always_xy=True)
    projected = shapely.transform(
        aoi.geometry.segmentize(0.01), to_utm.transform, interleaved=False
    )
    minx, miny, maxx, maxy = projected.bounds
    grid = Grid.snapped(chosen, (minx, miny, maxx, maxy), resolution)
    _check_size(grid, projected, max_pixels)
    return grid


# Above this many pixels a grid is worth a warning (about two Sentinel-2 tiles' area).
WARN_PIXELS = 250_000_000


def _check_size(grid: Grid, projected: shapely.Geometry, max_pixels: int) -> None:
    """Refuse a grid above `max_pixels` (size in the message); warn above `WARN_PIXELS`
    or when the AOI covers little of the box the grid spans (disjoint features)."""
    h, w = grid.shape
    n = h * w
    size = f"{h} x {w} px = {n / 1e6:.1f} Mpx at {grid.resolution:g} m"
    cover = projected.area / max(n * grid.resolution**2, 1e-9)
    parts = len(getattr(projected, "geoms", [projected]))
    scattered = (
        f"; the AOI's {parts} separate parts cover {100 * cover:.0f} % of the box it spans: "
        "build one cube per part"
        if parts > 1 and cover < 0.25
        else ""
    )
    if n > max_pixels:
        raise InputError(
            f"the AOI's grid is {size}, above the limit of {max_pixels / 1e6:g} Mpx"
            + (scattered or ": split the AOI into several cubes")
            + ", or raise --max-pixels"
        )
    if scattered or n > WARN_PIXELS:
        log.warning("the AOI's grid is %s%s", size, scattered)


def _pseudo_orbit(props: dict, when: datetime) -> int:
    """An orbit key for items without an orbit number: 200 + state, repeat phase, hour.

    Sentinel-1 revisits a relative orbit every 6 days (constellation) at the same time
    of day, so (day mod 6, hour, direction) identifies it at one place.
    """
    desc = 1 if str(props.get("sat:orbit_state", "")).lower().startswith("desc") else 0
    return 200 + desc * 144 + (when.toordinal() % 6) * 24 + when.hour


def _href(asset: pystac.Asset) -> str:
    """An asset's href as GDAL should open it: absolute paths and URLs stay as they are
    (pystac would resolve "/path" against an API item's http self link)."""
    raw = asset.href
    if "://" in raw or raw.startswith("/"):
        return raw
    return asset.get_absolute_href() or raw


def _probe(item: pystac.Item, keys: Sequence[str], names: Sequence[str]) -> str | None:
    """Why an item cannot be read (missing asset key, unreadable or truncated COG, a
    sample type other than the band's), or None.

    Opens each asset and reads its last block at full resolution: in a COG the
    full-resolution tiles come last, so a truncated file fails there first.
    """
    for key, name in zip(keys, names, strict=True):
        if key not in item.assets:
            return f"missing asset {key}"
        href = _href(item.assets[key])
        try:
            with (
                rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", **HTTP_RETRY),
                rasterio.open(href) as ds,
            ):
                if ds.dtypes[0] not in ASSET_DTYPES[name]:
                    return (
                        f"asset {key} holds {ds.dtypes[0]} samples, not "
                        f"{' or '.join(ASSET_DTYPES[name])} as {name} must"
                    )
                bh, bw = ds.block_shapes[0]
                row = ((ds.height - 1) // bh) * bh
                col = ((ds.width - 1) // bw) * bw
                ds.read(
                    1, window=rasterio.windows.Window(col, row, ds.width - col, ds.height - row)
                )
        except rasterio.errors.RasterioError as exc:
            error = redact_text(str(exc).splitlines()[0])[:160]
            where = shown(href)
            return f"unreadable asset {key}: {error}" + (
                f" ({where})" if where not in error else ""
            )
    return None


# Items probed at once: opening a COG is mostly waiting (HTTP round trips for remote
# assets), so a few threads overlap it.
_PROBE_THREADS = 8


def _why_unreadable(it: pystac.Item, profile: SensorProfile, names: Sequence[str]) -> str:
    try:
        keys = [asset_key(it, n, profile) for n in names]
    except InputError as exc:
        return str(exc)
    return _probe(it, keys, names) or ""


def _check_items(
    items: list[pystac.Item],
    profile: SensorProfile,
    names: Sequence[str],
    strict: bool,
    skipped: dict[str, str],
) -> list[pystac.Item]:
    """The readable `items`, in order; the others are skipped with a reason (refused in one
    line under `strict`). Items are probed on a few threads at once."""
    with ThreadPoolExecutor(_PROBE_THREADS) as pool:
        reasons = list(pool.map(lambda it: _why_unreadable(it, profile, names), items))
    kept = []
    for it, reason in zip(items, reasons, strict=True):
        if reason:
            if strict:
                raise InputError(f"item {it.id}: {reason} (drop --strict to skip such items)")
            log.warning("skipping item %s: %s", it.id, reason)
            skipped[it.id] = reason
            continue
        kept.append(it)
    return kept


def _day_of(item: pystac.Item) -> datetime:
    t = item_datetime(item)
    return datetime(t.year, t.month, t.day)


def _group_days(items: Sequence[pystac.Item]) -> list[S2Day]:
    by_day: dict[datetime, list[pystac.Item]] = {}
    for it in items:
        by_day.setdefault(_day_of(it), []).append(it)
    days = []
    for day, its in sorted(by_day.items()):
        its.sort(key=lambda i: (float(i.properties.get("eo:cloud_cover", 0) or 0), i.id))
        days.append(S2Day(day, min(item_datetime(i) for i in its), tuple(i.to_dict() for i in its)))
    return days


def _scenes_for(day: S2Day, scenes: Sequence[S1Scene], max_gap: float) -> list[S1Scene]:
    near = [s for s in scenes if abs(s.time - day.time) <= timedelta(days=max_gap)]
    # Nearest first; on a tie the earlier acquisition.
    return sorted(near, key=lambda s: (abs(s.time - day.time), s.time, s.item["id"]))


# Per day, the ids of the S1 scenes its S1 was matched from: a later run re-matches a
# recent day only when that set changed (a new scene arrived), so a run with nothing new
# writes nothing.
S1_MATCHED_ATTR = "s1_items_per_day"


def _scene_ids(day: S2Day, scenes: Sequence[S1Scene], cfg: CubeConfig) -> list[str]:
    return [s.item["id"] for s in _scenes_for(day, scenes, cfg.max_gap_days)]


class _Clock:
    """Adds wall seconds to `BuildReport.seconds` under a phase name."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


class _Fault:
    """Counts written chunks; SIGKILLs the process when $GAPFILL_FAULT_AFTER_CHUNKS is reached."""

    def __init__(self) -> None:
        raw = os.environ.get(FAULT_ENV)
        self.limit = int(raw) if raw else None
        self.count = 0

    def wrote(self, chunks: int) -> None:
        self.count += chunks
        if self.limit is not None and self.count >= self.limit:
            log.error("fault injection: killing the build after %d chunks", self.count)
            os.kill(os.getpid(), signal.SIGKILL)


def _attrs(cfg: CubeConfig, aoi: AOI, grid: Grid, s2p: SensorProfile, s1p: SensorProfile) -> dict:
    return {
        store.CUBE_CONTRACT_ATTR: layout.CUBE_CONTRACT_VERSION,
        layout.CUBE_ID: uuid.uuid4().hex,
        layout.EVERY_CHUNK: True,
        layout.AOI_ATTR: json.dumps(aoi.geojson),
        layout.EPSG_ATTR: grid.epsg,
        layout.RESOLUTION_ATTR: grid.resolution,
        layout.BOUNDS_ATTR: list(grid.bounds),
        "providers": json.dumps({"s2": s2p.model_dump(), "s1": s1p.model_dump()}),
        layout.SEARCH_ATTR: cfg.model_dump_json(),
        layout.MAX_GAP_ATTR: cfg.max_gap_days,
        "clear_classes": list(cfg.clear_classes),
        "cloud_classes_dilated": list(cfg.cloud_classes),
        "dilation_m": cfg.dilation_m,
        "despeckle": cfg.despeckle,
        LEE_FILTER_ATTR: LEE_FILTER,
        "items_per_day": "{}",
        layout.SKIPPED_ITEMS_ATTR: "{}",
        layout.DROPPED_DAYS_ATTR: "{}",
        "software_version": __version__,
        "git_sha": git_sha(),
    }


# Settings that fix a cube's layout or how its days are computed: an extension must use
# the store's (taken from it when not given; refused when given otherwise).
_FIXED = (
    "resolution",
    "epsg",
    "chunk",
    "max_gap_days",
    "despeckle",
    "clear_classes",
    "cloud_classes",
    "dilation_m",
)


# How `--despeckle lee` filters, recorded in every cube: before this attr the filter ran
# across scenes and polarisations, and such a cube is not extended with other values.
LEE_FILTER_ATTR = "lee_filter"
LEE_FILTER = "per-image"


def _settings_of_store(existing: xr.Dataset, cfg: CubeConfig, path: str) -> CubeConfig:
    """`cfg` with the existing cube's fixed settings; a different one given explicitly is
    refused in one line naming the store's value. Runs before anything is written."""
    store.require(existing.attrs, store.CUBE, str(path), "choose another --out")
    if existing.attrs.get(store.CUBE_CONTRACT_ATTR) not in layout.READABLE_CUBE_CONTRACTS:
        raise InputError(
            f"{path} is a cube of contract {existing.attrs.get(store.CUBE_CONTRACT_ATTR)}, "
            f"not {' or '.join(layout.READABLE_CUBE_CONTRACTS)}: choose another --out"
        )
    bands = layout.bands_of(existing)
    pols = tuple(str(p) for p in existing["pol"].values)
    if pols != S1_POLS:
        raise InputError(
            f"{path} holds polarisations {list(pols)}, not {list(S1_POLS)}: choose another --out"
        )
    if "bands" in cfg.model_fields_set and cfg.bands != bands:
        raise InputError(
            f"{path} holds bands {','.join(bands)}, not {','.join(cfg.bands)}: leave --bands "
            "out (or give the store's) to extend it, or choose another --out"
        )
    # A contract-1 cube's recorded search predates band sets: its bands are the store's.
    stored = CubeConfig.model_validate_json(str(existing.attrs[layout.SEARCH_ATTR])).model_copy(
        update={"bands": bands}
    )
    cfg = cfg.model_copy(update={"bands": bands})
    if stored.despeckle == "lee" and existing.attrs.get(LEE_FILTER_ATTR) != LEE_FILTER:
        raise InputError(
            f"{path} was despeckled by an earlier Lee filter (it mixed scenes and "
            "polarisations): its new days would differ from its old ones; build a new cube"
        )
    given = cfg.model_fields_set
    taken: dict[str, object] = {}
    for name in _FIXED:
        mine, theirs = getattr(cfg, name), getattr(stored, name)
        if mine == theirs:
            continue
        if name in given:
            flag = "--" + name.replace("_", "-")
            raise InputError(
                f"{path} was built with {flag} {_shown(theirs)}, not {_shown(mine)}: "
                f"leave {flag} out (or give {_shown(theirs)}) to extend it, or choose another --out"
            )
        taken[name] = theirs
    if taken:
        log.info(
            "extending %s with its own %s", path, ", ".join(f"{k}={v}" for k, v in taken.items())
        )
    return cfg.model_copy(update=taken)


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _same_grid(existing: xr.Dataset, grid: Grid, aoi: AOI, path: str) -> None:
    old = layout.grid_of(existing)
    if old != grid:
        raise InputError(
            f"{path} is a cube of another grid (EPSG:{old.epsg}, {old.bounds}); "
            "choose another --out or the same AOI and --epsg"
        )
    if json.loads(existing.attrs[layout.AOI_ATTR]) != json.loads(json.dumps(aoi.geojson)):
        raise InputError(f"{path} is a cube of another AOI: choose another --out")


def _tiles(
    index: int,
    day: S2Day,
    scenes: tuple[S1Scene, ...],
    names: tuple[str, ...],
    grid: Grid,
    cfg: CubeConfig,
) -> list[DayTile]:
    """The day's tiles: the grid's chunks, row by row."""
    h, w = grid.shape
    c = cfg.chunk
    return [
        DayTile(index, day, scenes, y0, x0, min(c, h - y0), min(c, w - x0), names)
        for y0 in range(0, h, c)
        for x0 in range(0, w, c)
    ]


def _days_with_data(
    client: Any, days: list[S2Day], grid: Grid, cfg: CubeConfig, s2p: SensorProfile
) -> list[bool]:
    """Per day, whether any tile has data (one Dask task per tile and day)."""
    tiles = [t for i, d in enumerate(days) for t in _tiles(i, d, (), (), grid, cfg)]
    found = client.gather(
        client.map(tile_has_data, tiles, grid=grid, cfg=cfg, profile=s2p, pure=False)
    )
    has = [False] * len(days)
    for tile, any_data in zip(tiles, found, strict=True):
        has[tile.index] |= any_data
    return has


def _write_tile(
    tile: DayTile,
    days_store: store.DayStore,
    grid: Grid,
    cfg: CubeConfig,
    s2p: SensorProfile,
    s1p: SensorProfile,
) -> None:
    """Compute one tile of one day and write its chunks (a Dask task)."""
    for name, values in tile_values(tile, grid, cfg, s2p, s1p).items():
        days_store.write_block(name, tile.index, tile.y0, tile.x0, layout.pack(name, values))


def _write_days(
    client: Any,
    days_store: store.DayStore,
    batch: list[tuple[int, S2Day, tuple[str, ...]]],
    scenes: Sequence[S1Scene],
    grid: Grid,
    cfg: CubeConfig,
    profiles: tuple[SensorProfile, SensorProfile],
    fault: _Fault,
) -> None:
    """Write the days of `batch` as one Dask task per tile and day: each reads its COG
    windows, computes every variable and writes whole chunks, so a worker holds one tile
    at a time whatever the region's size."""
    tiles = [
        tile
        for i, d, names in batch
        for tile in _tiles(i, d, tuple(_scenes_for(d, scenes, cfg.max_gap_days)), names, grid, cfg)
    ]
    futures = client.map(
        _write_tile,
        tiles,
        days_store=days_store,
        grid=grid,
        cfg=cfg,
        s2p=profiles[0],
        s1p=profiles[1],
        pure=False,
    )
    for future in as_completed(futures):
        future.result()
        fault.wrote(1)


def _batches(
    todo: list[tuple[int, S2Day, tuple[str, ...]]], size: int
) -> Iterator[list[tuple[int, S2Day, tuple[str, ...]]]]:
    """Runs of consecutive time indices writing the same variables, at most `size` long."""
    batch: list[tuple[int, S2Day, tuple[str, ...]]] = []
    for entry in todo:
        if batch and (
            entry[0] != batch[-1][0] + 1 or entry[2] != batch[-1][2] or len(batch) == size
        ):
            yield batch
            batch = []
        batch.append(entry)
    if batch:
        yield batch


def _set_complete(group: zarr.Group, index: int, value: bool) -> None:
    array = group[layout.COMPLETE]
    assert isinstance(array, zarr.Array)
    array[index] = value


def build_cube(
    out: str | Path,
    cfg: CubeConfig,
    *,
    dask_scheduler: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> BuildReport:
    """Build or extend the cube at `out` (a path, or an fsspec URL such as `s3://...` with
    its `storage_options`, which are never recorded) for `cfg`; see the module docstring."""
    location = absolute(str(out))
    require_writable(location, "--out", storage_options)
    busy = f"{shown(location)} is being built by another run: wait for it to finish, then run again"
    with exclusive_run(location, busy, storage_options):
        return _build_cube(location, cfg, dask_scheduler, storage_options)


def _build_cube(
    out: str, cfg: CubeConfig, dask_scheduler: str | None, opts: dict[str, Any] | None
) -> BuildReport:
    days_store = store.DayStore(out, opts)
    where = shown(out)
    aoi = parse_aoi(cfg.aoi)
    existing: xr.Dataset | None = None
    if days_store.exists():
        try:
            existing = days_store.open()
        except Exception:  # not a Zarr store at all
            raise InputError(
                f"{where} exists and is not a gapfill cube: choose another --out"
            ) from None
        cfg = _settings_of_store(existing, cfg, where)
    grid = cube_grid(aoi, cfg.resolution, cfg.epsg, cfg.max_pixels)
    if existing is not None:
        _same_grid(existing, grid, aoi, where)
    s2p, s1p = profiles_for(cfg.provider, cfg.stac_url, cfg.s1_provider, cfg.profile)

    dates = DateRange(cfg.start, cfg.end)
    pad = timedelta(days=int(np.ceil(cfg.max_gap_days)))
    report = BuildReport(out, 0)
    clock = _Clock(report.seconds)
    with clock.phase("search"):
        found = search(
            aoi,
            dates,
            s2p,
            s1p,
            max_cloud=cfg.max_cloud,
            s1_dates=DateRange(cfg.start - pad, cfg.end + pad),
        )
    s1_found = found.s1
    what = f"over AOI {aoi.bbox} from {cfg.start} to {cfg.end}"
    if not found.s2:
        raise InputError(
            f"no Sentinel-2 items {what} in {s2p.provider}/{s2p.collection} "
            f"({s2p.url}); found {len(s1_found)} Sentinel-1 items"
        )
    if not s1_found:
        raise InputError(
            f"no Sentinel-1 items {what} (±{cfg.max_gap_days:g} days) in "
            f"{s1p.provider}/{s1p.collection} ({s1p.url}); "
            f"found {len(found.s2)} Sentinel-2 items"
        )

    lacking = missing_bands(found.s2, cfg.bands, s2p)
    if lacking:
        have = [b for b in BAND_SETS["all"] if b not in missing_bands(found.s2, (b,), s2p)]
        why = next(iter(lacking.values()))
        raise InputError(
            f"the Sentinel-2 catalog ({s2p.provider}/{s2p.collection}) lacks band "
            f"{', '.join(lacking)}: {why}; build with --bands {','.join(have) or '...'} "
            f"(bands it has) or another provider"
            + (
                f" and --resolution {min(map(band_resolution, have))}"
                if have and min(map(band_resolution, have)) > cfg.resolution
                else ""
            )
        )
    existing_times = (
        [] if existing is None else list(existing["time"].values.astype("datetime64[ns]"))
    )
    complete = [] if existing is None else list(existing[layout.COMPLETE].values)
    last = max(existing_times) if existing_times else None
    found_days = _group_days(found.s2)
    if existing is not None and np.datetime64(found_days[0].day, "ns") < min(existing_times):
        raise InputError(
            f"{where} starts on {str(min(existing_times))[:10]}: a cube only grows "
            "forward in time; build a new cube for earlier days"
        )
    recent = (
        (last - np.timedelta64(int(np.ceil(cfg.max_gap_days)), "D")) if last is not None else None
    )
    unfinished = {t for t, c in zip(existing_times, complete, strict=True) if not c}

    def _t(d: S2Day) -> np.datetime64:
        return np.datetime64(d.day, "ns")

    def _recent(t: np.datetime64) -> bool:
        return recent is not None and last is not None and bool(recent <= t <= last)

    # Only the days this run may write are probed: new days and unfinished ones (all
    # variables), recent finished days (their S1 may be re-matched), and the S1 scenes
    # near them. A re-run with nothing new opens no COG.
    rewrite = {d.day for d in found_days if last is None or _t(d) > last or _t(d) in unfinished}
    rematch = [d for d in found_days if d.day not in rewrite and _recent(_t(d))]
    near = timedelta(days=cfg.max_gap_days + 1)
    around = [d.time for d in found_days if d.day in rewrite] + [d.time for d in rematch]
    with clock.phase("probe"):
        s2_items = _check_items(
            [it for it in found.s2 if _day_of(it) in rewrite],
            s2p,
            (*cfg.bands, S2_SCL),
            cfg.strict,
            report.skipped_items,
        )
        s1_items = _check_items(
            [it for it in s1_found if any(abs(item_datetime(it) - t) <= near for t in around)],
            s1p,
            S1_POLS,
            cfg.strict,
            report.skipped_items,
        )
    days = _group_days(s2_items)
    scenes = sorted(
        (
            S1Scene(
                it.to_dict(),
                item_datetime(it),
                relative_orbit(it) or _pseudo_orbit(it.properties, item_datetime(it)),
            )
            for it in s1_items
        ),
        key=lambda s: s.time,
    )
    new_days = [d for d in days if last is None or _t(d) > last]
    with dask_client(dask_scheduler, writes={"cube": out}) as client:
        log.info("dask: scheduler %s", client.scheduler.address)
        kept: list[S2Day] = []
        with clock.phase("has_data"):
            with_data = _days_with_data(client, new_days, grid, cfg, s2p)
        for d, has_data in zip(new_days, with_data, strict=True):
            if not has_data:
                report.days_dropped[d.day.date().isoformat()] = "no valid pixel in the AOI"
                log.warning("dropping %s: no valid pixel in the AOI", d.day.date())
            else:
                kept.append(d)
        if existing is None and not kept:
            raise InputError(
                f"no Sentinel-2 day has data inside the AOI {what}: "
                "check that the AOI lies within the items' footprints"
            )
        attrs = _attrs(cfg, aoi, grid, s2p, s1p)
        times = np.array([np.datetime64(d.day, "ns") for d in kept], dtype="datetime64[ns]")
        if existing is None:
            tmpl = layout.template(grid, times, cfg.chunk, attrs, cfg.bands)
            days_store.create(tmpl, layout.encoding(cfg.chunk, grid, len(cfg.bands)))
        elif len(kept):
            # Appending rewrites the group attrs: carry the existing ones over.
            tmpl = layout.template(grid, times, cfg.chunk, dict(existing.attrs), cfg.bands)
            days_store.append_days(tmpl, ["band", "pol", "x", "y", layout.SPATIAL_REF])
        group = days_store.group()
        all_times = list(existing_times) + list(times)
        complete += [False] * len(times)
        by_time = {_t(d): d for d in [*days, *rematch]}
        fault = _Fault()
        todo: list[tuple[int, S2Day, tuple[str, ...]]] = []
        matched = (
            json.loads(str(existing.attrs.get(S1_MATCHED_ATTR, "{}")))
            if existing is not None
            else {}
        )
        for i, t in enumerate(all_times):
            day = by_time.get(t)
            if day is None:
                continue
            if not complete[i]:
                todo.append((i, day, layout.DAY_VARS))
            elif _recent(t) and matched.get(day.day.date().isoformat()) != _scene_ids(
                day, scenes, cfg
            ):
                todo.append((i, day, layout.S1_VARS))
        report.days_total = len(all_times)
        for batch in _batches(todo, cfg.batch_days):
            names = batch[0][2]
            for i, _, _ in batch:
                _set_complete(group, i, False)
            with clock.phase("write"):
                _write_days(client, days_store, batch, scenes, grid, cfg, (s2p, s1p), fault)
            with clock.phase("metadata"):
                if names == layout.DAY_VARS:  # an S1 re-match leaves the S2 items as they were
                    days_store.update_json_attr(
                        group,
                        "items_per_day",
                        {
                            d.day.date().isoformat(): [it["id"] for it in d.items]
                            for _, d, _ in batch
                        },
                    )
                days_store.update_json_attr(
                    group,
                    S1_MATCHED_ATTR,
                    {d.day.date().isoformat(): _scene_ids(d, scenes, cfg) for _, d, _ in batch},
                )
                for i, d, _ in batch:
                    _set_complete(group, i, True)
                    done = (
                        report.days_written
                        if names == layout.DAY_VARS
                        else report.days_s1_rematched
                    )
                    done.append(d.day.date().isoformat())
                days_store.consolidate()
            log.info(
                "days %s..%s: %s written",
                batch[0][1].day.date(),
                batch[-1][1].day.date(),
                "all variables" if names == layout.DAY_VARS else "S1 re-matched",
            )
        with clock.phase("metadata"):
            days_store.update_json_attr(group, layout.SKIPPED_ITEMS_ATTR, report.skipped_items)
            days_store.update_json_attr(group, layout.DROPPED_DAYS_ATTR, report.days_dropped)
            group.attrs["software_version"] = __version__
            group.attrs["git_sha"] = git_sha()
            days_store.consolidate()
    return report
