"""build-cube through the real local STAC API, real Dask and real Zarr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr
from rasterio.enums import Resampling
from rasterio.warp import reproject
from scipy import ndimage

from gapfill.bands import DEFAULT_BANDS, band_resolution
from gapfill.cube import build_cube, cube_info
from gapfill.cube.build import FAULT_ENV
from tests.conftest import (
    CHUNK,
    REAL_BOUNDS,
    assert_clean_interrupt,
    cube_config,
    inset_aoi,
    signal_midway,
    world_meta,
)

pytestmark = pytest.mark.integration

GAPFILL = [sys.executable, "-m", "gapfill.cli"]


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.rstrip("Z"))


def test_grid_and_plain_xarray_reading(cube_pc, world_pc):
    import rioxarray  # noqa: F401  (registers .rio)

    ds = xr.open_zarr(cube_pc)
    meta = world_meta(world_pc)
    assert ds.rio.crs.to_epsg() == 32649
    assert "spatial_ref" in ds.coords
    with rasterio.open(world_pc / "s2" / meta["s2"][0]["id"] / "B02.tif") as src:
        x = src.transform.c + 10 * (np.arange(src.width) + 0.5)
        y = src.transform.f - 10 * (np.arange(src.height) + 0.5)
    np.testing.assert_array_equal(ds.x.values, x)
    np.testing.assert_array_equal(ds.y.values, y)
    assert tuple(ds.band.values) == DEFAULT_BANDS  # the ten 10 m and 20 m bands
    assert json.loads(ds.attrs["search"])["bands"] == list(DEFAULT_BANDS)
    assert list(ds.pol.values) == ["VV", "VH"]
    assert ds.sizes["time"] == 12 and bool(ds.complete.all())
    assert ds.s2.encoding["dtype"] == np.uint16 and ds.s1.encoding["dtype"] == np.int16
    assert ds.s2.chunks is not None and ds.s2.encoding["chunks"] == (1, 10, CHUNK, CHUNK)
    # The tile-edge day: no data on the west, decoded as NaN, never clear.
    edge = ds.isel(time=2)
    assert bool(edge.s2.isel(x=slice(0, 9)).isnull().all())
    assert not bool(edge.clear.isel(x=slice(0, 9)).any())
    assert ds.attrs["cube_contract_version"] == "2" and ds.attrs["git_sha"]


def _gdal(cog: Path, like: xr.Dataset, resampling: Resampling) -> np.ndarray:
    """The COG's DN on the cube's grid by GDAL's own warper (rasterio.warp.reproject:
    a path apart from the loader's WarpedVRT), NaN where no data."""
    h, w = like.sizes["y"], like.sizes["x"]
    res = float(like.x[1] - like.x[0])
    transform = rasterio.Affine(
        res, 0, float(like.x[0]) - res / 2, 0, -res, float(like.y[0]) + res / 2
    )
    out = np.zeros((h, w), np.float64)
    with rasterio.open(cog) as src:
        reproject(
            rasterio.band(src, 1),
            out,
            dst_transform=transform,
            dst_crs=src.crs,
            dst_nodata=0,
            resampling=resampling,
        )
    return np.where(out == 0, np.nan, out)


def test_s2_pixels_equal_the_cogs(cube_pc, world_pc):
    """10 m bands are the COGs' values; 20 m bands are GDAL's bilinear resampling of
    theirs onto the 10 m grid (to the packing's step)."""
    ds = xr.open_zarr(cube_pc)
    items = json.loads(ds.attrs["items_per_day"])
    for i, t in enumerate(ds.time.values):
        (item_id,) = items[str(t)[:10]]
        for b, band in enumerate(DEFAULT_BANDS):
            cog = world_pc / "s2" / item_id / f"{band}.tif"
            if band_resolution(band) == 10:
                dn = _read(cog).astype(np.float64)
                dn[dn == 0] = np.nan
            else:
                dn = _gdal(cog, ds, Resampling.bilinear)
            expected = np.maximum((dn - 1000) / 10000, 1e-4)
            got = ds.s2.isel(time=i, band=b).values
            np.testing.assert_allclose(got, expected, atol=0.5001e-4, equal_nan=True, err_msg=band)


