"""STAC: provider profiles, search, and the local STAC API for demos and tests."""

from gapfill.stac.providers import (
    PROVIDERS,
    SensorProfile,
    asset_key,
    custom_profiles,
    get_profile,
    item_epsg,
    profiles_for,
    relative_orbit,
    s2_scale_offset,
)
from gapfill.stac.search import SearchResult, open_client, search
from gapfill.stac.server import LocalStacApi, local_stac_api

__all__ = [
    "PROVIDERS",
    "LocalStacApi",
    "SearchResult",
    "SensorProfile",
    "asset_key",
    "custom_profiles",
    "get_profile",
    "item_epsg",
    "local_stac_api",
    "open_client",
    "profiles_for",
    "relative_orbit",
    "s2_scale_offset",
    "search",
]
