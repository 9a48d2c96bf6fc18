"""Realism statistics of a synthetic world, comparable with the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import rasterio
from scipy.ndimage import uniform_filter

from gapfill.bands import DEFAULT_BANDS, PAPER_BANDS, S2_SCL
from gapfill.errors import InputError
from gapfill.stac.providers import asset_key, custom_profiles, s2_scale_offset

__all__ = ["world_stats", "catalog_value_ranges"]

# A pixel "changes" between two dates when its true reflectance moves this far
# (Euclidean distance over the paper's four bands, B02 B03 B04 B08).
CHANGE_THRESHOLD = 0.05
SPECKLE_WINDOW = 5


def _read(href: str | None) -> np.ndarray:
    if href is None:
        raise InputError("an asset of the catalog has no href")
    with rasterio.open(href) as ds:
        return ds.read(out_dtype="float64", masked=True).filled(np.nan)


def _items(catalog_dir: Path) -> dict[str, list[pystac.Item]]:
    path = catalog_dir / "catalog.json"
    if not path.is_file():
        raise InputError(
            f"{catalog_dir} has no catalog.json: give a folder made by 'gapfill synth world'"
        )
    cat = pystac.Catalog.from_file(str(path))
    out: dict[str, list[pystac.Item]] = {}
    for item in cat.get_items(recursive=True):
        out.setdefault(item.collection_id or "", []).append(item)
    for items in out.values():
        items.sort(key=lambda i: (str(i.datetime), i.id))
    return out


def _clear_band_values(item: pystac.Item) -> dict[str, np.ndarray]:
    """Per band of the default set the item has, its reflectance on clear pixels (SCL 4,
    5, 6 at the band's own pixel size: SCL is 20 m), read with either provider's
    conventions."""
    profile, _ = custom_profiles("http://local")
    scl = _read(item.assets[asset_key(item, S2_SCL, profile)].get_absolute_href())[0]
    out = {}
    for band in DEFAULT_BANDS:
        try:
            key = asset_key(item, band, profile)
        except InputError:  # a site without this band
            continue
        scale, offset = s2_scale_offset(item, key, profile)
        refl = _read(item.assets[key].get_absolute_href())[0] * scale + offset
        k = max(refl.shape[0] // scl.shape[0], 1)
        clear = np.isin(np.kron(scl, np.ones((k, k)))[: refl.shape[0], : refl.shape[1]], (4, 5, 6))
        out[band] = refl[clear]
    return out


def catalog_value_ranges(catalog_dir: str | Path, max_items: int = 12) -> dict:
    """Percentiles (1, 50, 99) of S2 reflectance on clear pixels and S1 dB per band."""
    items = _items(Path(catalog_dir))
    s2_vals: dict[str, list[np.ndarray]] = {}
    for item in items.get("sentinel-2-l2a", [])[
        :: max(1, len(items.get("sentinel-2-l2a", [])) // max_items)
    ]:
        for band, values in _clear_band_values(item).items():
            s2_vals.setdefault(band, []).append(values)
    s1_vals: dict[str, list[np.ndarray]] = {"vv": [], "vh": []}
    s1_items = items.get("sentinel-1-rtc", [])
    for item in s1_items[:: max(1, len(s1_items) // max_items)]:
        for pol in ("vv", "vh"):
            lin = _read(item.assets[pol].get_absolute_href())[0]
            lin = lin[np.isfinite(lin) & (lin > 0)]
            s1_vals[pol].append(10 * np.log10(lin))
    out: dict = {}
    for name, parts in s2_vals.items():
        allv = np.concatenate(parts)
        if allv.size:
            out[f"s2_{name}"] = [round(float(p), 4) for p in np.nanpercentile(allv, (1, 50, 99))]
    for pol, vals in s1_vals.items():
        if vals:
            out[f"s1_{pol}_db"] = [
                round(float(p), 2) for p in np.percentile(np.concatenate(vals), (1, 50, 99))
            ]
    return out


def world_stats(world_dir: str | Path, reference: str | Path | None = None) -> dict:
    """Realism statistics of a world made by `make_world`.

    - change fraction between consecutive dates (truth reflectance moved > CHANGE_THRESHOLD),
    - correlation of |dS1| (dB, nearest S1 of each date) with |dS2| (truth), and the mean
      |dS1| over changed vs unchanged pixels (change must be visible in both sensors),
    - cloud-cover distribution over dates,
    - S1/S2 value ranges, beside those of a reference catalog (the real sample) if given.
    """
    world_dir = Path(world_dir)
    meta_path = world_dir / "world.json"
    if not meta_path.is_file():
        raise InputError(
            f"{world_dir} has no world.json: give a folder made by 'gapfill synth world'"
        )
    meta = json.loads(meta_path.read_text())
    index = json.loads((world_dir / "truth" / "index.json").read_text())
    s2 = meta["s2"]
    s1 = meta["s1"]
    truths = []
    for d in s2:
        entry = index[d["id"]]
        four = [list(entry.get("bands", PAPER_BANDS)).index(b) for b in PAPER_BANDS]
        truths.append(_read(str(world_dir / "truth" / entry["path"]))[four] / 10000.0)
    s1_times = np.array([np.datetime64(a["datetime"].rstrip("Z")) for a in s1])

    def nearest_s1_db(when: str) -> np.ndarray:
        # Use the full-coverage orbit so that every pixel has a value.
        t = np.datetime64(when.rstrip("Z"))
        full = [i for i, a in enumerate(s1) if a["covers_from_x_fraction"] == 0.0]
        j = min(full, key=lambda i: abs(s1_times[i] - t))
        pols = [_read(str(world_dir / "s1" / s1[j]["id"] / f"{p}.tif"))[0] for p in ("vv", "vh")]
        # A 5x5 boxcar in linear power (a minimal despeckle) before dB, as change
        # detection on SAR does: single-look speckle would hide every change.
        return 10 * np.log10(np.stack([uniform_filter(p, SPECKLE_WINDOW) for p in pols]))

    fractions, corrs, ds1_changed, ds1_unchanged = [], [], [], []
    prev_s1 = nearest_s1_db(s2[0]["datetime"])
    for k in range(1, len(s2)):
        ds2 = np.sqrt(((truths[k] - truths[k - 1]) ** 2).sum(axis=0))
        cur_s1 = nearest_s1_db(s2[k]["datetime"])
        ds1 = np.abs(cur_s1 - prev_s1).mean(axis=0)
        prev_s1 = cur_s1
        changed = ds2 > CHANGE_THRESHOLD
        fractions.append(float(changed.mean()))
        ok = np.isfinite(ds1)
        if ds2[ok].std() > 0:
            corrs.append(float(np.corrcoef(ds1[ok], ds2[ok])[0, 1]))
        if changed.any():
            ds1_changed.append(float(np.nanmean(ds1[changed])))
        if (~changed).any():
            ds1_unchanged.append(float(np.nanmean(ds1[~changed])))
    covers = [d["eo:cloud_cover"] for d in s2]
    stats = {
        "world": str(world_dir),
        "size": meta["spec"]["size"],
        "landscape": meta["spec"]["landscape"],
        "dates": len(s2),
        "s1_scenes": len(s1),
        "change_fraction_per_step": [round(f, 4) for f in fractions],
        "change_fraction_mean": round(float(np.mean(fractions)), 4),
        "corr_abs_ds1_abs_ds2": round(float(np.mean(corrs)), 3) if corrs else None,
        "mean_abs_ds1_db_changed": round(float(np.mean(ds1_changed)), 3) if ds1_changed else None,
        "mean_abs_ds1_db_unchanged": round(float(np.mean(ds1_unchanged)), 3)
        if ds1_unchanged
        else None,
        "cloud_cover_pct": [round(c, 1) for c in covers],
        "cloud_cover_classes": {
            "clear(<5%)": sum(c < 5 for c in covers),
            "partial": sum(5 <= c <= 95 for c in covers),
            "cloudy(>95%)": sum(c > 95 for c in covers),
        },
        "value_ranges_p1_p50_p99": catalog_value_ranges(world_dir),
    }
    if reference is not None:
        stats["reference_value_ranges_p1_p50_p99"] = catalog_value_ranges(reference)
    return stats
