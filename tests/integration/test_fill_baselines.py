"""`gapfill fill --method persistence|nearest|interpolate`: the baselines as fill methods,
through the same Dask tasks and product as the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from gapfill.cube import layout
from gapfill.errors import InputError
from gapfill.fill import FillConfig, fill, product
from gapfill.fill.baselines import baseline_fill
from gapfill.fill.calibrate import Calibration, calibrate, fit_mask

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.parametrize(("method", "calibrated"), [("interpolate", True), ("persistence", False)])
def test_a_baseline_fill_equals_the_baseline_on_the_whole_series(
    tmp_path, cube_pc, dask_address, method, calibrated
):
    """Chunks of 32 px filled by separate tasks give what the baseline (fitted to the
    day's clear pixels, when calibrated) gives on whole days: no seams."""
    out = tmp_path / "filled.zarr"
    cal = Calibration(enabled=calibrated)
    report = fill(
        FillConfig(
            cube=str(cube_pc),
            out=str(out),
            method=method,
            quicklooks=False,
            chunk=32,
            days_per_task=3,
            calibration=cal,
        ),
        dask_scheduler=dask_address,
    )
    cube = xr.open_zarr(cube_pc)
    ds = xr.open_zarr(out)
    times, s2, clear = cube["time"].values, cube[layout.S2].values, cube[layout.CLEAR].values
    filled_any = 0
    for t in range(len(times)):
        want = baseline_fill(method, times, s2, clear, t, 60)
        observed = np.isfinite(s2[t]).all(axis=0)
        fit = fit_mask(clear[t], observed, cal.buffer_px) & np.isfinite(want).all(axis=0)
        want = calibrate(want, s2[t], fit, cal)
        status = ds[product.STATUS].values[t]
        cloudy = observed & ~clear[t]
        can = cloudy & np.isfinite(want).all(axis=0)
        np.testing.assert_array_equal(status == product.FILLED, can, err_msg=str(t))
        np.testing.assert_array_equal(status == product.UNFILLED, cloudy & ~can)
        got = ds[product.S2].values[t][:, can]
        np.testing.assert_allclose(got, np.maximum(want[:, can], 1e-4), atol=0.6e-4)  # packing
        filled_any += int(can.sum())
    assert filled_any == report.pixels_filled > 0
    last = ds[product.STATUS].values[-1]
    if method == "interpolate":  # nothing after the last day: its clouds stay unfilled
        assert (last == product.FILLED).sum() == 0
    assert ds.attrs["fill_method"] == method
    assert ds.attrs["uses_later_days"] == (method == "interpolate")
    assert Calibration.model_validate_json(ds.attrs["calibration"]) == cal
    item = json.loads(out.with_name("filled.item.json").read_text())
    assert item["properties"]["gapfill:fill_method"] == method


def test_methods_are_not_mixed_in_one_product_and_a_baseline_takes_no_model(
    tmp_path, cube_pc, model_tiny, dask_address
):
    out = tmp_path / "filled.zarr"
    day = (str(xr.open_zarr(cube_pc)["time"].values[4])[:10],)
    fill(
        FillConfig(cube=str(cube_pc), out=str(out), method="nearest", dates=day, quicklooks=False),
        dask_scheduler=dask_address,
    )
    with pytest.raises(InputError, match="was filled with --method nearest, not model"):
        fill(
            FillConfig(
                cube=str(cube_pc),
                out=str(out),
                model=str(model_tiny),
                dates=day,
                overwrite=True,
                quicklooks=False,
            ),
            dask_scheduler=dask_address,
        )
    with pytest.raises(InputError, match="was filled with calibration"):
        fill(
            FillConfig(
                cube=str(cube_pc),
                out=str(out),
                method="nearest",
                dates=day,
                overwrite=True,
                quicklooks=False,
                calibration=Calibration(enabled=False),
            ),
            dask_scheduler=dask_address,
        )
    with pytest.raises(ValueError, match="uses no model"):
        FillConfig(cube="c", out="o", model="m", method="persistence")
    with pytest.raises(ValueError, match="--model RUN_DIR is needed"):
        FillConfig(cube="c", out="o")


def test_a_product_keeps_the_records_of_its_last_runs_only(
    tmp_path, cube_pc, dask_address, monkeypatch
):
    """A scheduled job fills for months: the product's run records stay bounded."""
    from gapfill.fill import run

    monkeypatch.setattr(run, "FILL_RUNS_KEPT", 2)
    out = tmp_path / "filled.zarr"
    days = [str(t)[:10] for t in xr.open_zarr(cube_pc)["time"].values[:3]]
    ids = []
    for day in days:
        cfg = FillConfig(cube=str(cube_pc), out=str(out), method="persistence",
                         dates=(day,), quicklooks=False)  # fmt: skip
        ids.append(fill(cfg, dask_scheduler=dask_address).run_id)
    attrs = xr.open_zarr(out).attrs
    assert [r["run_id"] for r in json.loads(attrs["fill_runs"])] == ids[1:]
    assert attrs["fill_runs_dropped"] == 1
    assert sorted(json.loads(attrs[product.DAY_INPUTS_ATTR])) == days  # per day: kept
