"""fill's inference tiles on a CPU: the layout before session 16 (tiles of `--tile` px
cut at the window's edge, each with its halo clipped there: a 314 px window was a 274 px
and a 76 px box a side at cpu-small) vs `tiled_forward`'s (at most `--tile` px, as few as
that allows, cut evenly, one shape: two 175 px boxes a side). Same generator (untrained
`--preset`: its cost does not depend on its weights), same inputs (`--days` days of fill's
window shape: a `--chunk` chunk plus 29 px a side), 1 torch thread, as a Dask worker of
`fill` runs it; alternating, `--repeat` times each after one untimed pass; the JSON keeps
every run, the medians and the pixels each sent through the model.

    .venv/bin/python benchmarks/fill_tiles.py [--preset cpu-small] [--chunk 256] [--repeat 5]
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
from gapfill.fill.infer import _haloed_tiles, tiled_forward  # noqa: E402
from gapfill.grid import tile_boxes  # noqa: E402
from gapfill.models import build_generator, receptive_field  # noqa: E402
from gapfill.models.generator import Generator  # noqa: E402

WINDOW_HALO = 29  # fill's window halo at cpu-small (benchmarks/results/fill.json: 314x314)


def _before_boxes(h: int, w: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """The haloed boxes of the layout before: tiles cut at the edge, halo clipped."""
    return [
        (max(y0 - halo, 0), min(y1 + halo, h), max(x0 - halo, 0), min(x1 + halo, w))
        for y0, y1, x0, x1 in tile_boxes(h, w, tile)
    ]


def _before(model: Generator, x: np.ndarray, tile: int, halo: int) -> int:
    """The layout before on a CPU (one tile a pass); returns the pixels through the model."""
    px = 0
    for ya, yb, xa, xb in _before_boxes(x.shape[2], x.shape[3], tile, halo):
        for i in range(x.shape[0]):
            model(torch.from_numpy(np.ascontiguousarray(x[i : i + 1, :, ya:yb, xa:xb])))
            px += (yb - ya) * (xb - xa)
    return px


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as fill's workers run (gapfill.fill.infer)
    torch.manual_seed(0)
    g = build_generator("mtcgan", a.preset).eval()
    halo = receptive_field(g) // 2
    side = a.chunk + 2 * WINDOW_HALO
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (a.days, g.cfg.in_channels, side, side)).astype(np.float32)
    layouts = {
        "before": lambda: _before(g, x, a.tile, halo),
        "now": lambda: tiled_forward(g, x, tile=a.tile, halo=halo, batch=1),
    }
    runs: dict[str, list[float]] = {k: [] for k in layouts}
    with torch.inference_mode():
        for fn in layouts.values():
            fn()
        for r in range(a.repeat):
            for name in list(layouts) if r % 2 == 0 else list(layouts)[::-1]:
                t0 = time.perf_counter()
                layouts[name]()
                runs[name].append(round(time.perf_counter() - t0, 3))
    med = {k: statistics.median(v) for k, v in runs.items()}
    now_boxes = [outer for outer, _ in _haloed_tiles(side, side, a.tile, halo)]
    res = {
        "params": {**vars(a), "window_px": side, "model_halo": halo, "threads": 1},
        "runs_s": runs,
        "median_s": med,
        "model_px_per_day": {
            "before": _px(_before_boxes(side, side, a.tile, halo)),
            "now": _px(now_boxes),
        },
        "time_ratio_now_over_before": round(med["now"] / med["before"], 3),
    }
    print(write_result("fill_tiles", res))
    print(res)


def _px(boxes: list[tuple[int, int, int, int]]) -> int:
    return sum((yb - ya) * (xb - xa) for ya, yb, xa, xb in boxes)


if __name__ == "__main__":
    main()
