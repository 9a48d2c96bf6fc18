"""The training config says the same thing in the driver and in Ray workers elsewhere."""

from __future__ import annotations

import json

import pytest
import shapely

from gapfill.bands import DEFAULT_BANDS, PAPER_BANDS
from gapfill.train import DataConfig, TrainConfig


def test_local_paths_become_absolute_and_urls_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = DataConfig(cubes=("cubes/a.zarr", "s3://bucket/b.zarr", "file://rel/c.zarr"))
    assert data.cubes == (
        str(tmp_path / "cubes" / "a.zarr"),
        "s3://bucket/b.zarr",
        str(tmp_path / "rel" / "c.zarr"),
    )
    cfg = TrainConfig(data=data, out="run", checkpoints="ckpt")
    assert cfg.checkpoints == str(tmp_path / "ckpt")
    url = "s3://k:s@bucket/run?endpoint_override=h:1&scheme=http"
    assert TrainConfig(data=data, out="run", checkpoints=url).checkpoints == url
    # What a worker validates again is unchanged, wherever it runs.
    monkeypatch.chdir("/")
    again = TrainConfig.model_validate_json(cfg.model_dump_json())
    assert again.data.cubes == data.cubes and again.checkpoints == cfg.checkpoints


def test_a_geojson_region_file_travels_as_its_geometry(tmp_path):
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    path = tmp_path / "test.geojson"
    path.write_text(json.dumps({"type": "Feature", "geometry": square, "properties": {}}))
    data = DataConfig(cubes=("a",), test_region=str(path), train_region="0,0,2,2")
    assert shapely.from_wkt(data.test_region).equals(shapely.geometry.shape(square))
    assert data.train_region == "0,0,2,2"  # bbox text stays as written
    long_wkt = "LINESTRING (" + ", ".join(f"{i} {i}" for i in range(200)) + ")"
    assert DataConfig(cubes=("a",), test_region=long_wkt).test_region == long_wkt


def test_presets_fill_what_the_config_leaves_out_and_blend_only_applies_to_rule_both():
    from gapfill.cube.reference import ReferenceRule

    both = DataConfig(cubes=("a",), reference=ReferenceRule(rule="both"), bands=PAPER_BANDS)
    tiny = TrainConfig(data=both, out="run", method="mtcnn", preset="cpu-tiny")
    assert (tiny.batch_size, tiny.lr, tiny.data.patch, tiny.residual) == (4, 1e-3, 32, True)
    assert tiny.generator().cfg.blend and tiny.generator().cfg.out_channels == 4
    mine = TrainConfig(data=both, out="run", method="mtcnn", preset="cpu-tiny", lr=3e-4)
    assert mine.lr == 3e-4 and mine.batch_size == 4
    paper = TrainConfig(data=DataConfig(cubes=("a",)), out="run", method="mtcgan")
    assert (paper.batch_size, paper.lr, paper.residual) == (1, 2e-4, False)
    causal = TrainConfig(
        data=DataConfig(cubes=("a",), bands=DEFAULT_BANDS), out="run", preset="cpu-tiny"
    )
    assert not causal.generator().cfg.blend  # no later side to move towards
    assert causal.generator().cfg.out_channels == 10
    with pytest.raises(ValueError, match="data.bands is not resolved"):
        TrainConfig(data=DataConfig(cubes=("a",)), out="run").generator()


def test_a_config_stored_before_blend_existed_reads_as_trained_without_it():
    from gapfill.cube.reference import ReferenceRule

    both = DataConfig(cubes=("a",), reference=ReferenceRule(rule="both"))
    cfg = TrainConfig(data=both, out="run", method="mtcnn", preset="cpu-tiny")
    old = json.loads(cfg.model_dump_json())
    del old["blend"]  # what config.json held before the field existed
    assert not TrainConfig.stored(json.dumps(old)).blend
    assert TrainConfig.stored(cfg.model_dump_json()).blend


def test_a_causal_run_stored_before_blend_existed_still_resumes(tmp_path):
    from gapfill.train import stored_differences

    cfg = TrainConfig(data=DataConfig(cubes=("a",)), out=str(tmp_path), preset="cpu-small")
    old = json.loads(cfg.model_dump_json())
    del old["blend"]  # blend never applied to it: no later side
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert stored_differences(tmp_path, cfg) == []
    assert stored_differences(tmp_path, cfg.model_copy(update={"seed": 9})) == ["seed"]


def test_workers_share_the_machines_cpus_unless_told_or_on_a_cluster(monkeypatch):
    """A 16-core machine trained on 2 threads with the 2 default workers of one CPU each:
    left out, `cpus_per_worker` shares a local machine's CPUs among the workers."""
    import os

    from gapfill.train.trainer import _with_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    data = DataConfig(cubes=("a",))
    cfg = TrainConfig(data=data, out="run", workers=2)
    assert cfg.cpus_per_worker is None and cfg.cpus == 1.0
    assert _with_cpus(cfg).cpus_per_worker == 8.0
    assert _with_cpus(cfg.model_copy(update={"workers": 3})).cpus == 5.0
    assert _with_cpus(cfg.model_copy(update={"workers": 32})).cpus == 1.0
    assert _with_cpus(cfg.model_copy(update={"cpus_per_worker": 2.5})).cpus == 2.5
    assert _with_cpus(cfg.model_copy(update={"ray_address": "ray://head:10001"})).cpus == 1.0
