"""Issue 15's GPU figures in one run (a lent GPU machine has ~15 minutes: run this once).

- the device's measured bf16 dense rate (a large bf16 matmul, not the datasheet);
- the `paper` generator's inference rate, bare (tensors on the device) and through fill's
  `tiled_forward` (numpy in and out, bf16 autocast, channels_last, padded batches), eager
  and `torch.compile`d, as TFLOP/s and as a share of that measured peak (goal ≥ 40 %);
- one 10980² Sentinel-2 tile's model work: its chunks (plus halo) × the best measured
  seconds per chunk (goal ≤ 20 s);
- `fill_window` (what each Dask task of `gapfill fill` runs) with a `paper` card on the
  GPU against the same call on the CPU in fp32: the largest difference in reflectance.
Fill's own path runs at its defaults (`default_tile`, FillConfig's batch) and at other
tile/batch layouts beside them.

The device image lacks Dask, Zarr, pystac and rasterio; the modules used here do not
import them (`gapfill.cube` and `gapfill.fill` import their stacks lazily) and need
xarray, scipy, shapely, pyproj and pydantic (carry the last three as wheels:
`benchmarks/gpu_wheels.sh`). Where the fill modules cannot be imported, or with
`--skip-fill`, the fill parts are skipped, said so, and the tile's seconds are estimated
from the bare forward rate. The
eager figures come first and the JSON is rewritten after each part, so a run cut short
still returns them; no `torch.compile` part starts after `--budget-s`. The copy
on the device has no .git: pass the tree measured (`--tree "$(git rev-parse HEAD)"`).
A CPU smoke run checks the script itself (tests run it):
    python benchmarks/gpu_check.py --device cpu --smoke --out /tmp/x
On the GPU machine:
    python benchmarks/gpu_check.py --tree SHA --out "$OUT"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from gapfill._provenance import __version__  # noqa: E402
from gapfill.models import build_generator, conv_flops, get_method, receptive_field  # noqa: E402
from gapfill.models.card import ModelCard  # noqa: E402

S2_TILE_PX = 10980


def _sig(x: float) -> float:
    """Three significant digits (TFLOP/s of a CPU smoke run round to 0.0 at 2 decimals)."""
    return float(f"{x:.3g}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _seconds(fn: Callable[[], object], reps: int, device: torch.device) -> float:
    """Median seconds of `reps` calls after one untimed call."""
    fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def peak_tflops(device: torch.device, n: int, reps: int) -> float:
    """Measured dense matmul rate: bf16 on CUDA, fp32 on CPU (the smoke run)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sec = _seconds(lambda: a @ b, reps, device)
    return 2 * n**3 / sec / 1e12


def _card(g: torch.nn.Module, preset: str) -> ModelCard:
    m = get_method("mtcgan")
    return ModelCard(
        method="mtcgan",
        task=m.task,
        preset=preset,
        generator=g.cfg,  # type: ignore[arg-type]
        input_channels=m.channels,
        receptive_field_px=receptive_field(g),
        seed=0,
    )


