"""gapfill fill end to end vs the bare model on the same haloed tiles and threads, and peak
memory at 1x and 4x area.

One run, one synthetic world (default 1024^2 x 8 days) served by the local STAC API,
cubes of its central quarter (1x) and of the whole world (4x), an untrained generator of
the chosen preset (its cost does not depend on its weights):

- fill: `gapfill.fill.fill` through a LocalCluster of W workers x 1 thread (W = 1 is
  the like-for-like comparison; W = 2 is also run at 1x), twice per cluster: cold (the
  workers import torch and load the model) and warm (a second store); peak RSS is the
  client plus its workers, sampled.
- floor: `tiled_forward` (the bare generator in eval mode) on random inputs of exactly
  the window shapes the fill sent through the model (reported by the fill itself), same
  tile and halo, run as a task in the same 1-thread worker after the fills (torch speed
  differs by up to 20 % between processes here, so the floor runs where the fill ran);
  no reads, references or writes. The same floor in this process is reported too.

`halo_overhead`: pixels through the model / product pixels written (the halo a chunk
reads for the model's receptive field and the day calibration's reach). `nocal`: the 1x
fill again without day calibration (what calibration costs).

Usage: python benchmarks/fill.py [--size 1024] [--dates 8] [--chunk 256] [--preset cpu-small]
    [--parts 1x,4x,2w,nocal]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from benchmarks.cube_build import _aoi, _PeakRSS, _worker_pids  # noqa: E402


def _floor(run_dir: Path, windows: dict[str, int], tile: int) -> float:
    """Seconds the bare model takes on the fill's windows, 1 torch thread."""
    import torch

    from gapfill.fill.infer import cached_model, halo_of, tiled_forward

    torch.set_num_threads(1)
    model, card = cached_model(run_dir, "bench", "cpu")
    rng = np.random.default_rng(0)
    inputs = []
    for shape, n in windows.items():
        h, w = (int(v) for v in shape.split("x"))
        inputs.append(rng.uniform(-1, 1, (n, len(card.input_channels), h, w)).astype(np.float32))
    t0 = time.perf_counter()
    for x in inputs:
        tiled_forward(model, x, tile=tile, halo=halo_of(card), batch=1)
    return time.perf_counter() - t0


