"""`gapfill evaluate` on cubes from the local STAC API: real masks, every method scored."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gapfill.cube import layout
from gapfill.errors import InputError
from gapfill.evaluate import EvaluateConfig, evaluate, fill_auto, load_report, method_choice
from gapfill.evaluate.hidden import MODEL
from gapfill.fill import FillConfig
from gapfill.fill.calibrate import Calibration
from gapfill.models.card import ModelCard
from gapfill.storage import absolute
from tests.conftest import save_untrained_model

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_every_method_is_scored_on_the_same_hidden_pixels(tmp_path, cube_pc, model_tiny):
    out = tmp_path / "report"
    report = evaluate(EvaluateConfig(cube=str(cube_pc), model=str(model_tiny)), out)
    assert report.methods == [
        MODEL,
        "persistence",
        "nearest",
        "interpolate",
        "persistence+cal",
        "interpolate+cal",
    ]
    assert len(report.targets) >= 2
    for t in report.targets:
        px = {s.pixels for s in t.scores.values()}
        assert len(px) == 1 and 0 < px.pop() <= t.hidden_px  # one pixel set for all
        for s in t.scores.values():
            assert np.isfinite([s.psnr, s.ssim, s.sam_deg, s.rmse]).all()
        assert t.mask_day != t.day
    for name in report.methods:
        o = report.overall[name]["psnr"]
        assert o["low"] <= o["mean"] <= o["high"]
    assert sum(report.wins.values()) == len(report.targets)
    data = json.loads((out / "report.json").read_text())
    assert data["uses_later_days"] == {
        MODEL: False,
        "persistence": False,
        "nearest": True,
        "interpolate": True,
        "persistence+cal": False,
        "interpolate+cal": True,
    }
    assert "| model (mtcnn) |" in (out / "report.md").read_text()
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(t.day for t in report.targets)
    # An untrained network is far worse than copying the last clear day: the report says so.
    assert not report.model_wins()
    assert report.versus["persistence"]["psnr"]["mean"] < 0
    method, calibrated, why = method_choice(report)
    assert (method + ("+cal" if calibrated else "")) == report.best_baseline("psnr")
    assert "NOT beat" in why


def _trained_on(run: Path, cube: Path, **fields: object) -> Path:
    card_path = run / "model.json"
    card = ModelCard.model_validate_json(card_path.read_text())
    card = card.model_copy(
        update={
            "training_cubes": (absolute(str(cube)),),
            "training_cube_ids": (xr.open_zarr(cube).attrs[layout.CUBE_ID],),
            **fields,
        }
    )
    card_path.write_text(card.model_dump_json())
    return run


def test_a_test_set_overlapping_training_is_refused_or_starts_after_it(tmp_path, cube_pc):
    run = _trained_on(save_untrained_model(tmp_path / "run"), cube_pc)
    with pytest.raises(InputError, match="trained on this cube's days"):
        evaluate(EvaluateConfig(cube=str(cube_pc), model=str(run)))
    days = [str(t)[:10] for t in xr.open_zarr(cube_pc)["time"].values]
    _trained_on(run, cube_pc, training_until=date.fromisoformat(days[5]))
    with pytest.raises(InputError, match="overlaps the model's training days"):
        evaluate(EvaluateConfig(cube=str(cube_pc), model=str(run), start=days[2]))
    report = evaluate(EvaluateConfig(cube=str(cube_pc), model=str(run)))
    assert min(t.day for t in report.targets) > days[5]
    allowed = evaluate(
        EvaluateConfig(cube=str(cube_pc), model=str(run), start=days[0], allow_train_overlap=True)
    )
    assert min(t.day for t in allowed.targets) <= days[5]


def test_the_command_prints_the_table_and_refuses_bad_input(tmp_path, cube_pc, model_tiny):
    cli = [
        sys.executable,
        "-m",
        "gapfill.cli",
        "evaluate",
        "--cube",
        str(cube_pc),
        "--model",
        str(model_tiny),
    ]
    proc = subprocess.run(
        [*cli, "--out", str(tmp_path / "r"), "--max-targets", "2", "--uncertainty", "3"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "persistence" in proc.stdout and "interpolate *" in proc.stdout
    assert "does NOT beat" in proc.stdout
    assert "Uncertainty (3 Monte-Carlo dropout passes)" in proc.stdout
    spread = json.loads((tmp_path / "r" / "report.json").read_text())["uncertainty"]
    assert spread["passes"] == 3 and 0 <= spread["coverage"] <= 1 and spread["values"] > 0
    bad = subprocess.run(
        [*cli, "--start", "2030-01-01", "--out", str(tmp_path / "n")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert bad.returncode == 2 and "no clear target day" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "n").exists()


def test_fill_auto_takes_the_best_baseline_over_a_losing_model_and_says_why(
    tmp_path, cube_pc, model_tiny, dask_address
):
    """No report beside the cube: evaluated on the spot (beside the product); the untrained
    model loses, so the product is the best baseline's, and says so."""
    out = tmp_path / "filled.zarr"
    day = (str(xr.open_zarr(cube_pc)["time"].values[5])[:10],)
    cfg = FillConfig(
        cube=str(cube_pc), out=str(out), model=str(model_tiny), method="auto", dates=day
    )
    fill_auto(cfg.model_copy(update={"quicklooks": False}), dask_scheduler=dask_address)
    report = load_report(tmp_path / "filled-evaluate" / "report.json")
    method, calibrated, _ = method_choice(report)
    assert method != MODEL
    ds = xr.open_zarr(out)
    assert ds.attrs["fill_method"] == method
    assert Calibration.model_validate_json(ds.attrs["calibration"]).enabled == calibrated
    choice = json.loads(ds.attrs["method_choice"])
    assert choice["requested"] == "auto" and "NOT beat" in choice["why"]
    item = json.loads(out.with_name("filled.item.json").read_text())
    assert json.loads(item["properties"]["gapfill:method_choice"])["method"] == method

    other = save_untrained_model(tmp_path / "other", seed=1)
    with pytest.raises(InputError, match="no evidence for this fill: it scored another model"):
        fill_auto(
            cfg.model_copy(
                update={
                    "model": str(other),
                    "out": str(tmp_path / "b.zarr"),
                    "evaluate_report": str(tmp_path / "filled-evaluate" / "report.json"),
                }
            ),
            dask_scheduler=dask_address,
        )
    assert not (tmp_path / "b.zarr").exists()
