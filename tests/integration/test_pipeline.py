"""`gapfill run`: a region kept up to date through the real local STAC API as new
acquisitions are inserted into it (pgstac upsert), under a lease, with a ledger."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr

from gapfill import store
from gapfill.fill import product
from gapfill.fill.run import FAULT_ENV
from gapfill.lease import Lease
from gapfill.models.card import save_model
from gapfill.pipeline import history, load_spec, run_pipeline
from gapfill.stac.server import load_catalog_dicts
from gapfill.synth import WorldSpec, make_world
from tests.conftest import CHUNK, inset_aoi, untrained_both_model, world_meta

GAPFILL = [sys.executable, "-m", "gapfill.cli"]
CUT = 5  # S2 days in the catalogue at the first run; the rest arrive before the second


@pytest.fixture(scope="module")
def world_pipe(tmp_path_factory) -> Path:
    """64 px flat-agri world 2024, after every session world (no shared days), 8 dates."""
    out = tmp_path_factory.mktemp("worlds") / "pipeline"
    make_world(out, WorldSpec(size=64, dates=8, seed=5, start=dt.date(2024, 4, 3)))
    return out


def _spec(
    tmp: Path, world: Path, url: str, address: str, name: str, method: str, model: str = ""
) -> Path:
    meta = world_meta(world)
    text = {
        "name": name,
        "aoi": inset_aoi(world),
        "stac_url": url,
        "window": {"start": meta["s2"][0]["datetime"][:10]},
        "cube": {"location": "cube.zarr"},
        "product": {"location": "filled.zarr"},
        "method": method,
        **({"model": model} if model else {}),
        "cube_options": {"chunk": CHUNK, "batch_days": 4},
        "fill_options": {"quicklooks": False, "horizon_days": 30},
        "dask_scheduler": address,
        "schedule": "0 6 * * *",
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "region.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


def _day_bytes(location: str, days: list[int]) -> dict[str, bytes]:
    """Every stored chunk file of the product's day variables on time indices `days`."""
    group = zarr.open_group(location, mode="r")
    out = {}
    for name in product.DAY_VARS:
        for t in days:
            for key in store.day_chunk_keys(group[name], t):
                out[f"{name}/{key}"] = (Path(location) / name / key).read_bytes()
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory, world_pipe, stac_api, dask_address):
    """Two specs (a causal and a later-day baseline) run as acquisitions arrive: the first
    CUT days' items, run; the rest upserted, run; nothing new, run."""
    meta = world_pipe and world_meta(world_pipe)
    cut_time = meta["s2"][CUT]["datetime"]
    # Sentinel-1 up to a day after the last early S2 day: the scenes a few days later
    # arrive with the late items (so that day's S1 matching changes).
    s1_cut = dt.datetime.fromisoformat(meta["s2"][CUT - 1]["datetime"]) + dt.timedelta(days=1)
    _, items = load_catalog_dicts([world_pipe])

    def is_early(item: dict) -> bool:
        when = item["properties"]["datetime"]
        if item["collection"].startswith("sentinel-1"):
            return dt.datetime.fromisoformat(when) < s1_cut
        return when < cut_time

    early = [i for i in items if is_early(i)]
    late = [i for i in items if not is_early(i)]
    root = tmp_path_factory.mktemp("pipelines")
    both = save_model(root / "both-model", *untrained_both_model(lookahead_days=30))
    specs = {
        m: load_spec(_spec(root / m, world_pipe, stac_api.url, dask_address, f"test-{m}", m))
        for m in ("persistence", "interpolate")
    }
    specs["model"] = load_spec(
        _spec(root / "model", world_pipe, stac_api.url, dask_address, "test-both", "model",
              str(both))
    )  # fmt: skip
    now = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)
    stac_api.upsert(early)
    first = {m: run_pipeline(s, now=now) for m, s in specs.items()}
    before = {m: _day_bytes(s.product.location, list(range(CUT))) for m, s in specs.items()}
    stac_api.upsert(late)
    second = {m: run_pipeline(s, now=now) for m, s in specs.items()}
    third = {m: run_pipeline(s, now=now) for m, s in specs.items()}
    return {
        "specs": specs,
        "first": first,
        "second": second,
        "third": third,
        "before": before,
        "days": [d["datetime"][:10] for d in meta["s2"]],
    }


