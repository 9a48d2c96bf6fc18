"""`gapfill run SPEC`: keep one region's cube and filled product up to date.

A reconciler, not a scheduler: each run computes what should exist for the spec's
window on day `now` and makes it so — the cube gains the days that arrived (and redoes
incomplete ones), then every due fill unit (a day of the region) is filled: missing,
incomplete, or stale (a fill that could read later days, made before a later cube day
arrived within its reach). It runs under a lease on the product, so a scheduler that
fires twice gets one run and one "held" refusal (exit 75), and a crashed run's lease
expires. Each run that held the lease appends one record to the ledger beside the
product (JSON lines), whatever its outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import zarr

from gapfill import store
from gapfill._provenance import __version__
from gapfill.cube import layout
from gapfill.cube.reference import lookahead_last
from gapfill.errors import GapfillError, InputError
from gapfill.fill import product
from gapfill.lease import Lease
from gapfill.pipeline.spec import RegionSpec
from gapfill.storage import is_url, shown

__all__ = ["RunRecord", "run_pipeline", "plan_fills", "history", "ledger_location"]

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """One run of a spec, as the ledger keeps it."""

    run_id: str
    spec: str
    spec_hash: str
    now: str
    window: list[str]
    started: str
    finished: str = ""
    status: str = "running"  # done | nothing to do | failed | plan
    days_added: list[str] = field(default_factory=list)
    days_s1_rematched: list[str] = field(default_factory=list)
    days_filled: dict[str, str] = field(default_factory=dict)
    days_skipped: dict[str, str] = field(default_factory=dict)
    error: str = ""
    software_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ledger_location(spec: RegionSpec) -> str:
    """The ledger of a spec's runs: `PRODUCT.ledger.jsonl` beside the product."""
    return spec.product.location.rstrip("/").removesuffix(".zarr") + ".ledger.jsonl"


def _fs(spec: RegionSpec, location: str) -> tuple[Any, str]:
    """The filesystem of a file beside the product (with the product's options)."""
    return fsspec.core.url_to_fs(location, **(spec.product.storage_options or {}))


def history(spec: RegionSpec) -> list[dict[str, Any]]:
    """Every record of the spec's ledger, oldest first ([] before the first run)."""
    fs, path = _fs(spec, ledger_location(spec))
    try:
        text = fs.cat_file(path).decode()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _append(spec: RegionSpec, record: RunRecord) -> None:
    """Append one record (read-modify-write, under the lease: object stores cannot append)."""
    fs, path = _fs(spec, ledger_location(spec))
    try:
        text = fs.cat_file(path).decode()
    except FileNotFoundError:
        text = ""
    fs.pipe_file(path, (text + json.dumps(record.to_json(), sort_keys=True) + "\n").encode())


def _attrs_of(location: str, storage_options: dict[str, Any] | None) -> dict[str, Any] | None:
    try:
        group = zarr.open_group(location, mode="r", storage_options=storage_options or None)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    return dict(group.attrs)


def _require_owner(spec: RegionSpec) -> None:
    """A store kept by another region's spec is refused before anything is written."""
    for what, st in (("cube", spec.cube), ("product", spec.product)):
        attrs = _attrs_of(st.location, st.storage_options)
        owner = (attrs or {}).get(product.PIPELINE_ATTR)
        if owner and owner != spec.name:
            raise InputError(
                f"{what} {shown(st.location)} is kept by region spec {owner!r}, not "
                f"{spec.name!r}: give this spec its own {what} location"
            )


def _claim(location: str, options: dict[str, Any] | None, name: str) -> None:
    days_store = store.DayStore(location, options)
    group = days_store.group()
    if group.attrs.get(product.PIPELINE_ATTR) != name:
        group.attrs[product.PIPELINE_ATTR] = name
        days_store.consolidate()


