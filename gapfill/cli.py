"""The `gapfill` command: thin wrappers over library functions.

User errors (`GapfillError`, bad options) print one line and exit non-zero; no traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from gapfill.errors import GapfillError
from gapfill.logs import setup_logging

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fill cloud gaps in Sentinel-2 time series with Sentinel-1 and MTcGAN.",
)
synth_app = typer.Typer(no_args_is_help=True, help="The synthetic Sentinel world.")
stac_app = typer.Typer(no_args_is_help=True, help="The local STAC API.")
app.add_typer(synth_app, name="synth")
app.add_typer(stac_app, name="stac")

log = logging.getLogger("gapfill")
M = TypeVar("M", bound="BaseModel")

LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")]
Verbose = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="more logging (-v: DEBUG)")
]


def _logging(level: str, verbose: int) -> None:
    setup_logging("DEBUG" if verbose else level)


@synth_app.command("world")
def synth_world(
    out: Annotated[Path, typer.Argument(help="new folder for the world")],
    size: Annotated[
        int, typer.Option(help="width and height in 10 m pixels (even, 64..10980)")
    ] = 1024,
    dates: Annotated[int, typer.Option(help="number of Sentinel-2 days")] = 12,
    seed: int = 0,
    landscape: Annotated[str, typer.Option(help="flat-agri or mountain-arid")] = "flat-agri",
    s2_conventions: Annotated[
        str, typer.Option(help="planetary-computer or earth-search")
    ] = "planetary-computer",
    overwrite: Annotated[bool, typer.Option(help="replace an existing world")] = False,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Write COGs and a static STAC catalog of a synthetic Sentinel-1/2 world, plus its truth."""
    _logging(log_level, verbose)
    from gapfill.synth import WorldSpec, make_world

    spec = _validated(
        WorldSpec,
        size=size,
        dates=dates,
        seed=seed,
        landscape=landscape,
        s2_conventions=s2_conventions,
    )
    catalog = make_world(out, spec, overwrite=overwrite)
    typer.echo(f"wrote {catalog}")