def test_a_second_run_adds_and_fills_only_the_new_days(staged):
    days, first, second = staged["days"], staged["first"], staged["second"]
    spec = staged["specs"]["persistence"]
    assert first["persistence"].days_added == days[:CUT]
    assert sorted(first["persistence"].days_filled) == days[:CUT]
    assert second["persistence"].days_added == days[CUT:]
    assert sorted(second["persistence"].days_filled) == days[CUT:]
    assert set(second["persistence"].days_filled.values()) == {"new day"}
    # S1 scenes a few days after the last early day arrived with the later items: that
    # day's S1 is matched again; its persistence fill reads no S1, so it stands.
    assert days[CUT - 1] in second["persistence"].days_s1_rematched
    after = _day_bytes(spec.product.location, list(range(CUT)))
    assert after == staged["before"]["persistence"]
    filled = xr.open_zarr(spec.product.location)
    assert bool(filled[product.COMPLETE].all()) and filled.sizes["time"] == len(days)


def test_a_later_clear_day_makes_an_interpolated_day_stale_and_refilled(staged):
    days, second = staged["days"], staged["second"]["interpolate"]
    spec = staged["specs"]["interpolate"]
    stale = {d: why for d, why in second.days_filled.items() if why.startswith("stale")}
    # Within its 30-day horizon of the first new day: the last early days are refilled.
    assert days[CUT - 1] in stale and days[0] not in second.days_filled
    assert f"later days up to {days[CUT + 2]}" in stale[days[CUT - 1]]
    inputs = json.loads(xr.open_zarr(spec.product.location).attrs[product.DAY_INPUTS_ATTR])
    assert inputs[days[CUT - 1]]["read_until"] in (days[CUT + 1], days[CUT + 2], None)
    ledger = history(spec)
    assert [r["status"] for r in ledger] == ["done", "done", "nothing to do"]
    assert ledger[1]["days_filled"] == second.days_filled
    assert ledger[1]["spec"] == "test-interpolate" and ledger[1]["spec_hash"] == spec.digest()


def test_a_run_with_nothing_new_does_nothing(staged):
    for rec in staged["third"].values():
        assert rec.status == "nothing to do"
        assert rec.days_added == rec.days_s1_rematched == [] and rec.days_filled == {}


