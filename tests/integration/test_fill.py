"""`gapfill fill` end to end: real Dask LocalCluster, real Zarr, cubes built from the
local STAC API (session fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gapfill.cube import layout
from gapfill.errors import InputError
from gapfill.fill import FillConfig, fill, product
from gapfill.fill.run import FAULT_ENV
from tests.conftest import assert_clean_interrupt, save_untrained_model, signal_midway

pytestmark = pytest.mark.timeout(300)

CLI = [sys.executable, "-m", "gapfill.cli"]


def _fill(cube: Path, model: Path, out: Path, address: str, **kw) -> object:
    return fill(
        FillConfig(cube=str(cube), model=str(model), out=str(out), **kw), dask_scheduler=address
    )


def _values(path: Path) -> dict[str, np.ndarray]:
    ds = xr.open_zarr(path)
    return {n: ds[n].values for n in (*product.DAY_VARS, product.COMPLETE)}


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def filled(tmp_path_factory, cube_pc, model_tiny, dask_address) -> tuple[Path, object]:
    """The 64 px cube filled once, uninterrupted: the reference the other tests compare to."""
    out = tmp_path_factory.mktemp("filled") / "filled.zarr"
    return out, _fill(cube_pc, model_tiny, out, dask_address)


def test_fill_keeps_observed_pixels_and_fills_cloudy_ones(filled, cube_pc):
    out, report = filled
    ds = xr.open_zarr(out)
    cube = xr.open_zarr(cube_pc)
    assert ds.sizes == {"time": cube.sizes["time"], "band": 10, "y": 64, "x": 64}
    assert ds.attrs["product_contract_version"] == "3" and list(ds.band.values) == list(
        cube.band.values
    )
    assert bool(ds[product.COMPLETE].all())
    s2, status = ds[product.S2].values, ds[product.STATUS].values
    obs, clear = cube[layout.S2].values, cube[layout.CLEAR].values
    observed = np.isfinite(obs).all(axis=1)
    # Clear observed pixels are copied bit for bit; flags say where each pixel comes from.
    np.testing.assert_array_equal(status == product.CLEAR, clear & observed)
    np.testing.assert_array_equal(
        s2.transpose(1, 0, 2, 3)[:, clear & observed],
        obs.transpose(1, 0, 2, 3)[:, clear & observed],
    )
    np.testing.assert_array_equal(status == product.NODATA, ~observed)
    cloudy = observed & ~clear
    np.testing.assert_array_equal(np.isin(status, [product.FILLED, product.UNFILLED]), cloudy)
    done = status == product.FILLED
    assert done.sum() > 1000 and report.pixels_filled == done.sum()
    sim = s2.transpose(1, 0, 2, 3)[:, done]
    assert np.isfinite(sim).all() and sim.min() >= 0 and sim.max() <= 0.6 + 1e-4
    assert np.isnan(s2.transpose(1, 0, 2, 3)[:, status == product.UNFILLED]).all()
    # The reference is an earlier cube day: its age is one of the day differences.
    ages = ds[product.REFERENCE_DT].values
    days = (cube["time"].values - cube["time"].values[0]).astype("timedelta64[D]").astype(int)
    for t in range(len(days)):
        got = set(np.unique(ages[t][done[t]]).astype(int))
        assert got <= {days[t] - d for d in days[:t]}, (t, got)
    assert np.isnan(ages[~done]).all()
    assert report.days_filled and not report.days_skipped


def test_product_opens_plainly_with_crs_flags_item_and_quicklooks(filled):
    import cf_xarray  # noqa: F401  (registers .cf)
    import pystac
    import rioxarray  # noqa: F401  (registers .rio)

    out, report = filled
    ds = xr.open_zarr(out)
    assert ds.rio.crs.to_epsg() == 32649
    assert ds[product.STATUS].dtype == np.uint8
    n_filled = int((ds[product.STATUS].cf == "filled").sum())
    assert n_filled == report.pixels_filled
    assert json.loads(ds.attrs["model_card"])["method"] == "mtcnn"
    assert len(ds.attrs["model_sha256"]) == 64
    item = pystac.Item.from_file(report.item)
    assert item.properties["proj:code"] == "EPSG:32649"
    assert item.properties["proj:shape"] == [64, 64]
    href = Path(report.item).parent / item.assets["zarr"].href
    assert href.resolve() == out.resolve()
    assert item.properties["gapfill:days_complete"] == ds.sizes["time"]
    assert len(report.quicklooks) == ds.sizes["time"]
    png = Path(report.quicklooks[1]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_run_skips_complete_days_and_changes_nothing(
    filled, cube_pc, model_tiny, dask_address
):
    out, _ = filled
    before = _values(out)
    report = _fill(cube_pc, model_tiny, out, dask_address, quicklooks=False)
    assert not report.days_filled and len(report.days_skipped) == len(before["complete"])
    _assert_same(before, _values(out))


def test_results_do_not_depend_on_chunk_or_tile_size(
    tmp_path, filled, cube_pc, model_tiny, dask_address
):
    """The cube has 32 px chunks; one 64 px chunk and one 64 px tile is a full-image pass."""
    whole = tmp_path / "whole.zarr"
    _fill(cube_pc, model_tiny, whole, dask_address, chunk=64, tile=64, quicklooks=False)
    small = tmp_path / "small.zarr"
    _fill(cube_pc, model_tiny, small, dask_address, tile=16, batch=3, quicklooks=False)
    assert xr.open_zarr(small)[product.S2].encoding["chunks"][-1] == 32
    a, b = _values(whole), _values(small)
    for name in (product.STATUS, product.REFERENCE_DT, product.COMPLETE):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # Exact halo: the same sums, in an order oneDNN picks per tile shape (~1e-7), so at
    # most a rare 1-DN flip of the uint16 packing.
    np.testing.assert_allclose(a[product.S2], b[product.S2], rtol=0, atol=1.001e-4)
    same = (a[product.S2] == b[product.S2]) | (np.isnan(a[product.S2]) & np.isnan(b[product.S2]))
    assert np.mean(~same) < 1e-3


def _fill_argv(cube: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        *CLI, "fill", "--cube", str(cube), "--model", str(model), "--out", str(out),
        "--no-quicklooks", *extra,
    ]  # fmt: skip


def _cli_fill(cube: Path, model: Path, out: Path, *extra: str, env: dict | None = None):
    return subprocess.run(
        _fill_argv(cube, model, out, *extra),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=240,
    )


def test_resume_after_an_injected_kill_equals_an_uninterrupted_run(
    tmp_path, filled, cube_pc, model_tiny, dask_address
):
    out = tmp_path / "filled.zarr"
    r = _cli_fill(cube_pc, model_tiny, out, "--dask-scheduler", dask_address, env={FAULT_ENV: "3"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    complete = xr.open_zarr(out)[product.COMPLETE].values
    assert not complete.all()
    r = _cli_fill(cube_pc, model_tiny, out, "--dask-scheduler", dask_address)
    assert r.returncode == 0, r.stderr[-2000:]
    _assert_same(_values(filled[0]), _values(out))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_resume_after_a_real_signal_equals_an_uninterrupted_run(
    tmp_path, filled, cube_pc, model_tiny, sig
):
    """The run owns its LocalCluster here: a SIGKILL of the gapfill process, or Ctrl-C to
    its whole process group, mid-way must leave no half-day; Ctrl-C also stops cleanly."""
    out, err = tmp_path / "filled.zarr", tmp_path / "stderr.txt"

    def some_chunks_written() -> bool:
        chunks = list((out / product.S2 / "c").rglob("*")) if (out / product.S2).exists() else []
        return sum(p.is_file() for p in chunks) >= 4

    with err.open("w") as stderr:
        proc = subprocess.Popen(
            _fill_argv(cube_pc, model_tiny, out, "--tile", "16"),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        seconds, children = signal_midway(
            proc, sig, some_chunks_written, group=sig != signal.SIGKILL
        )
    if sig == signal.SIGINT:
        assert_clean_interrupt(proc, err.read_text(), seconds, children)
    else:
        assert proc.returncode == -signal.SIGKILL
    r = _cli_fill(cube_pc, model_tiny, out)
    assert r.returncode == 0, r.stderr[-2000:]
    _assert_same(_values(filled[0]), _values(out))


def test_two_runs_on_disjoint_days_both_land(tmp_path, filled, cube_pc, model_tiny, dask_address):
    out = tmp_path / "filled.zarr"
    days = [str(t)[:10] for t in xr.open_zarr(cube_pc)["time"].values]
    half = len(days) // 2
    procs = [
        subprocess.Popen(
            _fill_argv(
                cube_pc,
                model_tiny,
                out,
                "--dask-scheduler",
                dask_address,
                "--dates",
                ",".join(part),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part in (days[:half], days[half:])
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    _assert_same(_values(filled[0]), _values(out))
    runs = json.loads(xr.open_zarr(out).attrs["fill_runs"])
    assert len(runs) == 2


def test_a_second_run_on_days_being_written_is_refused(
    tmp_path, filled, cube_pc, model_tiny, dask_address
):
    from gapfill.fill.run import _flock, _lock_dir
    from gapfill.store import DayStore

    out = tmp_path / "filled.zarr"
    day = str(xr.open_zarr(cube_pc)["time"].values[3])[:10]
    with _flock(_lock_dir(DayStore(str(out))) / f"{day}.lock", "held by the test"):
        # Refused before any cluster: nothing listens at this scheduler address (a run
        # that connected first would fail with "no Dask scheduler answers" after 10 s).
        t0 = time.monotonic()
        with pytest.raises(InputError, match="being filled by another run"):
            _fill(cube_pc, model_tiny, out, "tcp://127.0.0.1:9", dates=(day,), quicklooks=False)
        assert time.monotonic() - t0 < 5
        assert out.exists()  # the refused run created it, but another run is filling it
    report = _fill(cube_pc, model_tiny, out, dask_address, dates=(day,), quicklooks=False)
    assert report.days_filled == [day] or report.days_copied == [day]
    t = 3
    ref = _values(filled[0])
    got = _values(out)
    for name in product.DAY_VARS:
        np.testing.assert_array_equal(got[name][t], ref[name][t])


def test_a_day_without_s1_is_copied_with_the_reason(tmp_path, cube_pc, model_tiny, dask_address):
    import zarr

    cube = tmp_path / "cube.zarr"
    shutil.copytree(cube_pc, cube)
    ds = xr.open_zarr(cube)
    share = (~ds[layout.CLEAR]).mean(("y", "x")).values
    t = int(np.argmax(share))
    group = zarr.open_group(str(cube), mode="r+")
    with zarr.config.set({"array.write_empty_chunks": True}):  # as build-cube writes days
        group[layout.S1_ORBIT][t] = layout.S1_ORBIT_MISSING
        group[layout.S1][t] = -32768
        group[layout.S1_DT][t] = layout.S1_DT_MISSING
    out = tmp_path / "filled.zarr"
    report = _fill(cube, model_tiny, out, dask_address, quicklooks=False)
    day = str(ds["time"].values[t])[:10]
    assert "no Sentinel-1" in report.days_skipped[day]
    status = xr.open_zarr(out)[product.STATUS].values[t]
    assert (status == product.UNFILLED).sum() > 0 and (status == product.FILLED).sum() == 0


def test_bad_inputs_say_what_to_do_and_keep_what_was_written(tmp_path, filled, cube_pc, model_tiny):
    out, _ = filled
    before = _values(out)

    def fails(*args: str, match: str, model: Path = model_tiny, cube: Path = cube_pc) -> None:
        r = _cli_fill(cube, model, out, *args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gapfill: error:"), r.stderr
        assert match in lines[0], lines[0]

    fails("--dates", "2019-01-01", match="is not a day of cube")
    foreign = tmp_path / "foreign"
    shutil.copytree(model_tiny, foreign)
    card = json.loads((foreign / "model.json").read_text())
    card["bands"] = ["B02", "B03", "B04", "B8A"]
    (foreign / "model.json").write_text(json.dumps(card))
    fails(match="reads and writes bands B02,B03,B04,B8A, but cube", model=foreign)
    paper = save_untrained_model(tmp_path / "paper", bands=("B02", "B03", "B04", "B08"))
    fails(match="holds B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12: use a model", model=paper)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(model_tiny, corrupt)
    (corrupt / "model.pt").write_bytes(b"not a checkpoint")
    fails(match="cannot be loaded", model=corrupt)
    other = tmp_path / "other"
    save_untrained_model(other, seed=1)
    fails(match="was filled by model", model=other)
    fails("--start", "2030-01-01", match="has no day from")
    fails("--dates", "2022-01-01", "--start", "2022-01-01", match="not both")
    fails("--uncertainty", "0", match="uncertainty")
    fails("--uncertainty", "3", match="was filled without --uncertainty")
    _assert_same(before, _values(out))


def test_uncertainty_is_written_when_asked_only_where_filled_and_changes_no_value(
    tmp_path, filled, cube_pc, model_tiny, dask_address
):
    import zarr

    out = tmp_path / "with-spread.zarr"
    _fill(cube_pc, model_tiny, out, dask_address, uncertainty=3)
    ds, ref = xr.open_zarr(out), xr.open_zarr(filled[0])
    assert product.UNCERTAINTY not in ref and ds.attrs[product.UNCERTAINTY_ATTR] == 3
    _assert_same(_values(filled[0]), _values(out))  # the fill itself is the same
    sigma = ds[product.UNCERTAINTY].values
    where = np.broadcast_to((ds[product.STATUS].values == product.FILLED)[:, None], sigma.shape)
    assert where.any() and (sigma[where] >= 0).all() and (sigma[where] > 0).mean() > 0.5
    assert np.isnan(sigma[~where]).all()
    arrays = zarr.open_group(str(out), mode="r")
    assert arrays[product.UNCERTAINTY].dtype == arrays[product.S2].dtype  # packed like s2
    assert (
        ds[product.UNCERTAINTY].encoding["scale_factor"] == ds[product.S2].encoding["scale_factor"]
    )
    with pytest.raises(InputError, match="was filled with --uncertainty 3"):
        _fill(cube_pc, model_tiny, out, dask_address, overwrite=True)


def test_an_output_of_another_grid_or_kind_is_refused(filled, cube_pc, cube_es, model_tiny):
    out, _ = filled
    before = _values(out)
    r = _cli_fill(cube_es, model_tiny, out)
    assert r.returncode == 2 and "belongs to another cube grid" in r.stderr, r.stderr
    _assert_same(before, _values(out))
    r = _cli_fill(cube_pc, model_tiny, cube_pc)
    assert r.returncode == 2 and "is a gapfill cube, not a filled product" in r.stderr, r.stderr
    assert layout.open_cube(cube_pc)[layout.COMPLETE].values.all()


def test_real_sample_cloudy_days_are_filled(tmp_path, cube_real, model_tiny, dask_address):
    """The real sample (pseudo-orbit keys, real clouds): autumn 2017 filled; every cloudy
    pixel is filled or says why not, clear pixels are the observation."""
    out = tmp_path / "real.zarr"
    report = _fill(cube_real, model_tiny, out, dask_address, start="2017-08-01", end="2017-10-31")
    ds = xr.open_zarr(out)
    cube = xr.open_zarr(cube_real)
    picked = [str(t)[:10] for t in ds["time"].values if "2017-08-01" <= str(t)[:10] <= "2017-10-31"]
    assert sorted(report.days_filled + report.days_copied) == picked
    status = ds[product.STATUS].values[: len(picked)]
    clear = cube[layout.CLEAR].values[: len(picked)]
    np.testing.assert_array_equal(status == product.CLEAR, clear)
    assert (status == product.FILLED).sum() > 0.2 * (~clear).sum()
    assert ds[product.COMPLETE].values[: len(picked)].all()
    assert not ds[product.COMPLETE].values[len(picked) :].any()
    assert len(report.quicklooks) == len(picked) and Path(report.quicklooks[0]).is_file()


def test_a_card_of_another_contract_or_a_missing_gpu_is_refused(
    tmp_path, cube_pc, model_tiny, dask_address
):
    old = tmp_path / "old"
    shutil.copytree(model_tiny, old)
    card = json.loads((old / "model.json").read_text())
    card["card_version"] = "0"
    (old / "model.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="not a model card of version"):
        _fill(cube_pc, old, tmp_path / "a.zarr", dask_address)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="see no GPU"):
            _fill(cube_pc, model_tiny, tmp_path / "b.zarr", dask_address, device="cuda")


def test_quicklook_command(tmp_path, filled):
    out, report = filled
    day = report.days_filled[0]
    png = tmp_path / "q.png"
    r = subprocess.run(
        [*CLI, "quicklook", str(out), "--date", day, "--out", str(png)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 3 * 64 and im.size[1] >= 64
    r = subprocess.run(
        [*CLI, "quicklook", str(out), "--date", "1999-01-01", "--out", str(png)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "is not a day of" in r.stderr


def test_scores_against_the_synthetic_truth_count_filled_pixels_per_region(filled, world_pc):
    from gapfill.evaluate import score_against_truth
    from tests.conftest import world_meta

    out, report = filled
    whole = score_against_truth(out, world_pc)
    assert whole["filled_px"] == report.pixels_filled
    status = xr.open_zarr(out)[product.STATUS].values
    for day, r in whole["days"].items():
        t = [str(v)[:10] for v in xr.open_zarr(out)["time"].values].index(day)
        assert r["filled_px"] == (status[t] == product.FILLED).sum()
    # The O1 baseline (10-40 day old clear pixels of a slowly changing world) is close;
    # an untrained generator is not.
    assert whole["overall"]["o1"]["psnr"] > 18
    assert whole["overall"]["model"]["psnr"] < whole["overall"]["o1"]["psnr"]
    minx, miny, maxx, maxy = world_meta(world_pc)["bbox_lonlat"]
    east = score_against_truth(out, world_pc, region=f"{(minx + maxx) / 2},{miny},{maxx},{maxy}")
    east_px = (status[:, :, 32:] == product.FILLED).sum()
    assert abs(east["filled_px"] - east_px) <= 0.05 * east_px


def test_days_below_min_cloud_are_copied_not_filled(tmp_path, cube_pc, model_tiny, dask_address):
    cube = xr.open_zarr(cube_pc)
    observed = cube[layout.S2].isel(band=0).notnull()
    share = (
        100 * (observed & ~cube[layout.CLEAR]).sum(("y", "x")) / observed.sum(("y", "x"))
    ).values
    cut = float(np.median(share))
    report = _fill(
        cube_pc, model_tiny, tmp_path / "f.zarr", dask_address, min_cloud=cut, quicklooks=False
    )
    days = [str(t)[:10] for t in cube["time"].values]
    assert sorted(report.days_filled) == [d for d, s in zip(days, share, strict=True) if s > cut]
    assert sorted(report.days_copied) == [d for d, s in zip(days, share, strict=True) if s <= cut]
    status = xr.open_zarr(tmp_path / "f.zarr")[product.STATUS].values
    for d in report.days_copied:
        assert not (status[days.index(d)] == product.FILLED).any()
