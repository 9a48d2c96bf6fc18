"""The GPU benchmark script runs (a lent GPU machine has minutes: a script that breaks
there wastes them): its CPU smoke mode, on a tiny net."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, out: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(next(out.glob("*.json")).read_text())


def test_gpu_check_smoke_run_writes_every_figure(tmp_path):
    res = _run(
        "gpu_check.py",
        "--device",
        "cpu",
        "--smoke",
        "--no-compile",
        "--tree",
        "abc",
        out=tmp_path,
    )
    assert res["tree"] == {"git_sha": "abc", "dirty": False}
    assert res["measured_peak_tflops"] > 0
    assert res["bare_forward"] and all(r["tflops"] > 0 for r in res["bare_forward"].values())
    assert res["tiled_forward_chunk"]["runs"]
    assert res["s2_tile_model_seconds"]["chunks"] == 172**2  # 10980 px in 64 px chunks
    compared = res["fill_window_vs_cpu_fp32"]
    assert compared["filled_pixels_compared"] > 0
    assert compared["max_abs_diff_reflectance"] == 0.0  # the CPU against itself


def test_gpu_check_without_the_fill_code_estimates_the_tile(tmp_path):
    """Where gapfill.fill cannot be imported (a bare GPU image), the generator figures
    still come back and the tile's seconds are an estimate, said so."""
    res = _run(
        "gpu_check.py", "--device", "cpu", "--smoke", "--no-compile", "--skip-fill", out=tmp_path
    )
    assert res["fill_parts"].startswith("skipped")
    assert "fill_window_vs_cpu_fp32" not in res
    tile = res["s2_tile_model_seconds"]
    assert tile["estimated_from"].startswith("the bare forward rate") and tile["seconds"] > 0


def test_gpu_check_runs_the_fill_parts_where_dask_zarr_and_pystac_are_missing(tmp_path):
    """The device image has torch, xarray and scipy but no Dask, Zarr, rasterio or pystac
    (the cube builder's and the fill driver's stack): the card and `fill_window` need none
    of them, so the script still runs fill's own code there."""
    missing = ["dask", "distributed", "zarr", "numcodecs", "rasterio", "stackstac", "pystac"]
    code = (
        "import runpy, sys\n"
        f"for m in {missing!r}: sys.modules[m] = None\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    script = str(ROOT / "benchmarks" / "gpu_check.py")
    args = [script, "--device", "cpu", "--smoke", "--no-compile", "--out", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert "fill_parts" not in res  # not skipped
    assert res["fill_window_vs_cpu_fp32"]["filled_pixels_compared"] > 0
    assert "estimated_from" not in res["s2_tile_model_seconds"]
