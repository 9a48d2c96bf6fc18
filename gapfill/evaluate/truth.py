"""Score a filled product against the synthetic world's true cloud-free images.

For every filled day: PSNR and SAM over the filled pixels, SSIM over the whole image
(pixels that were not filled are the truth in both images, so SSIM measures the filled
parts in their context), for the product and for the O1 baseline (the same per-pixel
reference the model was given, copied as the answer). Reads whole days: meant for
demo- and test-sized regions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import xarray as xr
from rasterio.windows import from_bounds
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    spectral_angle_mapper,
    structural_similarity_index_measure,
)

from gapfill import store
from gapfill.cube import layout
from gapfill.cube.reference import compose_reference, pick_reference
from gapfill.errors import InputError
from gapfill.evaluate._region import region_mask
from gapfill.fill import product
from gapfill.models.card import ModelCard

__all__ = ["score_against_truth"]


def _truth(
    world: Path, grid_bounds: tuple[float, ...], bands: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Per day, the world's true reflectance (band of `bands`, y, x) on the grid."""
    index_path = world / "truth" / "index.json"
    if not index_path.is_file():
        raise InputError(f"{world} has no truth/index.json: give a 'gapfill synth world' folder")
    out = {}
    for entry in json.loads(index_path.read_text()).values():
        lacking = [b for b in bands if b not in entry["bands"]]
        if lacking:
            raise InputError(
                f"{index_path} holds bands {entry['bands']}, not {', '.join(lacking)}: give a "
                "world written by this gapfill's 'gapfill synth world'"
            )
        with rasterio.open(world / "truth" / entry["path"]) as src:
            win = from_bounds(*grid_bounds, transform=src.transform)
            data = src.read(
                [list(entry["bands"]).index(b) + 1 for b in bands],
                window=win.round_offsets().round_lengths(),
            )
        out[entry["datetime"][:10]] = data.astype(np.float32) * float(entry["scale_factor"])
    return out


def _pixel_scores(pred: np.ndarray, truth: np.ndarray, rng: float) -> dict[str, float]:
    """PSNR and SAM of (bands, pixels) reflectance."""
    p = torch.from_numpy(np.clip(pred, 0, rng)).double()
    t = torch.from_numpy(np.clip(truth, 0, rng)).double()
    psnr = peak_signal_noise_ratio(p, t, data_range=rng)
    # (bands, pixels) as a (1, bands, pixels, 1) image: SAM is per pixel.
    sam = spectral_angle_mapper(
        p.clamp_min(1e-6)[None, :, :, None], t.clamp_min(1e-6)[None, :, :, None]
    )
    return {"psnr": round(float(psnr), 3), "sam_deg": round(float(sam) * 180 / np.pi, 3)}


def _scores(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, rng: float) -> dict[str, float]:
    """PSNR/SAM over `mask` pixels, SSIM over the image with the rest set to the truth."""
    whole = np.where(mask, pred, truth)
    ssim = structural_similarity_index_measure(
        torch.from_numpy(np.clip(whole, 0, rng))[None].double(),
        torch.from_numpy(np.clip(truth, 0, rng))[None].double(),
        data_range=rng,
    )
    return {
        **_pixel_scores(pred[:, mask], truth[:, mask], rng),
        "ssim": round(float(ssim), 4),  # type: ignore[arg-type]
    }


def score_against_truth(
    filled: str | Path, world: str | Path, region: str | None = None
) -> dict[str, Any]:
    """Per filled day and over all filled pixels (inside `region`, an AOI in lon/lat, when
    given: e.g. the region held out of training): the product and the O1 baseline."""
    ds = xr.open_zarr(filled)
    inside = region_mask(ds, region)
    cube = layout.open_cube(ds.attrs[store.SOURCE_CUBE_ATTR], chunks=None)
    card = ModelCard.model_validate_json(ds.attrs[product.MODEL_CARD_ATTR])
    rng = card.normalisation.reflectance_max
    truth = _truth(Path(world), tuple(layout.grid_of(ds).bounds), layout.bands_of(ds))
    times = cube["time"].values
    status = ds[product.STATUS].values
    clear, orbit = cube[layout.CLEAR].values, cube[layout.S1_ORBIT].values
    s2_all = cube[layout.S2].values.astype(np.float32)
    s1_all = cube[layout.S1].values
    per_day: dict[str, Any] = {}
    preds, bases, truths = [], [], []
    for t, when in enumerate(times):
        day = str(when)[:10]
        mask = (status[t] == product.FILLED) & bool(ds[product.COMPLETE].values[t]) & inside
        if not mask.any() or day not in truth:
            continue
        pred = ds[product.S2].isel(time=t).values.astype(np.float32)
        ref, _ = pick_reference(times, t, clear, orbit, card.reference)
        o1, _ = compose_reference(ref, s2_all, s1_all)
        per_day[day] = {
            "filled_px": int(mask.sum()),
            "model": _scores(pred, truth[day], mask, rng),
            "o1": _scores(o1, truth[day], mask, rng),
        }
        preds.append(pred[:, mask])
        bases.append(o1[:, mask])
        truths.append(truth[day][:, mask])
    if not per_day:
        raise InputError(f"{filled} has no filled pixel on a day of {world}'s truth")
    target = np.concatenate(truths, axis=1)
    overall = {
        "model": _pixel_scores(np.concatenate(preds, axis=1), target, rng),
        "o1": _pixel_scores(np.concatenate(bases, axis=1), target, rng),
    }
    return {"days": per_day, "overall": overall, "filled_px": int(target.shape[1])}