def test_a_real_20m_band_on_the_10m_grid_equals_gdals_bilinear(cube_real, real_sample):
    """Site A's B05, B8A and B11 (20 m COGs) in the 10 m cube: GDAL's bilinear warp of
    the real files, on every complete day, to the packing's step."""
    ds = xr.open_zarr(cube_real)
    items = json.loads(ds.attrs["items_per_day"])
    checked = 0
    for t in ds.time.values[::9]:
        (item_id,) = items[str(t)[:10]]
        for band in ("B05", "B8A", "B11"):
            item = real_sample / "sentinel-2-l2a" / item_id / f"{item_id}.json"
            cog = item.parent / json.loads(item.read_text())["assets"][band]["href"]
            expected = np.maximum(_gdal(cog, ds, Resampling.bilinear) / 10000, 1e-4)
            got = ds.s2.sel(time=t, band=band).values
            np.testing.assert_allclose(got, expected, atol=0.5001e-4, equal_nan=True)
            checked += int(np.isfinite(got).sum())
    assert checked > 10 * 64 * 64


def test_clear_is_the_scl_classes_with_cloud_and_shadow_dilated_20m(cube_pc, world_pc):
    ds = xr.open_zarr(cube_pc)
    items = json.loads(ds.attrs["items_per_day"])
    checked_dilation = False
    for i, t in enumerate(ds.time.values):
        (item_id,) = items[str(t)[:10]]
        scl = np.kron(_read(world_pc / "s2" / item_id / "SCL.tif"), np.ones((2, 2), np.uint8))
        cloud = np.isin(scl, (3, 8, 9, 10))
        near_cloud = (
            (ndimage.distance_transform_edt(~cloud) * 10.0 <= 20.0)
            if cloud.any()
            else np.zeros_like(cloud)
        )
        expected = np.isin(scl, (4, 5, 6, 7)) & ~near_cloud & (scl > 0)
        np.testing.assert_array_equal(ds.clear.isel(time=i).values, expected, err_msg=str(t))
        ring = near_cloud & ~cloud & np.isin(scl, (4, 5, 6, 7))
        checked_dilation |= bool(ring.any())
    assert checked_dilation  # some clear-class pixels were removed by the dilation


def test_s1_is_matched_per_pixel_nearest_within_5_days(cube_pc, world_pc):
    ds = xr.open_zarr(cube_pc)
    meta = world_meta(world_pc)
    scenes = meta["s1"]
    both_orbits_in_one_day = False
    for i, day in enumerate(meta["s2"]):
        t2 = _dt(day["datetime"])
        cands = sorted(
            (s for s in scenes if abs(_dt(s["datetime"]) - t2) <= timedelta(days=5)),
            key=lambda s: (abs(_dt(s["datetime"]) - t2), _dt(s["datetime"])),
        )
        assert cands
        db = np.full((2, 64, 64), np.nan)
        dt = np.full((64, 64), -128)
        orbit = np.zeros((64, 64), int)
        for s in reversed(cands):
            lin = np.stack([_read(world_pc / "s1" / s["id"] / f"{p}.tif") for p in ("vv", "vh")])
            ok = (lin > 0).all(axis=0)
            db[:, ok] = 10 * np.log10(lin[:, ok])
            dt[ok] = (_dt(s["datetime"]).date() - t2.date()).days
            orbit[ok] = s["relative_orbit"]
        got = ds.isel(time=i)
        np.testing.assert_allclose(got.s1.values, db, atol=0.0051)
        np.testing.assert_array_equal(got.s1_dt.values, dt)
        np.testing.assert_array_equal(got.s1_orbit.values, orbit)
        assert np.all(np.abs(got.s1_dt.values) <= 5)
        both_orbits_in_one_day |= len(np.unique(orbit)) == 2
    assert both_orbits_in_one_day


def test_cube_info(cube_pc):
    info = cube_info(cube_pc)
    assert info["n_days"] == info["n_complete"] == 12
    assert info["days"][0]["clear_fraction"] > 0.9
    assert any(d["clear_fraction"] < 0.1 for d in info["days"])
    assert all(d["s1_coverage"] == 1.0 for d in info["days"])
    assert info["size_on_disk_mb"] > 0


def _assert_same_cube(a: Path, b: Path) -> None:
    da_, db_ = xr.open_zarr(a).load(), xr.open_zarr(b).load()
    for name in ("s2", "clear", "s1", "s1_dt", "s1_orbit", "complete"):
        xr.testing.assert_identical(da_[name], db_[name])


