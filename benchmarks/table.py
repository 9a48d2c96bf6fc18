"""The table of `benchmarks/README.md`, printed from the stored results: every figure in it
comes from `benchmarks/results/*.json`, with the tree each was measured on and the
direction of each ratio said in words (`tests/unit/test_benchmark_table.py` checks that
the README holds exactly this).

    .venv/bin/python benchmarks/table.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
BEGIN = "<!-- table.py: begin -->"
END = "<!-- table.py: end -->"


def _tree(d: dict) -> str:
    sw = d.get("software") or {}
    if "tree" in d:  # gpu_check: the device's copy has no .git, the tree is named
        sw = {"git_sha": d["tree"]["git_sha"], "dirty": d["tree"]["dirty"]}
    sha = sw.get("git_sha")
    if not sha:
        return "tree not recorded"
    dirty = sw.get("dirty")
    state = (
        " + uncommitted changes" if dirty else "" if dirty is False else ", dirty flag not recorded"
    )
    return f"commit {sha[:10]}{state}"


def _synth_world(d: dict) -> str:
    p = d["params"]
    m = d["median_s"]
    return (
        f"{p['size']}² × {p['dates']} dates, median of {p['repeat']}: {m['generate_1x']} s vs "
        f"{m['floor_same_files_1x']} s: time {d['time_ratio_vs_floor']}× the floor's; "
        f"peak RSS at 4× area {d['peak_rss_ratio_4x_vs_1x']}× that at 1×"
    )


def _stac_search(d: dict) -> str:
    m = d["median_s"]
    return (
        f"median of {d['params']['repeat']}: {m['gapfill']} s vs {m['floor_httpx']} s "
        f"({d['items_per_search']} items): time {d['time_ratio_gapfill_over_floor']}× the floor's"
    )


def _train_step(d: dict) -> str:
    p = d["params"]
    cases = "; ".join(
        f"{c['patch']} px: per-worker throughput "
        f"{c['throughput_ratio_per_worker_ddp_vs_plain']}× plain, 1-worker Ray "
        f"{c['throughput_ratio_ray_1_worker_vs_plain']}×, "
        f"{c['throughput_ratio_ddp_vs_concurrent_plain']}× two plain processes at once"
        for c in d["cases"]
    )
    startup = d["cases"][0]["ray_startup_and_teardown_s"]
    return (
        f"{p['preset']}, {p['workers']} workers, batch {p['batch']}, median of {p['repeat']}: "
        f"{cases}; start-up {startup} s"
    )


def _train_epoch(d: dict) -> str:
    p = d["params"]

    def layout(name: str, r: dict) -> str:
        split = r["median_split_s"]
        return (
            f"{p['layouts'][name]}: {r['median_epoch_s']} s, throughput "
            f"{r['throughput_ratio_over_floor']}× the floor's (driver's long − short runs: "
            f"{r['throughput_ratio_driver_over_floor']}×; rank 0: steps "
            f"{split['seconds_steps']} s, validation {split['seconds_validation']} s, batches "
            f"{split['seconds_batches']} s)"
        )

    layouts = "; ".join(layout(k, r) for k, r in d["layouts"].items())
    return (
        f"{p['preset']}, {p['cube']}, global batch {p['global_batch']}, {p['cpus']} CPUs, "
        f"median of {p['repeat']}: floor {d['median_floor_epoch_s']} s per epoch; {layouts}"
    )


def _train_startup(d: dict) -> str:
    p = d["params"]
    (_, with_), (_, without) = d["median"].items()
    return (
        f"{p['preset']}, {p['epochs']} epoch, {p['workers']} workers, {p['cube']}, median of "
        f"{p['repeat']}: {without['wall_s']:.2f} s without the watcher vs {with_['wall_s']:.2f} s "
        f"with it: time {d['time_ratio_without_over_with']}× (its epoch {without['epoch_s']:.2f} "
        f"vs {with_['epoch_s']:.2f} s)"
    )


def _fill(d: dict) -> str:
    one, w = d["fill_1x_1worker"], d["world"]
    cal = d.get("time_ratio_calibrated_over_not")
    return (
        f"{w['size']}² × {w['dates']} days, {d['preset']}, median of {len(one['runs'])}: "
        f"{one['median_fill_s']} s vs {one['median_floor_plain_process_s']} s: time "
        f"{d['time_ratio_fill_over_floor_plain_process']}× the bare model in a plain "
        f"process, {d['time_ratio_fill_over_floor_in_worker']}× in the same Dask worker; "
        + (f"day calibration {cal}× the time without; " if cal else "")
        + f"halo overhead {d['halo_overhead']} model px per output px"
    )


def _quicklooks(d: dict) -> str:
    p, m = d["params"], d["median_s"]
    return (
        f"{p['size']}² × {p['days']} days, {p['workers']} workers, median of {p['repeat']}: "
        f"{m['cluster_s']} s vs {m['serial_driver_s']} s one day after another: time "
        f"{d['time_ratio_cluster_over_serial']}× the serial loop's"
    )


def _gpu_step(d: dict) -> str:
    runs = (d.get("params") or {}).get("repeat")
    med = f", median of {runs}" if runs else ""
    return (
        f"{d['device']}, paper preset{med}: {d['train_step_s_batch1_bf16_cl'] * 1000:.1f} ms/step "
        f"bf16 + channels_last ({d['train_step_s_batch1_fp32'] * 1000:.1f} fp32); inference "
        f"{d['infer_mpix_per_s_tile256_bf16_cl']} Mpx/s"
    )


def _fill_tiles(d: dict) -> str:
    p, m, px = d["params"], d["median_s"], d["model_px_per_day"]
    return (
        f"{p['preset']}, a {p['window_px']}² window × {p['days']} days, {p['threads']} thread, "
        f"median of {p['repeat']}: {m['now']} s vs {m['before']} s: time "
        f"{d['time_ratio_now_over_before']}× the layout before's ({px['now']} vs "
        f"{px['before']} model px a day)"
    )


def _fill_bands(d: dict) -> str:
    p = d["params"]
    parts = [
        f"{name} ({r['in_channels']['paper']}→{r['in_channels']['default']} input channels): "
        f"{r['median_s']['paper']} s vs {r['median_s']['default']} s, time "
        f"{r['time_ratio_ten_over_four']}× for {r['band_ratio']}× the bands "
        f"(conv FLOPs {r['flop_ratio_ten_over_four']}×)"
        for name, r in d["presets"].items()
    ]
    return (
        f"a {p['window_px']}² window × {p['days']} days, {p['threads']} thread, median of "
        f"{p['repeat']}, four bands vs ten: " + "; ".join(parts)
    )


def _cube_build(d: dict) -> str:
    w, m, lo = d["world"], d["median_s"], d["loaders_time_ratio_vs_direct"]
    bands = f"{len(d['bands'])} bands, " if "bands" in d else ""
    per_band_day = (
        f"; s2 on disk {d['s2_bytes_per_band_day'] / 1e6:.2f} MB per band and day of "
        f"{w['size'] // 2}²"
        if "s2_bytes_per_band_day" in d
        else ""
    )
    return (
        f"{w['size']}² × {w['dates']} days, {bands}median of {d['repeat']}: {m['gapfill_1x']} s "
        f"vs {m['floor_1x']} s: throughput {d['throughput_ratio_gapfill_vs_floor']}× the "
        f"floor's; peak RSS at 4× area {d['peak_rss_ratio_4x_vs_1x']}× that at 1×"
        f"{per_band_day}; loading S2 bands, stackstac's time {lo['stackstac']}× and odc-stac's "
        f"{lo['odc_stac']}× the direct engine's"
    )


def _gpu_check(d: dict) -> str:
    bare, tile = d["bare_forward"], d["s2_tile_model_seconds"]
    runs = d["tiled_forward_chunk"]["runs"]
    eager, compiled = bare["eager_tile512_batch4"], bare["compiled_tile512_batch4"]
    default = runs[tile["fill_default"]] if tile.get("fill_default") else None
    fill = (
        f"fill's `tiled_forward` at its defaults ({tile['fill_default']}): "
        f"{default['s_per_chunk']} s per 1024² chunk, {default['share_of_peak']} of the peak; "
        f"a 10980² tile's model work {tile['fill_default_seconds']} s ("
        if default
        else "a 10980² tile's model work ("
    )
    small = runs["eager_tile256_batch16"]
    fill = (
        f"`tiled_forward` with 256 px tiles × 16 a pass: {small['s_per_chunk']} s per chunk, "
        f"{small['share_of_peak']} of the peak; {fill}"
    )
    cmp = d["fill_window_vs_cpu_fp32"]
    return (
        f"{d['machine']['device']}, {d['preset']} preset, torch {d['software']['torch']}: "
        f"measured bf16 peak {d['measured_peak_tflops']} TFLOP/s; bare generator (512² × 4 on "
        f"the device) {eager['tflops']} TFLOP/s eager = {eager['share_of_peak']} of the peak, "
        f"{compiled['tflops']} compiled = {compiled['share_of_peak']}; {fill}"
        f"best layout {tile['best']}: {tile['seconds']} s; goal {tile['goal_s']} s); "
        f"`fill_window` on the GPU vs CPU fp32: max |Δ| {cmp['max_abs_diff_reflectance']} "
        "reflectance"
    )


BENCHMARKS: dict[str, tuple[str, Callable[[dict], str] | None]] = {
    "synth_world": (
        "world generation vs writing the same pixels through the same GeoTIFF→COG path",
        _synth_world,
    ),
    "stac_search": (
        "`gapfill.stac.search` vs bare httpx paging on the local pgstac API",
        _stac_search,
    ),
    "cube_build": (
        "`build_cube` vs rasterio windows + numpy + zarr; its direct loader vs stackstac and "
        "odc-stac",
        _cube_build,
    ),
    "cube_build-warp": (
        "the same with the ten bands, their 20 m bands warped by GDAL per chunk (before the "
        "aligned bilinear read)",
        _cube_build,
    ),
    "train_step": (
        "Ray Train DDP steps vs a plain PyTorch loop, per worker; a 1-worker Ray run; two "
        "plain processes at once",
        _train_step,
    ),
    "train_epoch": (
        "`gapfill.train.train` epochs (Zarr patches, validation, checkpoints) vs the same "
        "steps in a plain process from memory",
        _train_epoch,
    ),
    "train_epoch-cpu-small": (
        "the same at the cpu-small preset (`--preset cpu-small --long 4`)",
        _train_epoch,
    ),
    "train_startup": (
        "a short `train` run start to end on a fresh local Ray: without Ray Train's preemption "
        "watcher (gapfill's local Ray) vs with it (Ray's default)",
        _train_startup,
    ),
    "fill": (
        "`gapfill fill` end to end vs the bare generator on the same haloed windows, in the "
        "same Dask worker and in a fresh plain process, alternating (--parts nocal: without "
        "day calibration)",
        _fill,
    ),
    "fill_tiles": (
        "fill's inference tiles on a CPU: at most `--tile` px cut evenly, one shape (now) vs "
        "cut at the window's edge (before)",
        _fill_tiles,
    ),
    "fill_bands": (
        "fill's model per band set: the same generator for the paper's four bands and the "
        "default ten (first and last layers wider), through `tiled_forward`",
        _fill_bands,
    ),
    "quicklooks": (
        "fill's quicklooks as Dask tasks on the run's cluster vs the same calls one day after "
        "another in the driver (before)",
        _quicklooks,
    ),
    "gpu_step": ("the paper preset on a GPU: fp32 vs bf16 + channels_last", _gpu_step),
    "gpu_check": (
        "one GPU run: measured bf16 peak, the paper generator's share of it (eager and "
        "compiled), a 10980² tile's model seconds, `fill_window` on the GPU vs CPU fp32",
        _gpu_check,
    ),
    "gpu_check-27a5865": (
        "the same before inference tiles were laid in one shape (fill's default then: "
        "256 px tiles, batch 8)",
        _gpu_check,
    ),
}


def table() -> str:
    """Markdown: one row per stored result (a script, or a script with other options), its
    latest figures and the tree measured."""
    lines = [
        "| script | compares | latest figures (from results/NAME.json) |",
        "| --- | --- | --- |",
    ]
    for name, (compares, figures) in BENCHMARKS.items():
        path = RESULTS / f"{name}.json"
        if figures is None or not path.exists():
            cell = "not run yet"
        else:
            d = json.loads(path.read_text())
            cell = f"{figures(d)} ({_tree(d)})"
        script = name.split("-")[0]  # NAME-VARIANT.json: the same script, other options
        lines.append(f"| `{script}.py` | {compares} | {cell} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
