"""fill's inference path on a GPU: `tiled_forward` (bf16 autocast, channels_last, padded
batches) on one cube chunk plus halo, for several tile/batch choices, beside the bare
generator on the whole window in one pass; and the agreement of the GPU tiles with a CPU
fp32 full pass (what the product would hold either way).

Runs where torch sees CUDA (the lent GPU machine; needs torch and pydantic). A CPU smoke
run checks the script itself: python benchmarks/gpu_fill.py --device cpu --preset test-tiny
Usage: python benchmarks/gpu_fill.py [--preset paper] [--chunk 1024] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gapfill.fill.infer import tiled_forward  # noqa: E402
from gapfill.models import build_generator, receptive_field  # noqa: E402


def _timed(fn, reps: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up: kernel selection, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.manual_seed(0)
    g = build_generator("mtcgan", a.preset).eval()
    halo = receptive_field(g) // 2
    side = a.chunk + 2 * halo
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, g.cfg.in_channels, side, side)).astype(np.float32)
    gd = g.to(device)
    if device.type == "cuda":
        gd = gd.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    results: dict = {"preset": a.preset, "chunk": a.chunk, "halo": halo, "device": str(device)}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
    useful_mpx = a.chunk * a.chunk / 1e6
    runs = {}
    for tile, batch in ((256, 8), (256, 16), (512, 4), (a.chunk, 1)):
        sec = _timed(
            lambda t=tile, b=batch: tiled_forward(gd, x, tile=t, halo=halo, batch=b),
            a.reps,
            device,
        )
        runs[f"tile{tile}_batch{batch}"] = {
            "s_per_chunk": round(sec, 4),
            "useful_mpx_per_s": round(useful_mpx / sec, 2),
        }
    results["tiled_forward"] = runs
    # Check: the GPU tiles against a CPU fp32 full pass of a 256 px window.
    small = x[:, :, : 256 + 2 * halo, : 256 + 2 * halo]
    gpu = tiled_forward(gd, small, tile=128, halo=halo, batch=4)
    g_cpu = g.to("cpu").float()
    with torch.inference_mode():
        ref = g_cpu(torch.from_numpy(small)).numpy()
    diff = np.abs(gpu - ref)
    # In reflectance (max 0.6): tanh units x 0.3.
    results["max_abs_diff_reflectance_vs_cpu_fp32"] = round(float(diff.max()) * 0.3, 6)
    results["mean_abs_diff_reflectance_vs_cpu_fp32"] = round(float(diff.mean()) * 0.3, 6)
    out = Path(a.out) / "gpu_fill.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
