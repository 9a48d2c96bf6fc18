"""Day calibration: fit a fill to the clear pixels of its own day.

A filled pixel's day is rarely all cloud: its clear pixels say how the scene moved since
the reference (phenology, sun angle, haze, a sensor's offset), which no reference alone
can know. Per band, a fill (the model's or a baseline's, computed on every pixel) is
mapped onto the day's observation by linear regressions fitted on the clear pixels
around each pixel, coarse to fine (Gaussian kernels of `scales_px`), each weighted by the
clear share it saw, then shifted by the residual of the nearest clear pixels (`local_px`): the local
linear histogram matching of Landsat 7 SLC-off gap filling, on top of any fill. Deep
inside a cloud wider than the coarsest kernel the fill fades smoothly back to itself.
Clear pixels within `buffer_px` of a cloud can be left out of the fit (off by default:
the cube's cloud mask is already dilated).

Every statistic is a truncated Gaussian sum over a fixed neighbourhood, so a pixel's
result depends only on the pixels within `halo_px` of it: a fill task reads that much
context around its chunk, and chunk borders leave no seams.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import ndimage

__all__ = ["Calibration", "calibrate", "fit_mask"]


class Calibration(BaseModel):
    """How a fill is fitted to its day's clear pixels (recorded in the product)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    scales_px: tuple[float, ...] = Field(
        (16.0, 4.0), min_length=1, description="Gaussian widths (sigma) of the fits, coarse to fine"
    )
    local_px: float = Field(4.0, gt=0, description="Gaussian width of the residual shift")
    truncate: float = Field(2.0, gt=0, description="kernels end this many sigmas out")
    buffer_px: int = Field(
        0,
        ge=0,
        description="clear pixels this near a cloud are not used (the cube's cloud mask is "
        "already dilated)",
    )
    min_share: float = Field(
        0.05, gt=0, description="a fit over a clear share s of its kernel weighs s/(s+min_share)"
    )
    slope_floor: float = Field(
        1e-4, gt=0, description="reflectance variance added to the fit: slope -> 1 on flat fills"
    )

    @field_validator("scales_px")
    @classmethod
    def _sizes(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(s <= 0 for s in v) or list(v) != sorted(v, reverse=True):
            raise ValueError("scales_px: positive widths, coarse to fine")
        return v

    def _radius(self, sigma: float) -> int:
        return int(self.truncate * sigma + 0.5)

    @property
    def halo_px(self) -> int:
        """Context a pixel's result depends on, each side."""
        if not self.enabled:
            return 0
        # the residual shift reads the fitted estimate one local radius away, which reads
        # clear pixels up to the coarsest radius away from there
        coarse = self._radius(max(self.scales_px))
        return coarse + self._radius(self.local_px) + self.buffer_px


def fit_mask(clear: np.ndarray, has_data: np.ndarray, buffer_px: int) -> np.ndarray:
    """Pixels of a day (y, x) a calibration may fit on: observed clear, and at least
    `buffer_px` from any observed non-clear pixel."""
    good = clear & has_data
    if buffer_px:
        near_cloud = ndimage.binary_dilation(has_data & ~clear, iterations=buffer_px)
        good &= ~near_cloud
    return good


def calibrate(
    fill: np.ndarray, observed: np.ndarray, fit: np.ndarray, cfg: Calibration
) -> np.ndarray:
    """`fill` (band, y, x) fitted to `observed` (band, y, x) on the pixels `fit` (y, x);
    NaN stays NaN. Returns float32; the fill itself where calibration is off or no clear
    pixel lies within reach.

    Per band and kernel width (coarse to fine), a Gaussian-weighted linear fit over the
    clear pixels around each pixel pulls the running estimate towards itself with weight
    s/(s + min_share) (s: the kernel's clear share), so the estimate moves smoothly from
    the fill itself (no clear pixel near) through coarse to fine fits; then the weighted
    residual of the nearest clear pixels (`local_px`) shifts it, weighted the same way.
    """
    if not cfg.enabled or not fit.any():
        return fill

    def smooth(a: np.ndarray, sigma: float) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma, mode="constant", cval=0.0, truncate=cfg.truncate)

    out = fill.astype(np.float32, copy=True)
    for b in range(fill.shape[0]):
        p = fill[b].astype(np.float64)
        q = observed[b].astype(np.float64)
        m = fit & np.isfinite(p) & np.isfinite(q)
        if not m.any():
            continue
        w = m.astype(np.float64)
        pz, qz = np.where(m, p, 0.0), np.where(m, q, 0.0)
        pf = np.where(np.isfinite(p), p, 0.0)
        est = pf
        for sigma in cfg.scales_px:
            share = smooth(w, sigma)
            safe = np.maximum(share, 1e-12)
            mp, mq = smooth(pz, sigma) / safe, smooth(qz, sigma) / safe
            var = smooth(pz * pz, sigma) / safe - mp * mp
            cov = smooth(pz * qz, sigma) / safe - mp * mq
            slope = (np.maximum(cov, 0.0) + cfg.slope_floor) / (
                np.maximum(var, 0.0) + cfg.slope_floor
            )
            weight = share / (share + cfg.min_share)
            est = est + weight * (mq + slope * (pf - mp) - est)
        share = smooth(w, cfg.local_px)
        shift = smooth(np.where(m, q - est, 0.0), cfg.local_px) / (share + cfg.min_share)
        out[b] = np.where(np.isfinite(p), est + shift, np.nan).astype(np.float32)
    return out