def test_the_stackstac_loader_builds_the_same_cube(
    tmp_path, cube_pc, world_pc, stac_api, dask_address
):
    """The direct engine (the default) and stackstac behind the same seam: one cube."""
    out = tmp_path / "stackstac.zarr"
    build_cube(
        out, cube_config(world_pc, stac_api.url, loader="stackstac"), dask_scheduler=dask_address
    )
    _assert_same_cube(out, cube_pc)


def test_tiles_agree_with_one_whole_grid_pass(tmp_path, cube_pc, world_pc, stac_api, dask_address):
    """Each tile dilates clouds and despeckles over a halo read around it: 32 px tiles give
    the values of one 64 px tile, with and without the Lee filter."""
    whole = tmp_path / "whole.zarr"
    build_cube(whole, cube_config(world_pc, stac_api.url, chunk=64), dask_scheduler=dask_address)
    _assert_same_cube(whole, cube_pc)
    lee = {}
    for chunk in (32, 64):
        lee[chunk] = tmp_path / f"lee-{chunk}.zarr"
        build_cube(
            lee[chunk],
            cube_config(world_pc, stac_api.url, chunk=chunk, despeckle="lee"),
            dask_scheduler=dask_address,
        )
    _assert_same_cube(lee[32], lee[64])
    assert not np.array_equal(
        xr.open_zarr(lee[32]).s1.values, xr.open_zarr(cube_pc).s1.values, equal_nan=True
    )


def test_incremental_append_equals_a_single_run(
    tmp_path, cube_pc, world_pc, stac_api, dask_address
):
    meta = world_meta(world_pc)
    out = tmp_path / "inc.zarr"
    first = build_cube(
        out,
        cube_config(world_pc, stac_api.url, end=meta["s2"][5]["datetime"][:10]),
        dask_scheduler=dask_address,
    )
    assert len(first.days_written) == 6
    second = build_cube(out, cube_config(world_pc, stac_api.url), dask_scheduler=dask_address)
    assert len(second.days_written) == 6
    # The first build already saw every S1 scene within max-gap-days after its end (its
    # search is padded by that much): no day's matching scenes changed, none is re-matched
    # (tests/integration/test_pipeline.py has scenes arrive later, and re-matched).
    assert second.days_s1_rematched == []
    _assert_same_cube(out, cube_pc)
    again = build_cube(out, cube_config(world_pc, stac_api.url), dask_scheduler=dask_address)
    assert again.days_written == []
    _assert_same_cube(out, cube_pc)


def _build_argv(world: Path, url: str, out: Path, address: str | None) -> list[str]:
    meta = world_meta(world)
    return [
        *GAPFILL, "build-cube", "--aoi", inset_aoi(world),
        "--start", meta["s2"][0]["datetime"][:10], "--end", meta["s2"][-1]["datetime"][:10],
        "--stac-url", url, "--out", str(out), "--chunk", str(CHUNK), "--batch-days", "2",
        *(["--dask-scheduler", address] if address else []),
    ]  # fmt: skip


def _cli_build(
    world: Path, url: str, out: Path, address: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    args = _build_argv(world, url, out, address)
    return subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=300)


def test_resume_after_an_injected_kill_equals_a_single_run(
    tmp_path, cube_pc, world_pc, stac_api, dask_address
):
    out = tmp_path / "killed.zarr"
    # 4 chunks a day, 2 days a write: the kill lands after the 2nd write, before its flags.
    killed = _cli_build(world_pc, stac_api.url, out, dask_address, {FAULT_ENV: "12"})
    assert killed.returncode == -signal.SIGKILL
    complete = zarr.open_group(str(out), mode="r")["complete"][:]
    assert complete[:2].all() and not complete[2:].any()
    assert not bool(xr.open_zarr(out).complete.all())  # a plain reader can tell
    resumed = _cli_build(world_pc, stac_api.url, out, dask_address)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_cube(out, cube_pc)
    assert not (tmp_path / ".killed.zarr.lock").exists()  # the killed run's, taken over


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_resume_after_a_real_signal_equals_a_single_run(
    tmp_path, cube_pc, world_pc, stac_api, dask_address, sig
):
    """The run owns its LocalCluster. SIGKILL of the gapfill process, or Ctrl-C to its
    whole process group (as a terminal sends it) once some days are complete: the re-run
    completes the cube exactly; Ctrl-C also stops cleanly (see assert_clean_interrupt)."""
    out, err = tmp_path / "signalled.zarr", tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            _build_argv(world_pc, stac_api.url, out, None),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )

        def some_days_complete() -> bool:
            try:
                return bool(zarr.open_group(str(out), mode="r")["complete"][:].any())
            except Exception:  # the store is not there yet
                return False

        group = sig != signal.SIGKILL
        seconds, children = signal_midway(proc, sig, some_days_complete, group=group)
    if sig == signal.SIGINT:
        assert_clean_interrupt(proc, err.read_text(), seconds, children)
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not zarr.open_group(str(out), mode="r")["complete"][:].all()
    resumed = _cli_build(world_pc, stac_api.url, out, dask_address)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_cube(out, cube_pc)
    assert not (tmp_path / ".signalled.zarr.lock").exists()  # the killed run's, taken over


