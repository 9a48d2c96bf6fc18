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


def build_generator(method: str, preset: str, **overrides: object) -> Generator:
    """The generator of `method` (its input channels) under a named preset."""
    from gapfill.errors import InputError

    if preset not in GENERATOR_PRESETS:
        raise InputError(f"unknown preset {preset!r}: use one of {', '.join(GENERATOR_PRESETS)}")
    m = get_method(method)
    cfg = GeneratorConfig(in_channels=len(m.channels), **{**GENERATOR_PRESETS[preset], **overrides})
    return Generator(cfg)
