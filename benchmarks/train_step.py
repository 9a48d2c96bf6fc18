"""Training step throughput: Ray Train DDP vs a plain single-process PyTorch loop.

Same model (mtcgan, preset `cpu-small` by default), same batch, same number of steps,
in-memory batches so that only the step and the framework are measured. Each Ray
worker gets one CPU thread, as does the plain loop, so the ratio is per worker. The
start-up cost of Ray Train (worker group, process group) is reported separately.
The floor is measured alone and as `workers` plain processes at once (the cores as busy
as under DDP, no communication); a 1-worker Ray run separates Ray's own cost from DDP's
all-reduce. They alternate, `--repeat` times each; the JSON keeps every run and the
medians (the ratios: throughput, higher is better).
Patches 64 and 128 by default: the all-reduce is the same size, the compute 4x.
Usage: python benchmarks/train_step.py [--preset cpu-small] [--patches 64 128] [--steps 30]
       [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402


def _models(preset: str):
    from gapfill.models import build_generator
    from gapfill.models.discriminator import PatchDiscriminator

    torch.manual_seed(0)
    return build_generator("mtcgan", preset), PatchDiscriminator(12)


def _steps(g, d, batch: int, patch: int, steps: int, warmup: int = 3) -> float:
    """Seconds per step (after warm-up) of training's own pix2pix G+D update."""
    from gapfill.models import train_step

    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x, y = torch.randn(batch, 8, patch, patch), torch.rand(batch, 4, patch, patch) * 2 - 1
    m = torch.ones(batch, 1, patch, patch, dtype=torch.bool)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        train_step(g, d, opt_g, opt_d, (x, y, m), 100.0)
    return (time.perf_counter() - t0) / steps


def _worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    torch.set_num_threads(1)
    g, d = _models(config["preset"])
    from gapfill.train.loop import ddp_options

    g = ray.train.torch.prepare_model(g, parallel_strategy_kwargs=ddp_options())
    d = ray.train.torch.prepare_model(d, parallel_strategy_kwargs=ddp_options())
    per_step = _steps(g, d, config["batch"], config["patch"], config["steps"])
    # Ray Train V2 keeps result.metrics only for reports that carry a checkpoint.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "s_per_step").write_text(str(per_step))
        ray.train.report(
            {"s_per_step": per_step}, checkpoint=ray.train.Checkpoint.from_directory(tmp)
        )


def _plain_process(args: tuple[str, int, int, int]) -> float:
    """The plain loop in a fresh process with one thread (for the concurrent floor)."""
    preset, batch, patch, steps = args
    torch.set_num_threads(1)
    g, d = _models(preset)
    return _steps(g, d, batch, patch, steps)


def _concurrent_plain(a: argparse.Namespace) -> list[float]:
    """`workers` plain loops at once, no communication: the machine as busy as under DDP."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(a.workers) as pool:
        return pool.map(_plain_process, [(a.preset, a.batch, a.patch, a.steps)] * a.workers)


def _ray_fit(a: argparse.Namespace, workers: int) -> tuple[float, float]:
    """(s per step on rank 0, wall seconds of fit()) for a Ray Train run of `workers`."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = Path("/tmp/gapfill-train-bench").resolve()
    t0 = time.perf_counter()
    result = TorchTrainer(
        _worker,
        train_loop_config=vars(a),
        scaling_config=ScalingConfig(num_workers=workers),
        run_config=RunConfig(name=f"bench-{workers}-{int(t0)}", storage_path=str(storage)),
    ).fit()
    wall = time.perf_counter() - t0
    return (float(result.metrics["s_per_step"]) if result.metrics else float("nan")), wall


def _case(a: argparse.Namespace) -> dict:
    """All the figures for one patch size (Ray already initialised): the plain loop, the
    plain loops at once, a 1-worker and a DDP Ray run, in turn, `repeat` times; medians."""
    runs = []
    for _ in range(a.repeat):
        g, d = _models(a.preset)
        plain = _steps(g, d, a.batch, a.patch, a.steps)
        concurrent = _concurrent_plain(a)
        one, one_wall = _ray_fit(a, 1)
        ddp, wall = _ray_fit(a, a.workers)
        runs.append(
            {
                "plain_s_per_step": round(plain, 4),
                "plain_concurrent_s_per_step": [round(c, 4) for c in concurrent],
                "ray_1_worker_s_per_step": round(one, 4),
                "ray_ddp_s_per_step": round(ddp, 4),
                "ray_fit_wall_s": round(wall, 2),
                "ray_1_worker_fit_wall_s": round(one_wall, 2),
            }
        )
        print(f"{a.patch} px: {runs[-1]}", flush=True)

    def median(key: str) -> float:
        return statistics.median(max(r[key]) if isinstance(r[key], list) else r[key] for r in runs)

    plain, ddp, one = (
        median("plain_s_per_step"),
        median("ray_ddp_s_per_step"),
        median("ray_1_worker_s_per_step"),
    )
    concurrent, wall = median("plain_concurrent_s_per_step"), median("ray_fit_wall_s")
    return {
        "patch": a.patch,
        "runs": runs,
        "plain_s_per_step": round(plain, 4),
        "plain_concurrent_s_per_step": round(concurrent, 4),
        "ray_1_worker_s_per_step": round(one, 4),
        "ray_ddp_s_per_step": round(ddp, 4),
        "plain_samples_per_s": round(a.batch / plain, 3),
        "ray_ddp_samples_per_s_per_worker": round(a.batch / ddp, 3),
        "throughput_ratio_per_worker_ddp_vs_plain": round(plain / ddp, 3),
        "throughput_ratio_ray_1_worker_vs_plain": round(plain / one, 3),
        "throughput_ratio_ddp_vs_concurrent_plain": round(concurrent / ddp, 3),
        "ray_fit_wall_s": round(wall, 2),
        "ray_startup_and_teardown_s": round(wall - ddp * (a.steps + 3), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--patches", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import ray

    from gapfill.models.stats import parameter_count

    torch.set_num_threads(1)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=a.workers + 1,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 1024**2,
    )
    cases = [_case(argparse.Namespace(**vars(a), patch=patch)) for patch in a.patches]
    ray.shutdown()
    g, d = _models(a.preset)
    path = write_result(
        "train_step",
        {
            "params": vars(a),
            "all_reduced_parameters": parameter_count(g) + parameter_count(d),
            "cases": cases,
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
