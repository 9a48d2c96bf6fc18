"""The paper's generator (Fig. 2), the PatchGAN discriminator and the four methods."""

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
    "masked_l1",
    "parameter_count",
    "patch_receptive_field",
    "receptive_field",
    "train_step",
]


def build_generator(
    method: str, preset: str, *, residual: bool = False, **overrides: object
) -> Generator:
    """The generator of `method` (its input channels) under a named preset; `residual`:
    it predicts a correction to the reference O1 it is given (Task B methods only)."""
    from gapfill.bands import S2_BANDS
    from gapfill.errors import InputError

    if preset not in GENERATOR_PRESETS:
        raise InputError(f"unknown preset {preset!r}: use one of {', '.join(GENERATOR_PRESETS)}")
    m = get_method(method)
    if residual:
        if m.task != "B":
            raise InputError(
                f"residual learning corrects a reference, and {method} has none: use mtcnn "
                "or mtcgan, or residual: false"
            )
        overrides["residual_channels"] = tuple(m.channels.index(f"O1:{b}") for b in S2_BANDS)
    cfg = GeneratorConfig(in_channels=len(m.channels), **{**GENERATOR_PRESETS[preset], **overrides})
    return Generator(cfg)