@synth_app.command("stats")
def synth_stats(
    world: Annotated[Path, typer.Argument(help="a folder made by 'gapfill synth world'")],
    reference: Annotated[
        Path | None, typer.Option(help="a real static catalog to compare value ranges with")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Realism statistics: change fraction, |dS1| vs |dS2|, cloud cover, value ranges."""
    _logging(log_level, verbose)
    from gapfill.synth import world_stats

    stats = world_stats(world, reference)
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    for key, value in stats.items():
        typer.echo(f"{key}: {value}")


@stac_app.command("serve")
def stac_serve(
    catalogs: Annotated[list[Path], typer.Argument(help="static catalog folders to load")],
    port: Annotated[
        int, typer.Option(help="API port on 127.0.0.1 (0: any free port)", min=0, max=65535)
    ] = 8082,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Serve static catalogs through stac-fastapi-pgstac until Ctrl-C or SIGTERM."""
    _logging(log_level, verbose)
    from gapfill.stac import local_stac_api

    stop, serving = threading.Event(), threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        first = not stop.is_set()
        stop.set()
        if first and not serving.is_set():  # still starting: abort it (once; it cleans up)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with local_stac_api(catalogs, port=port) as api:
        serving.set()
        typer.echo(f"STAC API: {api.url}  ({api.n_collections} collections, {api.n_items} items)")
        typer.echo("press Ctrl-C to stop")
        sys.stdout.flush()
        while not stop.wait(0.5):
            if not api.alive():
                from gapfill.errors import ServiceError

                raise ServiceError("the local STAC API stopped unexpectedly")
    typer.echo("stopped")


@app.command("search")
def search_cmd(
    aoi: Annotated[str, typer.Option(help="GeoJSON file, minx,miny,maxx,maxy (lon/lat) or WKT")],
    start: Annotated[str, typer.Option(help="first day, YYYY-MM-DD (UTC, inclusive)")],
    end: Annotated[str, typer.Option(help="last day, YYYY-MM-DD (UTC, inclusive)")],
    provider: Annotated[
        str | None, typer.Option(help="earth-search or planetary-computer (S2)")
    ] = None,
    s1_provider: Annotated[str | None, typer.Option(help="Sentinel-1 provider")] = None,
    stac_url: Annotated[str | None, typer.Option(help="any STAC API URL")] = None,
    profile: Annotated[
        Path | None, typer.Option(help="YAML mapping of collections/asset keys for --stac-url")
    ] = None,
    max_cloud: Annotated[float | None, typer.Option(help="S2 eo:cloud_cover below PCT")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON for machines")] = False,
    log_level: LogLevel = "WARNING",
    verbose: Verbose = 0,
) -> None:
    """Find the Sentinel-1 and Sentinel-2 items over an AOI and dates."""
    _logging(log_level, verbose)
    from gapfill.grid import parse_aoi, parse_date_range
    from gapfill.stac import profiles_for, search

    area = parse_aoi(aoi)
    days = parse_date_range(start, end)
    s2p, s1p = profiles_for(provider, stac_url, s1_provider, profile)
    result = search(area, days, s2p, s1p, max_cloud=max_cloud)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for col in ("sensor", "date (UTC)", "id", "cloud %", "orbit"):
        table.add_column(col)
    for row in result.rows():
        cc = row["cloud_cover"]
        orbit = " ".join(
            str(x) for x in (row["relative_orbit"], row["orbit_state"]) if x is not None
        )
        table.add_row(
            row["sensor"],
            row["datetime"][:19].replace("T", " "),
            row["id"],
            "" if cc is None else f"{cc:.1f}",
            orbit,
        )
    console = Console(width=160 if not sys.stdout.isatty() else None)
    console.print(table)
    console.print(result.summary())


cube_app = typer.Typer(no_args_is_help=True, help="Inspect cubes.")
app.add_typer(cube_app, name="cube")


@app.command("build-cube")
def build_cube_cmd(
    aoi: Annotated[str, typer.Option(help="GeoJSON file, minx,miny,maxx,maxy (lon/lat) or WKT")],
    start: Annotated[str, typer.Option(help="first day, YYYY-MM-DD (UTC, inclusive)")],
    end: Annotated[str, typer.Option(help="last day, YYYY-MM-DD (UTC, inclusive)")],
    out: Annotated[
        str,
        typer.Option(
            help="the cube (Zarr v3), a path or an fsspec URL (s3://...: credentials and "
            "endpoint from the environment, e.g. AWS_* variables); an existing one is extended"
        ),
    ],
    provider: Annotated[str | None, typer.Option(help="S2 provider")] = None,
    s1_provider: Annotated[str | None, typer.Option(help="Sentinel-1 provider")] = None,
    stac_url: Annotated[str | None, typer.Option(help="any STAC API URL")] = None,
    profile: Annotated[Path | None, typer.Option(help="YAML mapping for --stac-url")] = None,
    bands: Annotated[
        str | None,
        typer.Option(
            help="Sentinel-2 bands: B02,B03,... or a set: default (B02-B08, B8A, B11, B12), "
            "paper (B02 B03 B04 B08), 20m, all (default: default, or an existing cube's)"
        ),
    ] = None,
    resolution: Annotated[
        float | None,
        typer.Option(help="metres: 10 (default, or an existing cube's) or 20 (20 m bands only)"),
    ] = None,
    epsg: Annotated[int | None, typer.Option(help="CRS (default: UTM zone of the AOI)")] = None,
    max_gap_days: Annotated[
        float | None, typer.Option(help="S1-S2 matching window, days (default 5)")
    ] = None,
    chunk: Annotated[
        int | None, typer.Option(help="square spatial chunk, pixels (default 1024)")
    ] = None,
    despeckle: Annotated[str | None, typer.Option(help="none (default) or lee")] = None,
    max_cloud: Annotated[float | None, typer.Option(help="skip S2 items above PCT")] = None,
    batch_days: Annotated[int, typer.Option(help="days written between flag updates")] = 8,
    loader: Annotated[
        str, typer.Option(help="direct (default) or stackstac: how COGs are read; same values")
    ] = "direct",
    strict: Annotated[bool, typer.Option(help="fail on an unreadable item")] = False,
    max_pixels: Annotated[
        int, typer.Option(help="refuse a grid above this many pixels")
    ] = 1_000_000_000,
    dask_scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address")] = None,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Build (or extend) a co-registered Sentinel-1/2 cube in Zarr."""
    _logging(log_level, verbose)
    from gapfill.cube import CubeConfig, build_cube, cube_info

    # Settings left out stay unset, so that extending a cube takes the cube's own.
    given = dict(
        bands=bands,
        resolution=resolution,
        epsg=epsg,
        max_gap_days=max_gap_days,
        chunk=chunk,
        despeckle=despeckle,
    )
    cfg = _validated(
        CubeConfig,
        aoi=aoi,
        start=start,
        end=end,
        provider=provider,
        s1_provider=s1_provider,
        stac_url=stac_url,
        profile=str(profile) if profile else None,
        max_cloud=max_cloud,
        batch_days=batch_days,
        loader=loader,
        strict=strict,
        max_pixels=max_pixels,
        **{k: v for k, v in given.items() if v is not None},
    )
    report = build_cube(out, cfg, dask_scheduler=dask_scheduler)
    _print_cube_info(cube_info(out))
    typer.echo(
        f"wrote {len(report.days_written)} days, re-matched S1 on "
        f"{len(report.days_s1_rematched)}, dropped {len(report.days_dropped)}, "
        f"skipped {len(report.skipped_items)} items"
    )


def _print_cube_info(info: dict) -> None:
    typer.echo(
        f"{info['path']}: {info['n_days']} days ({info['n_complete']} complete), "
        f"{info['shape'][0]}x{info['shape'][1]} px at {info['resolution']:g} m, "
        f"EPSG:{info['epsg']}, bands {' '.join(info['bands'])}, {info['size_on_disk_mb']} MB"
    )
    for d in info["days"]:
        flag = "" if d["complete"] else "  INCOMPLETE"
        typer.echo(
            f"  {d['day']}  valid {d['valid_fraction']:.2f}  clear {d['clear_fraction']:.2f}"
            f"  S1 {d['s1_coverage']:.2f}{flag}"
        )
    for item, why in info["skipped_items"].items():
        typer.echo(f"  skipped {item}: {why}")
    for day, why in info["dropped_days"].items():
        typer.echo(f"  dropped {day}: {why}")


@cube_app.command("info")
def cube_info_cmd(
    cube: Annotated[
        str, typer.Argument(help="a cube made by 'gapfill build-cube' (a path or a URL)")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    log_level: LogLevel = "WARNING",
    verbose: Verbose = 0,
) -> None:
    """Summary of an existing cube: days, clear fraction, S1 coverage, size."""
    _logging(log_level, verbose)
    from gapfill.cube import cube_info

    info = cube_info(cube)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        _print_cube_info(info)


@cube_app.command("check")
def cube_check_cmd(
    cube: Annotated[Path, typer.Argument(help="a cube made by 'gapfill build-cube'")],
    repair: Annotated[
        bool, typer.Option(help="flag damaged days incomplete, so build-cube redoes them")
    ] = False,
    log_level: LogLevel = "WARNING",
    verbose: Verbose = 0,
) -> None:
    """Verify that every chunk of every complete day exists and decodes (exit 1 if not)."""
    _logging(log_level, verbose)
    from gapfill.cube import check_cube

    report = check_cube(cube, repair=repair)
    for day, problems in report.damaged.items():
        typer.echo(f"  {day}: " + "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else ""))
    if not report.damaged:
        typer.echo(f"{report.path}: {report.days_checked} complete days, every chunk readable")
        return
    if report.repaired:
        typer.echo(
            f"{report.path}: {len(report.damaged)} damaged days flagged incomplete: re-run "
            "'gapfill build-cube' with the cube's options to redo them"
        )
        return
    typer.echo(
        f"{report.path}: {len(report.damaged)} of {report.days_checked} complete days damaged: "
        f"run 'gapfill cube check {report.path} --repair', then 'gapfill build-cube' again"
    )
    raise typer.Exit(1)


def _day_list(text: str | None) -> tuple[str, ...]:
    """`--dates D1,D2`: left out means no day list; given but blank (an unset shell
    variable) is an error, never "every day"."""
    if text is None:
        return ()
    days = tuple(d.strip() for d in text.split(",") if d.strip())
    if not days:
        from gapfill.errors import InputError

        raise InputError(
            f"--dates {text!r} names no day: give D1,D2,... or leave --dates out to fill every day"
        )
    return days


def _validated(schema: type[M], /, **values: Any) -> M:  # M: a pydantic model
    """Build a pydantic config, turning the first validation error into one line."""
    from pydantic import ValidationError

    from gapfill.errors import InputError

    try:
        return schema(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "input"
        raise InputError(f"{where}: {err['msg']}") from None


@app.command("train")
def train_cmd(
    config: Annotated[Path | None, typer.Option(help="train.yaml (flags override it)")] = None,
    cube: Annotated[list[str] | None, typer.Option(help="a cube (repeat for several)")] = None,
    patch: Annotated[int | None, typer.Option(help="patch size in pixels")] = None,
    method: Annotated[str | None, typer.Option(help="cnn, cgan, mtcnn or mtcgan")] = None,
    preset: Annotated[
        str | None, typer.Option(help="paper, cpu-small, cpu-tiny or test-tiny")
    ] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers")] = None,
    cpus_per_worker: Annotated[
        float | None,
        typer.Option(
            help="CPUs (torch threads) each; default: this machine's shared, 1 on a cluster"
        ),
    ] = None,
    gpus_per_worker: Annotated[float | None, typer.Option()] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster (or RAY_ADDRESS)")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    out: Annotated[str | None, typer.Option(help="RUN_DIR")] = None,
    checkpoints: Annotated[
        str | None, typer.Option(help="checkpoint storage: a path or s3://, gs://... URL")
    ] = None,
    init: Annotated[
        str | None, typer.Option(help="RUN_DIR whose weights this run starts from")
    ] = None,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Train one of the paper's methods with Ray Train; re-running resumes."""
    _logging(log_level, verbose)
    import os

    from gapfill.train import load_train_config, train

    cfg = load_train_config(
        config,
        cubes=tuple(cube) if cube else None,
        patch=patch,
        method=method,
        preset=preset,
        epochs=epochs,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
        ray_address=ray_address or os.environ.get("RAY_ADDRESS"),
        seed=seed,
        out=out,
        checkpoints=checkpoints,
        init=init,
    )
    result = train(cfg)
    last = result.history[-1] if result.history else {}
    typer.echo(
        f"model: {result.run_dir} ({len(result.history)} epochs); last epoch: "
        + ", ".join(f"{k} {v:.4g}" for k, v in last.items())
    )


@app.command("fill")
def fill_cmd(
    cube: Annotated[str, typer.Option(help="the cube (Zarr) to fill: a path or a URL")],
    out: Annotated[
        str,
        typer.Option(
            help="the filled product (Zarr v3): a path or an fsspec URL (s3://...: "
            "credentials and endpoint from the environment)"
        ),
    ],
    model: Annotated[
        Path | None, typer.Option(help="RUN_DIR with model.pt + model.json (--method model)")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="model, or a baseline: persistence, nearest or interpolate (the last two "
            "use clear days after the target), or auto: the model only where this cube's "
            "evaluation shows it better than every baseline, else the best baseline"
        ),
    ] = "model",
    evaluate_report: Annotated[
        Path | None,
        typer.Option(
            help="report.json of gapfill evaluate for --method auto (default: "
            "CUBE-evaluate/report.json, else evaluated on the spot)"
        ),
    ] = None,
    dates: Annotated[str | None, typer.Option(help="days to fill: D1,D2,...")] = None,
    start: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD (inclusive)")] = None,
    end: Annotated[str | None, typer.Option(help="last day, YYYY-MM-DD (inclusive)")] = None,
    min_cloud: Annotated[float, typer.Option(help="fill days cloudier than PCT")] = 0.0,
    batch: Annotated[int, typer.Option(help="tiles per forward pass on a GPU")] = 1,
    tile: Annotated[
        int | None,
        typer.Option(help="inference tile, px before halo (default: 256 on a CPU, 1024 on a GPU)"),
    ] = None,
    chunk: Annotated[int | None, typer.Option(help="product chunk px (default: cube's)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    dask_scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address")] = None,
    overwrite: Annotated[bool, typer.Option(help="redo days already complete")] = False,
    quicklooks: Annotated[bool, typer.Option(help="write a PNG per day")] = True,
    calibrate: Annotated[
        bool, typer.Option(help="fit each fill to the clear pixels of its day")
    ] = True,
    uncertainty: Annotated[
        int | None,
        typer.Option(
            help="N Monte-Carlo dropout passes: a per-pixel spread (the product's "
            "`uncertainty` variable, reflectance units, where filled)"
        ),
    ] = None,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Fill the cloudy days of a cube with a trained model into a resumable Zarr product."""
    _logging(log_level, verbose)
    from gapfill.evaluate import fill_auto
    from gapfill.fill import FillConfig

    cfg = _validated(
        FillConfig,
        cube=str(cube),
        model=str(model) if model else None,
        method=method,
        evaluate_report=str(evaluate_report) if evaluate_report else None,
        out=str(out),
        dates=_day_list(dates),
        start=start,
        end=end,
        min_cloud=min_cloud,
        batch=batch,
        tile=tile,
        chunk=chunk,
        device=device,
        overwrite=overwrite,
        quicklooks=quicklooks,
        calibration={"enabled": calibrate},
        uncertainty=uncertainty,
    )
    r = fill_auto(cfg, dask_scheduler=dask_scheduler)
    typer.echo(
        f"{r.path}: filled {len(r.days_filled)} days, copied {len(r.days_copied)}, skipped "
        f"{len(r.days_skipped)}; pixels filled {r.pixels_filled}, unfilled "
        f"{r.pixels_unfilled}; {r.mpx_per_s:.2f} Mpx/s ({r.seconds:.1f} s); item {r.item}"
    )


def _when(text: str | None, flag: str) -> Any:
    """`--now` as an aware UTC datetime (a bare date is its midnight UTC)."""
    import datetime as dt

    from gapfill.errors import InputError

    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{flag} {text!r} is not a date or time: give YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@app.command("run")
def run_cmd(
    spec: Annotated[Path, typer.Argument(help="the region spec, pipelines/REGION.yaml")],
    now: Annotated[str | None, typer.Option(help="run as of this UTC time (default: now)")] = None,
    start: Annotated[str | None, typer.Option(help="backfill from this day")] = None,
    end: Annotated[str | None, typer.Option(help="backfill up to this day")] = None,
    dry_run: Annotated[bool, typer.Option(help="print the plan, write nothing")] = False,
    show_history: Annotated[
        bool, typer.Option("--history", help="print the ledger of past runs and stop")
    ] = False,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Bring a region's cube and filled product up to date (for cron / a CronJob).

    Exit 0: done or nothing to do; 75: another run holds the lease (try later);
    2: bad spec or input; 3: a service (STAC API, cluster) could not be reached.
    """
    _logging(log_level, verbose)
    from gapfill.grid import UTCDay
    from gapfill.pipeline import history, load_spec, run_pipeline

    region = load_spec(spec)
    if show_history:
        for past in history(region):
            typer.echo(
                f"{past['started']} {past['run_id']} {past['status']}: "
                f"{_days_summary(past['days_added'], past['days_filled'])}"
                + (f"; error: {past['error']}" if past["error"] else "")
            )
        return
    from pydantic import TypeAdapter, ValidationError

    from gapfill.errors import InputError

    days: dict[str, Any] = {}
    for flag, text in (("--start", start), ("--end", end)):
        try:
            days[flag] = TypeAdapter(UTCDay).validate_python(text) if text else None
        except ValidationError:
            raise InputError(f"{flag} {text!r} is not a day: give YYYY-MM-DD") from None
    rec = run_pipeline(
        region,
        now=_when(now, "--now"),
        start=days["--start"],
        end=days["--end"],
        dry_run=dry_run,
    )
    if rec.status == "plan":
        typer.echo(f"plan for {rec.spec}, window {rec.window[0]}..{rec.window[1]}:")
        typer.echo(f"  new days from the STAC API: {', '.join(rec.days_added) or 'none'}")
        for day, why in rec.days_filled.items():
            typer.echo(f"  fill {day}: {why}")
        if not rec.days_filled:
            typer.echo("  nothing to fill")
        return
    typer.echo(
        f"{rec.spec}: {rec.status}; {_days_summary(rec.days_added, rec.days_filled)}; "
        f"run {rec.run_id} (details: gapfill run {spec} --history)"
    )


def _days_summary(added: list[str], filled: dict[str, str]) -> str:
    """`29 days added (D1..D2), 38 filled: 29 new day, 9 stale` on one line."""
    from collections import Counter

    span = f" ({min(added)}..{max(added)})" if added else ""
    kinds = Counter(why.split(":")[0] for why in filled.values())
    why = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return f"{len(added)} days added{span}, {len(filled)} filled" + (f": {why}" if why else "")


@app.command("pipeline-schema")
def pipeline_schema_cmd(
    out: Annotated[
        Path | None, typer.Option(help="write here (e.g. pipelines/schema.json), else stdout")
    ] = None,
) -> None:
    """The JSON Schema of a region spec (pipelines/schema.json is generated by this)."""
    from gapfill.pipeline import spec_schema

    text = spec_schema()
    if out is None:
        typer.echo(text, nl=False)
    else:
        from gapfill.storage import require_writable

        require_writable(out, "--out")
        if out.is_dir():
            from gapfill.errors import InputError

            raise InputError(f"--out {out} is a folder: give the JSON file to write")
        out.write_text(text)
        typer.echo(f"wrote {out}")


@app.command("evaluate")
def evaluate_cmd(
    cube: Annotated[
        str, typer.Option(help="the cube (Zarr) to evaluate on: a path or an fsspec URL")
    ],
    model: Annotated[Path, typer.Option(help="RUN_DIR with model.pt + model.json")],
    start: Annotated[
        str | None, typer.Option(help="first target day (default: after the training days)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="last target day, YYYY-MM-DD")] = None,
    region: Annotated[
        str | None, typer.Option(help="AOI (lon/lat bbox, WKT or GeoJSON) to score inside")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="report folder (default: CUBE-evaluate beside a local cube; needed for a URL)"
        ),
    ] = None,
    allow_train_overlap: Annotated[
        bool, typer.Option(help="score days and pixels the model was trained on")
    ] = False,
    max_targets: Annotated[int, typer.Option(help="at most N target days")] = 24,
    whole_day: Annotated[
        bool, typer.Option(help="hide whole target days (no clear pixel left to calibrate on)")
    ] = False,
    calibrate: Annotated[
        bool, typer.Option(help="fit fills to the clear pixels left on their day, as fill does")
    ] = True,
    seed: Annotated[int, typer.Option(help="seed of the mask choice and the bootstrap")] = 0,
    uncertainty: Annotated[
        int | None,
        typer.Option(
            help="N Monte-Carlo dropout passes: report how well their spread covers the "
            "model's errors (as `fill --uncertainty N`)"
        ),
    ] = None,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """Score the model beside persistence, nearest and interpolation on hidden clear pixels
    of the cube (real cloud masks of its other days)."""
    _logging(log_level, verbose)
    from gapfill.evaluate import EvaluateConfig, evaluate, print_report

    cfg = _validated(
        EvaluateConfig,
        cube=str(cube),
        model=str(model),
        start=start,
        end=end,
        region=region,
        allow_train_overlap=allow_train_overlap,
        max_targets=max_targets,
        whole_day=whole_day,
        calibration={"enabled": calibrate},
        seed=seed,
        uncertainty=uncertainty,
    )
    from gapfill.errors import InputError
    from gapfill.storage import is_url, shown

    if out is None and is_url(cube):
        raise InputError(f"--cube {shown(cube)} is a URL: give --out, a local report folder")
    local = Path(cube)
    folder = out or local.with_name(local.name.removesuffix(".zarr") + "-evaluate")
    report = evaluate(cfg, folder)
    print_report(report)
    typer.echo(f"report: {folder / 'report.md'} (+ report.json, one PNG per target day)")


@app.command("quicklook")
def quicklook_cmd(
    filled: Annotated[Path, typer.Argument(help="a product of 'gapfill fill'")],
    date: Annotated[str, typer.Option(help="the day, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="PNG to write")],
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """True colour before / after and the status flags of one day, side by side."""
    _logging(log_level, verbose)
    from gapfill.fill import quicklook

    typer.echo(f"wrote {quicklook(filled, date, out)}")


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option(help="folder for the demo's outputs")] = Path("demo-output"),
    size: Annotated[int, typer.Option(help="synthetic world size in pixels")] = 256,
    real: Annotated[
        Path | None, typer.Option(help="the real sample's static catalog folder")
    ] = None,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """The main job end to end: world + real sample -> STAC API -> cubes -> train -> fill."""
    _logging(log_level, verbose)
    from gapfill.demo import run_demo

    run_demo(out, size=size, real=real)


experiment_app = typer.Typer(no_args_is_help=True, help="The paper's experiments.")
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("paper")
def experiment_paper(
    out: Annotated[Path, typer.Option(help="folder for worlds, cubes, runs and the report")] = Path(
        "experiment-paper"
    ),
    preset: Annotated[
        str, typer.Option(help="training preset: cpu-tiny, cpu-small (CPU), paper (GPU)")
    ] = "cpu-tiny",
    epochs: Annotated[int, typer.Option(help="per run (the paper: 200)")] = 8,
    size: Annotated[int, typer.Option(help="each region's side in pixels")] = 256,
    dates: Annotated[int, typer.Option(help="Sentinel-2 days per region")] = 12,
    workers: Annotated[int, typer.Option(help="Ray Train workers per run")] = 1,
    parallel: Annotated[int, typer.Option(help="runs trained at once (they share the CPUs)")] = 2,
    log_level: LogLevel = "INFO",
    verbose: Verbose = 0,
) -> None:
    """He & Yokoya's Tables III and IV and Fig. 4 on a three-region synthetic world
    (STAC API -> cubes -> Ray Train runs -> scores beside O1); re-running resumes."""
    _logging(log_level, verbose)
    from gapfill.experiment import ExperimentConfig, run_paper

    cfg = _validated(
        ExperimentConfig,
        out=str(out),
        preset=preset,
        epochs=epochs,
        size=size,
        dates=dates,
        workers=workers,
        parallel=parallel,
    )
    run_paper(cfg)


_RESUME = "what is complete is kept; run the same command again to resume"


# The machine refused a write (disk full, quota, read-only, permissions): the run stops,
# complete days are kept, and the same command resumes once the cause is fixed.
_WRITE_FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def _write_fault(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    fix = (
        "free space"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "make it writable"
    )
    return (
        f"{exc.strerror or exc}{where}: {fix}, then run the same command again "
        "(what is complete is kept)"
    )


def _require_utf8(args: list[str]) -> None:
    """Paths and values are written into JSON attrs, STAC Items and run records, which
    hold text: an argument with bytes that are not UTF-8 is refused before any work."""
    for i, arg in enumerate(args):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            option = args[i - 1] if i and args[i - 1].startswith("--") else "an argument"
            shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
            raise GapfillError(
                f"{option} {shown} is not valid UTF-8: gapfill records paths as text; "
                "rename it (or choose another path)"
            ) from None


def main() -> None:
    """Console entry point: one clear line and a non-zero exit for user errors."""
    from gapfill import _interrupt

    _interrupt.install()
    try:
        _require_utf8(sys.argv[1:])
        code = app(standalone_mode=False)
    except GapfillError as exc:
        from gapfill.storage import redact_text

        print(f"gapfill: error: {redact_text(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        _exit_interrupted()
    except typer.TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"gapfill: error: {message} (see --help)", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        code = 130
    except OSError as exc:
        if exc.errno not in _WRITE_FAULTS:
            raise
        print(f"gapfill: error: {_write_fault(exc)}", file=sys.stderr)
        sys.exit(3)
    finally:
        _interrupt.stopping()
    if code == 130:  # typer turns Ctrl-C into Exit(130)
        _exit_interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _exit_interrupted() -> None:
    """Say so and exit 130. A second SIGINT/SIGTERM arriving while the interpreter unwinds
    would raise KeyboardInterrupt over the exit (the process then dies of SIGINT, -2,
    after printing the line): once the run has stopped, further ones are ignored."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    print(f"gapfill: interrupted: {_RESUME}", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
    main()
