"""Band and polarisation names, in the order every stage uses (contract version 1).

Provider profiles map these names to each provider's asset keys; the cube, the
models and the product store bands in exactly this order.
"""

from __future__ import annotations

__all__ = [
    "BANDS_CONTRACT_VERSION",
    "S2_BANDS",
    "S2_SCL",
    "S1_POLS",
    "SCL_CLASSES",
    "ASSET_DTYPES",
]

BANDS_CONTRACT_VERSION = "1"
S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
S2_SCL = "SCL"
S1_POLS: tuple[str, ...] = ("VV", "VH")

# The sample types an asset of each band may have: L2A reflectance as 16-bit digital
# numbers, the scene classification as bytes, RTC backscatter as linear floats. An
# asset of another type (say reflectance already scaled to 0..1 floats) would be read
# with the wrong scale, so the cube build refuses it.
ASSET_DTYPES: dict[str, tuple[str, ...]] = {
    **{b: ("uint16", "int16") for b in S2_BANDS},
    S2_SCL: ("uint8",),
    **{p: ("float32", "float64") for p in S1_POLS},
}

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
