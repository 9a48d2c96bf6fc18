"""`fill`: Dask-driven gap filling of a cube into the filled product, resumable.

Units of work are (spatial chunk, group of days): a Dask task reads its window of the
cube plus a halo of half the model's receptive field, fills it and writes whole chunks
of the product itself. A day's `complete` flag is written after all its chunks, so a
killed run re-run redoes exactly the days whose flag is false, with identical values.

Concurrency: each run holds an exclusive lock per day it writes (files in a hidden
folder beside the store), so two runs on disjoint days both land and a second run on
days being written is refused; attrs are updated under a store-wide lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from gapfill import store
from gapfill._provenance import __version__, git_sha
from gapfill.bands import S1_POLS
from gapfill.cluster import dask_client
from gapfill.cube import layout
from gapfill.cube.check import require_intact
from gapfill.cube.reference import lookahead_last
from gapfill.errors import InputError
from gapfill.fill import product
from gapfill.fill.baselines import BASELINES
from gapfill.fill.calibrate import Calibration
from gapfill.fill.config import FillConfig
from gapfill.fill.task import Job, TaskResult, fill_task, reach
from gapfill.grid import tile_boxes
from gapfill.logs import progress_enabled
from gapfill.models.card import ModelCard, load_model, weights_sha256
from gapfill.models.methods import get_method, input_channels
from gapfill.normalize import NORM_CONTRACT_VERSION
from gapfill.storage import exclusive_run, is_url, require_writable

__all__ = ["fill", "FillReport", "FAULT_ENV", "check_fit"]

log = logging.getLogger(__name__)

# The product keeps the records of its last runs only: a scheduled job fills every day
# for months, and every open of the product reads its attrs (`gapfill run` keeps the
# whole history in its ledger).
FILL_RUNS_KEPT = 50

# Deterministic fault injection for tests: SIGKILL the run after N finished tasks.
FAULT_ENV = "GAPFILL_FILL_FAULT_AFTER_TASKS"


@dataclass
class FillReport:
    """What a fill did; `seconds` is the run's wall time without the quicklooks
    (`quicklook_seconds`), and `mpx_per_s` counts product pixels (days x area) per one of
    those seconds."""

    path: str
    run_id: str
    method: str = "model"
    method_choice: str = ""
    days_filled: list[str] = field(default_factory=list)
    days_copied: list[str] = field(default_factory=list)
    days_skipped: dict[str, str] = field(default_factory=dict)
    pixels_clear: int = 0
    pixels_filled: int = 0
    pixels_unfilled: int = 0
    pixels_through_model: int = 0
    model_windows: dict[str, int] = field(default_factory=dict)
    task_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    mpx_per_s: float = 0.0
    quicklooks: list[str] = field(default_factory=list)
    quicklook_seconds: float = 0.0
    item: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_fit(card: ModelCard, cube: xr.Dataset, model_dir: str) -> None:
    """A model may fill a cube only if it reads the cube's bands, pols and units."""
    bands = layout.bands_of(cube)
    pols = tuple(str(p) for p in cube["pol"].values)
    where = cube.encoding.get("source", "")
    if tuple(card.bands) != bands:
        raise InputError(
            f"the model in {model_dir} reads and writes bands {','.join(card.bands)}, but cube "
            f"{where} holds {','.join(bands)}: use a model trained on cubes of these bands "
            f"(gapfill train --cube ...), or a cube built with --bands {','.join(card.bands)}"
        )
    problems = []
    if tuple(card.polarisations) != pols or tuple(card.polarisations) != S1_POLS:
        problems.append(f"polarisations {list(card.polarisations)} vs the cube's {list(pols)}")
    if card.normalisation.version != NORM_CONTRACT_VERSION:
        problems.append(
            f"normalisation contract {card.normalisation.version} (this gapfill reads "
            f"{NORM_CONTRACT_VERSION})"
        )
    if card.units.get("s1") != cube[layout.S1].attrs.get("units"):
        problems.append(f"S1 units {card.units.get('s1')} vs the cube's dB")
    try:
        method = get_method(card.method)
    except InputError:
        problems.append(f"unknown method {card.method!r}")
    else:
        both = card.reference.rule == "both"
        want = input_channels(method.task, both, card.bands)
        if tuple(card.input_channels) != want or card.task != method.task:
            problems.append(f"input channels {list(card.input_channels)} of {card.method}")
    if card.generator.in_channels != len(card.input_channels):
        problems.append("generator input width differs from its input channels")
    if card.generator.out_channels != len(card.bands):
        problems.append(f"generator output width {card.generator.out_channels} vs its bands")
    if card.normalisation.band_max and tuple(card.normalisation.band_max) != tuple(card.bands):
        problems.append("normalisation bands differ from the card's bands")
    if problems:
        raise InputError(
            f"the model in {model_dir} does not fit cube {where}: "
            + "; ".join(problems)
            + " — use a model trained on cubes of this contract"
        )


