"""Stores a user already has are never damaged or mixed (issue 11): layout settings of an
existing cube, the kind of a store, the cube a product is of, lost chunks, blank input.

Real local STAC API, real Dask, real Zarr; each case failed on the code before its fix.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gapfill.cube import CubeConfig, build_cube, check_cube, layout, require_intact
from gapfill.errors import InputError
from gapfill.fill import FillConfig, fill
from tests.conftest import cube_config, inset_aoi, world_meta

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GAPFILL = [sys.executable, "-m", "gapfill.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GAPFILL, *args], capture_output=True, text=True, timeout=240)


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gapfill: error: ")]
    assert len(errors) == 1, proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def _digest(store: Path) -> str:
    """Every file of a store (names and bytes): any change shows."""
    h = hashlib.sha256()
    for f in sorted(p for p in store.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(store)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _span(world: Path) -> list[str]:
    meta = world_meta(world)
    return ["--start", meta["s2"][0]["datetime"][:10], "--end", meta["s2"][-1]["datetime"][:10]]


@pytest.fixture
def cube_copy(tmp_path, cube_pc) -> Path:
    out = tmp_path / "cube.zarr"
    shutil.copytree(cube_pc, out)
    return out


@pytest.mark.parametrize(
    ("flag", "value", "stored"),
    [
        ("--chunk", "16", "--chunk 32"),
        ("--despeckle", "lee", "--despeckle none"),
        ("--max-gap-days", "3", "--max-gap-days 5"),
        ("--resolution", "20", "--resolution 10"),
    ],
)
def test_extending_with_another_layout_or_setting_is_refused_before_any_write(
    cube_copy, world_pc, stac_api, flag, value, stored
):
    before = _digest(cube_copy)
    proc = _cli(
        "build-cube",
        "--aoi",
        inset_aoi(world_pc),
        *_span(world_pc),
        "--stac-url",
        stac_api.url,
        "--out",
        str(cube_copy),
        flag,
        value,
    )
    _one_line(proc, str(cube_copy), stored)
    assert _digest(cube_copy) == before
    xr.open_zarr(cube_copy).load()  # still a readable cube


def test_extending_without_the_settings_takes_the_stores_own(
    tmp_path, cube_pc, world_pc, stac_api, dask_address
):
    meta = world_meta(world_pc)
    out = tmp_path / "grown.zarr"
    first = cube_config(world_pc, stac_api.url, end=meta["s2"][5]["datetime"][:10])
    build_cube(out, first, dask_scheduler=dask_address)  # chunk 32, 6 days
    cfg = CubeConfig(
        aoi=inset_aoi(world_pc),
        start=meta["s2"][0]["datetime"][:10],
        end=meta["s2"][-1]["datetime"][:10],
        stac_url=stac_api.url,
    )
    assert "chunk" not in cfg.model_fields_set and cfg.chunk == 1024
    build_cube(out, cfg, dask_scheduler=dask_address)
    grown, whole = xr.open_zarr(out), xr.open_zarr(cube_pc)
    assert grown[layout.S2].encoding["chunks"][-1] == 32
    assert json.loads(grown.attrs["search"])["chunk"] == 32
    for var in layout.DAY_VARS + (layout.COMPLETE,):
        np.testing.assert_array_equal(grown[var].values, whole[var].values, err_msg=var)


def test_build_cube_into_a_product_is_refused_and_leaves_it_alone(
    tmp_path, cube_pc, model_tiny, world_pc, stac_api, dask_address
):
    out = tmp_path / "filled.zarr"
    day = str(xr.open_zarr(cube_pc)["time"].values[3])[:10]
    fill(
        FillConfig(
            cube=str(cube_pc), model=str(model_tiny), out=str(out), dates=(day,), quicklooks=False
        ),
        dask_scheduler=dask_address,
    )
    before = _digest(out)
    proc = _cli(
        "build-cube",
        "--aoi",
        inset_aoi(world_pc),
        *_span(world_pc),
        "--stac-url",
        stac_api.url,
        "--out",
        str(out),
    )
    _one_line(proc, "is a gapfill filled product, not a cube")
    assert _digest(out) == before
    _one_line(_cli("cube", "info", str(out)), "filled product, not a cube", str(cube_pc))
    _one_line(
        _cli(
            "fill",
            "--cube",
            str(out),
            "--model",
            str(model_tiny),
            "--out",
            str(tmp_path / "x.zarr"),
        ),
        "filled product, not a cube",
    )
    assert not (tmp_path / "x.zarr").exists()
    _one_line(
        _cli("train", "--cube", str(out), "--preset", "test-tiny", "--out", str(tmp_path / "r")),
        "filled product, not a cube",
    )


@pytest.fixture(scope="module")
def cube_other(tmp_path_factory, world_pc, stac_api, dask_address) -> Path:
    """Another cube of the same world, grid and days (despeckled: other S1 values)."""
    out = tmp_path_factory.mktemp("cubes") / "other.zarr"
    build_cube(
        out, cube_config(world_pc, stac_api.url, despeckle="lee"), dask_scheduler=dask_address
    )
    return out


def test_a_cube_despeckled_by_the_old_lee_filter_is_not_extended(
    tmp_path, cube_other, world_pc, stac_api
):
    """Before `lee_filter` was recorded the filter mixed scenes and polarisations: such a
    cube is refused before any write, not grown with other values; today's is extended."""
    import zarr

    old = tmp_path / "old-lee.zarr"
    shutil.copytree(cube_other, old)
    group = zarr.open_group(old, mode="r+")
    assert group.attrs["lee_filter"] == "per-image"
    del group.attrs["lee_filter"]
    layout.consolidate(str(old))
    before = _digest(old)
    args = ["--aoi", inset_aoi(world_pc), *_span(world_pc), "--stac-url", stac_api.url]
    _one_line(_cli("build-cube", *args, "--out", str(old)), "earlier Lee filter", "a new cube")
    assert _digest(old) == before
    today = tmp_path / "lee.zarr"
    shutil.copytree(cube_other, today)
    assert _cli("build-cube", *args, "--out", str(today)).returncode == 0


