"""One PNG per evaluated target: truth | hidden mask | each method | the model's error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gapfill.fill.quicklook import true_colour

__all__ = ["target_png"]

_MIN_SIDE = 192
# Absolute error (mean over bands) shown white at this reflectance.
_ERROR_WHITE = 0.1


def target_png(
    png: Path, day: str, preds: dict[str, np.ndarray], truth: np.ndarray, mask: np.ndarray
) -> Path:
    """Panels: the observed truth, the hidden pixels (white), each method's fill pasted into
    the truth, and |model - truth| over the hidden pixels."""
    from PIL import Image, ImageDraw

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
    h, w = mask.shape
    zoom = max(1, _MIN_SIDE // max(h, w))
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
