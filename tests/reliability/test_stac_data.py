"""What a STAC archive serves now and then, through the real local STAC API: an item
without a band's asset, an href that leads nowhere (with shell syntax in it), a COG of
the wrong sample type, days that are all cloud, no Sentinel-1 near the days. Each is
skipped and recorded (or one line with `--strict`); what cannot be filled says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gapfill.cube import layout
from gapfill.errors import InputError
from gapfill.evaluate import EvaluateConfig, evaluate
from gapfill.fill import FillConfig, fill, product
from gapfill.train import DataConfig, build_index
from tests.conftest import SAS_SECRET, inset_aoi, world_meta

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gapfill.cli", *args], capture_output=True, text=True, timeout=240
    )


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gapfill: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_damaged_items_are_skipped_and_recorded_and_cloud_only_days_say_why(
    tmp_path, world_faulty, stac_api, dask_address, model_tiny
):
    meta = world_meta(world_faulty)
    ids = [s["id"] for s in meta["s2"]]
    span = ["--start", meta["s2"][0]["datetime"][:10], "--end", meta["s2"][-1]["datetime"][:10]]
    where = ["--aoi", inset_aoi(world_faulty), "--stac-url", stac_api.url]
    out = tmp_path / "c.zarr"
    built = _cli("build-cube", *where, *span, "--out", str(out), "--dask-scheduler", dask_address)
    assert built.returncode == 0, built.stderr[-3000:]
    cube = xr.open_zarr(out)
    skipped = json.loads(cube.attrs["skipped_items"])
    assert skipped.keys() == set(ids[1:])
    assert f"item {ids[1]} has no asset for B03" in skipped[ids[1]]
    assert skipped[ids[2]].startswith("unreadable asset B08")
    assert "asset B02 holds float32 samples, not uint16 or int16" in skipped[ids[3]]
    assert skipped[ids[4]].startswith("unreadable asset B02")
    assert not list(Path.cwd().glob("pwned")) and not list(world_faulty.rglob("pwned"))
    # The signed URL's token is in no log line and no attr.
    assert "127.0.0.1:9/B02.tif" in built.stderr, built.stderr
    assert SAS_SECRET not in built.stderr
    assert SAS_SECRET not in json.dumps(dict(cube.attrs))
    assert cube.sizes["time"] == 1
    assert not cube[layout.CLEAR].values.any()  # the one day left is all cloud

    # Nothing to fill from: every pixel stays unfilled, and the report says so.
    filled = fill(
        FillConfig(cube=str(out), method="persistence", out=str(tmp_path / "p.zarr")),
        dask_scheduler=dask_address,
    )
    assert filled.pixels_unfilled == 64 * 64 and filled.pixels_filled == 0
    status = xr.open_zarr(tmp_path / "p.zarr")[product.STATUS].values
    assert (status == product.UNFILLED).all()
    with pytest.raises(InputError, match="no training sample"):
        build_index(DataConfig(cubes=(str(out),), patch=32), "B")
    with pytest.raises(InputError, match="no clear target day"):
        evaluate(EvaluateConfig(cube=str(out), model=str(model_tiny), allow_train_overlap=True))

    # --strict: the first damaged item in one line, and no cube.
    strict = _cli("build-cube", *where, *span, "--strict", "--out", str(tmp_path / "s.zarr"))
    _one_line(strict, f"item {ids[1]}", "has no asset for B03", "drop --strict")
    assert not (tmp_path / "s.zarr").exists()

    # No Sentinel-1 within the gap allowed: refused, saying what was found.
    day = meta["s2"][0]["datetime"][:10]
    none = _cli(
        "build-cube", *where, "--start", day, "--end", day, "--max-gap-days", "0",
        "--out", str(tmp_path / "n.zarr"),
    )  # fmt: skip
    _one_line(none, "no Sentinel-1 items", "found 1 Sentinel-2 items")
    assert not (tmp_path / "n.zarr").exists()
    np.testing.assert_array_equal(xr.open_zarr(out)[layout.COMPLETE].values, [True])