def test_a_product_refuses_another_cube_on_the_same_grid(
    tmp_path, cube_pc, cube_other, model_tiny, dask_address
):
    out = tmp_path / "filled.zarr"
    days = tuple(str(t)[:10] for t in xr.open_zarr(cube_pc)["time"].values[2:4])
    fill(
        FillConfig(
            cube=str(cube_pc), model=str(model_tiny), out=str(out), dates=days, quicklooks=False
        ),
        dask_scheduler=dask_address,
    )
    ds = xr.open_zarr(out)
    assert ds.attrs["cube"] == str(cube_pc.resolve())
    assert ds.attrs["cube_id"] == xr.open_zarr(cube_pc).attrs["cube_id"] != ""
    run = json.loads(ds.attrs["fill_runs"])[0]
    assert Path(run["config"]["cube"]).is_absolute() and Path(run["config"]["out"]).is_absolute()
    before = _digest(out)
    for overwrite in (False, True):
        with pytest.raises(InputError, match="was filled from cube .* fill into another --out"):
            fill(
                FillConfig(
                    cube=str(cube_other),
                    model=str(model_tiny),
                    out=str(out),
                    dates=days,
                    overwrite=overwrite,
                    quicklooks=False,
                ),
                dask_scheduler=dask_address,
            )
        assert _digest(out) == before


