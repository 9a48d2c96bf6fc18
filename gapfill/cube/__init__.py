"""Cube building: search -> stackstac -> masks -> S1/S2 pairing -> Zarr; incremental updates.

The names below are imported when first used (`gapfill._lazy`): `gapfill.cube.layout`
alone, what training and fill tasks read, does not import the builder's stack."""

from typing import TYPE_CHECKING

from gapfill._lazy import attach

if TYPE_CHECKING:
    from gapfill.cube.build import BuildReport, build_cube, cube_grid
    from gapfill.cube.check import CheckReport, check_cube, require_intact
    from gapfill.cube.config import CubeConfig
    from gapfill.cube.info import cube_info

__all__ = [
    "BuildReport",
    "CheckReport",
    "CubeConfig",
    "build_cube",
    "check_cube",
    "cube_grid",
    "cube_info",
    "require_intact",
]
__getattr__, __dir__ = attach(
    __name__,
    __all__,
    {
        "build": ["BuildReport", "build_cube", "cube_grid"],
        "check": ["CheckReport", "check_cube", "require_intact"],
        "config": ["CubeConfig"],
        "info": ["cube_info"],
    },
)