def plan_fills(spec: RegionSpec, window: tuple[dt.date, dt.date]) -> dict[str, str]:
    """Per due day of the window (ISO date): why it is to be filled — missing,
    incomplete, or stale. Reads the cube and the product as they are now."""
    from gapfill.fill.task import reach
    from gapfill.models.card import MODEL_FILE, load_card, weights_sha256

    cube_attrs = _attrs_of(spec.cube.location, spec.cube.storage_options)
    if cube_attrs is None:
        return {}
    cube = layout.open_cube(
        spec.cube.location, chunks=None, storage_options=spec.cube.storage_options
    )
    times = cube["time"].values
    days = [str(t)[:10] for t in times]
    cube_done = np.asarray(cube[layout.COMPLETE].values, bool)
    lo, hi = window[0].isoformat(), window[1].isoformat()
    prod_attrs = _attrs_of(spec.product.location, spec.product.storage_options)
    if prod_attrs is not None:
        group = store.DayStore(spec.product.location, spec.product.storage_options).group("r")
        flags = group[product.COMPLETE]
        assert isinstance(flags, zarr.Array)
        done = np.asarray(flags[:], bool)
        inputs = json.loads(str(prod_attrs.get(product.DAY_INPUTS_ATTR, "{}")))
        prod_model = str(prod_attrs.get(product.MODEL_SHA256_ATTR, ""))
    else:
        done, inputs, prod_model = np.zeros(0, bool), {}, ""
    card = load_card(spec.model) if spec.method == "model" and spec.model else None
    sha = weights_sha256(Path(spec.model) / MODEL_FILE) if card is not None and spec.model else ""
    rule = reach(spec.method, card, spec.horizon_days)
    due: dict[str, str] = {}
    for t, day in enumerate(days):
        if not (lo <= day <= hi) or not cube_done[t]:
            continue
        if t >= len(done):  # not in the product yet
            due[day] = "new day"
        elif not done[t]:
            due[day] = "missing or incomplete"
        elif (was := inputs.get(day, {}).get("model", prod_model)) != sha and (
            inputs.get(day, {}).get("read_until", "") is not None
        ):
            due[day] = f"stale: filled by model {was[:12] or '-'}, the spec names {sha[:12]}"
        elif rule.rule == "both":
            seen = inputs.get(day)
            if seen is None:
                due[day] = "filled before its inputs were recorded"
                continue
            if seen["read_until"] is None:  # copied, not filled: reads no other day
                continue
            now_until = days[lookahead_last(times, t, rule)]
            if now_until > seen["read_until"]:
                due[day] = (
                    f"stale: filled reading days up to {seen['read_until']}; later days up "
                    f"to {now_until} have arrived within its {rule.lookahead_days}-day reach"
                )
    return due


def _window(
    spec: RegionSpec, now: dt.datetime, start: dt.date | None, end: dt.date | None
) -> tuple[dt.date, dt.date]:
    lo, hi = spec.window.span(now.date())
    if start or end:  # backfill: an explicit span, still not past `now`
        lo, hi = start or lo, min(end or hi, now.date())
    if hi < lo:
        raise InputError(f"the window {lo}..{hi} is empty: check --start/--end and --now")
    return lo, hi


def run_pipeline(
    spec: RegionSpec,
    *,
    now: dt.datetime | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    dry_run: bool = False,
) -> RunRecord:
    """One reconciling run of `spec` on day `now` (default: the current UTC time)."""
    now = now or dt.datetime.now(dt.UTC)
    window = _window(spec, now, start, end)
    _require_owner(spec)
    record = RunRecord(
        run_id=uuid.uuid4().hex[:12],
        spec=spec.name,
        spec_hash=spec.digest(),
        now=now.isoformat(),
        window=[window[0].isoformat(), window[1].isoformat()],
        started=_stamp(),
    )
    if dry_run:
        record.status = "plan"
        record.days_added = _new_days(spec, window)
        record.days_filled = {
            **plan_fills(spec, window),
            **{d: "new day (after build-cube)" for d in record.days_added},
        }
        record.finished = _stamp()
        return record
    # Its own lease (`PRODUCT.run.lease`): build-cube and fill take the stores' own.
    lease = Lease(
        spec.product.location,
        f"gapfill run {spec.name}",
        ttl_s=spec.lease_seconds,
        storage_options=spec.product.storage_options,
        suffix=".run.lease",
    )
    with lease.held():
        record.run_id = lease.run_id
        try:
            _reconcile(spec, window, record)
        except BaseException as exc:
            record.status = "failed"
            record.error = str(exc) if isinstance(exc, GapfillError) else type(exc).__name__
            record.finished = _stamp()
            _append(spec, record)
            raise
        record.finished = _stamp()
        _append(spec, record)
    return record


