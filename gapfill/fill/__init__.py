"""Gap filling: reference per pixel, tiled inference with an exact halo, Dask, resumable Zarr."""

from gapfill.fill.config import FillConfig
from gapfill.fill.item import write_item
from gapfill.fill.quicklook import quicklook
from gapfill.fill.run import FillReport, fill

__all__ = ["FillConfig", "FillReport", "fill", "quicklook", "write_item"]
