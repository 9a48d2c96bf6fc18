"""The filled product contract (`filled.zarr`, Zarr v3), version 2.

Same grid, `time` axis (created once from the cube), coords, CF packing and
`spatial_ref` as the cube (`gapfill.cube.layout`):

- `s2` (time, band, y, x): reflectance observed where clear, simulated where filled
- `status` (time, y, x) uint8 CF flags: 0 nodata, 1 clear, 2 filled, 3 unfilled
  (cloudy, with no usable reference or S1, or on a day below `--min-cloud`)
- `reference_dt` (time, y, x) int16: age of the reference in days where filled (else -1)
- `reference_next_dt` (time, y, x) int16: days to the later reference where one was used
  (reference rule `both`, or a baseline that reads later days; else -1). New in version 2.
- `uncertainty` (time, band, y, x), optional (`gapfill fill --uncertainty N`): the
  standard deviation of N Monte-Carlo dropout passes of the generator, in reflectance
  units, where filled (NaN elsewhere); CF-packed like `s2`. The attr `uncertainty_passes`
  says N; a product has the variable for all its days or for none.
- `complete` (time) bool, written last for each day
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from gapfill.cube import layout
from gapfill.grid import Grid

__all__ = [
    "PRODUCT_CONTRACT_VERSION",
    "READABLE_PRODUCT_CONTRACTS",
    "S2",
    "STATUS",
    "REFERENCE_DT",
    "REFERENCE_NEXT_DT",
    "UNCERTAINTY",
    "UNCERTAINTY_ATTR",
    "COMPLETE",
    "DAY_VARS",
    "NODATA",
    "CLEAR",
    "FILLED",
    "UNFILLED",
    "FLAG_MEANINGS",
    "REFERENCE_DT_MISSING",
    "DAY_INPUTS_ATTR",
    "PIPELINE_ATTR",
    "FILL_METHOD_ATTR",
    "USES_LATER_DAYS_ATTR",
    "CALIBRATION_ATTR",
    "METHOD_CHOICE_ATTR",
    "MODEL_RUN_ATTR",
    "MODEL_SHA256_ATTR",
    "MODEL_CARD_ATTR",
    "FILL_RUNS_ATTR",
    "FILL_RUNS_DROPPED_ATTR",
    "product_template",
    "product_encoding",
]

PRODUCT_CONTRACT_VERSION = "3"
# Contracts this code reads and extends: 2 held the four bands hard-wired, 3 the cube's
# band set (same layout otherwise: the `band` coordinate says which).
READABLE_PRODUCT_CONTRACTS = ("2", "3")

S2, STATUS, COMPLETE = layout.S2, "status", layout.COMPLETE
REFERENCE_DT, REFERENCE_NEXT_DT = "reference_dt", "reference_next_dt"
DAY_VARS = (S2, STATUS, REFERENCE_DT, REFERENCE_NEXT_DT)
UNCERTAINTY = "uncertainty"
UNCERTAINTY_ATTR = "uncertainty_passes"
NODATA, CLEAR, FILLED, UNFILLED = 0, 1, 2, 3
FLAG_MEANINGS = ("nodata", "clear", "filled", "unfilled")
REFERENCE_DT_MISSING = -1
# JSON attr: per filled day, {"read_until": last cube day its fill could read (None for a
# day copied, not filled), "run": run id, "model": sha256 of the weights ("" for a
# baseline)}. A later cube day within that reach makes the
# fill stale (`gapfill run` refills it).
DAY_INPUTS_ATTR = "day_inputs"
# Attr of a cube or product kept by `gapfill run`: the region spec's name that owns it.
PIPELINE_ATTR = "pipeline"
# How the product was filled (checked when a run adds days, shown in its STAC item): the
# method ("model" or a baseline), whether fills read later days, day calibration (JSON),
# the evaluation's method choice, and the model (its run folder, weights' sha256, card JSON).
FILL_METHOD_ATTR, USES_LATER_DAYS_ATTR = "fill_method", "uses_later_days"
CALIBRATION_ATTR, METHOD_CHOICE_ATTR = "calibration", "method_choice"
MODEL_RUN_ATTR, MODEL_SHA256_ATTR, MODEL_CARD_ATTR = "model_run", "model_sha256", "model_card"
# JSON list of the last runs (config, days filled/copied/skipped), and how many were dropped.
FILL_RUNS_ATTR, FILL_RUNS_DROPPED_ATTR = "fill_runs", "fill_runs_dropped"

_ATTRS: dict[str, dict[str, Any]] = {
    S2: {
        "long_name": "surface reflectance, observed where clear, simulated where filled",
        "units": "1",
    },
    STATUS: {
        "long_name": "where each pixel of s2 comes from",
        "flag_values": [NODATA, CLEAR, FILLED, UNFILLED],
        "flag_meanings": " ".join(FLAG_MEANINGS),
    },
    # No "units: days": xarray would decode it to a timedelta.
    REFERENCE_DT: {"long_name": "age of the reference (O1) in days where filled (days)"},
    REFERENCE_NEXT_DT: {
        "long_name": "days from the target to the later reference (O3) where filled with one (days)"
    },
    UNCERTAINTY: {
        "long_name": "standard deviation of Monte-Carlo dropout passes of the generator "
        "where filled (before day calibration)",
        "units": "1",
    },
    COMPLETE: {
        "long_name": "day fully written",
        "flag_values": [0, 1],
        "flag_meanings": "incomplete complete",
    },
}


def product_template(
    grid: Grid,
    times: np.ndarray,
    chunk: int,
    attrs: Mapping[str, Any],
    bands: tuple[str, ...],
    *,
    uncertainty: bool = False,
) -> xr.Dataset:
    """A lazy, all-missing product of the cube's `bands` for its `times` (written with
    `compute=False`), with the `uncertainty` variable when asked."""
    import dask.array as da

    h, w = grid.shape
    y, x = grid.coords()
    nt, nb = len(times), len(bands)
    cy, cx = min(chunk, h), min(chunk, w)
    ds = xr.Dataset(
        {
            S2: (
                ("time", "band", "y", "x"),
                da.full((nt, nb, h, w), np.nan, dtype=np.float32, chunks=(1, nb, cy, cx)),
            ),
            STATUS: (
                ("time", "y", "x"),
                da.full((nt, h, w), NODATA, dtype=np.uint8, chunks=(1, cy, cx)),
            ),
            **{
                name: (
                    ("time", "y", "x"),
                    da.full((nt, h, w), REFERENCE_DT_MISSING, dtype=np.int16, chunks=(1, cy, cx)),
                )
                for name in (REFERENCE_DT, REFERENCE_NEXT_DT)
            },
            COMPLETE: (("time",), np.zeros(nt, dtype=bool)),
        },
        coords={
            "time": ("time", np.asarray(times, dtype="datetime64[ns]")),
            "band": ("band", np.array(bands, dtype=object)),
            "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
            "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
            layout.SPATIAL_REF: layout.spatial_ref(grid),
        },
        attrs=dict(attrs),
    )
    if uncertainty:
        ds[UNCERTAINTY] = ds[S2].copy()
    for name in (*DAY_VARS, COMPLETE, *([UNCERTAINTY] if uncertainty else [])):
        ds[name].attrs.update(_ATTRS[name])
        if name != COMPLETE:
            ds[name].attrs["grid_mapping"] = layout.SPATIAL_REF
    ds.attrs["coordinates"] = layout.SPATIAL_REF
    return ds


def product_encoding(
    chunk: int, grid: Grid, nbands: int, *, uncertainty: bool = False
) -> dict[str, dict[str, Any]]:
    """Zarr encodings: the cube's CF packing for `s2` (and `uncertainty`), chunks time=1
    and square spatial."""
    h, w = grid.shape
    cy, cx = min(chunk, h), min(chunk, w)
    packed = {**layout.ENCODINGS[layout.S2], "chunks": (1, nbands, cy, cx)}
    # s2's packing, but 0 is a valid spread: the fill value is the top of the range.
    spread = {**packed, "_FillValue": np.iinfo(np.uint16).max}
    return {
        S2: packed,
        **({UNCERTAINTY: spread} if uncertainty else {}),
        STATUS: {"dtype": "uint8", "chunks": (1, cy, cx)},
        **{
            name: {"dtype": "int16", "_FillValue": REFERENCE_DT_MISSING, "chunks": (1, cy, cx)}
            for name in (REFERENCE_DT, REFERENCE_NEXT_DT)
        },
        COMPLETE: {**layout.ENCODINGS[layout.COMPLETE], "chunks": (1,)},
        "time": {"units": "nanoseconds since 1970-01-01", "dtype": "int64"},
    }
