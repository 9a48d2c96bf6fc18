"""A short `gapfill.train.train` run start to end (a fresh local Ray each time, as the CLI
starts one) with Ray Train's preemption watcher, as Ray starts it by default, vs without
it, as gapfill starts a local Ray (one node: nothing to be preempted; the watcher is
one more actor process importing Ray Train on the run's CPUs). Same config: test-tiny,
1 epoch, 2 workers, the north-west quarter of the demo's synthetic cube. Alternating,
`--repeat` times each; the JSON keeps every run and the medians.

    .venv/bin/python benchmarks/train_startup.py [--demo demo-output] [--repeat 4]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from gapfill.train import DataConfig, TrainConfig, train  # noqa: E402
from gapfill.train.trainer import PREEMPTION_VAR  # noqa: E402

VARIANTS = {"with the watcher (Ray's default)": "1", "without (gapfill's local Ray)": "0"}


def _config(demo: Path, out: Path) -> TrainConfig:
    meta = json.loads(next(demo.glob("world-*/world.json")).read_text())
    minx, miny, maxx, maxy = meta["bbox_lonlat"]
    region = f"{minx},{miny},{minx + (maxx - minx) / 4},{miny + (maxy - miny) / 4}"
    data = DataConfig(cubes=(str(demo / "cube-synthetic.zarr"),), patch=32, train_region=region)
    return TrainConfig(data=data, out=str(out), preset="test-tiny", epochs=1, workers=2, seed=3)


def _run(demo: Path, watcher: str) -> dict[str, float]:
    """Wall seconds of one fresh `train()` (Ray started and stopped inside), its epoch's."""
    os.environ[PREEMPTION_VAR] = watcher
    out = Path(tempfile.mkdtemp(prefix="gapfill-bench-startup-"))
    try:
        t0 = time.perf_counter()
        result = train(_config(demo, out / "run"))
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
        os.environ.pop(PREEMPTION_VAR, None)
    return {"wall_s": round(wall, 2), "epoch_s": result.history[-1]["seconds_epoch"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", type=Path, default=Path("demo-output"))
    ap.add_argument("--repeat", type=int, default=4)
    a = ap.parse_args()
    demo = a.demo.resolve()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for r in range(a.repeat):
        order = list(VARIANTS.items())
        for name, watcher in order if r % 2 == 0 else order[::-1]:
            runs[name].append(_run(demo, watcher))
            print(f"run {r + 1}, {name}: {runs[name][-1]}", flush=True)
    median = {
        name: {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "epoch_s")}
        for name, rs in runs.items()
    }
    with_, without = (median[name]["wall_s"] for name in VARIANTS)
    path = write_result(
        "train_startup",
        {
            "params": {
                "preset": "test-tiny",
                "epochs": 1,
                "workers": 2,
                "cube": "demo synthetic, north-west quarter",
                "repeat": a.repeat,
            },
            "runs": runs,
            "median": median,
            "time_ratio_without_over_with": round(without / with_, 3),
        },
    )
    print(f"medians: {median}; wrote {path}")


if __name__ == "__main__":
    main()
