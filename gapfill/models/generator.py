"""The generator of He & Yokoya, Fig. 2 and section II-C, and smaller named presets.

Stride 1, no pooling, zero padding, so the output has the input's size:
Conv-BN-ReLU n64k7 -> n128k3 -> n256k3; 9 residual blocks at 256 features;
n128k3 -> n64k3 -> n4k7 with tanh.

The paper writes each residual block as "Conv-BN-ReLU-Drop-Conv-ReLU" [Johnson et al.].
Under the `paper` preset we follow the text literally and put that last ReLU INSIDE the
residual branch, before the addition: y = x + ReLU(Conv(Drop(ReLU(BN(Conv(x)))))). The
variant `block="johnson"` follows the cited work instead: y = x + BN(Conv(Drop(ReLU(BN(Conv(x)))))).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

__all__ = ["GeneratorConfig", "Generator", "GENERATOR_PRESETS", "receptive_field"]

Norm = Literal["batch", "instance", "none"]


class GeneratorConfig(BaseModel):
    """Architecture of the generator; the model card stores it, so it rebuilds the net."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    in_channels: int = Field(8, ge=1)
    out_channels: int = Field(4, ge=1)
    widths: tuple[int, int, int] = (64, 128, 256)
    kernels: tuple[int, int, int] = (7, 3, 3)
    blocks: int = Field(9, ge=0)
    dropout: float = Field(0.5, ge=0, lt=1)
    norm: Norm = "batch"
    block: Literal["paper", "johnson"] = "paper"
    residual_channels: tuple[int, ...] = Field(
        (),
        description="residual learning (beyond the paper): the output is these input "
        "channels (the reference O1, normalised) plus a learned correction, clipped to "
        "[-1, 1]; empty: the paper's tanh output",
    )
    residual_next_channels: tuple[int, ...] = Field(
        (),
        description="rule both: the later reference O3; the base becomes the time-weighted "
        "interpolation of O1 and O3 where O3 is available",
    )
    residual_weight_channels: tuple[int, ...] = Field(
        (), description="rule both: the input channels age:t1, age:t3, avail:t3"
    )
    blend: bool = Field(
        False,
        description="rule both, residual: one more output channel moves each pixel's "
        "interpolation weight between O1 and O3 (zero: the time weight) before the "
        "correction is added — which side a date resembles is what its SAR tells",
    )


_TINY: dict = {"widths": (8, 16, 16), "kernels": (3, 3, 3), "blocks": 1}

# `paper` follows the text; the others are smaller, for CPUs and tests, and say so.
# `cpu-tiny` and `test-tiny` share one net; their training presets differ (train/config.py).
GENERATOR_PRESETS: dict[str, dict] = {
    "paper": {},
    "cpu-small": {"widths": (32, 64, 96), "blocks": 4},
    "cpu-tiny": _TINY,
    "test-tiny": _TINY,
}


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """BatchNorm (the paper; per pixel in eval(), so tiles are exact), InstanceNorm, or
    none (small residual nets: training and inference compute the same thing)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    return nn.InstanceNorm2d(channels, affine=True)


def _conv_bn_relu(cin: int, cout: int, k: int, norm: Norm) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, padding_mode="zeros"),
        norm_layer(norm, cout),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """One residual block at constant width (see the module docstring for the variant)."""

    def __init__(self, channels: int, dropout: float, norm: Norm, kind: str) -> None:
        super().__init__()
        tail: list[nn.Module] = [nn.Conv2d(channels, channels, 3, padding=1)]
        tail.append(nn.ReLU() if kind == "paper" else norm_layer(norm, channels))
        self.branch = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            *tail,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Generator(nn.Module):
    """Fully convolutional: any input height and width gives the same output size."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = cfg.widths
        k1, k2, k3 = cfg.kernels
        self.encoder = nn.Sequential(
            _conv_bn_relu(cfg.in_channels, w1, k1, cfg.norm),
            _conv_bn_relu(w1, w2, k2, cfg.norm),
            _conv_bn_relu(w2, w3, k3, cfg.norm),
        )
        self.blocks = nn.Sequential(
            *[ResidualBlock(w3, cfg.dropout, cfg.norm, cfg.block) for _ in range(cfg.blocks)]
        )
        if cfg.norm == "none":
            self._init_without_norm()
        if cfg.blend and not cfg.residual_next_channels:
            raise ValueError("blend needs the later reference (rule both, residual)")
        head = nn.Conv2d(w1, cfg.out_channels + int(cfg.blend), k1, padding=k1 // 2)
        if cfg.residual_channels:
            if len(cfg.residual_channels) != cfg.out_channels:
                raise ValueError("residual_channels must name one input per output channel")
            # A zero correction at the start: the untrained net returns its reference.
            nn.init.zeros_(head.weight)
            assert head.bias is not None
            nn.init.zeros_(head.bias)
        self.decoder = nn.Sequential(
            _conv_bn_relu(w3, w2, k3, cfg.norm),
            _conv_bn_relu(w2, w1, k2, cfg.norm),
            head,
            *([] if cfg.residual_channels else [nn.Tanh()]),
        )

    def _init_without_norm(self) -> None:
        """Without normalisation PyTorch's default conv init shrinks the signal at every
        layer (measured: 96 % of the last features zero after training). He init keeps
        its scale through the ReLUs, and each residual branch starts close to zero, so
        every block starts close to the identity.

        Close to, not at: the `paper` block ends its branch in a ReLU, and a ReLU of
        exactly zero passes no gradient, so a zeroed last conv would never train (until
        0.1.0's cpu-tiny/cpu-small runs, every residual block stayed the identity and
        its dropout did nothing). Its last conv keeps 1 % of its He init instead; the
        `johnson` block, with no ReLU after that conv, starts it at zero."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                assert m.bias is not None
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            last = [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1]
            with torch.no_grad():
                last.weight.mul_(0.01 if self.cfg.block == "paper" else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.blocks(self.encoder(x)))
        if not self.cfg.residual_channels:
            return out
        if self.cfg.blend:
            return torch.clamp(self.baseline(x, out[:, -1:]) + out[:, :-1], -1.0, 1.0)
        return torch.clamp(self.baseline(x) + out, -1.0, 1.0)

    def baseline(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """What a residual generator corrects: O1, or under rule `both` the time-weighted
        interpolation of O1 and O3 where O3 exists (the `interpolate` baseline); `shift`
        (blend) moves each pixel's weight, kept within [0, 1]."""
        base = x[:, list(self.cfg.residual_channels)]
        if not self.cfg.residual_next_channels:
            return base
        later = x[:, list(self.cfg.residual_next_channels)]
        a1, a3, avail = (x[:, i : i + 1] for i in self.cfg.residual_weight_channels)
        w = a1 / (a1 + a3).clamp_min(1e-6)
        if shift is not None:
            w = torch.clamp(w + shift, 0.0, 1.0)
        return base + avail * w * (later - base)


def receptive_field(model: nn.Module) -> int:
    """Receptive field in pixels of a stride-1 conv net: 1 + sum of (kernel - 1)."""
    rf = 1
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.stride == (1, 1) and m.dilation == (1, 1), "stride-1 nets only"
            rf += m.kernel_size[0] - 1
    return rf