def _reconcile(spec: RegionSpec, window: tuple[dt.date, dt.date], record: RunRecord) -> None:
    from gapfill.cube import CubeConfig, build_cube
    from gapfill.fill import FillConfig, fill

    t0 = time.perf_counter()
    cfg = CubeConfig(
        aoi=spec.aoi,
        start=window[0],
        end=window[1],
        provider=spec.provider,
        s1_provider=spec.s1_provider,
        stac_url=spec.stac_url,
        profile=spec.profile,
        **spec.cube_settings(),
    )
    built = build_cube(
        spec.cube.location,
        cfg,
        dask_scheduler=spec.dask_scheduler,
        storage_options=spec.cube.storage_options,
    )
    record.days_added = built.days_written
    record.days_s1_rematched = built.days_s1_rematched
    _claim(spec.cube.location, spec.cube.storage_options, spec.name)
    due = plan_fills(spec, window)
    if due:
        for day, why in due.items():
            log.info("%s: %s", day, why)
        fcfg = FillConfig(
            cube=spec.cube.location,
            out=spec.product.location,
            model=spec.model,
            method=spec.method,
            dates=tuple(due),
            overwrite=True,
            replace_model=True,
            **spec.fill_settings(),
        )
        report = fill(fcfg, dask_scheduler=spec.dask_scheduler, storage_options=_one_options(spec))
        done = set(report.days_filled) | set(report.days_copied)
        record.days_filled = {d: why for d, why in due.items() if d in done}
        record.days_skipped = report.days_skipped
        _claim(spec.product.location, spec.product.storage_options, spec.name)
    changed = record.days_added or record.days_s1_rematched or record.days_filled
    record.status = "done" if changed else "nothing to do"
    log.info(
        "%s: %d days added to the cube, %d filled (%.1f s)",
        record.status,
        len(record.days_added),
        len(record.days_filled),
        time.perf_counter() - t0,
    )


def _one_options(spec: RegionSpec) -> dict[str, Any] | None:
    """`fill` takes one set of storage options for its cube and product URLs."""
    cube, prod = spec.cube.storage_options, spec.product.storage_options
    if is_url(spec.cube.location) and is_url(spec.product.location) and cube != prod:
        raise InputError(
            "cube and product storage_options differ: fill reads and writes with one set; "
            "give both stores the same options (or keep one of them local)"
        )
    return prod if is_url(spec.product.location) else cube


def _new_days(spec: RegionSpec, window: tuple[dt.date, dt.date]) -> list[str]:
    """Sentinel-2 days the STAC API has in the window after the cube's last day (what
    build-cube would add, before its per-day checks): a dry run's view, read-only."""
    from gapfill.grid import DateRange, parse_aoi
    from gapfill.stac import profiles_for, search

    aoi = parse_aoi(spec.aoi)
    s2p, s1p = profiles_for(spec.provider, spec.stac_url, spec.s1_provider, spec.profile)
    found = search(aoi, DateRange(window[0], window[1]), s2p, s1p, max_cloud=None)
    days = sorted({str(it.datetime)[:10] for it in found.s2 if it.datetime is not None})
    attrs = _attrs_of(spec.cube.location, spec.cube.storage_options)
    if attrs is None:
        return days
    cube = layout.open_cube(
        spec.cube.location, chunks=None, storage_options=spec.cube.storage_options
    )
    last = str(cube["time"].values[-1])[:10]
    return [d for d in days if d > last]


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
