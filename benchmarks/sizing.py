"""The sizing table of `cluster/README.md`: a region of Sentinel-2 tiles over one season,
costed from the stored benchmark results (every rate below is read from
`benchmarks/results/*.json`; `tests/unit/test_benchmark_table.py` checks the README holds
exactly this table).

    .venv/bin/python benchmarks/sizing.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BEGIN = "<!-- sizing.py: begin -->"
END = "<!-- sizing.py: end -->"


@dataclass(frozen=True)
class Region:
    """What is costed: assumptions, not measurements (say so where they are shown)."""

    tiles: int = 100
    tile_px: int = 10980  # a Sentinel-2 MGRS tile at 10 m
    days: int = 36  # one season of ~6 months at a 5-day revisit
    cloudy_days: int = 18  # days with clouds to fill
    cloud_share: float = 0.6  # of the pixels on those days
    train_patches: int = 20_000  # 256-px patches for one regional model
    epochs: int = 200  # the paper's schedule
    gpus: int = 16
    cores_per_gpu: int = 8


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def rows(r: Region = Region()) -> list[tuple[str, str, str, float, str, float]]:
    """(stage, work, rate and its source, hours of one resource, resource, wall hours on
    `r.gpus` GPUs with `r.cores_per_gpu` cores each)."""
    cube, fill, gpu, check, step = (
        _load("cube_build"),
        _load("fill"),
        _load("gpu_step"),
        _load("gpu_check"),
        _load("train_step"),
    )
    cores = r.gpus * r.cores_per_gpu
    tile_mpx = r.tile_px**2 / 1e6
    cube_mpx_days = r.tiles * tile_mpx * r.days
    build_rate = cube["s2_mpix_day_per_s"]["gapfill_1x"] / cube["machine"]["cpus"]
    filled_mpx = r.tiles * tile_mpx * r.cloudy_days * r.cloud_share
    one = fill["fill_1x_1worker"]  # the warm fill of median time
    warm = min(
        (x["fill"] for x in one["runs"]), key=lambda f: abs(f["wall_s"] - one["median_fill_s"])
    )
    model_per_filled = warm["model_mpx"] / (warm["pixels_filled"] / 1e6)
    # fill's own GPU path at its defaults (tiles, copies, bf16): window px per second
    chunk = check["tiled_forward_chunk"]
    default = check["tiled_forward_chunk"]["runs"][check["s2_tile_model_seconds"]["fill_default"]]
    gpu_rate = round((chunk["chunk"] + 2 * chunk["halo"]) ** 2 / default["s_per_chunk"] / 1e6, 2)
    cpu_side = sum(v for k, v in warm["task_seconds"].items() if k != "model")
    cpu_side_per_filled = cpu_side / (warm["pixels_filled"] / 1e6)
    cpu_fill_rate = fill["mpx_per_s_1x_1worker_warm"]
    step_s = gpu["train_step_s_batch1_bf16_cl"]
    ddp = min(c["throughput_ratio_per_worker_ddp_vs_plain"] for c in step["cases"])
    build_h = cube_mpx_days / build_rate / 3600
    gpu_h = filled_mpx * model_per_filled / gpu_rate / 3600
    side_h = filled_mpx * cpu_side_per_filled / 3600
    cpu_fill_h = filled_mpx / cpu_fill_rate / 3600
    train_h = r.train_patches * r.epochs * step_s / 3600
    return [
        (
            "build-cube (S2 + S1 reads, masks, Zarr writes)",
            f"{cube_mpx_days:,.0f} Mpx·days",
            f"{build_rate:.3f} Mpx·days/s per core (cube_build, local COGs)",
            build_h,
            "core-h",
            build_h / cores,
        ),
        (
            "fill: generator on GPU (paper preset, bf16)",
            f"{filled_mpx:,.0f} Mpx filled × {model_per_filled:.2f} model px each",
            f"{gpu_rate} window Mpx/s per {check['machine']['device']} (gpu_check, fill's "
            "defaults)",
            gpu_h,
            "GPU-h",
            gpu_h / r.gpus,
        ),
        (
            "fill: CPU side (reads, references, calibration, writes)",
            f"{filled_mpx:,.0f} Mpx filled",
            f"{cpu_side_per_filled:.2f} core-s per filled Mpx (fill, task seconds)",
            side_h,
            "core-h",
            side_h / cores,
        ),
        (
            "fill: all on CPU instead (cpu-small preset)",
            f"{filled_mpx:,.0f} Mpx filled",
            f"{cpu_fill_rate} filled Mpx/s per 1-thread worker (fill)",
            cpu_fill_h,
            "core-h",
            cpu_fill_h / cores,
        ),
        (
            "train one regional model (paper preset, bf16, batch 1)",
            f"{r.train_patches:,} patches × {r.epochs} epochs",
            f"{step_s * 1000:.1f} ms/step (gpu_step); DDP at {ddp}× per worker (train_step, CPU)",
            train_h,
            "GPU-h",
            train_h / r.gpus / ddp,
        ),
    ]


def table(r: Region = Region()) -> str:
    """The markdown table with its assumptions."""
    lines = [
        f"Assumed: {r.tiles} tiles of {r.tile_px}² px, {r.days} days in the season, "
        f"{r.cloudy_days} of them cloudy with {r.cloud_share:.0%} of their pixels to fill, "
        f"{r.train_patches:,} training patches × {r.epochs} epochs; {r.gpus} GPUs with "
        f"{r.cores_per_gpu} cores each ({r.gpus * r.cores_per_gpu} cores).",
        "",
        "| stage | work | measured rate (results/NAME.json) | resource-hours | wall on "
        f"{r.gpus} GPUs + {r.gpus * r.cores_per_gpu} cores |",
        "| --- | --- | --- | --- | --- |",
    ]
    for stage, work, rate, hours, unit, wall in rows(r):
        lines.append(f"| {stage} | {work} | {rate} | {hours:,.1f} {unit} | {wall:,.2f} h |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
