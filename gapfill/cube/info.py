"""`gapfill cube info`: the summary of an existing cube."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gapfill.cube import layout
from gapfill.storage import absolute, shown

__all__ = ["cube_info"]


def _size_on_disk(location: str, storage_options: dict[str, Any] | None) -> int:
    import fsspec

    fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    return int(fs.du(root, total=True))


def cube_info(path: str | Path, storage_options: dict[str, Any] | None = None) -> dict:
    """Days, completeness, clear fraction and S1 coverage per day, size on disk (a path or
    an fsspec URL with its `storage_options`)."""
    location = absolute(str(path))
    ds = layout.open_cube(location, storage_options=storage_options)
    per_day = (
        ds[layout.CLEAR].mean(("y", "x")),
        ds[layout.S1].notnull().all("pol").mean(("y", "x")),
        ds[layout.S2].notnull().all("band").mean(("y", "x")),
    )
    clear, s1_cov, valid_frac = (np.asarray(a.values) for a in per_day)
    days = []
    for i, t in enumerate(ds["time"].values):
        days.append(
            {
                "day": str(t)[:10],
                "complete": bool(ds[layout.COMPLETE].values[i]),
                "valid_fraction": round(float(valid_frac[i]), 4),
                "clear_fraction": round(float(clear[i]), 4),
                "s1_coverage": round(float(s1_cov[i]), 4),
            }
        )
    return {
        "path": shown(location),
        "epsg": int(ds.attrs[layout.EPSG_ATTR]),
        "shape": [int(ds.sizes["y"]), int(ds.sizes["x"])],
        "resolution": float(ds.attrs[layout.RESOLUTION_ATTR]),
        "bands": list(layout.bands_of(ds)),
        "days": days,
        "n_days": len(days),
        "n_complete": sum(d["complete"] for d in days),
        "skipped_items": json.loads(ds.attrs.get(layout.SKIPPED_ITEMS_ATTR, "{}")),
        "dropped_days": json.loads(ds.attrs.get(layout.DROPPED_DAYS_ATTR, "{}")),
        "size_on_disk_mb": round(_size_on_disk(location, storage_options) / 1e6, 2),
    }
