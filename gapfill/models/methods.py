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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gapfill.bands import PAPER_BANDS, S1_POLS
from gapfill.errors import InputError

__all__ = [
    "Method",
    "METHODS",
    "get_method",
    "masked_l1",
    "gan_loss",
    "input_channels",
    "train_step",
]

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
        """Input channel order on the paper's bands (Task B: S1_t2, S1_t1, O1; Task A:
        S1_t2); `input_channels` gives them for any band set."""
        return input_channels(self.task)


def input_channels(
    task: str, both: bool = False, bands: Sequence[str] = PAPER_BANDS
) -> tuple[str, ...]:
    """The generator's input channels, in order, named `<source>:<band>`, for a cube of
    `bands` (the paper's four by default). With the reference rule `both` (Task B), the
    later side follows: S1_t3, O3, the ages of both references and whether the later one
    exists (`gapfill.normalize.model_input`)."""
    s1_t2 = tuple(f"S1_t2:{p}" for p in S1_POLS)
    if task == "A":
        return s1_t2
    causal = (*s1_t2, *(f"S1_t1:{p}" for p in S1_POLS), *(f"O1:{b}" for b in bands))
    if not both:
        return causal
    later = (*(f"S1_t3:{p}" for p in S1_POLS), *(f"O3:{b}" for b in bands))
    return (*causal, *later, "age:t1", "age:t3", "avail:t3")


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


def train_step(
    g: nn.Module,
    d: nn.Module | None,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    l1_weight: float,
    bf16: bool = False,
) -> dict[str, torch.Tensor]:
    """One pix2pix update: D on (real, fake.detach()), then G on λ·masked L1 (+ fooling D).

    G's adversarial term runs the bare discriminator with its weights frozen (pix2pix's
    `set_requires_grad(netD, False)`): no D weight gradients are computed for the G
    update, and none are all-reduced — D's DDP wrapper syncs only its own step.
    Losses come back as detached scalars: no host sync per step on a GPU.
    """
    x, y, m = batch
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16)
    losses: dict[str, torch.Tensor] = {}
    with autocast:
        fake = g(x)
    if d is not None and opt_d is not None:
        with autocast:
            loss_d = 0.5 * (gan_loss(d(x, y), True) + gan_loss(d(x, fake.detach()), False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        losses["loss_d"] = loss_d.detach()
    with autocast:
        l1 = masked_l1(fake.float(), y, m)
        loss_g = l1_weight * l1 if d is not None else l1
    if d is not None:
        bare = getattr(d, "module", d)  # the network inside a DDP wrapper
        bare.requires_grad_(False)
        with autocast:
            loss_g = loss_g + gan_loss(bare(x, fake), True)
        bare.requires_grad_(True)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    losses["loss_g"] = loss_g.detach()
    losses["loss_l1"] = l1.detach()
    return losses