def test_a_second_build_of_the_same_cube_is_refused_at_once(tmp_path, world_pc, stac_api):
    """Two scheduled builds fire together: the second is refused in seconds, before any
    search or write, and neither leaves a lock file behind."""
    from gapfill.storage import exclusive_run

    out = tmp_path / "c.zarr"
    with exclusive_run(out, "held by the test"):
        t0 = time.monotonic()
        second = _cli_build(world_pc, stac_api.url, out, None)
        assert time.monotonic() - t0 < 15
        _one_line(second, "is being built by another run", "wait for it")
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_real_sample_cube(cube_real):
    ds = xr.open_zarr(cube_real)
    assert ds.attrs["epsg"] == 32631 and tuple(ds.attrs["bounds"]) == REAL_BOUNDS
    dropped = json.loads(ds.attrs["dropped_days"])
    assert ds.sizes["time"] + len(dropped) == 118
    assert ds.sizes["time"] > 100 and bool(ds.complete.all())
    clear = ds.clear.mean(("y", "x")).values
    # "About a third of the dates are clear, a third fully cloudy, the rest partly."
    assert 0.15 < np.mean(clear > 0.9) < 0.55
    assert 0.15 < np.mean(clear < 0.05) < 0.55
    s1 = ds.s1.values
    assert np.isfinite(s1).mean() > 0.9
    vv, vh = np.nanmedian(s1[:, 0]), np.nanmedian(s1[:, 1])
    assert -15 < vv < -5 and -25 < vh < -12 and vv > vh
    orbits = np.unique(ds.s1_orbit.values)
    assert len(orbits[orbits > 0]) == 2  # two ascending relative orbits (pseudo-orbit keys)
    assert np.abs(ds.s1_dt.values[ds.s1_dt.values > -128]).max() <= 5


def test_an_unreadable_cog_is_skipped_and_recorded_or_fails_with_strict(
    tmp_path, world_broken, stac_api, dask_address
):
    meta = world_meta(world_broken)
    bad = meta["s2"][1]["id"]
    report = build_cube(
        tmp_path / "b.zarr", cube_config(world_broken, stac_api.url), dask_scheduler=dask_address
    )
    assert "unreadable asset B04" in report.skipped_items[bad]
    ds = xr.open_zarr(tmp_path / "b.zarr")
    assert ds.sizes["time"] == 2
    assert bad in json.loads(ds.attrs["skipped_items"])
    assert {"search", "probe", "has_data", "write", "metadata"} <= set(report.seconds)
    # A re-run with nothing new probes no item (the broken one is not met again) and
    # keeps the record of the earlier skip.
    again = build_cube(
        tmp_path / "b.zarr", cube_config(world_broken, stac_api.url), dask_scheduler=dask_address
    )
    assert again.days_written == [] and again.skipped_items == {}
    assert bad in json.loads(xr.open_zarr(tmp_path / "b.zarr").attrs["skipped_items"])
    proc = _run_cli(
        "build-cube",
        "--aoi",
        inset_aoi(world_broken),
        "--start",
        meta["s2"][0]["datetime"][:10],
        "--end",
        meta["s2"][-1]["datetime"][:10],
        "--stac-url",
        stac_api.url,
        "--out",
        str(tmp_path / "s.zarr"),
        "--strict",
    )
    _one_line(proc, bad, "unreadable")
    assert not (tmp_path / "s.zarr").exists()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GAPFILL, *args], capture_output=True, text=True, timeout=300)


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gapfill: error: ")]
    assert len(errors) == 1, proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]


