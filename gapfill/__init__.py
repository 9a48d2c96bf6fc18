"""gapfill: fill cloud gaps in Sentinel-2 time series with Sentinel-1 and MTcGAN."""

from gapfill._provenance import __version__, git_sha
from gapfill.errors import GapfillError

__all__ = ["GapfillError", "__version__", "git_sha"]
