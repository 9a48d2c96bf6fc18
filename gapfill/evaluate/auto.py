"""`gapfill fill --method auto`: fill with the model only where the cube's own evaluation
shows it better than every baseline, else with the best baseline — so a product is never
worse, on that evidence, than what the user could compute without the model.

The evidence is a `gapfill evaluate` report of this model on this cube: the one given,
else the one `gapfill evaluate` writes by default beside the cube, else one run on the
spot (written beside the product). A report of another model, cube or calibration is not
used. The product records the choice and why (`method_choice`, also in its STAC Item).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from gapfill.cube import layout
from gapfill.errors import InputError
from gapfill.evaluate.hidden import (
    EvaluateConfig,
    EvaluateReport,
    TargetResult,
    evaluate,
    method_choice,
)
from gapfill.fill.calibrate import Calibration
from gapfill.fill.config import FillConfig
from gapfill.fill.run import FillReport, fill
from gapfill.metrics import Scores
from gapfill.models.card import weights_sha256
from gapfill.storage import absolute, require_writable

__all__ = ["fill_auto", "load_report", "default_report_dir"]

log = logging.getLogger(__name__)


def default_report_dir(cube: str | Path) -> Path:
    """Where `gapfill evaluate` writes its report by default: CUBE-evaluate beside it."""
    cube = Path(cube)
    return cube.with_name(cube.name.removesuffix(".zarr") + "-evaluate")


def load_report(path: str | Path) -> EvaluateReport:
    """An `EvaluateReport` back from its report.json."""
    data = json.loads(Path(path).read_text())
    data.pop("software_version", None)
    data.pop("git_sha", None)
    data["targets"] = [
        TargetResult(**{**t, "scores": {m: Scores(**s) for m, s in t["scores"].items()}})
        for t in data["targets"]
    ]
    return EvaluateReport(**data)


def _why_not(report: EvaluateReport, cfg: FillConfig, cube_id: str, sha: str) -> str | None:
    """Why `report` is no evidence for this fill (None: it is)."""
    if report.model_sha256 != sha:
        return "it scored another model"
    if cube_id and report.cube_id != cube_id or not cube_id and report.cube != cfg.cube:
        return "it scored another cube"
    if Calibration.model_validate(report.calibration) != cfg.calibration:
        return "it used other calibration settings"
    return None


def _evidence(cfg: FillConfig, cube_id: str, sha: str) -> tuple[EvaluateReport, Path]:
    """The report to decide by, and where it is."""
    given = Path(cfg.evaluate_report) if cfg.evaluate_report else None
    path = given or default_report_dir(cfg.cube) / "report.json"
    if path.exists():
        try:
            report = load_report(path)
        except (ValueError, TypeError, KeyError) as e:
            raise InputError(f"{path} is not a gapfill evaluate report.json ({e})") from None
        why = _why_not(report, cfg, cube_id, sha)
        if why is None:
            return report, path
        if given is not None:
            raise InputError(
                f"--evaluate-report {given} is no evidence for this fill: {why}; run "
                f"gapfill evaluate --cube {cfg.cube} --model {cfg.model}, or leave it out"
            )
        log.warning("%s is not used: %s; evaluating on the spot", path, why)
    elif given is not None:
        raise InputError(f"--evaluate-report {given} does not exist")
    out = Path(cfg.out)
    folder = out.with_name(out.name.removesuffix(".zarr") + "-evaluate")
    assert cfg.model is not None  # FillConfig says so
    log.info(
        "evaluating %s on %s to choose the fill method (report: %s)", cfg.model, cfg.cube, folder
    )
    report = evaluate(
        EvaluateConfig(cube=cfg.cube, model=cfg.model, calibration=cfg.calibration), folder
    )
    return report, folder / "report.json"


def fill_auto(cfg: FillConfig, *, dask_scheduler: str | None = None) -> FillReport:
    """Fill `cfg` (method 'auto') with the model or the best baseline, whichever the cube's
    evaluation shows better; the product says which and why."""
    if cfg.method != "auto":
        return fill(cfg, dask_scheduler=dask_scheduler)
    assert cfg.model is not None  # FillConfig says so
    require_writable(cfg.out, "--out")
    cube = layout.open_cube(cfg.cube)
    model_pt = Path(cfg.model) / "model.pt"
    if not model_pt.exists():
        raise InputError(f"--model {cfg.model} has no model.pt: give a finished run directory")
    cfg = cfg.model_copy(update={"cube": absolute(cfg.cube), "out": absolute(cfg.out)})
    report, path = _evidence(cfg, str(cube.attrs.get(layout.CUBE_ID, "")), weights_sha256(model_pt))
    method, calibrated, why = method_choice(report)
    choice = {"requested": "auto", "method": method, "calibrated": calibrated, "why": why}
    choice["report"] = str(path)
    log.info("--method auto: %s%s (%s)", method, " (calibrated)" if calibrated else "", why)
    chosen = cfg.model_copy(
        update={
            "method": method,
            "model": cfg.model if method == "model" else None,
            "calibration": cfg.calibration.model_copy(update={"enabled": calibrated}),
            "evaluate_report": None,
            "method_choice": json.dumps(choice),
        }
    )
    return fill(FillConfig.model_validate(chosen.model_dump()), dask_scheduler=dask_scheduler)