def test_dry_run_prints_the_plan_and_writes_nothing(staged, tmp_path, world_pipe, stac_api,
                                                     dask_address):  # fmt: skip
    path = _spec(tmp_path, world_pipe, stac_api.url, dask_address, "test-plan", "persistence")
    res = subprocess.run([*GAPFILL, "run", str(path), "--dry-run", "--now", "2024-12-31"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"fill {staged['days'][0]}: new day" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["region.yaml"]


def test_a_store_of_another_spec_is_refused(staged, tmp_path):
    theirs = staged["specs"]["persistence"]
    mine = theirs.model_copy(update={"name": "intruder"})
    before = history(theirs)
    with pytest.raises(Exception, match="kept by region spec 'test-persistence'"):
        run_pipeline(mine, now=dt.datetime(2024, 12, 31, tzinfo=dt.UTC))
    assert history(theirs) == before


def test_a_held_lease_refuses_a_run_with_exit_75(staged, tmp_path, world_pipe, stac_api,
                                                  dask_address):  # fmt: skip
    path = _spec(tmp_path, world_pipe, stac_api.url, dask_address, "test-held", "persistence")
    spec = load_spec(path)
    with Lease(spec.product.location, "someone else", suffix=".run.lease").held() as held:
        res = subprocess.run([*GAPFILL, "run", str(path), "--now", "2024-12-31"],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 75
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("gapfill:")]
    assert lines == [
        f"gapfill: error: {spec.product.location} is held by run {held.run_id} of someone "
        f"else (pid {os.getpid()} on {held.host}, lease until {held.expires[:19]}Z): this "
        "run did nothing; the next scheduled run will go on once that one ends"
    ]
    assert not Path(spec.cube.location).exists() and not Path(spec.product.location).exists()


def test_a_run_killed_mid_fill_is_completed_by_the_next(staged, tmp_path, world_pipe,
                                                        stac_api, dask_address):  # fmt: skip
    path = _spec(tmp_path, world_pipe, stac_api.url, dask_address, "test-killed", "persistence")
    spec = load_spec(path)
    argv = [*GAPFILL, "run", str(path), "--now", "2024-12-31"]
    killed = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                            env={**os.environ, FAULT_ENV: "2"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    dead = Lease(spec.product.location, "x", suffix=".run.lease").read()
    assert dead is not None and dead.pid != os.getpid()  # the killed run's lease, left
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "took over the expired lease" in done.stderr
    ours = xr.open_zarr(spec.product.location).load()
    clean = xr.open_zarr(staged["specs"]["persistence"].product.location).load()
    for name in product.DAY_VARS:
        xr.testing.assert_identical(ours[name], clean[name])
    assert [r["status"] for r in history(spec)] == ["done"]  # the killed run wrote none
    assert np.asarray(ours[product.COMPLETE]).all()


def test_a_region_on_s3_end_to_end_equals_the_local_one(
    staged, tmp_path, world_pipe, stac_api, dask_address, object_store
):
    """Cube, product, lease and ledger in a bucket of a real S3 API (moto's server)."""
    path = _spec(tmp_path, world_pipe, stac_api.url, dask_address, "test-s3", "persistence")
    text = yaml.safe_load(path.read_text())
    opts = object_store.options()
    base = f"s3://{object_store.bucket}/regions/test-s3"
    text["cube"] = {"location": f"{base}/cube.zarr", "storage_options": opts}
    text["product"] = {"location": f"{base}/filled.zarr", "storage_options": opts}
    days = staged["days"][:4]  # a short window: what differs from a local run is the store
    text["window"]["end"] = days[-1]
    path.write_text(yaml.safe_dump(text))
    spec = load_spec(path)
    now = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)
    first = run_pipeline(spec, now=now)
    assert first.status == "done" and sorted(first.days_filled) == days
    again = run_pipeline(spec, now=now)
    assert again.status == "nothing to do"
    remote = xr.open_zarr(f"{base}/filled.zarr", storage_options=opts).load()
    local = xr.open_zarr(staged["specs"]["persistence"].product.location).load()
    local = local.isel(time=slice(0, len(days)))  # persistence reads no later day
    for name in product.DAY_VARS:
        xr.testing.assert_identical(remote[name], local[name])
    assert [r["status"] for r in history(spec)] == ["done", "nothing to do"]
    keys = object_store.keys("regions/test-s3")
    assert any(k.endswith("filled.item.json") for k in keys)
    assert not [k for k in keys if ".lease" in k]  # every lease released
    assert list(tmp_path.iterdir()) == [path]  # nothing written locally


def test_a_failed_run_leaves_the_product_and_says_why_in_the_ledger(staged, tmp_path):
    from gapfill.errors import ServiceError
    from gapfill.stac.server import free_port

    spec = staged["specs"]["persistence"]
    dead = spec.model_copy(update={"stac_url": f"http://127.0.0.1:{free_port()}"})
    days = list(range(len(staged["days"])))
    before = _day_bytes(spec.product.location, days)
    with pytest.raises(ServiceError) as err:
        run_pipeline(dead, now=dt.datetime(2024, 12, 31, tzinfo=dt.UTC))
    assert "\n" not in str(err.value)
    last = history(spec)[-1]
    assert last["status"] == "failed" and last["error"] == str(err.value)
    assert _day_bytes(spec.product.location, days) == before
    assert bool(xr.open_zarr(spec.product.location)[product.COMPLETE].all())


def test_a_later_clear_day_refines_a_both_rule_model_fill(staged):
    """A scheduled job fills the newest days with what exists, then refills them once later
    days land within the model's look-ahead (rule both, 30 days)."""
    days, second = staged["days"], staged["second"]["model"]
    stale = {d: why for d, why in second.days_filled.items() if why.startswith("stale")}
    assert stale and days[0] not in second.days_filled
    assert all(days.index(d) < CUT for d in stale)
    assert all("within its 30-day reach" in why for why in stale.values())
    assert staged["third"]["model"].status == "nothing to do"


def test_a_new_model_in_the_spec_refills_the_days_of_the_old_one(staged, tmp_path):
    from gapfill.models.card import weights_sha256

    spec = staged["specs"]["model"]
    import torch

    old = xr.open_zarr(spec.product.location).attrs["model_sha256"]
    # A retrained model: new weights, the same contract.
    g, card = untrained_both_model(lookahead_days=30)
    torch.manual_seed(7)
    for p in g.parameters():
        p.data.normal_(0, 0.01)
    new_dir = save_model(tmp_path / "retrained", g, card)
    new = weights_sha256(new_dir / "model.pt")
    assert new != old
    rec = run_pipeline(
        spec.model_copy(update={"model": str(new_dir)}),
        now=dt.datetime(2024, 12, 31, tzinfo=dt.UTC),
    )
    inputs = json.loads(xr.open_zarr(spec.product.location).attrs[product.DAY_INPUTS_ATTR])
    filled = [d for d, seen in inputs.items() if seen["read_until"] is not None]
    assert filled and sorted(rec.days_filled) == sorted(filled)
    reasons = set(rec.days_filled.values())
    assert reasons == {f"stale: filled by model {old[:12]}, the spec names {new[:12]}"}
    assert {inputs[d]["model"] for d in filled} == {new}
    assert xr.open_zarr(spec.product.location).attrs["model_sha256"] == new
