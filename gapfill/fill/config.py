"""What `gapfill fill` does: a pydantic model, recorded in the product's attrs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gapfill.fill.calibrate import Calibration
from gapfill.grid import UTCDay

__all__ = ["FillConfig"]


class FillConfig(BaseModel):
    """A fill request: which cube, model and days, and how the work is cut."""

    model_config = ConfigDict(extra="forbid")

    cube: str
    model: str | None = Field(
        None, description="run directory with model.pt + model.json (method 'model')"
    )
    method: Literal["model", "persistence", "nearest", "interpolate", "auto"] = Field(
        "model",
        description="the trained model, a baseline (gapfill.fill.baselines), or 'auto': the "
        "better of them on this cube by its evaluation (gapfill.evaluate.fill_auto)",
    )
    evaluate_report: str | None = Field(
        None, description="report.json of `gapfill evaluate` that --method auto decides by"
    )
    method_choice: str = Field("", description="why this method (set by --method auto)")
    horizon_days: int = Field(
        60, ge=1, description="how far a baseline looks for clear days, each side"
    )
    calibration: Calibration = Field(
        default_factory=Calibration, description="fit each fill to its day's clear pixels"
    )
    out: str
    dates: tuple[UTCDay, ...] = ()
    start: UTCDay | None = None
    end: UTCDay | None = None
    min_cloud: float = Field(
        0.0, ge=0, le=100, description="fill days whose cloudy share (%) is above this"
    )
    batch: int = Field(
        1,
        ge=1,
        le=512,
        description="tiles per forward pass on a GPU (a default tile fills one; raise it "
        "for small tiles)",
    )
    tile: int | None = Field(
        None,
        ge=16,
        le=4096,
        description="inference tile (px, before halo); default: 256 on a CPU, 1024 on a GPU",
    )
    days_per_task: int = Field(4, ge=1, le=64, description="days one Dask task fills")
    chunk: int | None = Field(None, ge=16, le=8192, description="product chunk; default: cube's")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    overwrite: bool = False
    replace_model: bool = Field(
        False,
        description="let a product filled by another model take this one (each day records "
        "the model that filled it; `gapfill run` refills the days of the old one)",
    )
    quicklooks: bool = True
    uncertainty: int | None = Field(
        None,
        ge=2,
        le=256,
        description="Monte-Carlo dropout passes for a per-pixel spread (the product's "
        "`uncertainty` variable); none by default",
    )

    @model_validator(mode="after")
    def _days(self) -> FillConfig:
        if self.method in ("model", "auto") and not self.model:
            raise ValueError(f"--model RUN_DIR is needed for --method {self.method}")
        if self.method == "auto" and not self.calibration.enabled:
            raise ValueError(
                "--method auto decides on calibration itself: leave --no-calibrate out"
            )
        if self.evaluate_report and self.method != "auto":
            raise ValueError("--evaluate-report is read by --method auto only")
        if self.uncertainty is not None and self.method != "model":
            raise ValueError(
                f"--uncertainty needs the model (--method model), not --method {self.method}"
            )
        if self.method not in ("model", "auto") and self.model:
            raise ValueError(f"--method {self.method} uses no model: leave --model out")
        if self.dates and (self.start or self.end):
            raise ValueError("give --dates or --start/--end, not both")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self
