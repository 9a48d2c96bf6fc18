"""The training config says the same thing in the driver and in Ray workers elsewhere."""

from __future__ import annotations

import json

import shapely

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