def _window(side: int, seed: int = 0) -> Any:
    """Two days of a synthetic window: day 0 clear, day 1 cloudy over its middle."""
    from gapfill.fill.infer import Window

    rng = np.random.default_rng(seed)
    times = np.array(["2024-06-01", "2024-06-11"], "datetime64[ns]")
    s2 = rng.uniform(0.02, 0.4, (2, 4, side, side)).astype(np.float32)
    s1 = rng.uniform(-22, -5, (2, 2, side, side)).astype(np.float32)
    clear = np.ones((2, side, side), bool)
    clear[1, side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = False
    orbit = np.full((2, side, side), 37, np.int16)
    return Window(times, s2, s1, clear, orbit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check the script")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--skip-fill", action="store_true", help="skip the parts that run fill's code")
    ap.add_argument("--tree", default="unknown", help="git SHA of the tree measured")
    ap.add_argument("--dirty", action="store_true", help="the tree had uncommitted edits")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument(
        "--budget-s",
        type=float,
        default=300.0,
        help="seconds after which no torch.compile part starts",
    )
    a = ap.parse_args()
    device = torch.device(a.device)
    preset = "test-tiny" if a.smoke else "paper"
    chunk, reps = (64, 1) if a.smoke else (1024, 5)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    res: dict = {
        "benchmark": "gpu_check",
        "command": "benchmarks/gpu_check.py " + " ".join(sys.argv[1:]),
        "machine": {
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "software": {"gapfill": __version__, "torch": torch.__version__},
        "tree": {"git_sha": a.tree, "dirty": a.dirty},
        "preset": preset,
    }
    t_start = time.perf_counter()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        res["wall_s"] = round(time.perf_counter() - t_start, 1)
        (out / "gpu_check.json").write_text(json.dumps(res, indent=2))

    peak = peak_tflops(device, 256 if a.smoke else 8192, 3 if a.smoke else 20)
    res["measured_peak_tflops"] = _sig(peak)
    res["peak_kind"] = "bf16 matmul" if device.type == "cuda" else "fp32 matmul (smoke)"
    save()

    torch.manual_seed(0)
    g = build_generator("mtcgan", preset).eval().to(device)
    if device.type == "cuda":
        g = g.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    halo = receptive_field(g) // 2
    models: dict[str, torch.nn.Module] = {"eager": g}
    res["bare_forward"] = {}
    res["bare_forward"].update(_bare(models, device, reps, peak))
    save()
    try:
        if a.skip_fill:
            raise ImportError("--skip-fill")
        import gapfill.fill.infer  # noqa: F401  (fill's own imports: xarray, scipy, shapely)

        fill = True
    except ImportError as exc:
        fill = False
        res["fill_parts"] = f"skipped: {exc}"
        res["s2_tile_model_seconds"] = _tile_estimate(res["bare_forward"], chunk, halo)
    if fill:
        res.update(_fill_parts(g, models, device, preset, chunk, halo, reps, peak, a.smoke))
    save()

    if a.no_compile:
        res["compiled"] = "not run: --no-compile"
    else:
        deadline = t_start + a.budget_s
        models = {"compiled": torch.compile(g)}
        res["bare_forward"].update(_bare(models, device, reps, peak, deadline))
        save()
        if fill:
            more = _tiled(g, models, device, chunk, halo, reps, peak, deadline)
            res["tiled_forward_chunk"]["runs"].update(more)
            res["s2_tile_model_seconds"] = _tile_seconds(res["tiled_forward_chunk"]["runs"], chunk)
    save()
    print(json.dumps(res, indent=2))


def _bare(
    models: dict[str, torch.nn.Module],
    device: torch.device,
    reps: int,
    peak: float,
    deadline: float = math.inf,
) -> dict:
    """Bare forward: batches of tiles already on the device. `first_call_s`: the untimed
    first call (for `compiled`, the compilation for that shape)."""
    bare: dict = {}
    for name, model in models.items():
        for tile, batch in ((256, 16), (512, 4)):
            if time.perf_counter() > deadline:
                bare[f"{name}_tile{tile}_batch{batch}"] = {"skipped": "--budget-s spent"}
                continue
            channels = model.cfg.in_channels  # type: ignore[union-attr]
            x = torch.randn(batch, channels, tile, tile, device=device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            flops = conv_flops(model, tuple(x.shape))

            def run(m: torch.nn.Module = model, inp: torch.Tensor = x) -> None:
                cuda = device.type == "cuda"
                with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=cuda):
                    m(inp)

            t0 = time.perf_counter()
            run()
            _sync(device)
            first = time.perf_counter() - t0
            sec = _seconds(run, reps, device)
            tf = flops / sec / 1e12
            bare[f"{name}_tile{tile}_batch{batch}"] = {
                "s": round(sec, 5),
                "s_per_px": sec / (batch * tile * tile),
                "first_call_s": round(first, 2),
                "tflops": _sig(tf),
                "share_of_peak": round(tf / peak, 3),
            }
    return bare


def _fill_parts(
    g: torch.nn.Module,
    models: dict[str, torch.nn.Module],
    device: torch.device,
    preset: str,
    chunk: int,
    halo: int,
    reps: int,
    peak: float,
    smoke: bool,
) -> dict:
    """fill's own code: `tiled_forward` on a chunk, the tile's seconds from it, and
    `fill_window` here against the CPU in fp32."""
    from gapfill.fill.infer import fill_window
    from gapfill.fill.product import FILLED

    runs = _tiled(g, models, device, chunk, halo, reps, peak)
    res: dict = {"tiled_forward_chunk": {"chunk": chunk, "halo": halo, "runs": runs}}
    res["s2_tile_model_seconds"] = _tile_seconds(runs, chunk)

    # fill_window on the device vs on the CPU in fp32 (the product either way).
    win = _window(128 if smoke else 384)
    card = _card(g, preset)
    here = fill_window(win, [1], [True], g, card, tile=None, batch=1)
    g_cpu = build_generator("mtcgan", preset).eval()
    g_cpu.load_state_dict({k: v.cpu() for k, v in g.state_dict().items()})
    t0 = time.perf_counter()
    ref = fill_window(win, [1], [True], g_cpu.float(), card, tile=None, batch=1)
    cpu_s = time.perf_counter() - t0
    filled = np.broadcast_to((ref.status == FILLED)[:, None], ref.s2.shape)
    assert (here.status == ref.status).all(), "the GPU and CPU passes flag different pixels"
    diff = np.abs(here.s2 - ref.s2)[filled]
    res["fill_window_vs_cpu_fp32"] = {
        "window_px": win.s2.shape[-1],
        "max_abs_diff_reflectance": round(float(diff.max()), 6),
        "mean_abs_diff_reflectance": round(float(diff.mean()), 7),
        "filled_pixels_compared": int(filled.sum() // 4),
        "cpu_fp32_s": round(cpu_s, 2),
    }
    return res


def _tiled(
    g: torch.nn.Module,
    models: dict[str, torch.nn.Module],
    device: torch.device,
    chunk: int,
    halo: int,
    reps: int,
    peak: float,
    deadline: float = math.inf,
) -> dict:
    """fill's path: one chunk plus halo, numpy in and out, through `tiled_forward`."""
    from gapfill.fill.config import FillConfig
    from gapfill.fill.infer import default_tile, tiled_forward

    default = (default_tile(device), FillConfig.model_fields["batch"].default)
    channels = g.cfg.in_channels  # type: ignore[union-attr]
    side = chunk + 2 * halo
    rng = np.random.default_rng(0)
    xin = rng.uniform(-1, 1, (1, channels, side, side)).astype(np.float32)
    chunk_flops = conv_flops(g, (1, channels, side, side))  # tiles add their own halo
    runs: dict = {}
    for name, model in models.items():
        for tile, batch in dict.fromkeys(((256, 16), (512, 4), (chunk, 1), default)):
            if tile > chunk:
                continue
            if time.perf_counter() > deadline:
                runs[f"{name}_tile{tile}_batch{batch}"] = {"skipped": "--budget-s spent"}
                continue
            t0 = time.perf_counter()
            sec = _seconds(
                lambda m=model, t=tile, b=batch: tiled_forward(m, xin, tile=t, halo=halo, batch=b),  # type: ignore[misc]
                reps,
                device,
            )
            tf = chunk_flops / sec / 1e12
            runs[f"{name}_tile{tile}_batch{batch}"] = {
                "s_per_chunk": round(sec, 4),
                "useful_mpx_per_s": round(chunk * chunk / sec / 1e6, 2),
                "tflops_on_the_haloed_chunk": _sig(tf),
                "share_of_peak": round(tf / peak, 3),
                "wall_s_with_first_call": round(time.perf_counter() - t0, 1),
                "fill_default": (tile, batch) == default,
            }
    return runs


def _tile_seconds(runs: dict, chunk: int) -> dict:
    """A 10980² tile's model seconds: its chunks × the seconds per chunk of the best
    measured layout, and of fill's defaults (eager)."""
    timed = {k: r for k, r in runs.items() if "s_per_chunk" in r}
    best = min(timed, key=lambda k: timed[k]["s_per_chunk"])
    default = next((k for k, r in timed.items() if r["fill_default"] and "eager" in k), None)
    chunks = math.ceil(S2_TILE_PX / chunk) ** 2
    return {
        "chunks": chunks,
        "best": best,
        "seconds": round(chunks * timed[best]["s_per_chunk"], 1),
        "fill_default": default,
        "fill_default_seconds": default and round(chunks * timed[default]["s_per_chunk"], 1),
        "goal_s": 20,
    }


def _tile_estimate(bare: dict, chunk: int, halo: int, tile: int = 256) -> dict:
    """A 10980² tile's model seconds from the best bare forward rate: fill's chunks cut in
    `tile` px tiles, each with its halo (what `tiled_forward` computes)."""
    best = min(
        ((k, r) for k, r in bare.items() if "s_per_px" in r), key=lambda kv: kv[1]["s_per_px"]
    )
    chunks = math.ceil(S2_TILE_PX / chunk) ** 2
    tiles = math.ceil(chunk / tile) ** 2 * (tile + 2 * halo) ** 2
    return {
        "chunks": chunks,
        "best": best[0],
        "seconds": round(chunks * tiles * best[1]["s_per_px"], 1),
        "estimated_from": "the bare forward rate (fill code not run)",
        "goal_s": 20,
    }


if __name__ == "__main__":
    main()
