"""What `gapfill build-cube` builds: a pydantic model, recorded in the cube's attrs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gapfill.bands import DEFAULT_BANDS, parse_bands
from gapfill.errors import InputError
from gapfill.grid import UTCDay

__all__ = ["CubeConfig", "DEFAULT_CLEAR_CLASSES", "DEFAULT_CLOUD_CLASSES"]

# SCL: 4 vegetation, 5 not vegetated, 6 water, 7 unclassified (11 snow on request).
DEFAULT_CLEAR_CLASSES = (4, 5, 6, 7)
# SCL: 3 cloud shadow, 8/9 cloud medium/high probability, 10 thin cirrus.
DEFAULT_CLOUD_CLASSES = (3, 8, 9, 10)


class CubeConfig(BaseModel):
    """A cube request: where, when, from which providers, on which grid, how masked."""

    model_config = ConfigDict(extra="forbid")

    aoi: str = Field(description="GeoJSON file, minx,miny,maxx,maxy lon/lat bbox, or WKT")
    start: UTCDay
    end: UTCDay
    provider: str | None = None
    s1_provider: str | None = None
    stac_url: str | None = None
    profile: str | None = Field(None, description="YAML mapping for --stac-url")
    bands: tuple[str, ...] = Field(
        DEFAULT_BANDS,
        description="Sentinel-2 bands: names (B02,B03,...) or a set (default: the ten 10 m "
        "and 20 m bands; paper: B02 B03 B04 B08; 20m; all)",
    )
    resolution: float = Field(
        10.0,
        ge=10,
        description="pixel size (m): 10, or 20 for a cube of 20 m bands (Sentinel-2 has no "
        "band finer than 10 m)",
    )
    epsg: int | None = None
    max_gap_days: float = Field(5.0, ge=0, le=30)
    chunk: int = Field(1024, ge=16, le=8192)
    despeckle: Literal["none", "lee"] = "none"
    clear_classes: tuple[int, ...] = DEFAULT_CLEAR_CLASSES
    cloud_classes: tuple[int, ...] = DEFAULT_CLOUD_CLASSES
    dilation_m: float = Field(20.0, ge=0)
    max_cloud: float | None = Field(None, ge=0, le=100)
    strict: bool = False
    max_pixels: int = Field(
        1_000_000_000, ge=1, description="refuse a grid larger than this (height x width)"
    )
    loader: Literal["direct", "stackstac"] = Field(
        "direct",
        description="how COGs are read onto the grid: direct (windowed reads where an asset "
        "is on the grid, GDAL warps elsewhere) or stackstac; the values are the same",
    )
    batch_days: int = Field(
        8, ge=1, le=64, description="days written between updates of their complete flags"
    )

    @field_validator("bands", mode="before")
    @classmethod
    def _band_set(cls, v: object) -> tuple[str, ...]:
        try:
            return parse_bands(v if isinstance(v, str) else list(v))  # type: ignore[call-overload]
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("epsg")
    @classmethod
    def _known_crs(cls, v: int | None) -> int | None:
        if v is not None:
            from pyproj import CRS
            from pyproj.exceptions import CRSError

            try:
                CRS.from_epsg(v)
            except CRSError:
                raise ValueError(
                    f"EPSG:{v} is not a known CRS: give a UTM zone, e.g. 32631"
                ) from None
        return v

    @model_validator(mode="after")
    def _dates(self) -> CubeConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self
