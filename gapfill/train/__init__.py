"""Training: patches from cubes, the per-worker loop, Ray Train wiring, checkpoints."""

from gapfill.train.config import TrainConfig, load_train_config
from gapfill.train.data import DataConfig, build_index
from gapfill.train.trainer import (
    TrainResult,
    ray_session,
    stored_differences,
    train,
    with_cube_bands,
)

__all__ = [
    "DataConfig",
    "TrainConfig",
    "TrainResult",
    "build_index",
    "load_train_config",
    "ray_session",
    "stored_differences",
    "train",
    "with_cube_bands",
]
