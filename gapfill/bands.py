"""Band sets and polarisation names (contract version 2).

A band set is data: the cube's `band` coordinate says which Sentinel-2 bands it holds,
and every stage after it (models, products, quicklooks) takes them from there. Sets are
kept in Sentinel-2's own band order (B01 … B12, B8A after B08) whatever order a user
names them in, so that two spellings of one set are the same set.

Provider profiles map these names to each provider's asset keys. Contract 1 stores (the
paper's four bands, hard-wired) are read as `PAPER_BANDS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from gapfill.errors import InputError

__all__ = [
    "BANDS_CONTRACT_VERSION",
    "S2_NATIVE_RESOLUTION",
    "EO_BANDS",
    "DEFAULT_BANDS",
    "PAPER_BANDS",
    "BAND_SETS",
    "S2_SCL",
    "S1_POLS",
    "SCL_CLASSES",
    "ASSET_DTYPES",
    "parse_bands",
    "band_resolution",
    "TRUE_COLOUR",
    "FALSE_COLOUR",
    "display_bands",
]

BANDS_CONTRACT_VERSION = "2"

# Every Sentinel-2 L2A reflectance band, in the product's order, with its native pixel
# size in metres (B10, cirrus, is not in L2A).
S2_NATIVE_RESOLUTION: dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
}
_ORDER = {b: i for i, b in enumerate(S2_NATIVE_RESOLUTION)}
# The STAC eo extension's common name and centre wavelength (µm, Sentinel-2A) per band:
# what a product's STAC Item says of each band it holds.
EO_BANDS: dict[str, tuple[str, float]] = {
    "B01": ("coastal", 0.443),
    "B02": ("blue", 0.490),
    "B03": ("green", 0.560),
    "B04": ("red", 0.665),
    "B05": ("rededge", 0.704),
    "B06": ("rededge", 0.740),
    "B07": ("rededge", 0.783),
    "B08": ("nir", 0.842),
    "B8A": ("nir08", 0.865),
    "B09": ("nir09", 0.945),
    "B11": ("swir16", 1.610),
    "B12": ("swir22", 2.190),
}

# The ten 10 m and 20 m bands: what crop, water, snow and fire users need (the default).
DEFAULT_BANDS: tuple[str, ...] = (
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B11",
    "B12",
)
# He & Yokoya's four (blue, green, red, NIR): what contract-1 cubes and products hold.
PAPER_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
BAND_SETS: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_BANDS,
    "paper": PAPER_BANDS,
    "20m": tuple(b for b, r in S2_NATIVE_RESOLUTION.items() if r == 20),
    "all": tuple(S2_NATIVE_RESOLUTION),
}

S2_SCL = "SCL"
S1_POLS: tuple[str, ...] = ("VV", "VH")

# The sample types an asset of each band may have: L2A reflectance as 16-bit digital
# numbers, the scene classification as bytes, RTC backscatter as linear floats. An
# asset of another type (say reflectance already scaled to 0..1 floats) would be read
# with the wrong scale, so the cube build refuses it.
ASSET_DTYPES: dict[str, tuple[str, ...]] = {
    **{b: ("uint16", "int16") for b in S2_NATIVE_RESOLUTION},
    S2_SCL: ("uint8",),
    **{p: ("float32", "float64") for p in S1_POLS},
}

# Quicklook composites (red, green, blue channels), the first whose bands a store holds.
TRUE_COLOUR: tuple[str, str, str] = ("B04", "B03", "B02")
# Short-wave infrared / NIR / red edge: vegetation green, bare soil brown, water and
# snow apart (B11 sees snow dark) — the composite of stores without the visible bands.
FALSE_COLOUR: tuple[str, str, str] = ("B11", "B8A", "B05")


def parse_bands(value: str | Sequence[str]) -> tuple[str, ...]:
    """A band set from a name (`default`, `paper`, `20m`, `all`) or band names (a list,
    or comma-separated), in Sentinel-2 order. Unknown names and repeats are refused."""
    if isinstance(value, str):
        key = value.strip()
        if key in BAND_SETS:
            return BAND_SETS[key]
        names = [n.strip() for n in key.split(",") if n.strip()]
    else:
        names = [str(n).strip() for n in value]
    if not names:
        raise InputError(
            f"no bands given: name bands ({', '.join(_ORDER)}) or a set ({', '.join(BAND_SETS)})"
        )
    unknown = [n for n in names if n not in _ORDER]
    if unknown:
        raise InputError(
            f"unknown band {unknown[0]!r}: use Sentinel-2 L2A band names "
            f"({', '.join(_ORDER)}) or a set ({', '.join(BAND_SETS)})"
        )
    repeated = sorted({n for n in names if names.count(n) > 1}, key=_ORDER.__getitem__)
    if repeated:
        raise InputError(f"band {repeated[0]} is named twice: name each band once")
    return tuple(sorted(names, key=_ORDER.__getitem__))


def band_resolution(band: str) -> int:
    """The native pixel size (m) of a Sentinel-2 band."""
    return S2_NATIVE_RESOLUTION[band]


def display_bands(bands: Sequence[str]) -> tuple[tuple[str, str, str], str]:
    """The (red, green, blue) bands a quicklook of a store of `bands` draws, and the
    composite's name: true colour where B02-B04 exist, else the SWIR false colour, else
    the first three bands (or one band as grey)."""
    have = set(bands)
    if have.issuperset(TRUE_COLOUR):
        return TRUE_COLOUR, "true colour (B04, B03, B02)"
    if have.issuperset(FALSE_COLOUR):
        return FALSE_COLOUR, "false colour (B11, B8A, B05)"
    picked = (list(bands) * 3)[:3] if len(bands) < 3 else list(bands)[:3]
    return (picked[0], picked[1], picked[2]), f"bands {', '.join(dict.fromkeys(picked))}"


# Sentinel-2 L2A scene classification values.
SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}
