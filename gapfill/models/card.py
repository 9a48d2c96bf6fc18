"""The model card contract (`RUN_DIR/model.json`, version 1) and the run directory.

`model.pt` is a state dict (loadable with `torch.load(weights_only=True)`); the card is
all that is needed to rebuild the network and to feed it as it was trained.
"""

from __future__ import annotations

import hashlib
import pickle
from datetime import date
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gapfill.bands import PAPER_BANDS, S1_POLS
from gapfill.cube.reference import ReferenceRule
from gapfill.errors import InputError
from gapfill.models.generator import Generator, GeneratorConfig
from gapfill.normalize import Normalisation

__all__ = [
    "CARD_CONTRACT_VERSION",
    "MODEL_FILE",
    "ModelCard",
    "save_model",
    "load_model",
    "load_card",
    "weights_sha256",
]

CARD_CONTRACT_VERSION = "1"
MODEL_FILE, CARD_FILE = "model.pt", "model.json"


class ModelCard(BaseModel):
    """What a trained generator is and how it must be fed."""

    model_config = ConfigDict(extra="forbid")

    card_version: str = CARD_CONTRACT_VERSION
    method: str
    task: str
    preset: str
    generator: GeneratorConfig
    input_channels: tuple[str, ...]
    bands: tuple[str, ...] = Field(
        PAPER_BANDS,
        description="the Sentinel-2 bands it reads (O1, O3) and writes, in order: its "
        "training cubes' band set (cards before band sets: the paper's four)",
    )
    polarisations: tuple[str, ...] = S1_POLS
    units: dict[str, str] = Field(
        default_factory=lambda: {"s1": "dB", "s2": "reflectance", "output": "reflectance"}
    )
    normalisation: Normalisation = Normalisation()
    reference: ReferenceRule = ReferenceRule()
    receptive_field_px: int
    training_cubes: tuple[str, ...] = ()
    training_cube_ids: tuple[str, ...] = Field(
        (), description="the cubes' cube_id, in the order of training_cubes"
    )
    training_region: str | None = Field(None, description="WKT (lon/lat); None: everywhere")
    held_out_region: str | None = Field(None, description="WKT (lon/lat) kept out of training")
    training_until: date | None = Field(None, description="last target day; None: every day")
    seed: int = 0
    epochs: int = 0
    metrics: dict[str, float] = Field(default_factory=dict)
    software_version: str = ""
    git_sha: str = ""


def weights_sha256(path: str | Path) -> str:
    """sha256 of `model.pt`: the name products give the model by."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_model(run_dir: str | Path, generator: torch.nn.Module, card: ModelCard) -> Path:
    """Write model.pt then model.json (each via a temp file renamed into place)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{MODEL_FILE}.tmp"
    torch.save({k: v.detach().cpu() for k, v in generator.state_dict().items()}, tmp)
    tmp.replace(run_dir / MODEL_FILE)
    tmp = run_dir / f".{CARD_FILE}.tmp"
    tmp.write_text(card.model_dump_json(indent=2))
    tmp.replace(run_dir / CARD_FILE)
    return run_dir


def load_card(run_dir: str | Path) -> ModelCard:
    """The model card of a run directory, checked, without building the generator."""
    run_dir = Path(run_dir)
    card_path, weights = run_dir / CARD_FILE, run_dir / MODEL_FILE
    if not card_path.is_file() or not weights.is_file():
        raise InputError(
            f"{run_dir} has no {CARD_FILE} + {MODEL_FILE}: give a run directory "
            "written by 'gapfill train'"
        )
    try:
        card = ModelCard.model_validate_json(card_path.read_text())
    except ValidationError as exc:
        raise InputError(
            f"{card_path} is not a model card of version {CARD_CONTRACT_VERSION} "
            f"({exc.errors()[0]['msg']})"
        ) from None
    if card.card_version != CARD_CONTRACT_VERSION:
        raise InputError(
            f"{card_path} is not a model card of version {CARD_CONTRACT_VERSION} (it says "
            f"{card.card_version!r}): retrain, or use the gapfill that wrote it"
        )
    return card


def load_model(run_dir: str | Path) -> tuple[Generator, ModelCard]:
    """Rebuild the generator from the card and load its weights, in eval() mode."""
    card = load_card(run_dir)
    weights = Path(run_dir) / MODEL_FILE
    generator = Generator(card.generator)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(
            f"{weights} cannot be loaded: it holds objects other than tensors (pickled "
            "code?) and gapfill loads weights only; use a model.pt written by 'gapfill train'"
        ) from None
    except Exception as exc:  # corrupt, truncated or not a checkpoint at all
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(
            f"{weights} cannot be loaded: it is not a PyTorch checkpoint ({detail}): "
            "use a model.pt written by 'gapfill train'"
        ) from None
    try:
        generator.load_state_dict(state)
    except Exception as exc:  # a foreign state dict
        raise InputError(
            f"{weights} cannot be loaded into the card's generator "
            f"({str(exc).splitlines()[0][:160]})"
        ) from None
    return generator.eval(), card
