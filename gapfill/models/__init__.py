"""The paper's generator (Fig. 2), the PatchGAN discriminator and the four methods."""

from collections.abc import Sequence

from gapfill.bands import PAPER_BANDS
from gapfill.errors import InputError
from gapfill.models.discriminator import PatchDiscriminator, patch_receptive_field
from gapfill.models.generator import (
    GENERATOR_PRESETS,
    Generator,
    GeneratorConfig,
    receptive_field,
)
from gapfill.models.methods import (
    METHODS,
    Method,
    gan_loss,
    get_method,
    input_channels,
    masked_l1,
    train_step,
)
from gapfill.models.stats import conv_flops, parameter_count

__all__ = [
    "GENERATOR_PRESETS",
    "METHODS",
    "Generator",
    "GeneratorConfig",
    "Method",
    "PatchDiscriminator",
    "build_generator",
    "conv_flops",
    "gan_loss",
    "get_method",
    "input_channels",
    "masked_l1",
    "parameter_count",
    "patch_receptive_field",
    "receptive_field",
    "train_step",
]


def build_generator(
    method: str,
    preset: str,
    *,
    residual: bool = False,
    both: bool = False,
    bands: Sequence[str] = PAPER_BANDS,
    **overrides: object,
) -> Generator:
    """The generator of `method` under a named preset for a cube of `bands` (its first
    layer reads them, its last writes them; the paper's four by default: the `paper`
    preset on them is the paper's network); `both`: it also reads the later reference
    (rule `both`); `residual`: it predicts a correction to its reference (O1, or the
    interpolation of O1 and O3 under `both`; Task B methods only)."""
    if preset not in GENERATOR_PRESETS:
        raise InputError(f"unknown preset {preset!r}: use one of {', '.join(GENERATOR_PRESETS)}")
    m = get_method(method)
    if (residual or both) and m.task != "B":
        raise InputError(
            f"{method} reads no reference: residual learning and the reference rule 'both' "
            "need mtcnn or mtcgan"
        )
    channels = input_channels(m.task, both, bands)
    overrides.setdefault("out_channels", len(bands))
    if residual:
        overrides["residual_channels"] = tuple(channels.index(f"O1:{b}") for b in bands)
        if both:
            overrides["residual_next_channels"] = tuple(channels.index(f"O3:{b}") for b in bands)
            overrides["residual_weight_channels"] = tuple(
                channels.index(c) for c in ("age:t1", "age:t3", "avail:t3")
            )
    cfg = GeneratorConfig(in_channels=len(channels), **{**GENERATOR_PRESETS[preset], **overrides})
    return Generator(cfg)
