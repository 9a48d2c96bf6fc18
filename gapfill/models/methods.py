"""The paper's four methods (section II) and their losses.

| name   | input               | loss            |
| cnn    | S1_t2               | L1              |
| cgan   | S1_t2               | cGAN + 100 * L1 |
| mtcnn  | S1_t2, S1_t1, O1    | L1              |
| mtcgan | S1_t2, S1_t1, O1    | cGAN + 100 * L1 |

L1 is masked to the target's clear pixels. The cGAN loss is pix2pix's binary cross-
entropy (the paper's Eq. 1 has a typo, "1 - log D").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from gapfill.bands import S1_POLS, S2_BANDS
from gapfill.errors import InputError

__all__ = ["Method", "METHODS", "get_method", "masked_l1", "gan_loss", "input_channels"]

MethodName = Literal["cnn", "cgan", "mtcnn", "mtcgan"]
LAMBDA_L1 = 100.0


@dataclass(frozen=True)
class Method:
    """What a method feeds the generator and how it is trained."""

    name: MethodName
    task: Literal["A", "B"]
    adversarial: bool
    l1_weight: float = LAMBDA_L1

    @property
    def channels(self) -> tuple[str, ...]:
        """Input channel order (Task B: S1_t2, S1_t1, O1; Task A: S1_t2)."""
        return input_channels(self.task)


def input_channels(task: str) -> tuple[str, ...]:
    """The generator's input channels, in order, named `<source>:<band>`."""
    s1_t2 = tuple(f"S1_t2:{p}" for p in S1_POLS)
    if task == "A":
        return s1_t2
    return (*s1_t2, *(f"S1_t1:{p}" for p in S1_POLS), *(f"O1:{b}" for b in S2_BANDS))


METHODS: dict[str, Method] = {
    "cnn": Method("cnn", "A", False),
    "cgan": Method("cgan", "A", True),
    "mtcnn": Method("mtcnn", "B", False),
    "mtcgan": Method("mtcgan", "B", True),
}


def get_method(name: str) -> Method:
    """The method called `name`; unknown names raise a user error listing the choices."""
    try:
        return METHODS[name]
    except KeyError:
        raise InputError(f"unknown method {name!r}: use one of {', '.join(METHODS)}") from None


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the pixels where mask (N, 1, H, W) is true, all bands."""
    m = mask.to(pred.dtype).expand_as(pred)
    return (m * (pred - target).abs()).sum() / m.sum().clamp_min(1.0)


def gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """pix2pix BCE on patch logits against all-real or all-fake labels."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)