def test_a_lost_chunk_is_found_refused_and_repaired(
    tmp_path, cube_copy, cube_pc, model_tiny, world_pc, stac_api, dask_address
):
    day = 5
    lost = cube_copy / layout.S2 / "c" / str(day) / "0" / "1" / "0"
    assert lost.is_file()
    lost.unlink()
    name = str(xr.open_zarr(cube_copy)["time"].values[day])[:10]
    proc = _cli("cube", "check", str(cube_copy))
    assert proc.returncode == 1 and name in proc.stdout and "s2/c/5/0/1/0 missing" in proc.stdout
    _one_line(
        _cli(
            "fill",
            "--cube",
            str(cube_copy),
            "--model",
            str(model_tiny),
            "--out",
            str(tmp_path / "f.zarr"),
        ),
        "damaged",
        name,
        "--repair",
    )
    assert not (tmp_path / "f.zarr").exists()
    with pytest.raises(InputError, match="damaged"):
        from gapfill.train.data import DataConfig, build_index

        build_index(DataConfig(cubes=(str(cube_copy),), patch=32), "B")
    old = xr.open_zarr(cube_copy)
    del old.attrs[layout.EVERY_CHUNK]  # a cube from before every chunk was stored
    require_intact(str(cube_copy), old)  # may lack all-empty chunks: not refused
    report = check_cube(cube_copy, repair=True)
    assert list(report.damaged) == [name] and report.repaired
    assert not bool(xr.open_zarr(cube_copy)[layout.COMPLETE].values[day])
    build_cube(cube_copy, cube_config(world_pc, stac_api.url), dask_scheduler=dask_address)
    assert check_cube(cube_copy).damaged == {}
    a, b = xr.open_zarr(cube_copy), xr.open_zarr(cube_pc)
    for var in layout.DAY_VARS + (layout.COMPLETE,):
        np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=var)


def test_cube_check_of_something_else_is_one_line(tmp_path, cube_pc, model_tiny, dask_address):
    _one_line(_cli("cube", "check", str(tmp_path / "none.zarr")), "not a Zarr store")
    out = tmp_path / "filled.zarr"
    day = (str(xr.open_zarr(cube_pc)["time"].values[3])[:10],)
    fill(
        FillConfig(
            cube=str(cube_pc), out=str(out), method="persistence", dates=day, quicklooks=False
        ),
        dask_scheduler=dask_address,
    )
    before = _digest(out)
    _one_line(_cli("cube", "check", str(out), "--repair"), "filled product, not a cube")
    assert _digest(out) == before


def test_a_corrupt_chunk_is_reported_unreadable(cube_copy):
    chunk = cube_copy / layout.S1 / "c" / "2" / "0" / "0" / "1"
    chunk.write_bytes(chunk.read_bytes()[:7])
    report = check_cube(cube_copy)
    (problems,) = report.damaged.values()
    assert "s1/c/2/0/0/1 unreadable" in problems[0]


def test_blank_dates_and_a_huge_or_scattered_aoi(tmp_path, cube_pc, model_tiny, world_pc, stac_api):
    out = tmp_path / "f.zarr"
    for blank in ("", ",,", " , "):
        _one_line(
            _cli(
                "fill",
                "--cube",
                str(cube_pc),
                "--model",
                str(model_tiny),
                "--out",
                str(out),
                "--dates",
                blank,
            ),
            "names no day",
        )
    assert not out.exists()
    _one_line(
        _cli(
            "build-cube",
            "--aoi",
            inset_aoi(world_pc),
            *_span(world_pc),
            "--stac-url",
            stac_api.url,
            "--out",
            str(tmp_path / "c.zarr"),
            "--max-pixels",
            "1000",
        ),
        "64 x 64 px = 0.0 Mpx",
        "--max-pixels",
    )
    scattered = tmp_path / "two.geojson"
    scattered.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]
                            ],
                        },
                    }
                    for x, y in ((113.0, 30.0), (113.9, 30.9))
                ],
            }
        )
    )
    proc = _cli(
        "build-cube",
        "--aoi",
        str(scattered),
        "--start",
        "2022-04-01",
        "--end",
        "2022-04-02",
        "--stac-url",
        stac_api.url,
        "--out",
        str(tmp_path / "s.zarr"),
        "--max-pixels",
        "10000000",
    )
    _one_line(proc, "Mpx", "2 separate parts", "one cube per part", "--max-pixels")
    assert not (tmp_path / "s.zarr").exists()