def _select_days(cfg: FillConfig, times: np.ndarray) -> list[int]:
    days = [str(t)[:10] for t in times]
    if cfg.dates:
        out = []
        for d in cfg.dates:
            iso = d.isoformat()
            if iso not in days:
                raise InputError(
                    f"{iso} is not a day of cube {cfg.cube} ({len(days)} days, {days[0]} to "
                    f"{days[-1]}): see 'gapfill cube info {cfg.cube}'"
                )
            out.append(days.index(iso))
        return sorted(set(out))
    lo = cfg.start.isoformat() if cfg.start else days[0]
    hi = cfg.end.isoformat() if cfg.end else days[-1]
    chosen = [i for i, d in enumerate(days) if lo <= d <= hi]
    if not chosen:
        raise InputError(
            f"cube {cfg.cube} has no day from {lo} to {hi} (it covers {days[0]} to {days[-1]})"
        )
    return chosen


def _attrs(cfg: FillConfig, cube: xr.Dataset, card: ModelCard | None, sha: str) -> dict[str, Any]:
    keep = (
        layout.AOI_ATTR,
        layout.EPSG_ATTR,
        layout.RESOLUTION_ATTR,
        layout.BOUNDS_ATTR,
        layout.MAX_GAP_ATTR,
        store.CUBE_CONTRACT_ATTR,
    )
    return {
        store.PRODUCT_CONTRACT_ATTR: product.PRODUCT_CONTRACT_VERSION,
        **{k: cube.attrs[k] for k in keep if k in cube.attrs},
        store.SOURCE_CUBE_ATTR: cfg.cube,
        layout.CUBE_ID: cube.attrs.get(layout.CUBE_ID, ""),
        product.FILL_METHOD_ATTR: cfg.method,
        product.USES_LATER_DAYS_ATTR: BASELINES[cfg.method].uses_later_days
        if cfg.method != "model"
        else card is not None and card.reference.rule == "both",
        product.CALIBRATION_ATTR: cfg.calibration.model_dump_json(),
        product.METHOD_CHOICE_ATTR: cfg.method_choice,
        product.MODEL_RUN_ATTR: cfg.model or "",
        product.MODEL_SHA256_ATTR: sha,
        product.MODEL_CARD_ATTR: card.model_dump_json() if card is not None else "",
        product.UNCERTAINTY_ATTR: cfg.uncertainty or 0,
        product.FILL_RUNS_ATTR: "[]",
        "software_version": __version__,
        "git_sha": git_sha(),
    }


@contextlib.contextmanager
def _removed_on_failure(out: store.DayStore, created: bool) -> Iterator[None]:
    """A product this run created is removed again (with its lock folder) if the run fails
    before any day of it is complete and no other run is filling days of it: a refused or
    failed first run leaves nothing behind. A product with complete days is kept, for the
    next run to resume."""
    try:
        yield
    except BaseException:
        removed = False
        if created:
            with _store_lock(out):
                try:
                    group = zarr.open_group(out.zs, mode="r")
                    flags = group[product.COMPLETE]
                    assert isinstance(flags, zarr.Array)
                    untouched = not np.asarray(flags[:]).any()
                except Exception:
                    untouched = True
                if untouched and not _others_filling(out):
                    out.remove()
                    removed = True
        if removed and not out.remote:
            shutil.rmtree(_lock_dir(out), ignore_errors=True)
        raise


