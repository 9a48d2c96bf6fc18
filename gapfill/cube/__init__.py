"""Cube building: search -> stackstac -> masks -> S1/S2 pairing -> Zarr; incremental updates."""

from gapfill.cube.build import BuildReport, build_cube, cube_grid
from gapfill.cube.config import CubeConfig
from gapfill.cube.info import cube_info

__all__ = ["BuildReport", "CubeConfig", "build_cube", "cube_grid", "cube_info"]
