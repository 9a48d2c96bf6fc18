"""The synthetic Sentinel world: COGs + STAC items that look like real S1/S2 products."""

from gapfill.synth.spec import LOCATIONS, WorldSpec
from gapfill.synth.stats import world_stats
from gapfill.synth.world import make_world, schedule

__all__ = ["LOCATIONS", "WorldSpec", "make_world", "schedule", "world_stats"]
