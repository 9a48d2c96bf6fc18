"""Model size figures for the model card and the benchmarks: parameters and FLOPs."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["parameter_count", "conv_flops"]


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conv_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Forward FLOPs (2 x multiply-adds) of the convolutions for one input of `shape`."""
    total = 0

    def hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        per_output = 2 * (m.in_channels // m.groups) * kh * kw
        total += per_output * out.numel()

    # A copy on the meta device: shapes only, no memory, no arithmetic.
    probe = copy.deepcopy(model).to("meta").eval()
    for m in probe.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        probe(torch.zeros(shape, device="meta"))
    return total
