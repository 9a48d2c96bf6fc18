"""`gapfill cube info`: the summary of an existing cube."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gapfill.cube import layout

__all__ = ["cube_info"]


def _size_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cube_info(path: str | Path) -> dict:
    """Days, completeness, clear fraction and S1 coverage per day, size on disk."""
    path = Path(path)
    ds = layout.open_cube(path)
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
        "path": str(path),
        "epsg": int(ds.attrs["epsg"]),
        "shape": [int(ds.sizes["y"]), int(ds.sizes["x"])],
        "resolution": float(ds.attrs["resolution"]),
        "days": days,
        "n_days": len(days),
        "n_complete": sum(d["complete"] for d in days),
        "skipped_items": json.loads(ds.attrs.get("skipped_items", "{}")),
        "dropped_days": json.loads(ds.attrs.get("dropped_days", "{}")),
        "size_on_disk_mb": round(_size_on_disk(path) / 1e6, 2),
    }
