"""Training samples from cubes: patches, targets, references, inputs, augmentation.

A sample is (cube, patch, target day t2, reference kind). Targets are days whose patch
is clear above a threshold (the masked L1 ignores the rest). Task B samples come in two
kinds: `single` (the most recent earlier day within the look-back that is clear over the
whole patch: the paper's case) and `composite` (the per-pixel reference rule of
`gapfill.cube.reference`, what fill meets). Pixels without a valid input or target are
imputed and left out of the loss. Reads are lazy: a sample reads its own windows only, and
`load_samples` reads a block of the cube once for the many samples inside it.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pyproj import Transformer

from gapfill.cube import layout
from gapfill.cube.check import require_intact
from gapfill.cube.reference import (
    NONE,
    ReferenceRule,
    compose_reference,
    lookahead_last,
    lookback_first,
    pick_next_reference,
    pick_reference,
)
from gapfill.errors import InputError
from gapfill.grid import UTCDay, parse_aoi
from gapfill.normalize import Normalisation, model_input
from gapfill.storage import absolute

__all__ = [
    "DataConfig",
    "Sample",
    "PatchIndex",
    "build_index",
    "load_sample",
    "load_samples",
    "augment",
]

log = logging.getLogger(__name__)

SINGLE_CLEAR = 0.99


class DataConfig(BaseModel):
    """Which patches and days make training and test samples."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cubes: tuple[str, ...] = Field(description="cube paths or URLs (s3://bucket/cube.zarr)")
    storage_options: dict[str, Any] | None = Field(
        None,
        description="fsspec options for cube URLs, e.g. {endpoint_url: ...}; credentials "
        "are better left to the environment (they are recorded with the run)",
    )
    patch: int = Field(256, ge=16)
    train_region: str | None = Field(None, description="AOI text (bbox, WKT, GeoJSON file)")
    test_region: str | None = Field(None, description="AOI text; patches inside are held out")
    min_target_clear: float = Field(0.5, ge=0, le=1)
    until: UTCDay | None = Field(
        None, description="train (and validate) on target days up to this day only"
    )
    reference: ReferenceRule = ReferenceRule()
    normalisation: Normalisation = Normalisation()
    bands: tuple[str, ...] | None = Field(
        None,
        description="the cubes' band set (every cube must hold the same); left out, "
        "`train` takes it from the cubes and records it",
    )

    @field_validator("cubes")
    @classmethod
    def _absolute(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        """Local paths made absolute where the config is read: Ray workers run elsewhere."""
        return tuple(absolute(c) for c in v)

    @field_validator("train_region", "test_region")
    @classmethod
    def _inline_file(cls, v: str | None) -> str | None:
        """A GeoJSON file becomes its WKT: workers on other machines cannot read the file."""
        try:
            if v is None or not Path(v.strip()).is_file():
                return v
        except OSError:  # WKT longer than a file name can be
            return v
        return str(parse_aoi(v).geometry.wkt)


@dataclass(frozen=True)
class Sample:
    """One training example, cheap to pickle (it names windows, it holds no pixels)."""

    cube: int
    y0: int
    x0: int
    target: int
    kind: Literal["single", "composite", "none"]
    reference: int = NONE


@dataclass
class PatchIndex:
    """Samples per split and why candidates were rejected."""

    train: list[Sample]
    test: list[Sample]
    rejected: Counter


def _region(text: str | None, epsg: int) -> shapely.Geometry | None:
    if text is None:
        return None
    geom = parse_aoi(text).geometry
    to_cube = Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geom.segmentize(0.01), to_cube.transform, interleaved=False)


def _patch_fraction(arr: xr.DataArray, patch: int, ny: int, nx: int) -> np.ndarray:
    """(T, ny, nx) mean of a boolean (T, y, x) array over whole patches, a day at a time
    (memory: one day, whatever the cube's length)."""
    out = np.zeros((arr.sizes["time"], ny, nx), np.float32)
    for t in range(arr.sizes["time"]):
        day = np.asarray(arr.isel(time=t).values[: ny * patch, : nx * patch], np.float32)
        out[t] = day.reshape(ny, patch, nx, patch).mean(axis=(1, 3))
    return out


def build_index(cfg: DataConfig, task: Literal["A", "B"]) -> PatchIndex:
    """Enumerate samples of all cubes; a split without any sample is a user error."""
    train: list[Sample] = []
    test: list[Sample] = []
    rejected: Counter = Counter()
    for ci, path in enumerate(cfg.cubes):
        ds = open_cube(path, cfg.storage_options)
        times = ds["time"].values
        require_intact(path, ds, cfg.storage_options)
        ny, nx = ds.sizes["y"] // cfg.patch, ds.sizes["x"] // cfg.patch
        if ny == 0 or nx == 0:
            raise InputError(
                f"cube {path} ({ds.sizes['y']}x{ds.sizes['x']} px) is smaller than one "
                f"{cfg.patch} px patch: use a smaller --patch"
            )
        epsg = int(ds.attrs[layout.EPSG_ATTR])
        train_geom, test_geom = _region(cfg.train_region, epsg), _region(cfg.test_region, epsg)
        complete = ds[layout.COMPLETE].values
        # Shares of the observed pixels: a nodata border is no reason to drop a patch.
        observed = _patch_fraction(ds[layout.S2].isel(band=0).notnull(), cfg.patch, ny, nx)
        clear = _patch_fraction(ds[layout.CLEAR], cfg.patch, ny, nx) / np.maximum(observed, 1e-9)
        has_s1 = _patch_fraction(layout.has_s1(ds[layout.S1_ORBIT]), cfg.patch, ny, nx)
        x, y = ds["x"].values, ds["y"].values
        until = None if cfg.until is None else np.datetime64(cfg.until, "ns")
        for py in range(ny):
            for px in range(nx):
                cy = y[py * cfg.patch + cfg.patch // 2]
                cx = x[px * cfg.patch + cfg.patch // 2]
                centre = shapely.Point(cx, cy)
                if test_geom is not None and test_geom.contains(centre):
                    split = test
                elif train_geom is None or train_geom.contains(centre):
                    split = train
                else:
                    rejected["patch outside both regions"] += len(times)
                    continue
                for t in range(len(times)):
                    if not complete[t]:
                        rejected["day not complete"] += 1
                        continue
                    if until is not None and times[t] > until:
                        rejected["after data.until"] += 1
                        continue
                    if observed[t, py, px] < 0.5:
                        rejected["target patch mostly without data"] += 1
                        continue
                    if clear[t, py, px] < cfg.min_target_clear:
                        rejected[f"target clear < {cfg.min_target_clear:g}"] += 1
                        continue
                    if has_s1[t, py, px] == 0:
                        rejected["no S1 on the target day"] += 1
                        continue
                    y0, x0 = py * cfg.patch, px * cfg.patch
                    if task == "A":
                        split.append(Sample(ci, y0, x0, t, "none"))
                        continue
                    earlier = list(range(lookback_first(times, t, cfg.reference), t))
                    if not earlier:
                        rejected["no earlier day within the look-back"] += 1
                        continue
                    single = [k for k in earlier if clear[k, py, px] >= SINGLE_CLEAR]
                    if single:
                        split.append(Sample(ci, y0, x0, t, "single", single[-1]))
                    split.append(Sample(ci, y0, x0, t, "composite"))
    if not train:
        reasons = ", ".join(f"{n} {why}" for why, n in rejected.most_common()) or "no patches"
        raise InputError(f"no training sample in the training region ({reasons})")
    log.info("samples: %d train, %d test; rejected: %s", len(train), len(test), dict(rejected))
    return PatchIndex(train, test, rejected)


def open_cube(path: str, storage_options: dict[str, Any] | None = None) -> xr.Dataset:
    """A cube for sample reads: lazily indexed numpy, no Dask (a sample reads small windows)."""
    return layout.open_cube(path, chunks=None, storage_options=storage_options)


def load_sample(
    ds: xr.Dataset, s: Sample, cfg: DataConfig, task: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input (C, P, P), target (4, P, P), loss mask (P, P)) in normalised units."""
    p = cfg.patch
    win = {"y": slice(s.y0, s.y0 + p), "x": slice(s.x0, s.x0 + p)}
    day = ds.isel({"time": s.target, **win})
    target = cfg.normalisation.optical(day[layout.S2].values)
    s1_t2 = day[layout.S1].values
    s1_t1 = o1 = None
    if task == "B":
        if s.kind == "single":
            ref_day = ds.isel({"time": s.reference, **win})
            o1 = ref_day[layout.S2].values
            s1_t1 = np.array(ref_day[layout.S1].values, np.float32)
            if cfg.reference.same_orbit:
                other = ref_day[layout.S1_ORBIT].values != day[layout.S1_ORBIT].values
                s1_t1[:, other] = np.nan
        else:
            o1, s1_t1 = _composite(ds, s, cfg, win)
    later = _later_side(ds, s, cfg, win) if task == "B" and cfg.reference.rule == "both" else None
    x, valid = model_input(cfg.normalisation, task, s1_t2, s1_t1, o1, later)
    mask = day[layout.CLEAR].values & valid & np.isfinite(target).all(axis=0)
    return x, np.nan_to_num(target, nan=0.0), mask


# The cube variables a sample reads (with `time`).
_SAMPLE_VARS = (layout.S2, layout.S1, layout.CLEAR, layout.S1_ORBIT)


def load_samples(
    ds: xr.Dataset,
    samples: Sequence[Sample],
    cfg: DataConfig,
    task: str,
    budget_mb: int = 256,
) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """(position in `samples`, `load_sample`'s arrays) for samples of cube `ds`, read a
    block of the cube at a time (chunk-aligned where the budget allows; the days of the
    block's samples; about `budget_mb` of decoded values): each Zarr chunk is decoded once
    per block instead of once per sample and day (a 32 px patch of a 256 px chunk used
    to decode 64 times the pixels it needed, for every day of its look-back)."""
    if not samples:
        return
    p = cfg.patch
    times = ds["time"].values
    spans = [_span(times, s, cfg, task) for s in samples]
    per_px_day = sum(
        ds[v].dtype.itemsize
        * int(np.prod([n for d, n in ds[v].sizes.items() if d not in ("time", "y", "x")]))
        for v in _SAMPLE_VARS
    )
    longest = max(t1 - t0 for t0, t1 in spans)
    budget = budget_mb * 2**20
    chunks = ds[layout.S2].encoding.get("chunks") or (p,)
    side = max(p, int(chunks[-1]) // p * p)
    while side > p and side * side * per_px_day * longest > budget:
        side = max(p, side // 2 // p * p)
    days = max(longest, budget // (side * side * per_px_day))
    regions: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, s in enumerate(samples):
        regions[(s.y0 // side, s.x0 // side)].append(k)
    for (ry, rx), members in sorted(regions.items()):
        members.sort(key=lambda k: spans[k])
        block: list[int] = []
        end = 0  # the block's last day + 1
        for k in [*members, -1]:
            if block and (k < 0 or max(end, spans[k][1]) - spans[block[0]][0] > days):
                yield from _read_block(
                    ds, samples, block, spans, (ry * side, rx * side, side), cfg, task
                )
                block, end = [], 0
            if k >= 0:
                block.append(k)
                end = max(end, spans[k][1])


def _span(times: np.ndarray, s: Sample, cfg: DataConfig, task: str) -> tuple[int, int]:
    """The time indices [first, last + 1) that sample `s` reads."""
    if task == "A":
        return s.target, s.target + 1
    rule = cfg.reference
    return lookback_first(times, s.target, rule), lookahead_last(times, s.target, rule) + 1


def _read_block(
    ds: xr.Dataset,
    samples: Sequence[Sample],
    block: list[int],
    spans: list[tuple[int, int]],
    region: tuple[int, int, int],
    cfg: DataConfig,
    task: str,
) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """The block's samples from one read of their region and days."""
    y0, x0, side = region
    t0, t1 = spans[block[0]][0], max(spans[k][1] for k in block)
    sub = (
        ds[list(_SAMPLE_VARS)]
        .isel(time=slice(t0, t1), y=slice(y0, y0 + side), x=slice(x0, x0 + side))
        .load()
    )
    for k in block:
        s = samples[k]
        local = replace(
            s,
            y0=s.y0 - y0,
            x0=s.x0 - x0,
            target=s.target - t0,
            reference=s.reference - t0 if s.reference != NONE else NONE,
        )
        yield k, load_sample(sub, local, cfg, task)


def _later_side(
    ds: xr.Dataset, s: Sample, cfg: DataConfig, win: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rule `both`: (S1_t3, O3, age of O1, days to O3) of a sample, per pixel."""
    times = ds["time"].values
    first = lookback_first(times, s.target, cfg.reference)
    last = lookahead_last(times, s.target, cfg.reference)
    span = ds.isel({"time": slice(first, last + 1), **win})
    clear, orbit = span[layout.CLEAR].values, span[layout.S1_ORBIT].values
    local = s.target - first
    _, age1 = pick_reference(times[first : last + 1], local, clear, orbit, cfg.reference)
    nxt, ahead = pick_next_reference(times[first : last + 1], local, clear, orbit, cfg.reference)
    if s.kind == "single":  # the paper's case: O1 is that one day
        age1 = np.full(
            age1.shape, int((times[s.target] - times[s.reference]) / np.timedelta64(1, "D"))
        )
    o3, s1_t3 = compose_reference(nxt, span[layout.S2].values, span[layout.S1].values)
    return s1_t3, o3, age1.astype(np.float32), ahead.astype(np.float32)


def _composite(
    ds: xr.Dataset, s: Sample, cfg: DataConfig, win: dict
) -> tuple[np.ndarray, np.ndarray]:
    """O1 and S1_t1 (physical units) by the per-pixel reference rule."""
    times = ds["time"].values
    first = lookback_first(times, s.target, cfg.reference)
    span = ds.isel({"time": slice(first, s.target + 1), **win})
    ref, _ = pick_reference(
        times[first : s.target + 1],
        s.target - first,
        span[layout.CLEAR].values,
        span[layout.S1_ORBIT].values,
        cfg.reference,
    )
    return compose_reference(ref, span[layout.S2].values, span[layout.S1].values)


def augment(
    x: np.ndarray, y: np.ndarray, m: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same random flip and rot90 applied to input, target and mask."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))

    def tf(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, k, axes=(-2, -1))
        return np.ascontiguousarray(a[..., ::-1] if flip else a)

    return tf(x), tf(y), tf(m)
