"""The pix2pix 70x70 PatchGAN discriminator (Isola et al.), conditioned on the input.

C64-C128-C256-C512 (4x4 convs, strides 2, 2, 2, 1, LeakyReLU 0.2, no norm on the
first layer) and a 4x4 conv to one logit per patch; it sees (input, output) stacked.
"""

from __future__ import annotations

import torch
from torch import nn

from gapfill.models.generator import Norm, norm_layer

__all__ = ["PatchDiscriminator", "patch_receptive_field"]


class PatchDiscriminator(nn.Module):
    """Logits (N, 1, H', W'), one per 70x70 patch of (condition, image)."""

    def __init__(self, in_channels: int, width: int = 64, norm: Norm = "batch") -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        cin = width
        for mult, stride in ((2, 2), (4, 2), (8, 1)):
            layers += [
                nn.Conv2d(cin, width * mult, 4, stride=stride, padding=1, bias=False),
                norm_layer(norm, width * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            cin = width * mult
        layers.append(nn.Conv2d(cin, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, image], dim=1))


def patch_receptive_field(model: PatchDiscriminator) -> int:
    """Receptive field of one output logit, in input pixels (70 for pix2pix)."""
    rf, jump = 1, 1
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            rf += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return rf
