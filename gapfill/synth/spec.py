"""The configuration of a synthetic world (a pydantic model, stored as `world.json`)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field, field_validator

__all__ = ["WorldSpec", "Location", "LOCATIONS"]


class Location(BaseModel):
    """Where a landscape sits: UTM zone, top-left corner, MGRS tile, orbits."""

    epsg: int
    x0: float
    y0: float
    mgrs_tile: str
    s2_relative_orbit: int
    s1_orbits: tuple[int, int]
    lon: float


# Far from the real sample (tile 31UDS, EPSG:32631), like the paper's sites:
# the flat Jianghan plain (China) and the mountains of northern Iraq.
LOCATIONS: dict[str, Location] = {
    "flat-agri": Location(
        epsg=32649,
        x0=699960.0,
        y0=3370020.0,
        mgrs_tile="49RFP",
        s2_relative_orbit=75,
        s1_orbits=(11, 113),
        lon=113.1,
    ),
    "mountain-arid": Location(
        epsg=32638,
        x0=499980.0,
        y0=4040040.0,
        mgrs_tile="38SMF",
        s2_relative_orbit=35,
        s1_orbits=(72, 174),
        lon=45.0,
    ),
    # A second flat agricultural site, 200 km north-west of the first (near Xiangyang,
    # the paper's third region): same landscape kind, another place and tile.
    "flat-agri-north": Location(
        epsg=32649,
        x0=600000.0,
        y0=3550020.0,
        mgrs_tile="49SEA",
        s2_relative_orbit=32,
        s1_orbits=(84, 186),
        lon=112.1,
    ),
}


class WorldSpec(BaseModel):
    """What `gapfill synth world` generates; deterministic for a given spec."""

    size: int = Field(1024, ge=64, le=10980, description="width and height in 10 m pixels")
    dates: int = Field(12, ge=2, le=200, description="number of Sentinel-2 acquisition days")
    seed: int = Field(0, ge=0)
    landscape: Literal["flat-agri", "mountain-arid"] = "flat-agri"
    site: str | None = Field(
        None, description="a key of LOCATIONS; default: the landscape's own location"
    )
    s2_conventions: Literal["planetary-computer", "earth-search"] = "planetary-computer"
    start: date = date(2022, 4, 3)
    revisit_days: int = Field(10, ge=1, le=60)
    resolution: float = 10.0
    block: int = Field(1024, ge=64, description="rendering block in pixels (memory bound)")

    @field_validator("size", "block")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even (SCL and the 20 m bands are written at 20 m)")
        return v

    @field_validator("site")
    @classmethod
    def _known_site(cls, v: str | None) -> str | None:
        if v is not None and v not in LOCATIONS:
            raise ValueError(f"unknown site {v!r}: use one of {', '.join(LOCATIONS)}")
        return v

    @property
    def location(self) -> Location:
        """Where this world sits: its site, else its landscape's location."""
        return LOCATIONS[self.site or self.landscape]
