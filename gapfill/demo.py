"""`gapfill demo`: the main job on the embedded default, end to end.

(1) A synthetic world served by the local STAC API beside the real sample -> searches ->
a cube of each (Dask) -> a small MTCNN trained on the synthetic cube (Ray Train, east half
held out) -> the cube filled (Dask, Zarr) -> quicklooks and a metrics table against the
world's true cloud-free images, beside the O1 baseline. (2) The real sample's cube -> a
small model trained on its own clear days (patches of 64) -> its cloudy days filled and
shown as quicklooks. Re-running resumes: finished cubes, runs and days are kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gapfill.errors import InputError
from gapfill.grid import east_half, inset_lonlat_wkt

if TYPE_CHECKING:
    from gapfill.train import TrainConfig

__all__ = ["run_demo", "default_real_sample"]

log = logging.getLogger(__name__)


def default_real_sample() -> Path:
    """The real S1/S2 sample: $GAPFILL_REAL_SAMPLE, else ../shared/data/real/… beside the repo."""
    env = os.environ.get("GAPFILL_REAL_SAMPLE")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "data" / "real" / "worldcereal-31UDS-A"


def _world(out: Path, size: int) -> Path:
    from gapfill.synth import WorldSpec, make_world

    spec = WorldSpec(size=size, dates=12, seed=0, landscape="flat-agri")
    world = out / f"world-{spec.landscape}-{size}"
    meta = world / "world.json"
    if meta.is_file() and WorldSpec.model_validate(json.loads(meta.read_text())["spec"]) == spec:
        log.info("synthetic world already at %s", world)
        return world
    t0 = time.perf_counter()
    make_world(world, spec, overwrite=True)
    log.info(
        "synthetic world %dx%d, 12 dates written in %.1f s", size, size, time.perf_counter() - t0
    )
    return world


def _cubes(out: Path, url: str, world: Path, first: str, last: str) -> dict:
    """Build the cubes of the synthetic world and of the real sample (incremental: re-runs
    only re-match the last days' Sentinel-1)."""
    from gapfill.cluster import local_cluster
    from gapfill.cube import CubeConfig, build_cube, cube_info

    meta = json.loads((world / "world.json").read_text())
    real_aoi = "3.0194,50.8131,3.0283,50.8188"
    jobs = {
        "synthetic": (
            out / "cube-synthetic.zarr",
            CubeConfig(
                aoi=inset_lonlat_wkt(meta["bounds"], meta["epsg"]),
                start=first,
                end=last,
                stac_url=url,
                chunk=256,
            ),
        ),
        "real": (
            out / "cube-real.zarr",
            CubeConfig(
                aoi=real_aoi,
                start="2017-08-01",
                end="2018-11-30",
                stac_url=url,
                chunk=64,
                batch_days=16,
            ),
        ),
    }
    infos = {}
    with local_cluster(2) as cluster:
        for name, (path, cfg) in jobs.items():
            t0 = time.perf_counter()
            build_cube(path, cfg, dask_scheduler=cluster.scheduler_address)
            info = cube_info(path)
            clear = [d["clear_fraction"] for d in info["days"]]
            typer.echo(
                f"cube {name}: {path} — {info['n_days']} days, {info['shape'][0]}x"
                f"{info['shape'][1]} px, mean clear {sum(clear) / len(clear):.2f}, "
                f"{info['size_on_disk_mb']} MB ({time.perf_counter() - t0:.1f} s)"
            )
            infos[name] = {k: info[k] for k in ("path", "n_days", "shape", "size_on_disk_mb")}
    return infos


# The real sample is split in time: trained on its days up to here, scored on the later ones.
REAL_CUT = "2018-05-31"


def _train(out: Path, meta: dict | None) -> dict:
    """MTCNN (preset cpu-tiny: residual with blend, no normalisation, batch 4, lr 1e-3,
    100 epochs) with the reference rule `both` (the last clear day before AND the first
    after, the later side dropped at random in training): on the synthetic cube with its
    east half held out (`meta` given), or on the real cube's days up to REAL_CUT."""
    from gapfill.cube.reference import ReferenceRule
    from gapfill.train import DataConfig, TrainConfig, train

    rule = ReferenceRule(rule="both", same_orbit=False)
    if meta is not None:
        name, cube = "synthetic", out / "cube-synthetic.zarr"
        data = DataConfig(
            cubes=(str(cube),),
            test_region=east_half(meta["bbox_lonlat"]),
            min_target_clear=0.3,
            reference=rule,
        )
    else:
        name, cube = "real", out / "cube-real.zarr"
        data = DataConfig(cubes=(str(cube),), until=REAL_CUT, reference=rule)
    cfg = TrainConfig(
        data=data,
        out=str(out / f"run-mtcnn-{name}"),
        method="mtcnn",
        preset="cpu-tiny",
        workers=2,
        seed=0,
    )
    _set_aside_if_other(out, name, cfg)
    t0 = time.perf_counter()
    result = train(cfg)
    typer.echo(
        f"trained mtcnn/cpu-tiny (rule both, residual with blend) on the {name} cube, "
        f"{len(result.history)} epochs ({time.perf_counter() - t0:.0f} s); model in "
        f"{result.run_dir}"
    )
    return {"run_dir": str(result.run_dir), "last_epoch": dict(result.history[-1])}


def _set_aside_if_other(out: Path, name: str, cfg: TrainConfig) -> None:
    """An older demo's run with other settings (the demo's preset changed) and what was
    made from it move to OUT/previous-N/, said in one line: nothing is lost, and the demo
    trains, evaluates and fills afresh instead of refusing to resume."""
    from gapfill.train import stored_differences

    diff = stored_differences(cfg.out, cfg)
    if not diff:
        return
    made = [f"run-mtcnn-{name}", f"evaluate-{name}", f"filled-{name}.zarr"]
    made += [f"filled-{name}.item.json", f"filled-{name}-quicklooks"]
    k = 1
    while (out / f"previous-{k}").exists():
        k += 1
    aside = out / f"previous-{k}"
    aside.mkdir()
    for item in made:
        if (out / item).exists():
            (out / item).rename(aside / item)
    typer.echo(
        f"{out / made[0]} was trained with other {', '.join(diff)} (an older demo): moved it "
        f"and what was made from it to {aside}"
    )


def _fill(out: Path, name: str, run_dir: str) -> dict:
    """Fill every cloudy day of a cube with `--method auto`: the model where its evaluation
    (`_evaluate`, just before) shows it beats every baseline, else the best baseline
    (resumes: complete days are kept)."""
    from gapfill.evaluate import fill_auto
    from gapfill.fill import FillConfig
    from gapfill.fill.quicklook import quicklook_dir

    report = fill_auto(
        FillConfig(
            cube=str(out / f"cube-{name}.zarr"),
            model=run_dir,
            method="auto",
            evaluate_report=str(out / f"evaluate-{name}" / "report.json"),
            out=str(out / f"filled-{name}.zarr"),
        )
    )
    choice = json.loads(report.method_choice)
    typer.echo(
        f"--method auto chose {choice['method']}"
        f"{' (calibrated)' if choice['calibrated'] else ''}: {choice['why']}"
    )
    typer.echo(
        f"filled {name}: {report.path} — {len(report.days_filled)} days filled, "
        f"{len(report.days_copied)} copied, {len(report.days_skipped)} already done; "
        f"{report.pixels_filled} px filled, {report.pixels_unfilled} unfilled "
        f"({report.seconds:.1f} s); quicklooks in {quicklook_dir(report.path)}"
    )
    return report.to_json()


def _evaluate(out: Path, name: str, run_dir: str, region: str | None) -> dict:
    """`gapfill evaluate` of the model beside the baselines on pixels it never trained on:
    the held-out half (synthetic) or the days after REAL_CUT (real)."""
    from gapfill.evaluate import EvaluateConfig, evaluate, print_report

    folder = out / f"evaluate-{name}"
    cfg = EvaluateConfig(cube=str(out / f"cube-{name}.zarr"), model=run_dir, region=region)
    report = evaluate(cfg, folder)
    where = "the held-out east half" if region else f"the days after {REAL_CUT}"
    print_report(report, title=f"{name}: hidden real-mask pixels of {where}")
    typer.echo(f"report: {folder / 'report.md'}")
    return report.to_json()


def run_demo(out: str | Path, *, size: int = 256, real: str | Path | None = None) -> dict:
    """Run the demo into `out`; returns (and writes) a summary."""
    from gapfill.grid import parse_aoi, parse_date_range
    from gapfill.stac import local_stac_api, profiles_for, search
    from gapfill.synth import world_stats

    out = Path(out).resolve()
    real_dir = Path(real) if real is not None else default_real_sample()
    if not (real_dir / "catalog.json").is_file():
        raise InputError(
            f"the real sample is not at {real_dir}: pass --real DIR or set GAPFILL_REAL_SAMPLE"
        )
    out.mkdir(parents=True, exist_ok=True)
    world = _world(out, size)
    meta = json.loads((world / "world.json").read_text())
    stats = world_stats(world, real_dir)
    summary: dict = {"world": str(world), "real_sample": str(real_dir), "realism": stats}
    with local_stac_api([world, real_dir]) as api:
        typer.echo(
            f"local STAC API at {api.url}: {api.n_items} items in {api.n_collections} collections"
        )
        s2p, s1p = profiles_for(stac_url=api.url)
        first, last = meta["s2"][0]["datetime"][:10], meta["s2"][-1]["datetime"][:10]
        searches = {
            "synthetic": (",".join(f"{v:.6f}" for v in meta["bbox_lonlat"]), first, last, None),
            "real": ("3.0195,50.8131,3.0283,50.8188", "2017-08-01", "2018-11-30", None),
            "real, eo:cloud_cover < 20": (
                "3.0195,50.8131,3.0283,50.8188",
                "2017-08-01",
                "2018-11-30",
                20.0,
            ),
        }
        summary["searches"] = {}
        for name, (aoi, start, end, cloud) in searches.items():
            result = search(parse_aoi(aoi), parse_date_range(start, end), s2p, s1p, max_cloud=cloud)
            typer.echo(f"{name}: {result.summary()}")
            summary["searches"][name] = result.to_json()["summary"]
        summary["cubes"] = _cubes(out, api.url, world, first, last)
    summary["training"] = _train(out, meta)
    summary["training_real"] = _train(out, None)
    summary["evaluate"] = _evaluate(
        out, "synthetic", summary["training"]["run_dir"], east_half(meta["bbox_lonlat"])
    )
    summary["evaluate_real"] = _evaluate(out, "real", summary["training_real"]["run_dir"], None)
    summary["fill"] = _fill(out, "synthetic", summary["training"]["run_dir"])
    summary["fill_real"] = _fill(out, "real", summary["training_real"]["run_dir"])
    (out / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    typer.echo(
        f"realism: change fraction {stats['change_fraction_mean']}, corr(|dS1|,|dS2|) "
        f"{stats['corr_abs_ds1_abs_ds2']}, |dS1| changed/unchanged "
        f"{stats['mean_abs_ds1_db_changed']}/{stats['mean_abs_ds1_db_unchanged']} dB"
    )
    typer.echo(
        f"outputs in {out}: world catalog {world / 'catalog.json'}; cubes cube-*.zarr; models "
        "run-mtcnn-*/; products filled-*.zarr with their STAC items filled-*.item.json and "
        "quicklooks filled-*-quicklooks/*.png; evaluation reports evaluate-*/report.md; "
        "demo-summary.json"
    )
    typer.echo(
        'open a product: python -c "import xarray as xr, rioxarray; ds = xr.open_zarr('
        f"'{out / 'filled-real.zarr'}'); print(ds, ds.rio.crs, ds.status.attrs['flag_meanings'])\""
    )
    return summary
