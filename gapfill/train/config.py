"""`gapfill train` configuration: a pydantic model, read from YAML with flag overrides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gapfill.errors import InputError, first_problem
from gapfill.storage import absolute, redacted_options, shown
from gapfill.train.data import DataConfig

if TYPE_CHECKING:
    from gapfill.models import Generator

__all__ = ["TrainConfig", "load_train_config", "TRAIN_PRESETS"]

# What each preset trains with where the config does not say: patch size, epochs, batch
# size and learning rate that fit its machine (the paper's on GPUs; minutes on 2 CPU cores;
# seconds in tests) and whether the generator corrects its reference (residual, beyond the
# paper). `cpu-tiny`: measured on the demo's synthetic world (rule both, held-out half),
# thousands of steps of a tiny net at batch 4 and lr 1e-3 learn what a few hundred steps of
# `cpu-small` at the paper's batch 1 and lr 2e-4 do not (benchmarks/quality.py).
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"patch": 256, "epochs": 200, "residual": False, "norm": "batch"},
    "cpu-small": {"patch": 64, "epochs": 20, "residual": True, "norm": "none"},
    "cpu-tiny": {
        "patch": 32,
        "epochs": 100,
        "residual": True,
        "norm": "none",
        "batch_size": 4,
        "lr": 1e-3,
    },
    "test-tiny": {"patch": 32, "epochs": 2, "residual": False, "norm": "batch"},
}


class TrainConfig(BaseModel):
    """Everything a training run needs; recorded in checkpoints and in the model card."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    out: str = Field(description="RUN_DIR: model.pt, model.json, metrics.csv, ray/")
    checkpoints: str | None = Field(
        None,
        description="where Ray Train keeps the per-epoch checkpoints: a local path or an "
        "object-store URL (s3://bucket/prefix, gs://..., abfs://...; pyarrow query options "
        "such as ?endpoint_override=host:port&scheme=http); default RUN_DIR/ray",
    )
    method: Literal["cnn", "cgan", "mtcnn", "mtcgan"] = "mtcgan"
    preset: str = "paper"
    norm: Literal["batch", "instance", "none"] = "batch"
    epochs: int = Field(200, ge=1, description="default: the preset's")
    residual: bool = Field(
        False,
        description="the generator predicts a correction to its reference O1 (beyond the "
        "paper; Task B methods); default: the preset's",
    )
    batch_size: int = Field(1, ge=1, description="per worker; default: the preset's, else 1")
    lr: float = Field(2e-4, gt=0, description="default: the preset's, else the paper's")
    betas: tuple[float, float] = (0.5, 0.999)
    workers: int = Field(2, ge=1)
    gpus_per_worker: float = Field(0.0, ge=0)
    cpus_per_worker: float | None = Field(
        None,
        gt=0,
        description="CPUs (torch threads) per worker; default: this machine's CPUs (no "
        "more than a running local Ray has) shared among the workers (a 16-core machine "
        "used 2 of them with 2 workers of one CPU each); on a cluster (ray_address), 1",
    )
    seed: int = 0
    ray_address: str | None = None
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(1, ge=0)
    max_val_samples: int = Field(64, ge=0)
    cache_mb: int = Field(
        1024, ge=0, description="per worker: patches kept in memory after their first read"
    )

    blend: bool = Field(
        True,
        description="rule both with residual: the net also moves each pixel's weight "
        "between O1 and O3 (the time weight at the start; the SAR tells which side a date "
        "resembles); ignored otherwise",
    )
    later_dropout: float = Field(
        0.5, ge=0, le=1, description="rule both: share of samples trained without the later side"
    )
    init: str | None = Field(
        None,
        description="warm start: RUN_DIR of a finished run of the same architecture whose "
        "weights this run starts from (e.g. pre-trained on synthetic worlds)",
    )

    def redacted(self) -> TrainConfig:
        """This config without credentials (user-info and query strings of URLs, secret
        storage options): what config.json, checkpoints and the model card keep. Workers
        get the full config in memory; a re-run passes its credentials again."""
        data = self.data.model_copy(
            update={
                "cubes": tuple(shown(c) for c in self.data.cubes),
                "storage_options": redacted_options(self.data.storage_options),
            }
        )
        checkpoints = None if self.checkpoints is None else shown(self.checkpoints)
        return self.model_copy(update={"data": data, "checkpoints": checkpoints})

    @property
    def cpus(self) -> float:
        """CPUs per worker once `train` has resolved the default (1 before)."""
        return self.cpus_per_worker or 1.0

    @property
    def both(self) -> bool:
        """The reference rule reads a later clear day too (`data.reference.rule: both`)."""
        return self.data.reference.rule == "both"

    @classmethod
    def stored(cls, text: str) -> TrainConfig:
        """A config as a run stored it (config.json, checkpoints): runs from before `blend`
        existed trained without it, whatever today's default says."""
        import json

        raw = json.loads(text)
        if isinstance(raw, dict):
            raw.setdefault("blend", False)
        return cls.model_validate(raw)

    @property
    def blend_active(self) -> bool:
        """`blend` where it applies (rule both with residual): what the net is built with,
        and what a resumed run must keep."""
        return self.blend and self.both and self.residual

    @property
    def bands(self) -> tuple[str, ...]:
        """The band set trained on: the cubes', once resolved (`train` does it;
        `gapfill.train.with_cube_bands` for a loop run by hand)."""
        if self.data.bands is None:
            raise ValueError(
                "data.bands is not resolved: train() takes it from the cubes "
                "(gapfill.train.with_cube_bands(cfg) does the same)"
            )
        return self.data.bands

    def generator(self) -> Generator:
        """The generator this config trains, freshly initialised from the torch seed."""
        from gapfill.models import build_generator

        return build_generator(
            self.method,
            self.preset,
            residual=self.residual,
            both=self.both,
            bands=self.bands,
            norm=self.norm,
            blend=self.blend_active,
        )

    @field_validator("init")
    @classmethod
    def _init_absolute(cls, v: str | None) -> str | None:
        return None if v is None else absolute(v)

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, raw: Any) -> Any:
        """Fields left out take the preset's value (see TRAIN_PRESETS)."""
        if not isinstance(raw, dict):
            return raw
        defaults = TRAIN_PRESETS.get(str(raw.get("preset", "paper")))
        if defaults is None:
            return raw
        raw = dict(raw)
        raw.setdefault("epochs", defaults["epochs"])
        raw.setdefault("norm", defaults["norm"])
        for key in ("batch_size", "lr"):
            if key in defaults:
                raw.setdefault(key, defaults[key])
        if "residual" not in raw:  # only Task B methods have a reference to correct
            method = str(raw.get("method", "mtcgan"))
            raw["residual"] = defaults["residual"] and method in ("mtcnn", "mtcgan")
        data = raw.get("data")
        if isinstance(data, DataConfig):
            if "patch" not in data.model_fields_set:
                raw["data"] = data.model_copy(update={"patch": defaults["patch"]})
        elif isinstance(data, dict):
            raw["data"] = {"patch": defaults["patch"], **data}
        return raw

    @field_validator("checkpoints")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        """A local path made absolute where the config is read (workers run elsewhere)."""
        return None if v is None else absolute(v)

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        from gapfill.models import GENERATOR_PRESETS

        if v not in GENERATOR_PRESETS:
            raise ValueError(f"unknown preset {v!r}: use one of {', '.join(GENERATOR_PRESETS)}")
        return v


def load_train_config(path: str | Path | None, **overrides: Any) -> TrainConfig:
    """A config from a YAML file (optional) with CLI overrides (None = not given)."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"config {path} does not exist")
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(
                f"config {path} is not valid YAML ({str(exc).splitlines()[0]})"
            ) from None
        if not isinstance(raw, dict):
            raise InputError(
                f"config {path} holds a {type(raw).__name__}, not a mapping of settings: "
                "write 'key: value' lines (see train.yaml in the README)"
            )
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise InputError(f"config {path}: data: Input should be a mapping of settings")
    data = dict(data)
    for key in ("cubes", "patch"):
        if overrides.get(key) is not None:
            data[key] = overrides.pop(key)
        overrides.pop(key, None)
    raw["data"] = data
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(first_problem(exc)) from None
