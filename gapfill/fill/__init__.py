"""Gap filling: reference per pixel, tiled inference with an exact halo, Dask, resumable Zarr.

The names below are imported when first used (`gapfill._lazy`): `gapfill.fill.infer` and
`gapfill.fill.product` alone do not import Dask."""

from typing import TYPE_CHECKING

from gapfill._lazy import attach

if TYPE_CHECKING:
    from gapfill.fill.config import FillConfig
    from gapfill.fill.item import write_item
    from gapfill.fill.quicklook import quicklook
    from gapfill.fill.run import FillReport, fill

__all__ = ["FillConfig", "FillReport", "fill", "quicklook", "write_item"]
__getattr__, __dir__ = attach(
    __name__,
    __all__,
    {
        "config": ["FillConfig"],
        "item": ["write_item"],
        "quicklook": ["quicklook"],
        "run": ["FillReport", "fill"],
    },
)