def _fill_runs(
    cube: Path, run_dir: Path, out: Path, workers: int, tile: int, calibrate: bool = True
) -> dict:
    """Fill twice on one fresh cluster (cold: workers import torch and load the model;
    warm: a second store), then the bare model on the same windows in a worker."""
    from distributed import Client

    from gapfill.cluster import local_cluster
    from gapfill.fill import FillConfig, fill
    from gapfill.fill.calibrate import Calibration

    runs = {}
    with local_cluster(workers) as cluster, Client(cluster) as client:
        pids = _worker_pids(cluster.scheduler_address)
        for name in ("cold", "warm"):
            with _PeakRSS(pids) as rss:
                t0 = time.perf_counter()
                report = fill(
                    FillConfig(
                        cube=str(cube),
                        model=str(run_dir),
                        out=str(out / name),
                        quicklooks=False,
                        calibration=Calibration(enabled=calibrate),
                    ),
                    dask_scheduler=cluster.scheduler_address,
                )
                wall = time.perf_counter() - t0
            runs[name] = {
                "wall_s": round(wall, 2),
                "peak_rss_mb": round(rss.peak / 2**20, 1),
                "days_filled": len(report.days_filled),
                "pixels_filled": report.pixels_filled,
                "model_windows": report.model_windows,
                "model_mpx": round(report.pixels_through_model / 1e6, 3),
                "halo_overhead": round(
                    report.pixels_through_model
                    / max(report.pixels_filled + report.pixels_clear + report.pixels_unfilled, 1),
                    3,
                ),
                "task_seconds": report.task_seconds,
            }
        if workers == 1:
            floor = client.submit(
                _floor, run_dir, runs["warm"]["model_windows"], tile, pure=False
            ).result()
            runs["floor_in_worker_s"] = round(floor, 2)
    return runs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--dates", type=int, default=8)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--preset", default="cpu-small")
    p.add_argument(
        "--parts",
        default="1x,4x,2w,nocal",
        help="1x, 4x (area), 2w (two workers at 1x), nocal (1x without day calibration)",
    )
    a = p.parse_args()
    parts = set(a.parts.split(","))

    from distributed import LocalCluster

    from gapfill.cube import CubeConfig, build_cube
    from gapfill.stac import local_stac_api
    from gapfill.synth import WorldSpec, make_world
    from tests.conftest import save_untrained_model

    tmp = Path(tempfile.mkdtemp(prefix="gapfill-bench-fill-"))
    try:
        world = tmp / "world"
        make_world(world, WorldSpec(size=a.size, dates=a.dates, seed=2))
        import json

        meta = json.loads((world / "world.json").read_text())
        first, last = meta["s2"][0]["datetime"][:10], meta["s2"][-1]["datetime"][:10]
        cubes = {}
        with (
            local_stac_api([world]) as api,
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl,
        ):
            for name, frac in (("1x", 0.5), ("4x", 1.0)):
                aoi, _ = _aoi(meta, frac)
                cubes[name] = tmp / f"cube-{name}.zarr"
                cfg = CubeConfig(aoi=aoi, start=first, end=last, stac_url=api.url, chunk=a.chunk)
                build_cube(cubes[name], cfg, dask_scheduler=cl.scheduler_address)
        run_dir = save_untrained_model(tmp / "run", preset=a.preset)
        tile = 256
        one = _fill_runs(cubes["1x"], run_dir, tmp / "f1", 1, tile)
        floor_main = _floor(run_dir, one["warm"]["model_windows"], tile)
        import xarray as xr

        side = xr.open_zarr(cubes["1x"]).sizes["y"]
        area = one["warm"]["days_filled"] * side * side / 1e6
        payload: dict = {
            "command": "benchmarks/fill.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items()),
            "world": {"size": a.size, "dates": a.dates, "chunk": a.chunk, "tile": tile},
            "preset": a.preset,
            "fill_1x_1worker": one,
            "floor_1x_in_this_process_s": round(floor_main, 2),
            "time_ratio_1x_warm_over_floor_in_worker": round(
                one["warm"]["wall_s"] / one["floor_in_worker_s"], 3
            ),
            "time_ratio_1x_warm_over_floor_in_process": round(
                one["warm"]["wall_s"] / floor_main, 3
            ),
            "mpx_per_s_1x_1worker_warm": round(area / one["warm"]["wall_s"], 3),
        }
        if "nocal" in parts:
            nocal = _fill_runs(cubes["1x"], run_dir, tmp / "f1nc", 1, tile, calibrate=False)
            payload["fill_1x_1worker_no_calibration"] = nocal
            payload["time_ratio_1x_warm_calibrated_over_not"] = round(
                one["warm"]["wall_s"] / nocal["warm"]["wall_s"], 3
            )
        if "4x" in parts:
            four = _fill_runs(cubes["4x"], run_dir, tmp / "f4", 1, tile)
            payload["fill_4x_1worker"] = four
            payload["time_ratio_4x_warm_over_floor_in_worker"] = round(
                four["warm"]["wall_s"] / four["floor_in_worker_s"], 3
            )
            payload["rss_ratio_4x_over_1x"] = round(
                four["cold"]["peak_rss_mb"] / one["cold"]["peak_rss_mb"], 3
            )
        if "2w" in parts:
            two = _fill_runs(cubes["1x"], run_dir, tmp / "f1w2", 2, tile)
            payload["fill_1x_2workers"] = two
            payload["mpx_per_s_1x_2workers_warm"] = round(area / two["warm"]["wall_s"], 3)
        path = write_result("fill", payload)
        print(json.dumps(payload, indent=2))
        print(f"wrote {path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
