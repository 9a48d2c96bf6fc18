"""Training epochs end to end: `gapfill.train.train` (Ray Train, real patches from a
Zarr cube, validation and a checkpoint every epoch) vs the floor — the same epoch's
steps (same samples, global batch, model, `train_step`) in one plain PyTorch process
from patches already in memory, with every core's thread (the median of
`--floor-epochs` epochs per run: one ~1 s epoch varied by ±25 % between runs).

Two layouts of the product on this machine's CPUs, the same global batch: 2 DDP workers
(one CPU each: gloo all-reduce every step) and 1 worker with all the CPUs as torch
threads (`--workers 1`; no all-reduce). The product's seconds per epoch: rank 0's
`seconds_epoch` (from the return of one epoch's report to the next's: augmentation,
steps with their all-reduce, validation, checkpoint, report), the median over the epochs
of the long run after the first (the first reads the patches:
`product_first_epoch_read_s`). As a check from outside, the driver's
(T(long) − T(short)) / (long − short epochs), where Ray's start-up cancels out but its
variation (seconds) does not. Floor and product alternate, `--repeat` times each; the
JSON keeps every run and the medians.

    .venv/bin/python benchmarks/train_epoch.py [--demo demo-output] [--preset cpu-tiny]

Results: `results/train_epoch.json` for cpu-tiny, `results/train_epoch-PRESET.json` for
another preset (a larger net: how the ratio moves when steps cost more).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from gapfill.cube.reference import ReferenceRule  # noqa: E402
from gapfill.train import DataConfig, TrainConfig, build_index, train, with_cube_bands  # noqa: E402

LAYOUTS = {"2 workers": 2, "1 worker": 1}  # name -> workers sharing the machine's CPUs


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _config(demo: Path, out: Path, preset: str, epochs: int, workers: int = 2) -> TrainConfig:
    """Rule both on the demo's synthetic cube, its east half held out (as the demo); the
    global batch of 2 workers at the preset's batch, whatever `workers`."""
    meta = json.loads(next(demo.glob("world-*/world.json")).read_text())
    minx, miny, maxx, maxy = meta["bbox_lonlat"]
    data = DataConfig(
        cubes=(str(demo / "cube-synthetic.zarr"),),
        test_region=f"{(minx + maxx) / 2},{miny},{maxx},{maxy}",
        min_target_clear=0.3,
        reference=ReferenceRule(rule="both", same_orbit=False),
    )
    cfg = TrainConfig(data=data, out=str(out), method="mtcnn", preset=preset, epochs=epochs)
    per_worker = cfg.batch_size * 2 // workers
    return cfg.model_copy(update={"workers": workers, "batch_size": per_worker})


def _product(demo: Path, preset: str, epochs: int, workers: int) -> tuple[float, list[dict]]:
    """Wall seconds of a fresh `train()` run of `epochs` epochs, and its history."""
    out = Path(tempfile.mkdtemp(prefix="gapfill-bench-train-"))
    try:
        t0 = time.perf_counter()
        result = train(_config(demo, out / "run", preset, epochs, workers))
        return time.perf_counter() - t0, result.history
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _split(history: list[dict]) -> dict[str, float]:
    """Median seconds per phase of rank 0's epochs after the first (`seconds_*` metrics)."""
    later = history[1:] or history
    keys = sorted({k for row in later for k in row if k.startswith("seconds_")})
    return {k: round(statistics.median(row.get(k, 0.0) for row in later), 3) for k in keys}


