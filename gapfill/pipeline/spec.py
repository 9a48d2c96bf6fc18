"""A region spec (`pipelines/REGION.yaml`): what a scheduled job keeps up to date.

The cube and fill settings are the fields of `CubeConfig` and `FillConfig` themselves
(taken from those models, not re-spelled), so a spec says nothing `build-cube` and
`fill` would not accept. Relative paths are read from the spec file's folder: a
scheduler's working directory is not the user's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic import model_validator as _model_validator

from gapfill.bands import parse_bands
from gapfill.cube.config import CubeConfig
from gapfill.errors import InputError
from gapfill.fill.config import FillConfig
from gapfill.grid import UTCDay
from gapfill.storage import absolute, is_url

__all__ = [
    "RegionSpec",
    "StoreSpec",
    "WindowSpec",
    "CubeOptions",
    "FillOptions",
    "load_spec",
    "spec_schema",
    "SCHEMA_PATH",
]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "pipelines" / "schema.json"

_CUBE_KEYS = (
    "bands",
    "resolution",
    "epsg",
    "max_gap_days",
    "chunk",
    "despeckle",
    "clear_classes",
    "cloud_classes",
    "dilation_m",
    "max_cloud",
    "strict",
    "max_pixels",
    "batch_days",
    "loader",
)
_FILL_KEYS = (
    "horizon_days",
    "calibration",
    "min_cloud",
    "batch",
    "tile",
    "days_per_task",
    "chunk",
    "device",
    "quicklooks",
    "uncertainty",
)


def _band_set(value: str | tuple[str, ...]) -> tuple[str, ...]:
    try:
        return parse_bands(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _subset(name: str, model: type[BaseModel], keys: tuple[str, ...], doc: str) -> Any:
    fields: dict[str, Any] = {
        k: (model.model_fields[k].annotation, model.model_fields[k]) for k in keys
    }
    if "bands" in fields:  # a set's name or a list, checked where the spec is read
        fields["bands"] = (
            Annotated[str | tuple[str, ...], AfterValidator(_band_set)],
            model.model_fields["bands"],
        )
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)


CubeOptions = _subset("CubeOptions", CubeConfig, _CUBE_KEYS, "`build-cube` settings.")
FillOptions = _subset("FillOptions", FillConfig, _FILL_KEYS, "`fill` settings.")


class StoreSpec(BaseModel):
    """A store location: a path (relative to the spec file) or an fsspec URL."""

    model_config = ConfigDict(extra="forbid")

    location: str
    storage_options: dict[str, Any] | None = Field(
        None, description="fsspec options (credentials come from the environment, not here)"
    )


class WindowSpec(BaseModel):
    """Which days: a fixed `start` (and optional `end`), or the rolling `last: 90d`."""

    model_config = ConfigDict(extra="forbid")

    start: UTCDay | None = None
    end: UTCDay | None = None
    last: str | None = Field(None, pattern=r"^[1-9][0-9]*d$", description="e.g. 90d")

    @_model_validator(mode="after")
    def _one_way(self) -> WindowSpec:
        if (self.start is None) == (self.last is None):
            raise ValueError("give either start (with an optional end) or last, e.g. last: 90d")
        if self.last is not None and self.end is not None:
            raise ValueError("a rolling window (last) ends at --now: leave end out")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def span(self, now: dt.date) -> tuple[dt.date, dt.date]:
        """First and last day of the window on day `now`."""
        if self.last is not None:
            return now - dt.timedelta(days=int(self.last[:-1])), now
        assert self.start is not None
        end = min(self.end, now) if self.end else now
        return self.start, end


class RegionSpec(BaseModel):
    """One region kept up to date by `gapfill run`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="owns its stores")
    aoi: str = Field(description="GeoJSON file, minx,miny,maxx,maxy lon/lat bbox, or WKT")
    provider: str | None = None
    s1_provider: str | None = None
    stac_url: str | None = None
    profile: str | None = Field(None, description="YAML mapping for stac_url")
    window: WindowSpec
    cube: StoreSpec
    product: StoreSpec
    method: Literal["model", "persistence", "nearest", "interpolate"] = Field(
        "model",
        description="the trained model or a baseline (as FillConfig.method; for auto, run "
        "`gapfill evaluate` once and name the method it chose)",
    )
    model: str | None = Field(None, description="run directory of the model (method model)")
    cube_options: CubeOptions = Field(default_factory=CubeOptions)  # type: ignore[valid-type]
    fill_options: FillOptions = Field(default_factory=FillOptions)  # type: ignore[valid-type]
    dask_scheduler: str | None = None
    ray_address: str | None = Field(None, description="for `gapfill train` of this region")
    schedule: str = Field(description="cron line for the scheduler that runs this spec")
    lease_seconds: float = Field(120.0, ge=10, description="lease expiry; renewed at 1/3")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a cron line (e.g. '0 6 * * *': daily at 06:00)")
        return v

    @_model_validator(mode="after")
    def _model_given(self) -> RegionSpec:
        if (self.method == "model") != bool(self.model):
            raise ValueError("model: give the run directory for method model, and only for it")
        if self.fill_options.uncertainty is not None and self.method != "model":  # type: ignore[attr-defined]
            raise ValueError("fill_options.uncertainty: needs method model (dropout passes)")
        return self

    def resolved(self, folder: Path) -> RegionSpec:
        """Local paths made absolute from `folder` (the spec file's); URLs untouched."""

        def at(loc: str) -> str:
            if is_url(loc) or Path(loc).expanduser().is_absolute():
                return absolute(loc)
            return str((folder / loc).resolve())

        update: dict[str, Any] = {
            "cube": self.cube.model_copy(update={"location": at(self.cube.location)}),
            "product": self.product.model_copy(update={"location": at(self.product.location)}),
        }
        if self.model:
            update["model"] = at(self.model)
        if self.aoi.endswith((".json", ".geojson")):
            update["aoi"] = at(self.aoi)
        return self.model_copy(update=update)

    def cube_settings(self) -> dict[str, Any]:
        """The `CubeConfig` fields this spec sets."""
        return dict(self.cube_options.model_dump(exclude_unset=True))  # type: ignore[attr-defined]

    def fill_settings(self) -> dict[str, Any]:
        """The `FillConfig` fields this spec sets."""
        return dict(self.fill_options.model_dump(exclude_unset=True))  # type: ignore[attr-defined]

    @property
    def horizon_days(self) -> int:
        """How far a baseline fill looks for clear days."""
        return int(self.fill_options.horizon_days)  # type: ignore[attr-defined]

    def digest(self) -> str:
        """A short hash of the spec's content (recorded with each run in the ledger)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_schema() -> str:
    """The JSON Schema of a region spec, as `pipelines/schema.json` holds it."""
    return json.dumps(RegionSpec.model_json_schema(), indent=2, sort_keys=True) + "\n"


def _lines(node: yaml.Node, at: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Line (1-based) of every key path in a composed YAML document."""
    out: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*at, str(key.value))
            out[path] = key.start_mark.line + 1
            out.update(_lines(value, path))
    return out


def load_spec(path: str | Path) -> RegionSpec:
    """Read and validate a spec file; a problem is one line naming the file, line and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read spec {path}: {exc.strerror or exc}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise InputError(f"spec {path}{where}: {problem}: fix the YAML") from None
    if not isinstance(data, dict):
        raise InputError(f"spec {path}: expected a mapping of keys (name, aoi, window, ...)")
    try:
        spec = RegionSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(x) for x in err["loc"])
        lines = _lines(node) if node is not None else {}
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        key = ".".join(loc) or "the file"
        msg = re.sub(r"^(Value error|Assertion failed), ", "", err["msg"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown key (see {SCHEMA_PATH.name} for the keys a spec may have)"
        where = f" line {line}" if line else ""
        raise InputError(f"spec {path}{where}: {key}: {msg}") from None
    return spec.resolved(path.resolve().parent)
