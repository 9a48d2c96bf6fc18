"""The paper preset on a GPU: training step (fp32 vs bf16 autocast + channels_last) and
inference throughput, plus a bf16-vs-fp32 agreement check of the GPU code path.

Runs where torch sees CUDA (the lent GPU machine); needs only torch and pydantic. Each
figure is measured `--repeat` times, fp32 and bf16 alternating which goes first; the JSON
keeps every run and the median (the flat keys). The device's copy has no .git: name the
tree measured.
Usage: python benchmarks/gpu_step.py --tree SHA [--repeat 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gapfill._provenance import __version__  # noqa: E402
from gapfill.models import (  # noqa: E402
    PatchDiscriminator,
    build_generator,
    conv_flops,
    train_step,
)


def _sync() -> None:
    torch.cuda.synchronize()


def train_step_time(batch: int, patch: int, bf16: bool, steps: int = 20) -> float:
    torch.manual_seed(0)
    dev = torch.device("cuda")
    g = build_generator("mtcgan", "paper").to(dev)
    d = PatchDiscriminator(12).to(dev)
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    g, d = g.to(memory_format=fmt), d.to(memory_format=fmt)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x = torch.randn(batch, 8, patch, patch, device=dev).to(memory_format=fmt)
    y = torch.rand(batch, 4, patch, patch, device=dev) * 2 - 1
    m = torch.ones(batch, 1, patch, patch, dtype=torch.bool, device=dev)
    for i in range(steps + 5):
        if i == 5:
            _sync()
            t0 = time.perf_counter()
        losses = train_step(g, d, opt_g, opt_d, (x, y, m), 100.0, bf16=bf16)
    _sync()
    assert all(bool(torch.isfinite(v)) for v in losses.values()), losses
    return (time.perf_counter() - t0) / steps


def inference(batch: int, tile: int, bf16: bool, reps: int = 10) -> float:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    g = build_generator("mtcgan", "paper").to(dev).eval()
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    g = g.to(memory_format=fmt)
    x = torch.randn(batch, 8, tile, tile, device=dev).to(memory_format=fmt)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(3):
            g(x)
        _sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            g(x)
        _sync()
    return batch * tile * tile * reps / (time.perf_counter() - t0) / 1e6


def agreement() -> float:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    g = build_generator("mtcgan", "paper").to(dev).eval()
    x = torch.randn(2, 8, 256, 256, device=dev)
    with torch.no_grad():
        ref = g(x).float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = g(x.to(memory_format=torch.channels_last)).float()
    return float((ref - low).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--tree", default="unknown", help="git SHA of the tree measured")
    ap.add_argument("--dirty", action="store_true", help="the tree had uncommitted edits")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    flops = conv_flops(build_generator("mtcgan", "paper"), (1, 8, 256, 256))
    res: dict = {
        "benchmark": "gpu_step",
        "command": "benchmarks/gpu_step.py " + " ".join(sys.argv[1:]),
        "device": torch.cuda.get_device_name(0),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "software": {"gapfill": __version__, "torch": torch.__version__},
        "tree": {"git_sha": a.tree, "dirty": a.dirty},
        "params": {"repeat": a.repeat, "patch": 256, "tile256_batch": 16, "tile1024_batch": 1},
        "generator_forward_tflop_per_256px_patch": round(flops / 1e12, 3),
    }
    runs: dict[str, list[float]] = {}
    for r in range(a.repeat):
        order = (False, True) if r % 2 == 0 else (True, False)
        for batch in (1, 8):
            for bf16 in order:
                key = f"train_step_s_batch{batch}_{'bf16_cl' if bf16 else 'fp32'}"
                runs.setdefault(key, []).append(round(train_step_time(batch, 256, bf16), 5))
        for tile in (256, 1024):
            for bf16 in order:
                key = f"infer_mpix_per_s_tile{tile}_{'bf16_cl' if bf16 else 'fp32'}"
                mpx = inference(16 if tile == 256 else 1, tile, bf16)
                runs.setdefault(key, []).append(round(mpx, 2))
    res["runs"] = runs
    res.update({k: round(statistics.median(v), 5) for k, v in sorted(runs.items())})
    res["bf16_vs_fp32_max_abs_diff_tanh_units"] = round(agreement(), 4)
    b1 = res["train_step_s_batch1_bf16_cl"]
    res["paper_schedule_hours_1188_patches_200_epochs_batch1_bf16"] = round(
        b1 * 1188 * 200 / 3600, 2
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_step.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
