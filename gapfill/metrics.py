"""PSNR, SSIM, SAM (the paper's MSA) and RMSE on reflectance, through torchmetrics.

Below train, fill and evaluate: training validates with `image_metrics`, evaluation and
the demo score hidden pixels with `masked_scores`. One way of calling torchmetrics, so
that every figure gapfill prints is computed the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    spectral_angle_mapper,
    structural_similarity_index_measure,
)

__all__ = [
    "image_metrics",
    "Scores",
    "masked_scores",
    "spread_calibration",
    "mean_interval",
    "METRICS",
    "HIGHER_IS_BETTER",
    "Z90",
]

METRICS = ("psnr", "ssim", "sam_deg", "rmse")
# Half-width of a two-sided 90 % interval of a normal distribution, in standard deviations.
Z90 = 1.645
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "sam_deg": False, "rmse": False}


def image_metrics(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and SAM (degrees) of (N, bands, H, W) reflectance images."""
    pred = pred.clamp(0, data_range).double()
    target = target.clamp(0, data_range).double()
    psnr = peak_signal_noise_ratio(
        pred, target, data_range=data_range, dim=(1, 2, 3), reduction="elementwise_mean"
    )
    ssim = structural_similarity_index_measure(pred, target, data_range=data_range)
    sam = spectral_angle_mapper(pred.clamp_min(1e-6), target.clamp_min(1e-6))
    return {"psnr": _scalar(psnr), "ssim": _scalar(ssim), "sam_deg": _scalar(sam) * 180 / torch.pi}


@dataclass(frozen=True)
class Scores:
    """Scores of one image over a mask: PSNR (dB) and SSIM per band averaged over bands
    (as the paper), SAM in degrees averaged over pixels, RMSE over bands and pixels."""

    psnr: float
    ssim: float
    sam_deg: float
    rmse: float
    pixels: int

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def masked_scores(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, data_range: float
) -> Scores:
    """Scores of `pred` against `truth` (bands, H, W reflectance) on the pixels of `mask`
    (H, W). SSIM is torchmetrics' SSIM map of each band (the image outside the mask set
    to the truth, so the map sees the prediction in its context) averaged over the mask."""
    if not mask.any():
        raise ValueError("masked_scores: empty mask")
    p = torch.from_numpy(np.clip(pred, 0, data_range)).double()
    t = torch.from_numpy(np.clip(truth, 0, data_range)).double()
    m = torch.from_numpy(np.asarray(mask, bool))
    pv, tv = p[:, m], t[:, m]  # (bands, pixels)
    psnr = float(
        peak_signal_noise_ratio(pv, tv, data_range=data_range, dim=1, reduction="elementwise_mean")
    )
    whole = torch.where(m, p, t)
    _, ssim_map = structural_similarity_index_measure(
        whole[:, None], t[:, None], data_range=data_range, return_full_image=True
    )
    ssim = float(ssim_map[:, 0][:, m].mean())
    sam = float(
        spectral_angle_mapper(
            pv.clamp_min(1e-6)[None, :, :, None], tv.clamp_min(1e-6)[None, :, :, None]
        )
    )
    rmse = float(torch.sqrt(((pv - tv) ** 2).mean()))
    return Scores(psnr, ssim, sam * 180 / np.pi, rmse, int(m.sum()))


def _scalar(value: object) -> float:
    assert isinstance(value, torch.Tensor)
    return float(value)


def spread_calibration(errors: np.ndarray, sigma: np.ndarray) -> dict[str, float | None]:
    """How well a predicted spread `sigma` describes `errors` (prediction - truth), both
    flat arrays of the same values (pixels x bands): `coverage` the share of errors
    inside ±1.645 σ (a calibrated Gaussian spread gives 0.90); `correlation` Pearson's r
    of σ with |error| (does a larger σ mark a worse pixel?); `scale_for_90` the factor
    on σ that would make the coverage 90 % (None where none would); `zero_sigma_share`
    how often σ is exactly 0; `values` how many were compared."""
    errors = np.abs(np.asarray(errors, np.float64).ravel())
    sigma = np.asarray(sigma, np.float64).ravel()
    ok = np.isfinite(errors) & np.isfinite(sigma)
    errors, sigma = errors[ok], sigma[ok]
    if errors.size == 0:
        raise ValueError("no finite (error, sigma) pair to compare")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sigma > 0, errors / sigma, np.where(errors > 0, np.inf, 0.0))
    corr = (
        float(np.corrcoef(sigma, errors)[0, 1])
        if errors.size > 1 and sigma.std() > 0 and errors.std() > 0
        else float("nan")
    )
    scale = float(np.quantile(ratio, 0.9, method="higher") / Z90)
    return {
        "coverage": float((ratio <= Z90).mean()),
        "correlation": corr,
        # None: no finite scale covers 90 % (σ is 0 where over 10 % of the errors are not)
        "scale_for_90": scale if np.isfinite(scale) else None,
        "zero_sigma_share": float((sigma == 0).mean()),
        "values": int(errors.size),
    }


def mean_interval(values: np.ndarray, n: int, seed: int) -> dict[str, float]:
    """Mean of per-day `values` and its bootstrap 90 % interval (days resampled `n` times
    with replacement, from `seed`): how much the mean depends on which days were scored."""
    values = np.asarray(values, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(values), (n, len(values)))
    means = values[idx].mean(axis=1)
    return {
        "mean": float(values.mean()),
        "low": float(np.percentile(means, 5)),
        "high": float(np.percentile(means, 95)),
    }
