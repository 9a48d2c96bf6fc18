"""Band and polarisation names, in the order every stage uses (contract version 1).

Provider profiles map these names to each provider's asset keys; the cube, the
models and the product store bands in exactly this order.
"""

from __future__ import annotations

__all__ = ["BANDS_CONTRACT_VERSION", "S2_BANDS", "S2_SCL", "S1_POLS", "SCL_CLASSES"]

BANDS_CONTRACT_VERSION = "1"
S2_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
S2_SCL = "SCL"
S1_POLS: tuple[str, ...] = ("VV", "VH")

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