def test_bad_inputs(tmp_path, cube_pc, world_pc, stac_api):
    meta = world_meta(world_pc)
    span = ["--start", meta["s2"][0]["datetime"][:10], "--end", meta["s2"][-1]["datetime"][:10]]
    url = ["--stac-url", stac_api.url]
    _one_line(
        _run_cli(
            "build-cube",
            "--aoi",
            "10,10,10.01,10.01",
            *span,
            *url,
            "--out",
            str(tmp_path / "a.zarr"),
        ),
        "no Sentinel-2 items",
    )
    assert not (tmp_path / "a.zarr").exists()
    bad_loader = _run_cli(
        "build-cube",
        "--aoi",
        inset_aoi(world_pc),
        *span,
        *url,
        "--loader",
        "odc",
        "--out",
        str(tmp_path / "l.zarr"),
    )
    _one_line(bad_loader, "--loader", "'direct' or 'stackstac'")
    assert not (tmp_path / "l.zarr").exists()
    _one_line(
        _run_cli(
            "build-cube",
            "--aoi",
            inset_aoi(world_pc),
            "--start",
            "2022-05-01",
            "--end",
            "2022-04-01",
            *url,
            "--out",
            str(tmp_path / "b.zarr"),
        ),
        "before start",
    )
    mapping = tmp_path / "profile.yaml"
    mapping.write_text(
        "s2:\n  collection: sentinel-2-l2a\n"
        "  assets: {B02: [B02], B03: [B03], B04: [B04], B08: [B08], SCL: [nope]}\n"
    )
    _one_line(
        _run_cli(
            "build-cube",
            "--aoi",
            inset_aoi(world_pc),
            *span,
            *url,
            "--profile",
            str(mapping),
            "--strict",
            "--bands",
            "paper",
            "--out",
            str(tmp_path / "c.zarr"),
        ),
        "no asset for SCL",
    )
    # Band sets: unknown, repeated, or not in the catalog (the mapping has no B05..B12).
    mapping.write_text(
        "s2:\n  collection: sentinel-2-l2a\n"
        "  assets: {B02: [B02], B03: [B03], B04: [B04], B08: [B08], SCL: [SCL]}\n"
    )
    for bands, says in (
        (["--bands", "B02,B13"], "unknown band 'B13'"),
        (["--bands", "B02,B03,B02"], "band B02 is named twice"),
        (["--profile", str(mapping)], "lacks band B05, B06, B07, B8A, B11, B12"),
        (["--profile", str(mapping), "--bands", "B04,B05"], "lacks band B05"),
    ):
        out = tmp_path / "bands.zarr"
        proc = _run_cli(
            "build-cube", "--aoi", inset_aoi(world_pc), *span, *url, *bands, "--out", str(out)
        )
        _one_line(proc, says)
        assert not out.exists(), bands
    assert "--bands B02,B03,B04,B08 (bands it has)" in proc.stderr
    not_a_cube = tmp_path / "d.zarr"
    not_a_cube.mkdir()
    (not_a_cube / "notes.txt").write_text("mine")
    _one_line(
        _run_cli("build-cube", "--aoi", inset_aoi(world_pc), *span, *url, "--out", str(not_a_cube)),
        "not a gapfill cube",
    )
    assert (not_a_cube / "notes.txt").read_text() == "mine"
    before = cube_info(cube_pc)
    _one_line(
        _run_cli(
            "build-cube", "--aoi", "113.0,30.0,113.01,30.01", *span, *url, "--out", str(cube_pc)
        ),
        "another grid",
    )
    assert cube_info(cube_pc) == before
    _one_line(_run_cli("cube", "info", str(tmp_path / "none.zarr")), "not a Zarr store")


def test_cube_info_command(cube_pc):
    proc = _run_cli("cube", "info", str(cube_pc))
    assert proc.returncode == 0, proc.stderr
    assert "12 days (12 complete)" in proc.stdout
    data = json.loads(_run_cli("cube", "info", str(cube_pc), "--json").stdout)
    assert data["n_days"] == 12
