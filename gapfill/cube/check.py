"""`gapfill cube check`: is every chunk of every complete day there and readable?

A chunk file lost after a day was flagged complete reads back as no data, silently.
`check_cube` finds such days; `repair=True` clears their `complete` flag, so that the
next `gapfill build-cube` redoes them. `require_intact` is the cheap part (chunk
presence only) that `fill` and `train` run before they read a cube.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from gapfill import store
from gapfill.cube import layout
from gapfill.errors import InputError
from gapfill.storage import shown

__all__ = ["CheckReport", "check_cube", "require_intact"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckReport:
    """Complete days checked, and per damaged day what is wrong with which chunks."""

    path: str
    days_checked: int
    damaged: dict[str, list[str]] = field(default_factory=dict)
    repaired: bool = False


def _complete_days(ds_times: np.ndarray, complete: np.ndarray) -> list[int]:
    return [i for i in range(len(ds_times)) if bool(complete[i])]


def check_cube(path: str | Path, *, decode: bool = True, repair: bool = False) -> CheckReport:
    """Verify every chunk of every complete day of the cube at `path` exists and (with
    `decode`) decodes; with `repair`, flag the damaged days incomplete."""
    where = str(path)
    ds = layout.open_cube(where, chunks=None)
    names = [str(t)[:10] for t in ds["time"].values]
    days = _complete_days(ds["time"].values, ds[layout.COMPLETE].values)
    why = "missing" if ds.attrs.get(layout.EVERY_CHUNK) else "missing (or all-empty: old cube)"
    damaged: dict[str, list[str]] = {
        names[t]: [f"{k} {why}" for k in keys]
        for t, keys in store.missing_chunks(where, layout.DAY_VARS, days).items()
    }
    if decode:
        group = zarr.open_group(where, mode="r", zarr_format=3)
        for name in layout.DAY_VARS:
            array = group[name]
            assert isinstance(array, zarr.Array)
            nblocks = [-(-n // c) for n, c in zip(array.shape, array.chunks, strict=True)]
            for t in days:
                for rest in np.ndindex(*nblocks[1:]):
                    try:
                        array.blocks[(t, *rest)]
                    except Exception as exc:  # any codec or I/O failure is damage
                        key = array.metadata.encode_chunk_key((t, *rest))
                        why = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
                        damaged.setdefault(names[t], []).append(f"{name}/{key} unreadable ({why})")
    if repair and damaged:
        group = zarr.open_group(where, mode="r+", zarr_format=3, use_consolidated=False)
        flags = group[layout.COMPLETE]
        assert isinstance(flags, zarr.Array)
        for day in damaged:
            flags[names.index(day)] = False
        layout.consolidate(where)
    return CheckReport(where, len(days), dict(sorted(damaged.items())), repair and bool(damaged))


def require_intact(
    path: str, ds: xr.Dataset, storage_options: dict[str, Any] | None = None
) -> None:
    """Refuse, in one line, a cube with a chunk missing on a complete day (presence only:
    one listing per variable). Cubes written before every chunk was stored (no
    `layout.EVERY_CHUNK` attr) may lack all-empty chunks legitimately: not checked."""
    if not ds.attrs.get(layout.EVERY_CHUNK):
        log.info("%s predates complete chunk writes: chunk presence not checked", shown(path))
        return
    complete, times = ds[layout.COMPLETE].values, ds["time"].values
    names = [str(t)[:10] for t in times]
    days = _complete_days(times, complete)
    gone = store.missing_chunks(path, layout.DAY_VARS, days, storage_options)
    if gone:
        first = min(gone)
        raise InputError(
            f"cube {shown(path)} is damaged: {len(gone)} complete day(s) miss chunks "
            f"({names[first]}: {gone[first][0]}, ...): run 'gapfill cube check {shown(path)} "
            "--repair', then 'gapfill build-cube' again with the same options to redo them"
        )
