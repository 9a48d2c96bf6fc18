"""Cube building: search -> stackstac -> masks -> S1/S2 pairing -> Zarr; incremental updates."""

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
