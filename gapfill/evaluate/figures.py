"""One PNG per evaluated target: truth | hidden mask | each method | the model's error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gapfill.fill.quicklook import true_colour

__all__ = ["target_png", "panels_png", "sar_colour"]

_MIN_SIDE = 192
# Absolute error (mean over bands) shown white at this reflectance.
_ERROR_WHITE = 0.1
# Backscatter shown from black to white over these dB (VV, VH).
_SAR_DB = ((-25.0, 0.0), (-32.0, -5.0))


def target_png(
    png: Path, day: str, preds: dict[str, np.ndarray], truth: np.ndarray, mask: np.ndarray
) -> Path:
    """Panels: the observed truth, the hidden pixels (white), each method's fill pasted into
    the truth, and |model - truth| over the hidden pixels."""

    def pasted(pred: np.ndarray) -> np.ndarray:
        return true_colour(np.where(mask[None], pred, truth))

    first = next(iter(preds))
    err = np.abs(preds[first] - truth).mean(axis=0)
    err_img = np.where(mask, np.clip(err / _ERROR_WHITE, 0, 1), 0)
    panels = [("truth " + day, true_colour(truth))]
    panels.append(("hidden", np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)))
    panels += [(name, pasted(p)) for name, p in preds.items()]
    panels.append(
        (f"|{first} - truth|", (np.repeat(err_img[..., None], 3, 2) * 255).astype(np.uint8))
    )
    return panels_png(png, panels)


def panels_png(png: Path, panels: list[tuple[str, np.ndarray]]) -> Path:
    """Images (y, x, 3) uint8 of one size side by side, each under its name; small ones
    enlarged (nearest neighbour) until their short side is at least 192 px."""
    from PIL import Image, ImageDraw

    h, w = panels[0][1].shape[:2]
    zoom = max(1, -(-_MIN_SIDE // min(h, w)))  # ceil
    h, w = h * zoom, w * zoom
    gap, head = 4, 14
    canvas = Image.new("RGB", (len(panels) * (w + gap) - gap, h + head), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (name, img) in enumerate(panels):
        tile = Image.fromarray(img).resize((w, h), Image.Resampling.NEAREST)
        canvas.paste(tile, (i * (w + gap), head))
        draw.text((i * (w + gap) + 2, 1), name, fill=(0, 0, 0))
    canvas.save(png)
    return png


def sar_colour(s1_db: np.ndarray) -> np.ndarray:
    """(y, x, 3) uint8 of backscatter (VV, VH) in dB: red VV, green VH, blue VV - VH
    (the usual dual-pol composite); NaN shows black."""
    vv, vh = (
        np.clip((np.nan_to_num(s1_db[i], nan=lo) - lo) / (hi - lo), 0, 1)
        for i, (lo, hi) in enumerate(_SAR_DB)
    )
    ratio = np.clip(np.nan_to_num(s1_db[0] - s1_db[1], nan=0.0) / 15.0, 0, 1)
    return (np.stack([vv, vh, ratio], axis=-1) * 255).astype(np.uint8)
