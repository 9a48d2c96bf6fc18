"""Fill quality on the demo's cubes: MTCNN (cpu-small) in three formulations beside
persistence, nearest and interpolation, scored by `gapfill evaluate` on hidden real-mask
pixels the models never trained on:

- `paper`: the paper's formulation (tanh output, batch norm, causal same-orbit reference);
- `residual`: corrects its reference O1 (no normalisation, reference of any orbit), causal;
- `both`: residual on the interpolation of the clear days before AND after (rule `both`,
  the later side dropped at random in training); `both-nodrop`: the same, never dropped.

- real sample (64 px, 118 days): trained on its history up to CUT (patches of 64), scored on
  every later clear day with masks of other days;
- synthetic world (256 px, 12 days): trained on the west half, scored on the east half.

Each model is scored twice: with real cloud masks of other days (the day keeps clear
pixels that calibration fits on) and with whole days hidden (nothing to calibrate on).
Every table has the baselines raw (what a user gets without gapfill) and calibrated
(`+cal`: what `gapfill fill --method NAME` gives).

Needs the cubes of `make demo` (default `demo-output/`). Writes
`benchmarks/results/quality.json` (every figure, with the tree it measured).

    .venv/bin/python benchmarks/quality.py [--demo demo-output] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from gapfill.cube.reference import ReferenceRule  # noqa: E402
from gapfill.evaluate import EvaluateConfig, evaluate, print_report  # noqa: E402
from gapfill.train import DataConfig, TrainConfig, train  # noqa: E402
from gapfill.train.config import TRAIN_PRESETS  # noqa: E402

CUT = "2018-05-31"


VARIANTS = {
    "paper": ({"residual": False, "norm": "batch"}, ReferenceRule()),
    # rule both on the tiny net (cpu-tiny: batch 4, lr 1e-3, patches of 32), with blend
    "both-tiny": ({"preset": "cpu-tiny"}, ReferenceRule(same_orbit=False, rule="both")),
    # the same, warm-started from the synthetic cube's `both-tiny` run (run that first)
    "both-tiny-pre": (
        {"preset": "cpu-tiny", "epochs": 30, "init": "synthetic-mtcnn-both-tiny-100ep"},
        ReferenceRule(same_orbit=False, rule="both"),
    ),
    "residual": ({"residual": True, "norm": "none"}, ReferenceRule(same_orbit=False)),
    # cpu-small, without the blend output (these rows predate it)
    "both": (
        {"residual": True, "norm": "none", "blend": False},
        ReferenceRule(same_orbit=False, rule="both"),
    ),
    # `both` always trained with its later side (no random drop): one task for the net
    "both-nodrop": (
        {"residual": True, "norm": "none", "later_dropout": 0.0, "blend": False},
        ReferenceRule(same_orbit=False, rule="both"),
    ),
}


def _run(demo: Path, out: Path, name: str, epochs: int | None, variant: str, method: str) -> dict:
    """Train one model and evaluate it; re-running reuses a finished run."""
    options, rule = VARIANTS[variant]
    options = {"preset": "cpu-small", **options}
    preset = TRAIN_PRESETS[options["preset"]]
    variant_epochs = options.pop("epochs", preset["epochs"])
    epochs = epochs or variant_epochs
    if "init" in options:  # a run of this script, in the same --out
        options["init"] = str(out / options["init"])
    patch = preset["patch"]
    cube = demo / f"cube-{name}.zarr"
    if name == "real":
        data = DataConfig(cubes=(str(cube),), patch=patch, until=CUT, reference=rule)
        region = None
    else:
        meta = json.loads(next(demo.glob("world-*/world.json")).read_text())
        minx, miny, maxx, maxy = meta["bbox_lonlat"]
        region = f"{(minx + maxx) / 2},{miny},{maxx},{maxy}"
        data = DataConfig(
            cubes=(str(cube),),
            patch=patch,
            test_region=region,
            min_target_clear=0.3,
            reference=rule,
        )
    tag = f"{name}-{method}-{variant}-{epochs}ep"
    cfg = TrainConfig(
        data=data,
        out=str(out / tag),
        method=method,
        epochs=epochs,
        workers=2,
        seed=0,
        **options,
    )
    t0 = time.perf_counter()
    train(cfg)
    train_s = time.perf_counter() - t0
    reports = {}
    for key, whole in (("evaluate", False), ("evaluate_whole_day", True)):
        report = evaluate(
            EvaluateConfig(cube=str(cube), model=cfg.out, region=region, whole_day=whole),
            out / f"{tag}-{key.replace('_', '-')}",
        )
        print_report(report, title=f"{tag} ({'whole-day gaps' if whole else 'real masks'})")
        reports[key] = report.to_json()
    return {
        "tag": tag,
        "train_seconds": round(train_s, 1),
        "config": json.loads(cfg.model_dump_json()),
        **reports,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo-output"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/.quality-runs"))
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    parser.add_argument("--cubes", default="real,synthetic")
    parser.add_argument("--variants", default="paper,residual,both")
    parser.add_argument("--method", default="mtcnn")
    parser.add_argument("--result", default="quality", help="writes results/RESULT.json")
    args = parser.parse_args()
    runs = []
    for name in args.cubes.split(","):
        for variant in args.variants.split(","):
            runs.append(
                _run(
                    args.demo.resolve(),
                    args.out.resolve(),
                    name,
                    args.epochs,
                    variant,
                    args.method,
                )
            )
    path = write_result(
        args.result,
        {
            "command": "benchmarks/quality.py "
            + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
            "cut_off": CUT,
            "runs": runs,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