def _others_filling(out: store.DayStore) -> bool:
    """Whether another run holds the lock of a day of `out` (ours are released by now;
    on an object store this run holds the product's lease: no other run fills it)."""
    if out.remote:
        return False
    with contextlib.ExitStack() as held:
        try:
            for lock in _lock_dir(out).glob("*.lock"):
                if lock.name != "store.lock":
                    held.enter_context(_flock(lock, "held"))
        except InputError:
            return True
    return False


def _lock_dir(out: store.DayStore) -> Path:
    path = Path(out.location)
    return path.parent / f".{path.name}.locks"


@contextlib.contextmanager
def _flock(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(what) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _store_lock(out: store.DayStore) -> Iterator[None]:
    """Exclusive (blocking) lock for creating the store and updating its attrs (on an
    object store the run's lease already is)."""
    if out.remote:
        yield
        return
    lock = _lock_dir(out) / "store.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _require_product_or_absent(out: store.DayStore) -> None:
    """Refuse an `--out` that is something other than a product before any lock file is
    made beside it: a refusal leaves nothing behind."""
    if not out.exists():
        return
    try:
        attrs = dict(zarr.open_group(out.zs, mode="r").attrs)
    except Exception:
        raise InputError(
            f"{out} exists and is not a filled product: choose another --out"
        ) from None
    store.require(attrs, store.PRODUCT, str(out), "choose another --out")


def _open_or_create(
    out: store.DayStore,
    cube: xr.Dataset,
    chunk: int,
    attrs: dict[str, Any],
    sha: str,
    replace_model: bool = False,
) -> xr.Dataset:
    """The product store for this cube: created whole (template written aside and renamed
    into place), or checked (grid, days, model) and extended when the cube has grown."""
    grid = layout.grid_of(cube)
    times = cube["time"].values
    bands = layout.bands_of(cube)
    with _store_lock(out):
        spread = bool(attrs.get(product.UNCERTAINTY_ATTR))
        if not out.exists():
            out.create(
                product.product_template(grid, times, chunk, attrs, bands, uncertainty=spread),
                product.product_encoding(chunk, grid, len(bands), uncertainty=spread),
            )
        try:
            existing = out.open()
        except Exception:
            raise InputError(
                f"{out} exists and is not a filled product: choose another --out"
            ) from None
        store.require(existing.attrs, store.PRODUCT, str(out), "choose another --out")
        if (
            existing.attrs.get(store.PRODUCT_CONTRACT_ATTR)
            not in product.READABLE_PRODUCT_CONTRACTS
        ):
            raise InputError(
                f"{out} is not a gapfill product (contract "
                f"{' or '.join(product.READABLE_PRODUCT_CONTRACTS)}): choose another --out"
            )
        if layout.bands_of(existing) != bands:
            raise InputError(
                f"{out} holds bands {','.join(layout.bands_of(existing))}, not the cube's "
                f"{','.join(bands)}: choose another --out"
            )
        if layout.grid_of(existing) != grid:
            raise InputError(
                f"{out} belongs to another cube grid (EPSG:{existing.attrs[layout.EPSG_ATTR]}, "
                f"{existing.attrs[layout.BOUNDS_ATTR]}): choose another --out"
            )
        old = existing["time"].values
        if len(old) > len(times) or not np.array_equal(old, times[: len(old)]):
            raise InputError(f"{out} was made from a cube with other days: choose another --out")
        _same_cube(existing.attrs, attrs, out)
        method = existing.attrs.get(product.FILL_METHOD_ATTR, "model")
        if method != attrs[product.FILL_METHOD_ATTR]:
            raise InputError(
                f"{out} was filled with --method {method}, not {attrs[product.FILL_METHOD_ATTR]}: "
                "fill into another --out"
            )
        before = existing.attrs.get(
            product.CALIBRATION_ATTR, Calibration(enabled=False).model_dump_json()
        )
        if Calibration.model_validate_json(before) != Calibration.model_validate_json(
            attrs[product.CALIBRATION_ATTR]
        ):
            raise InputError(
                f"{out} was filled with calibration {before}, not "
                f"{attrs[product.CALIBRATION_ATTR]}: use the same --calibrate setting or fill "
                "into another --out"
            )
        passes = int(existing.attrs.get(product.UNCERTAINTY_ATTR, 0))
        if passes != int(attrs.get(product.UNCERTAINTY_ATTR, 0)):
            raise InputError(
                f"{out} was filled "
                + (f"with --uncertainty {passes}" if passes else "without --uncertainty")
                + ": fill it the same way, or into another --out"
            )
        if existing.attrs.get(product.MODEL_SHA256_ATTR) != sha and replace_model:
            group = out.group()
            for key in (
                product.MODEL_SHA256_ATTR,
                product.MODEL_CARD_ATTR,
                product.MODEL_RUN_ATTR,
                product.USES_LATER_DAYS_ATTR,
            ):
                group.attrs[key] = attrs[key]
            out.consolidate()
            log.info(
                "%s: model %s replaces %s (each day records its own)",
                out,
                sha[:12],
                str(existing.attrs.get(product.MODEL_SHA256_ATTR, "?"))[:12],
            )
            existing = out.open()
        if existing.attrs.get(product.MODEL_SHA256_ATTR) != sha:
            raise InputError(
                f"{out} was filled by model "
                f"{existing.attrs.get(product.MODEL_SHA256_ATTR, '?')[:12]}, not {sha[:12]}: "
                "fill into another --out"
            )
        if len(old) < len(times):
            new = product.product_template(
                grid,
                times[len(old) :],
                chunk,
                dict(existing.attrs),
                bands,
                uncertainty=bool(passes),
            )
            out.append_days(new, ["band", "x", "y", layout.SPATIAL_REF])
            existing = out.open()
            log.info("product extended by %d new cube days", len(times) - len(old))
    return existing


def _same_cube(have: dict[str, Any], want: dict[str, Any], out: store.DayStore) -> None:
    """A product holds the days of one cube: refuse another cube (by its id; by its location
    for cubes made before ids existed), even on the same grid and days."""
    mine, theirs = have.get(layout.CUBE_ID, ""), want.get(layout.CUBE_ID, "")
    same = (
        mine == theirs
        if (mine or theirs)
        else have.get(store.SOURCE_CUBE_ATTR) == want.get(store.SOURCE_CUBE_ATTR)
    )
    if not same:
        raise InputError(
            f"{out} was filled from cube {have.get(store.SOURCE_CUBE_ATTR, '?')} "
            f"(id {mine or '-'}), not {want[store.SOURCE_CUBE_ATTR]} (id {theirs or '-'}): "
            "fill into another --out"
        )


def _day_stats(cube: xr.Dataset, days: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per day: cloudy share (%) of observed pixels, and whether any pixel has S1."""
    import dask

    sub = cube.isel(time=days)
    observed = sub[layout.S2].isel(band=0).notnull()
    cloudy = observed & ~sub[layout.CLEAR]
    has_s1 = layout.has_s1(sub[layout.S1_ORBIT]).any(("y", "x"))
    n_obs, n_cloudy, s1 = dask.compute(observed.sum(("y", "x")), cloudy.sum(("y", "x")), has_s1)
    share = 100.0 * np.asarray(n_cloudy, float) / np.maximum(np.asarray(n_obs, float), 1)
    return share, np.asarray(s1, bool)


class _Progress:
    """A rich bar on a terminal, a log line per finished day group otherwise."""

    def __init__(self, total: int) -> None:
        self.bar = None
        if progress_enabled():
            from rich.progress import Progress

            self.bar = Progress()
            self.bar.start()
            self.task = self.bar.add_task("fill", total=total)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def fill(
    cfg: FillConfig,
    *,
    dask_scheduler: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> FillReport:
    """Fill the cloudy days of `cfg.cube` with the model in `cfg.model` into `cfg.out`
    (paths, or fsspec URLs with `storage_options`, which are never recorded)."""
    if cfg.method == "auto":
        raise ValueError("--method auto is resolved by gapfill.evaluate.fill_auto, not fill")
    t_start = time.perf_counter()
    # Absolute locations: recorded in the product and its runs, read by remote workers.
    cfg = cfg.model_copy(
        update={k: _resolved(getattr(cfg, k)) for k in ("cube", "model", "out") if getattr(cfg, k)}
    )
    out = store.DayStore(cfg.out, storage_options)
    require_writable(cfg.out, "--out", storage_options)
    busy = f"{out} is being filled by another run: wait for it to finish, then run again"
    guard = (
        exclusive_run(cfg.out, busy, storage_options) if out.remote else contextlib.nullcontext()
    )
    with guard:
        return _fill(cfg, out, dask_scheduler, t_start)


def _resolved(location: str) -> str:
    return location if is_url(location) else str(Path(location).resolve())


def _fill(
    cfg: FillConfig, out: store.DayStore, dask_scheduler: str | None, t_start: float
) -> FillReport:
    cube_options = out.options if is_url(cfg.cube) else None
    cube = layout.open_cube(cfg.cube, storage_options=cube_options)
    require_intact(cfg.cube, cube, cube_options)
    card: ModelCard | None = None
    sha = ""
    if cfg.method == "model":
        assert cfg.model is not None  # FillConfig says so
        _, card = load_model(cfg.model)
        check_fit(card, cube, cfg.model)
        sha = weights_sha256(Path(cfg.model) / "model.pt")
    chosen = _select_days(cfg, cube["time"].values)
    grid = layout.grid_of(cube)
    cube_chunk = int(cube[layout.S2].encoding.get("chunks", (1, 4, 1024, 1024))[-1])
    chunk = cfg.chunk or cube_chunk
    report = FillReport(str(out), uuid.uuid4().hex[:12], cfg.method, cfg.method_choice)
    days = [str(t)[:10] for t in cube["time"].values]
    complete_cube = cube[layout.COMPLETE].values
    _require_product_or_absent(out)
    created = not out.exists()
    existing = _open_or_create(
        out, cube, chunk, _attrs(cfg, cube, card, sha), sha, cfg.replace_model
    )
    done = existing[product.COMPLETE].values
    for t in chosen:
        if not complete_cube[t]:
            report.days_skipped[days[t]] = "the cube's day is incomplete (re-run build-cube)"
        elif done[t] and not cfg.overwrite:
            report.days_skipped[days[t]] = "already complete (use --overwrite to redo)"
    candidates = [t for t in chosen if days[t] not in report.days_skipped]
    locks = contextlib.ExitStack()
    # The day locks come before the Dask cluster: a second run on the same days is
    # refused in a second, not after a cluster start.
    with _removed_on_failure(out, created), locks:
        for t in [] if out.remote else candidates:  # remote: the run's lease covers all days
            locks.enter_context(
                _flock(
                    _lock_dir(out) / f"{days[t]}.lock",
                    f"{days[t]} is being filled by another run into {out}: wait for it "
                    "or choose other --dates",
                )
            )
        with dask_client(
            dask_scheduler,
            reads={"cube": cfg.cube, "model": cfg.model and str(Path(cfg.model) / "model.pt")},
            writes={"product": out.location},
        ) as client:
            if cfg.device == "cuda":
                _require_gpus(client)
            chunk = int(existing[product.S2].encoding["chunks"][-1])
            share, has_s1 = _day_stats(cube, candidates)
            todo: list[tuple[int, bool]] = []
            for k, t in enumerate(candidates):
                if share[k] > cfg.min_cloud and not has_s1[k] and cfg.method == "model":
                    report.days_skipped[days[t]] = "no Sentinel-1 within the cube's max gap: copied"
                    todo.append((t, False))
                else:
                    todo.append((t, bool(share[k] > cfg.min_cloud)))
            for day, why in report.days_skipped.items():
                log.info("%s: %s", day, why)
            group = out.group()
            flags = group[product.COMPLETE]
            assert isinstance(flags, zarr.Array)
            if not cfg.overwrite:  # another run may have finished some while we looked
                now = np.asarray(flags[:])
                for t, _ in [d for d in todo if now[d[0]]]:
                    report.days_skipped[days[t]] = "completed by another run meanwhile"
                todo = [d for d in todo if not now[d[0]]]
            for t, _ in todo:
                flags[t] = False
            job = Job(
                cube=cfg.cube,
                n_times=len(days),
                out=out.location,
                storage_options=out.options,
                model_dir=cfg.model or "",
                method=cfg.method,
                horizon_days=cfg.horizon_days,
                calibration=cfg.calibration,
                sha=sha,
                device=cfg.device,
                chunk=chunk,
                tile=cfg.tile,
                batch=cfg.batch,
                uncertainty=cfg.uncertainty,
            )
            _run_tasks(client, job, todo, cfg.days_per_task, grid.shape, flags, report, days)
            for t, do in todo:
                (report.days_filled if do else report.days_copied).append(days[t])
            with _store_lock(out):
                # Re-read under the lock: another run may have appended since we opened.
                group = out.group()
                runs = json.loads(str(group.attrs.get(product.FILL_RUNS_ATTR, "[]")))
                runs.append(
                    {
                        "run_id": report.run_id,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "config": json.loads(cfg.model_dump_json()),
                        "days_filled": report.days_filled,
                        "days_copied": report.days_copied,
                        "days_skipped": report.days_skipped,
                        "software_version": __version__,
                        "git_sha": git_sha(),
                    }
                )
                if len(runs) > FILL_RUNS_KEPT:
                    dropped = int(group.attrs.get(product.FILL_RUNS_DROPPED_ATTR, 0))
                    group.attrs[product.FILL_RUNS_DROPPED_ATTR] = (
                        dropped + len(runs) - FILL_RUNS_KEPT
                    )
                    runs = runs[-FILL_RUNS_KEPT:]
                group.attrs[product.FILL_RUNS_ATTR] = json.dumps(runs)
                inputs = json.loads(str(group.attrs.get(product.DAY_INPUTS_ATTR, "{}")))
                rule = reach(cfg.method, card, cfg.horizon_days)
                times = cube["time"].values
                for t, do in todo:
                    until = days[lookahead_last(times, t, rule)] if do else None
                    inputs[days[t]] = {"read_until": until, "run": report.run_id, "model": sha}
                group.attrs[product.DAY_INPUTS_ATTR] = json.dumps(inputs, sort_keys=True)
                out.consolidate()
                from gapfill.fill.item import write_item

                report.item = write_item(out.location, out.options)
            if cfg.quicklooks and todo and out.remote:
                log.info("quicklooks are written beside local products only: none for %s", out)
            elif cfg.quicklooks and todo:
                _quicklooks(client, out.location, [days[t] for t, _ in todo], report)
    report.seconds = round(time.perf_counter() - t_start - report.quicklook_seconds, 2)
    area = len(todo) * grid.shape[0] * grid.shape[1]
    report.mpx_per_s = round(area / 1e6 / max(report.seconds, 1e-9), 3)
    log.info(
        "filled %d days, copied %d, skipped %d: %d px filled, %d unfilled, %.2f Mpx/s",
        len(report.days_filled),
        len(report.days_copied),
        len(report.days_skipped),
        report.pixels_filled,
        report.pixels_unfilled,
        report.mpx_per_s,
    )
    return report


def _quicklooks(client: Any, location: str, days: list[str], report: FillReport) -> None:
    """One PNG per day, a Dask task each (each reads its whole day of product and cube),
    while the run's day locks are held; the days are complete whatever happens here."""
    from gapfill.fill.quicklook import quicklook, quicklook_dir

    t0 = time.perf_counter()
    pngs = [str(quicklook_dir(location) / f"{day}.png") for day in days]
    futures = client.map(quicklook, [location] * len(days), days, pngs, pure=False)
    report.quicklooks = [str(png) for png in client.gather(futures)]
    report.quicklook_seconds = round(time.perf_counter() - t0, 2)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _require_gpus(client: Any) -> None:
    """--device cuda: every Dask worker must see a GPU (asked of the workers themselves)."""
    found = client.run(_cuda_available)
    missing = sorted(addr for addr, ok in found.items() if not ok)
    if missing:
        raise InputError(
            f"--device cuda, but {len(missing)} of {len(found)} Dask workers see no GPU "
            f"({missing[0]}, ...): use --device auto or cpu, or a GPU cluster"
        )


class _Fault:
    def __init__(self) -> None:
        raw = os.environ.get(FAULT_ENV)
        self.limit = int(raw) if raw else None
        self.count = 0

    def done(self) -> None:
        self.count += 1
        if self.limit is not None and self.count >= self.limit:
            log.error("fault injection: killing the fill after %d tasks", self.count)
            os.kill(os.getpid(), signal.SIGKILL)


def _run_tasks(
    client: Any,
    job: Job,
    todo: list[tuple[int, bool]],
    days_per_task: int,
    shape: tuple[int, int],
    flags: zarr.Array,
    report: FillReport,
    names: list[str],
) -> None:
    """Submit (chunk, day group) tasks with a bounded number in flight; a group's days are
    flagged complete as soon as all its chunks are written."""
    from distributed import as_completed

    boxes = tile_boxes(*shape, job.chunk)
    groups = [todo[i : i + days_per_task] for i in range(0, len(todo), days_per_task)]
    jobs = [(g, box) for g in range(len(groups)) for box in boxes]
    remaining = {g: len(boxes) for g in range(len(groups))}
    window = max(2, 3 * sum(client.nthreads().values()))
    fault = _Fault()
    progress = _Progress(len(jobs))
    group_of: dict[Any, int] = {}

    def submit(g: int, box: tuple[int, int, int, int]) -> Any:
        targets = [t for t, _ in groups[g]]
        fill_days = [do for _, do in groups[g]]
        fut = client.submit(fill_task, job, targets, fill_days, box, pure=False)
        group_of[fut.key] = g
        return fut

    queue = iter(jobs)
    running = as_completed([submit(*job) for job in itertools.islice(queue, window)])
    try:
        for fut in running:
            counts: TaskResult = fut.result()
            report.pixels_clear += counts.clear
            report.pixels_filled += counts.filled
            report.pixels_unfilled += counts.unfilled
            report.pixels_through_model += counts.model_px
            for phase, sec in counts.seconds.items():
                report.task_seconds[phase] = round(report.task_seconds.get(phase, 0.0) + sec, 3)
            for window, n in counts.windows.items():
                if n:
                    report.model_windows[window] = report.model_windows.get(window, 0) + n
            progress.advance()
            g = group_of.pop(fut.key)
            remaining[g] -= 1
            if remaining[g] == 0:
                for t, _ in groups[g]:
                    flags[t] = True
                log.info("written: %s", ", ".join(names[t] for t, _ in groups[g]))
            fault.done()
            nxt = next(queue, None)
            if nxt is not None:
                running.add(submit(*nxt))
        if any(remaining.values()):
            raise RuntimeError(f"fill tasks lost: {remaining}")
    finally:
        progress.close()
