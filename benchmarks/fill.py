"""gapfill fill end to end vs the bare model on the same haloed windows, in the same Dask
worker and in a plain process, alternating, several runs each.

One synthetic world (default 1024^2 x 4 days) served by the local STAC API, the cube of
its central quarter (1x; the whole world too with --parts 4x), an untrained generator of
the chosen preset (its cost does not depend on its weights):

- fill: `gapfill.fill.fill` through gapfill's LocalCluster of 1 worker x 1 thread (what
  `fill` starts); a first fill (cold: the worker imports torch, loads the model) is
  reported apart, then `--repeat` warm fills, each into a new store.
- floors: `tiled_forward` (the bare generator in eval mode) on random inputs of exactly
  the window shapes the fill sent through the model (reported by the fill itself), same
  tile and halo, 1 torch thread, after one untimed pass; no reads, references,
  calibration or writes. Run (a) as
  a task in the same worker and (b) in a fresh plain process (`_common.measure`). Each
  repeat runs fill, worker floor and plain floor in a rotated order; the JSON keeps every
  run and the medians.

`halo_overhead`: pixels through the model / product pixels written (the halo a chunk
reads for the model's receptive field and the day calibration's reach). --parts adds
`nocal` (the 1x fill without day calibration: what calibration costs), `4x` (peak RSS at
4x area) and `2w` (two workers).

Usage: python benchmarks/fill.py [--size 1024] [--dates 4] [--chunk 256] [--preset cpu-small]
    [--repeat 3] [--parts 1x,nocal,4x,2w]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import measure, write_result  # noqa: E402
from benchmarks.cube_build import _aoi, _PeakRSS, _worker_pids  # noqa: E402


def _floor(run_dir: Path, windows: dict[str, int], tile: int) -> float:
    """Seconds the bare model takes on the fill's windows, 1 torch thread, after one
    untimed pass (a warm fill's worker has made its first pass long before)."""
    import torch

    from gapfill.fill.infer import cached_model, halo_of, tiled_forward

    torch.set_num_threads(1)
    model, card = cached_model(run_dir, "bench", "cpu")
    rng = np.random.default_rng(0)
    inputs = []
    for shape, n in windows.items():
        h, w = (int(v) for v in shape.split("x"))
        inputs.append(rng.uniform(-1, 1, (n, len(card.input_channels), h, w)).astype(np.float32))
    tiled_forward(model, inputs[0][:1], tile=tile, halo=halo_of(card), batch=1)
    t0 = time.perf_counter()
    for x in inputs:
        tiled_forward(model, x, tile=tile, halo=halo_of(card), batch=1)
    return time.perf_counter() - t0


def _one_fill(cube: Path, run_dir: Path, out: Path, address: str, calibrate: bool) -> dict:
    from gapfill.fill import FillConfig, fill
    from gapfill.fill.calibrate import Calibration

    pids = _worker_pids(address)
    with _PeakRSS(pids) as rss:
        t0 = time.perf_counter()
        report = fill(
            FillConfig(
                cube=str(cube),
                model=str(run_dir),
                out=str(out),
                quicklooks=False,
                calibration=Calibration(enabled=calibrate),
            ),
            dask_scheduler=address,
        )
        wall = time.perf_counter() - t0
    return {
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


def _plain_floor(run_dir: Path, windows: dict[str, int], tile: int) -> dict:
    return {"floor_s": _floor(run_dir, windows, tile)}


def _fill_runs(
    cube: Path,
    run_dir: Path,
    out: Path,
    workers: int,
    tile: int,
    repeat: int,
    calibrate: bool = True,
) -> dict:
    """A cold fill, then `repeat` rounds of a warm fill, the bare model in the same worker
    and the bare model in a fresh plain process, in a rotated order."""
    from distributed import Client

    from gapfill.cluster import local_cluster

    with local_cluster(workers) as cluster, Client(cluster) as client:
        address = cluster.scheduler_address
        cold = _one_fill(cube, run_dir, out / "cold", address, calibrate)
        windows = cold["model_windows"]
        runs = []
        for r in range(repeat):
            run: dict = {}
            order = ["fill", "worker", "plain"]
            for which in order[r % 3 :] + order[: r % 3]:
                if which == "fill":
                    run["fill"] = _one_fill(cube, run_dir, out / f"warm-{r}", address, calibrate)
                elif which == "worker" and workers == 1:
                    run["floor_in_worker_s"] = round(
                        client.submit(_floor, run_dir, windows, tile, pure=False).result(), 2
                    )
                elif which == "plain":
                    run["floor_plain_process_s"] = round(
                        measure(_plain_floor, run_dir, windows, tile)["floor_s"], 2
                    )
            print(json.dumps(run), flush=True)
            runs.append(run)

    def med(key: str) -> float | None:
        values = [x[key] for x in runs if key in x]
        return round(statistics.median(values), 2) if values else None

    fill_s = round(statistics.median(x["fill"]["wall_s"] for x in runs), 2)
    out_d: dict = {
        "cold": cold,
        "runs": runs,
        "median_fill_s": fill_s,
        "median_floor_in_worker_s": med("floor_in_worker_s"),
        "median_floor_plain_process_s": med("floor_plain_process_s"),
    }
    if out_d["median_floor_in_worker_s"]:
        out_d["time_ratio_fill_over_floor_in_worker"] = round(
            fill_s / out_d["median_floor_in_worker_s"], 3
        )
    out_d["time_ratio_fill_over_floor_plain_process"] = round(
        fill_s / out_d["median_floor_plain_process_s"], 3
    )
    return out_d


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--dates", type=int, default=4)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--parts",
        default="1x",
        help="1x, 4x (area), 2w (two workers at 1x), nocal (1x without day calibration)",
    )
    a = p.parse_args()
    parts = set(a.parts.split(","))

    from gapfill.cluster import local_cluster
    from gapfill.cube import CubeConfig, build_cube
    from gapfill.stac import local_stac_api
    from gapfill.synth import WorldSpec, make_world
    from tests.conftest import save_untrained_model

    tmp = Path(tempfile.mkdtemp(prefix="gapfill-bench-fill-"))
    try:
        world = tmp / "world"
        make_world(world, WorldSpec(size=a.size, dates=a.dates, seed=2))
        meta = json.loads((world / "world.json").read_text())
        first, last = meta["s2"][0]["datetime"][:10], meta["s2"][-1]["datetime"][:10]
        cubes = {}
        with local_stac_api([world]) as api, local_cluster(2) as cl:
            for name, frac in (("1x", 0.5), ("4x", 1.0)):
                if name == "4x" and "4x" not in parts:
                    continue
                aoi, _ = _aoi(meta, frac)
                cubes[name] = tmp / f"cube-{name}.zarr"
                cfg = CubeConfig(aoi=aoi, start=first, end=last, stac_url=api.url, chunk=a.chunk)
                build_cube(cubes[name], cfg, dask_scheduler=cl.scheduler_address)
        run_dir = save_untrained_model(tmp / "run", preset=a.preset)
        tile = 256
        one = _fill_runs(cubes["1x"], run_dir, tmp / "f1", 1, tile, a.repeat)
        import xarray as xr

        side = xr.open_zarr(cubes["1x"]).sizes["y"]
        area = one["cold"]["days_filled"] * side * side / 1e6
        payload: dict = {
            "command": "benchmarks/fill.py " + " ".join(sys.argv[1:]),
            "params": vars(a),
            "world": {"size": a.size, "dates": a.dates, "chunk": a.chunk, "tile": tile},
            "preset": a.preset,
            "fill_1x_1worker": one,
            "time_ratio_fill_over_floor_in_worker": one["time_ratio_fill_over_floor_in_worker"],
            "time_ratio_fill_over_floor_plain_process": one[
                "time_ratio_fill_over_floor_plain_process"
            ],
            "halo_overhead": one["cold"]["halo_overhead"],
            "mpx_per_s_1x_1worker_warm": round(area / one["median_fill_s"], 3),
        }
        if "nocal" in parts:
            nocal = _fill_runs(cubes["1x"], run_dir, tmp / "f1nc", 1, tile, a.repeat, False)
            payload["fill_1x_1worker_no_calibration"] = nocal
            payload["time_ratio_calibrated_over_not"] = round(
                one["median_fill_s"] / nocal["median_fill_s"], 3
            )
        if "4x" in parts:
            four = _fill_runs(cubes["4x"], run_dir, tmp / "f4", 1, tile, a.repeat)
            payload["fill_4x_1worker"] = four
            payload["rss_ratio_4x_over_1x"] = round(
                four["cold"]["peak_rss_mb"] / one["cold"]["peak_rss_mb"], 3
            )
        if "2w" in parts:
            two = _fill_runs(cubes["1x"], run_dir, tmp / "f1w2", 2, tile, a.repeat)
            payload["fill_1x_2workers"] = two
            payload["mpx_per_s_1x_2workers_warm"] = round(area / two["median_fill_s"], 3)
        path = write_result("fill", payload)
        print(json.dumps(payload, indent=2))
        print(f"wrote {path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
