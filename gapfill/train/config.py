"""`gapfill train` configuration: a pydantic model, read from YAML with flag overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gapfill.errors import InputError
from gapfill.storage import absolute
from gapfill.train.data import DataConfig

__all__ = ["TrainConfig", "load_train_config"]


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
    norm: Literal["batch", "instance"] = "batch"
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(1, ge=1)
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    workers: int = Field(2, ge=1)
    gpus_per_worker: float = Field(0.0, ge=0)
    cpus_per_worker: float = Field(1.0, gt=0)
    seed: int = 0
    ray_address: str | None = None
    keep_checkpoints: int = Field(2, ge=1)
    max_failures: int = Field(1, ge=0)
    max_val_samples: int = Field(64, ge=0)

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
    data = dict(raw.get("data", {}))
    for key in ("cubes", "patch"):
        if overrides.get(key) is not None:
            data[key] = overrides.pop(key)
        overrides.pop(key, None)
    raw["data"] = data
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "config"
        raise InputError(f"{where}: {err['msg']}") from None
