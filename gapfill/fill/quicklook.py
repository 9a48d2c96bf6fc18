"""Quicklooks of a filled product: a colour composite before / after / status, side by side.

True colour (B04, B03, B02) where the store holds those bands, else a named false colour
(B11, B8A, B05: SWIR, NIR, red edge); the image says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from gapfill import store
from gapfill.bands import PAPER_BANDS, TRUE_COLOUR, display_bands
from gapfill.cube import layout
from gapfill.errors import InputError
from gapfill.fill import product
from gapfill.storage import require_writable

__all__ = ["quicklook", "quicklook_dir", "true_colour", "composite", "STATUS_RGB"]

MAX_SIDE = 1024
MIN_SIDE = 256
# Reflectance shown as white (true colour; infrared composites are brighter); a gamma
# brightens vegetation and soil.
_WHITE, _WHITE_INFRARED, _GAMMA = 0.3, 0.5, 1 / 1.6
STATUS_RGB = {
    product.NODATA: (0, 0, 0),
    product.CLEAR: (150, 150, 150),
    product.FILLED: (40, 190, 90),
    product.UNFILLED: (220, 50, 50),
}


def quicklook_dir(out: str | Path) -> Path:
    """`filled.zarr` -> `filled-quicklooks/` in the same folder."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".zarr") + "-quicklooks")


def composite(s2: np.ndarray, bands: Sequence[str]) -> tuple[np.ndarray, str]:
    """(y, x, 3) uint8 composite of reflectance (band, y, x) of `bands` and its name: true
    colour where B02-B04 exist, else a false colour (`gapfill.bands.display_bands`); NaN
    shows black."""
    rgb, name = display_bands(bands)
    arr = np.asarray(s2, np.float32)[[list(bands).index(b) for b in rgb]]
    white = _WHITE if rgb == TRUE_COLOUR else _WHITE_INFRARED
    img = np.clip(np.nan_to_num(arr, nan=0.0) / white, 0, 1) ** _GAMMA
    return (img.transpose(1, 2, 0) * 255).astype(np.uint8), name


def true_colour(s2: np.ndarray, bands: Sequence[str] = PAPER_BANDS) -> np.ndarray:
    """(y, x, 3) uint8 true colour of reflectance (band, y, x) of `bands` (a set holding
    B02-B04); NaN shows black."""
    img, name = composite(s2, bands)
    if not name.startswith("true colour"):
        raise ValueError(f"no true colour from bands {list(bands)}")
    return img


def _observed(ds: xr.Dataset, t: int, space: dict[str, slice]) -> xr.DataArray | None:
    """The cube's observation of day `t` where the product's cube is still at the path it
    records and is that cube (same id) with that day; None otherwise (moved, replaced)."""
    cube_path = ds.attrs.get(store.SOURCE_CUBE_ATTR, "")
    if not cube_path or not Path(cube_path).exists():
        return None
    try:
        cube = layout.open_cube(cube_path)
    except InputError:
        return None
    when = ds["time"].values[t]
    if cube.attrs.get(layout.CUBE_ID) != ds.attrs.get(layout.CUBE_ID) or when not in set(
        cube["time"].values
    ):
        return None
    return cube[layout.S2].sel(time=when).isel(space)


def quicklook(filled: str | Path, day: str, png: str | Path) -> Path:
    """Write a PNG of `day`: the cube's observation (clouds included, when the cube is
    reachable; else the product's clear pixels), the filled image and the status flags."""
    from PIL import Image, ImageDraw

    require_writable(png, "--out")
    if Path(png).is_dir():
        raise InputError(f"--out {png} is a folder: give the PNG file to write")
    try:
        ds = xr.open_zarr(filled)
    except Exception:
        raise InputError(
            f"{filled} is not a Zarr store: give a product of 'gapfill fill'"
        ) from None
    store.require(ds.attrs, store.PRODUCT, str(filled), "give a product of 'gapfill fill'")
    if ds.attrs.get(store.PRODUCT_CONTRACT_ATTR) not in product.READABLE_PRODUCT_CONTRACTS:
        raise InputError(f"{filled} is a gapfill product of a contract this gapfill cannot read")
    days = [str(t)[:10] for t in ds["time"].values]
    if day not in days:
        raise InputError(f"{day} is not a day of {filled} ({days[0]} to {days[-1]})")
    t = days.index(day)
    if not bool(ds[product.COMPLETE].values[t]):
        raise InputError(f"{day} is not complete in {filled}: run 'gapfill fill' for it first")
    step = max(1, int(np.ceil(max(ds.sizes["y"], ds.sizes["x"]) / MAX_SIDE)))
    space = {"y": slice(None, None, step), "x": slice(None, None, step)}
    after = ds[product.S2].isel(time=t, **space)
    status = np.asarray(ds[product.STATUS].isel(time=t, **space).values)
    before = _observed(ds, t, space)
    if before is None:
        before = after.where(status == product.CLEAR)
    flags = np.zeros((*status.shape, 3), np.uint8)
    for value, rgb in STATUS_RGB.items():
        flags[status == value] = rgb
    bands = layout.bands_of(ds)
    observed, name = composite(before.values, bands)
    panels = [("observed", observed), (f"filled, {name}", composite(after.values, bands)[0])]
    panels.append(("status", flags))
    h, w = status.shape
    zoom = max(1, MIN_SIDE // max(h, w))  # small regions: enlarge, pixels kept square
    h, w = h * zoom, w * zoom
    gap, head, foot = 4, 14, 16
    canvas = Image.new("RGB", (3 * w + 2 * gap, h + head + foot), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (name, img) in enumerate(panels):
        tile = Image.fromarray(img).resize((w, h), Image.Resampling.NEAREST)
        canvas.paste(tile, (i * (w + gap), head))
        draw.text((i * (w + gap) + 2, 1), f"{name} {day}" if i == 0 else name, fill=(0, 0, 0))
    x = 2 * (w + gap)  # the status panel's legend, below it
    for value, meaning in enumerate(product.FLAG_MEANINGS):
        draw.rectangle((x, h + head + 4, x + 8, h + head + 12), fill=STATUS_RGB[value])
        draw.text((x + 11, h + head + 2), meaning, fill=(0, 0, 0))
        x += 14 + 7 * len(meaning)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    try:
        canvas.save(tmp)
        tmp.replace(png)
    except BaseException:  # disk full, permissions, Ctrl-C: no half-written leftover
        tmp.unlink(missing_ok=True)
        raise
    return png
