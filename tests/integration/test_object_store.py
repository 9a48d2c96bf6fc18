"""Cubes on an object store: build-cube writes `s3://` through a real S3 API (moto's
server on 127.0.0.1), values equal to the local cube, guarded by a lease."""

from __future__ import annotations

import pytest
import xarray as xr

from gapfill.cube import build_cube
from gapfill.cube.layout import open_cube
from gapfill.errors import InputError
from gapfill.lease import Lease
from tests.conftest import cube_config


def test_a_cube_built_on_s3_equals_the_local_one_and_extends_in_place(
    object_store, world_pc, stac_api, dask_address, cube_pc
):
    url = f"s3://{object_store.bucket}/cubes/pc.zarr"
    opts = object_store.options(secret="s3cr3t-not-recorded")
    meta_end = xr.open_zarr(cube_pc)["time"].values[5]
    first = build_cube(
        url,
        cube_config(world_pc, stac_api.url, end=str(meta_end)[:10]),
        dask_scheduler=dask_address,
        storage_options=opts,
    )
    assert len(first.days_written) == 6
    second = build_cube(
        url, cube_config(world_pc, stac_api.url), dask_scheduler=dask_address, storage_options=opts
    )
    assert len(second.days_written) == 6
    remote = open_cube(url, chunks=None, storage_options=opts).load()
    local = xr.open_zarr(cube_pc).load()
    for name in ("s2", "clear", "s1", "s1_dt", "s1_orbit", "complete"):
        xr.testing.assert_identical(remote[name], local[name])
    again = build_cube(
        url, cube_config(world_pc, stac_api.url), dask_scheduler=dask_address, storage_options=opts
    )
    assert again.days_written == [] and again.days_s1_rematched == []
    written = [object_store.fs.open_input_stream(k).read() for k in object_store.keys("cubes")]
    assert not [w for w in written if b"s3cr3t-not-recorded" in w]
    assert not object_store.keys("cubes/pc.zarr.lease")  # released on the way out


def test_a_second_build_on_s3_is_refused_while_one_holds_the_lease(
    object_store, world_pc, stac_api, dask_address
):
    url = f"s3://{object_store.bucket}/cubes/held.zarr"
    opts = object_store.options()
    with Lease(url, "another build", storage_options=opts).held():
        with pytest.raises(InputError, match="is being built by another run"):
            build_cube(
                url, cube_config(world_pc, stac_api.url), dask_scheduler=dask_address,
                storage_options=opts,
            )  # fmt: skip
    assert object_store.keys("cubes/held.zarr") == []


def test_the_cli_builds_on_s3_with_credentials_from_the_environment(
    object_store, world_pc, stac_api, tmp_path
):
    """The CLI's own LocalCluster: its workers inherit the credentials of the environment
    (workers of a scheduler started elsewhere need their own, see cluster/README.md)."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import inset_aoi, world_meta

    meta = world_meta(world_pc)
    url = f"s3://{object_store.bucket}/cubes/cli.zarr"
    nowhere = str(tmp_path / "no-such-file")
    base = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://{object_store.endpoint}",
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_CONFIG_FILE": nowhere,
    }
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        base.pop(key, None)
    env = {**base, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    gapfill = [sys.executable, "-m", "gapfill.cli"]
    argv = [*gapfill, "build-cube", "--aoi", inset_aoi(world_pc),
            "--start", meta["s2"][0]["datetime"][:10], "--end", meta["s2"][2]["datetime"][:10],
            "--stac-url", stac_api.url, "--out", url, "--chunk", "32"]  # fmt: skip
    work = tmp_path / "cwd"
    work.mkdir()
    refused = subprocess.run(argv, capture_output=True, text=True, env=base, timeout=300,
                             cwd=work)  # fmt: skip
    assert refused.returncode == 3
    assert refused.stderr.strip().splitlines() == [
        f"gapfill: error: --out {url} cannot be written (NoCredentialsError: Unable to locate "
        "credentials): check the bucket, the endpoint and the credentials (AWS_* variables "
        "or storage_options)"
    ]
    assert object_store.keys("cubes/cli.zarr") == []
    built = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=work)
    assert built.returncode == 0, built.stderr
    info = subprocess.run([*gapfill, "cube", "info", url, "--json"],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["path"] == url and summary["n_complete"] == 3
    assert summary["size_on_disk_mb"] > 0
    assert list(work.iterdir()) == []  # nothing written locally


def test_evaluate_reads_a_cube_on_s3_and_scores_as_on_the_local_copy(
    object_store, cube_pc, model_tiny, monkeypatch, tmp_path
):
    """Credentials and endpoint from the environment, as the CLI is used."""
    import pyarrow.fs as pafs

    from gapfill.evaluate import EvaluateConfig, evaluate

    pafs.copy_files(
        str(cube_pc),
        f"{object_store.bucket}/eval/pc.zarr",
        source_filesystem=pafs.LocalFileSystem(),
        destination_filesystem=object_store.fs,
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{object_store.endpoint}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    url = f"s3://{object_store.bucket}/eval/pc.zarr"
    remote = evaluate(EvaluateConfig(cube=url, model=str(model_tiny), max_targets=3))
    local = evaluate(EvaluateConfig(cube=str(cube_pc), model=str(model_tiny), max_targets=3))
    assert remote.targets and remote.overall == local.overall
    assert remote.cube_id == local.cube_id


def test_evaluate_of_a_cube_url_needs_a_local_out(object_store):
    import subprocess
    import sys

    url = f"s3://{object_store.bucket}/eval/pc.zarr"
    res = subprocess.run(
        [sys.executable, "-m", "gapfill.cli", "evaluate", "--cube", url, "--model", "run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"gapfill: error: --cube {url} is a URL: give --out, a local report folder"
    ]
