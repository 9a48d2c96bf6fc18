"""Training step throughput: Ray Train DDP vs a plain single-process PyTorch loop.

Same model (mtcgan, preset `cpu-small` by default), same batch, same number of steps,
in-memory batches so that only the step and the framework are measured. Each Ray
worker gets one CPU thread, as does the plain loop, so the ratio is per worker. The
start-up cost of Ray Train (worker group, process group) is reported separately.
Usage: python benchmarks/train_step.py [--preset cpu-small] [--patch 64] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
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
    """Seconds per step (after warm-up) of the pix2pix G+D update."""
    from gapfill.models import gan_loss, masked_l1

    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x, y = torch.randn(batch, 8, patch, patch), torch.rand(batch, 4, patch, patch) * 2 - 1
    m = torch.ones(batch, 1, patch, patch, dtype=torch.bool)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        fake = g(x)
        loss_d = 0.5 * (gan_loss(d(x, y), True) + gan_loss(d(x, fake.detach()), False))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = gan_loss(d(x, fake), True) + 100 * masked_l1(fake, y, m)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return (time.perf_counter() - t0) / steps


def _worker(config: dict) -> None:
    import ray.train
    import ray.train.torch

    torch.set_num_threads(1)
    g, d = _models(config["preset"])
    g, d = ray.train.torch.prepare_model(g), ray.train.torch.prepare_model(d)
    per_step = _steps(g, d, config["batch"], config["patch"], config["steps"])
    # Ray Train V2 keeps result.metrics only for reports that carry a checkpoint.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "s_per_step").write_text(str(per_step))
        ray.train.report(
            {"s_per_step": per_step}, checkpoint=ray.train.Checkpoint.from_directory(tmp)
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    torch.set_num_threads(1)
    g, d = _models(a.preset)
    plain = _steps(g, d, a.batch, a.patch, a.steps)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        num_cpus=a.workers + 1,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 1024**2,
    )
    storage = Path("/tmp/gapfill-train-bench").resolve()
    t0 = time.perf_counter()
    result = TorchTrainer(
        _worker,
        train_loop_config=vars(a),
        scaling_config=ScalingConfig(num_workers=a.workers),
        run_config=RunConfig(name=f"bench-{int(t0)}", storage_path=str(storage)),
    ).fit()
    wall = time.perf_counter() - t0
    ray.shutdown()
    ddp = float(result.metrics["s_per_step"]) if result.metrics else float("nan")
    step_time = ddp * (a.steps + 3)
    path = write_result(
        "train_step",
        {
            "params": vars(a),
            "plain_s_per_step": round(plain, 4),
            "ray_ddp_s_per_step": round(ddp, 4),
            "plain_samples_per_s": round(a.batch / plain, 3),
            "ray_ddp_samples_per_s_per_worker": round(a.batch / ddp, 3),
            "ratio_per_worker_ddp_vs_plain": round(plain / ddp, 3),
            "ray_fit_wall_s": round(wall, 2),
            "ray_startup_and_teardown_s": round(wall - step_time, 2),
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
