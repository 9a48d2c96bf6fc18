"""`make demo` on a folder an older demo filled: its runs of other settings move aside."""

from __future__ import annotations

import json

from gapfill.cube.reference import ReferenceRule
from gapfill.demo import _set_aside_if_other
from gapfill.train import DataConfig, TrainConfig


def test_an_older_demo_run_and_its_products_move_aside_and_nothing_is_lost(tmp_path):
    both = DataConfig(cubes=("cube-real.zarr",), reference=ReferenceRule(rule="both"))
    cfg = TrainConfig(
        data=both, out=str(tmp_path / "run-mtcnn-real"), method="mtcnn", preset="cpu-tiny"
    )
    older = cfg.model_copy(update={"preset": "cpu-small"})
    (tmp_path / "run-mtcnn-real").mkdir()
    (tmp_path / "run-mtcnn-real" / "config.json").write_text(older.model_dump_json())
    (tmp_path / "filled-real.zarr").mkdir()
    (tmp_path / "filled-real.zarr" / "zarr.json").write_text("{}")
    (tmp_path / "filled-synthetic.zarr").mkdir()  # another cube's: stays
    _set_aside_if_other(tmp_path, "real", cfg)
    aside = tmp_path / "previous-1"
    assert (
        json.loads((aside / "run-mtcnn-real" / "config.json").read_text())["preset"] == "cpu-small"
    )
    assert (aside / "filled-real.zarr" / "zarr.json").read_text() == "{}"
    assert (
        not (tmp_path / "run-mtcnn-real").exists() and (tmp_path / "filled-synthetic.zarr").exists()
    )
    # The same settings (a re-run of this demo) resume: nothing moves.
    (tmp_path / "run-mtcnn-real").mkdir()
    (tmp_path / "run-mtcnn-real" / "config.json").write_text(cfg.model_dump_json())
    _set_aside_if_other(tmp_path, "real", cfg)
    assert (tmp_path / "run-mtcnn-real" / "config.json").exists()
    assert not (tmp_path / "previous-2").exists()
