"""fill's model cost per band set: the same generator built for the paper's four bands
and for the default ten (only its first layer, which reads O1/O3, and its last, which
writes the bands, widen), through `tiled_forward` on fill's window (a `--chunk` chunk
plus 29 px a side), `--days` days, 1 torch thread as a Dask worker of `fill` runs it;
alternating, `--repeat` times each after one untimed pass. Per preset: seconds, seconds
per band, the convolutions' FLOPs of each, and the ratios ten / four.

    .venv/bin/python benchmarks/fill_bands.py [--presets cpu-tiny,cpu-small,paper] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from gapfill.bands import DEFAULT_BANDS, PAPER_BANDS  # noqa: E402
from gapfill.fill.infer import tiled_forward  # noqa: E402
from gapfill.models import build_generator, conv_flops, receptive_field  # noqa: E402

WINDOW_HALO = 29  # fill's window halo at cpu-small (benchmarks/results/fill.json: 314x314)
SETS = {"paper": PAPER_BANDS, "default": DEFAULT_BANDS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="cpu-tiny,cpu-small,paper")
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as fill's workers run (gapfill.fill.infer)
    side = a.chunk + 2 * WINDOW_HALO
    rng = np.random.default_rng(0)
    out: dict = {"params": {**vars(a), "window_px": side, "threads": 1}, "presets": {}}
    for preset in a.presets.split(","):
        # The demo's model: MTCNN, rule both, residual with blend (the `paper` preset: the
        # paper's causal MTcGAN generator, no residual).
        paper = preset == "paper"
        nets, inputs, flops = {}, {}, {}
        for name, bands in SETS.items():
            torch.manual_seed(0)
            g = build_generator(
                "mtcgan" if paper else "mtcnn",
                preset,
                residual=not paper,
                both=not paper,
                bands=bands,
                **({} if paper else {"blend": True, "norm": "none"}),
            ).eval()
            nets[name] = g
            inputs[name] = rng.uniform(-1, 1, (a.days, g.cfg.in_channels, side, side)).astype(
                np.float32
            )
            flops[name] = conv_flops(g, (1, g.cfg.in_channels, side, side))
        halo = receptive_field(nets["paper"]) // 2
        runs: dict[str, list[float]] = {k: [] for k in SETS}
        with torch.inference_mode():
            for name in SETS:
                tiled_forward(nets[name], inputs[name], tile=256, halo=halo, batch=1)
            for r in range(a.repeat):
                for name in list(SETS) if r % 2 == 0 else list(SETS)[::-1]:
                    t0 = time.perf_counter()
                    tiled_forward(nets[name], inputs[name], tile=256, halo=halo, batch=1)
                    runs[name].append(round(time.perf_counter() - t0, 3))
        med = {k: statistics.median(v) for k, v in runs.items()}
        out["presets"][preset] = {
            "in_channels": {k: nets[k].cfg.in_channels for k in SETS},
            "runs_s": runs,
            "median_s": med,
            "median_s_per_band": {k: round(med[k] / len(SETS[k]), 4) for k in SETS},
            "conv_gflops_per_window": {k: round(flops[k] / 1e9, 3) for k in SETS},
            "time_ratio_ten_over_four": round(med["default"] / med["paper"], 3),
            "flop_ratio_ten_over_four": round(flops["default"] / flops["paper"], 3),
            "band_ratio": round(len(DEFAULT_BANDS) / len(PAPER_BANDS), 2),
        }
        print(preset, out["presets"][preset], flush=True)
    print(write_result("fill_bands", out))


if __name__ == "__main__":
    main()