def _floor(demo: Path, preset: str, epochs: int) -> tuple[list[float], int]:
    """Seconds of each of `epochs` epochs of steps in a plain process (patches in memory,
    a new order each epoch, as the product's sampler), and the steps of one."""
    from gapfill.models import train_step
    from gapfill.train.loop import PatchSet

    cfg = with_cube_bands(_config(demo, Path(tempfile.gettempdir()) / "unused", preset, 1))
    index = build_index(cfg.data, "B")
    patches = PatchSet(index.train, cfg, "B", train=True)
    patches.warm(range(len(patches)))  # read once, as the product's cache does
    samples = [patches[i] for i in range(len(patches))]
    batch = cfg.batch_size * cfg.workers  # the product's global batch
    torch.set_num_threads(_cpus())  # the cores the product's workers share
    torch.manual_seed(cfg.seed)
    g = cfg.generator()
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=cfg.betas)
    seconds, steps = [], 0
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(len(samples))
        steps = 0
        t0 = time.perf_counter()
        for k in range(0, len(order), batch):
            chunk = [samples[i] for i in order[k : k + batch]]
            x, y, m = (torch.stack(a) for a in zip(*chunk, strict=True))
            train_step(g, None, opt, None, (x, y, m), 1.0)
            steps += 1
        seconds.append(time.perf_counter() - t0)
    return seconds, steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, default=Path("demo-output"))
    ap.add_argument("--preset", default="cpu-tiny")
    ap.add_argument("--short", type=int, default=2, help="epochs of the short run")
    ap.add_argument("--long", type=int, default=20, help="epochs of the long run")
    ap.add_argument("--floor-epochs", type=int, default=5, help="the floor's, per run")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    demo = a.demo.resolve()
    runs = []
    for r in range(a.repeat):
        epochs, steps = _floor(demo, a.preset, a.floor_epochs)
        floor_s = statistics.median(epochs)
        run: dict = {
            "floor_epoch_s": round(floor_s, 3),
            "floor_epochs_s": [round(e, 3) for e in epochs],
            "floor_steps": steps,
        }
        for name, workers in LAYOUTS.items():
            short, _ = _product(demo, a.preset, a.short, workers)
            long, history = _product(demo, a.preset, a.long, workers)
            driver = (long - short) / (a.long - a.short)
            split = _split(history)
            run[name] = {
                "short_s": round(short, 2),
                "long_s": round(long, 2),
                "epoch_s": split["seconds_epoch"],
                "driver_epoch_s": round(driver, 3),
                "steps": history[-1].get("steps"),
                "first_epoch_read_s": history[0].get("seconds_read"),
                "epoch_split_s": split,
            }
            print(
                f"run {r + 1}: floor {floor_s:.2f} s/epoch, gapfill train ({name}) "
                f"{split['seconds_epoch']:.2f} s/epoch (driver: {driver:.2f}; rank 0, median "
                f"epoch after the first: {split})",
                flush=True,
            )
        runs.append(run)
    floor = statistics.median(x["floor_epoch_s"] for x in runs)
    layouts = {}
    for name in LAYOUTS:
        product = statistics.median(x[name]["epoch_s"] for x in runs)
        driver = statistics.median(x[name]["driver_epoch_s"] for x in runs)
        layouts[name] = {
            "median_epoch_s": product,
            "median_driver_epoch_s": driver,
            "median_split_s": {
                k: round(statistics.median(x[name]["epoch_split_s"][k] for x in runs), 3)
                for k in runs[0][name]["epoch_split_s"]
            },
            "time_ratio_over_floor": round(product / floor, 2),
            "throughput_ratio_over_floor": round(floor / product, 2),
            "throughput_ratio_driver_over_floor": round(floor / driver, 2),
        }
    path = write_result(
        "train_epoch" if a.preset == "cpu-tiny" else f"train_epoch-{a.preset}",
        {
            "command": "benchmarks/train_epoch.py " + " ".join(sys.argv[1:]),
            "params": {
                "preset": a.preset,
                "cube": "demo synthetic (rule both, east half held out)",
                "cpus": _cpus(),
                "layouts": {
                    k: f"{w} worker(s), {_cpus() // w} CPU(s) each" for k, w in LAYOUTS.items()
                },
                "global_batch": _config(demo, Path("unused"), a.preset, 1).batch_size * 2,
                "floor_epochs": a.floor_epochs,
                "short_epochs": a.short,
                "long_epochs": a.long,
                "repeat": a.repeat,
            },
            "runs": runs,
            "median_floor_epoch_s": floor,
            "layouts": layouts,
        },
    )
    print(f"median: floor {floor:.2f} s per epoch; {layouts}; wrote {path}")


if __name__ == "__main__":
    main()
