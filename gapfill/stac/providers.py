"""Provider profiles per sensor: endpoint, collection, asset keys and value conventions.

A cube may take Sentinel-2 from one endpoint and Sentinel-1 from another (Earth
Search has no gridded Sentinel-1). Every convention a loader needs to turn an item's
assets into the bands of `gapfill.bands` is decided here and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gapfill.bands import S1_POLS, S2_NATIVE_RESOLUTION, S2_SCL
from gapfill.errors import InputError, first_problem

__all__ = [
    "Sensor",
    "SensorProfile",
    "PROVIDERS",
    "S2_PROVIDERS",
    "S1_PROVIDERS",
    "get_profile",
    "profiles_for",
    "custom_profiles",
    "asset_key",
    "missing_bands",
    "EARTH_SEARCH_S2_KEYS",
    "s2_scale_offset",
    "item_epsg",
    "relative_orbit",
]

Sensor = Literal["s2", "s1"]

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
PLANETARY_COMPUTER_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"

# Candidate keys per band: a profile takes the first one an item has, so a local API
# that serves both conventions (synthetic Earth Search world + real PC sample) works.
# Every L2A band: Planetary Computer keys by band name, Earth Search (v1) by common name.
_PC_S2 = {**{b: [b] for b in S2_NATIVE_RESOLUTION}, S2_SCL: ["SCL"]}
EARTH_SEARCH_S2_KEYS: dict[str, list[str]] = {
    "B01": ["coastal"],
    "B02": ["blue"],
    "B03": ["green"],
    "B04": ["red"],
    "B05": ["rededge1"],
    "B06": ["rededge2"],
    "B07": ["rededge3"],
    "B08": ["nir"],
    "B8A": ["nir08"],
    "B09": ["nir09"],
    "B11": ["swir16"],
    "B12": ["swir22"],
    S2_SCL: ["scl"],
}
_PC_S1 = {"VV": ["vv"], "VH": ["vh"]}
_ES_S2 = EARTH_SEARCH_S2_KEYS
_ANY_S2 = {b: _PC_S2[b] + _ES_S2[b] for b in _PC_S2}
_ANY_S1 = {"VV": ["vv", "VV"], "VH": ["vh", "VH"]}


class SensorProfile(BaseModel):
    """How to find and read one sensor's items at one endpoint."""

    model_config = ConfigDict(frozen=True)

    provider: str
    sensor: Sensor
    url: str
    collection: str
    assets: dict[str, list[str]] = Field(description="band name -> candidate asset keys")
    sign: bool = Field(False, description="sign hrefs with planetary_computer.sign_inplace")
    baseline_offset: bool = Field(
        True,
        description="without raster:bands scale/offset, remove the +1000 DN offset of "
        "processing baseline >= 04.00 (Planetary Computer's rule)",
    )

    def modifier(self) -> Any:
        """The pystac-client `modifier` (signing) for this profile, or None."""
        if not self.sign:
            return None
        import planetary_computer

        return planetary_computer.sign_inplace

    def href_for_reading(self, href: str) -> str:
        """`href` as it should be opened now: for a signing profile, an Azure Blob URL
        re-signed with a current token (the one from search time lasts about an hour, a
        long build outlives it; planetary_computer caches tokens and renews them a minute
        before they expire); anything else as it is."""
        from urllib.parse import urlparse

        if not self.sign or not urlparse(href).netloc.endswith(".blob.core.windows.net"):
            return href
        import planetary_computer

        return str(planetary_computer.sign_url(href.split("?", 1)[0]))


PROVIDERS: dict[tuple[Sensor, str], SensorProfile] = {
    ("s2", "earth-search"): SensorProfile(
        provider="earth-search",
        sensor="s2",
        url=EARTH_SEARCH_URL,
        collection="sentinel-2-l2a",
        assets=_ES_S2,
        baseline_offset=False,
    ),
    ("s2", "planetary-computer"): SensorProfile(
        provider="planetary-computer",
        sensor="s2",
        url=PLANETARY_COMPUTER_URL,
        collection="sentinel-2-l2a",
        assets=_PC_S2,
        sign=True,
    ),
    ("s1", "planetary-computer"): SensorProfile(
        provider="planetary-computer",
        sensor="s1",
        url=PLANETARY_COMPUTER_URL,
        collection="sentinel-1-rtc",
        assets=_PC_S1,
        sign=True,
    ),
}
S2_PROVIDERS = tuple(p for s, p in PROVIDERS if s == "s2")
S1_PROVIDERS = tuple(p for s, p in PROVIDERS if s == "s1")

_REFUSED = {
    ("s1", "earth-search"): (
        "Earth Search has no gridded Sentinel-1: its sentinel-1-grd assets are in radar "
        "geometry and requester-pays, so they cannot be stacked on a map grid; take "
        "Sentinel-1 from planetary-computer (sentinel-1-rtc) with --s1-provider "
        "planetary-computer, or from a STAC API with gridded RTC via --stac-url"
    ),
}


def get_profile(sensor: Sensor, provider: str) -> SensorProfile:
    """The built-in profile of `provider` for `sensor`; unknown or unsuitable ones raise."""
    if (sensor, provider) in _REFUSED:
        raise InputError(_REFUSED[(sensor, provider)])
    try:
        return PROVIDERS[(sensor, provider)]
    except KeyError:
        known = ", ".join(S2_PROVIDERS if sensor == "s2" else S1_PROVIDERS)
        raise InputError(
            f"unknown {sensor.upper()} provider {provider!r}: use one of {known}, "
            "or --stac-url URL for any STAC API"
        ) from None


class _CustomSensor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    collection: str
    assets: dict[str, list[str]] | None = None
    sign: bool = False
    baseline_offset: bool = True


class _CustomMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    s2: _CustomSensor = _CustomSensor(collection="sentinel-2-l2a")
    s1: _CustomSensor = _CustomSensor(collection="sentinel-1-rtc")


def custom_profiles(
    url: str, mapping: str | Path | None = None
) -> tuple[SensorProfile, SensorProfile]:
    """Profiles for any STAC API URL; `mapping` is an optional YAML file naming the
    collections and asset keys (default: `sentinel-2-l2a`/`sentinel-1-rtc`, keys of
    either Planetary Computer or Earth Search conventions). A mapping needs SCL and both
    polarisations; the bands a cube asks for are checked by the build (`missing_bands`)."""
    if not url.startswith(("http://", "https://")):
        raise InputError(f"STAC URL {url!r} must start with http:// or https://")
    cfg = _CustomMapping()
    if mapping is not None:
        path = Path(mapping)
        if not path.is_file():
            raise InputError(f"profile mapping {mapping} does not exist")
        try:
            cfg = _CustomMapping.model_validate(yaml.safe_load(path.read_text()) or {})
        except (yaml.YAMLError, ValidationError) as exc:
            problem = first_problem(exc)
            raise InputError(f"profile mapping {mapping} is invalid: {problem}") from None
    out = []
    for sensor, spec, default, needed in (
        ("s2", cfg.s2, _ANY_S2, (S2_SCL,)),
        ("s1", cfg.s1, _ANY_S1, S1_POLS),
    ):
        assets = spec.assets or default
        missing = [b for b in needed if b not in assets]
        if missing:
            raise InputError(
                f"profile mapping for {sensor} lacks asset keys for {', '.join(missing)}"
            )
        out.append(
            SensorProfile(
                provider="custom",
                sensor=sensor,
                url=url.rstrip("/"),
                collection=spec.collection,
                assets=assets,
                sign=spec.sign,
                baseline_offset=spec.baseline_offset,
            )
        )
    return out[0], out[1]


def profiles_for(
    provider: str | None = None,
    stac_url: str | None = None,
    s1_provider: str | None = None,
    mapping: str | Path | None = None,
) -> tuple[SensorProfile, SensorProfile]:
    """(S2, S1) profiles from CLI-level choices; `--stac-url` and `--provider` exclude each other.

    Default: Planetary Computer for both. With `--provider earth-search`, Sentinel-1
    comes from Planetary Computer unless `--s1-provider` says otherwise.
    """
    if stac_url and provider:
        raise InputError("give either --provider or --stac-url, not both")
    if stac_url:
        s2, s1 = custom_profiles(stac_url, mapping)
        if s1_provider:
            s1 = get_profile("s1", s1_provider)
        return s2, s1
    if mapping is not None:
        raise InputError("--profile applies to --stac-url only")
    s2 = get_profile("s2", provider or "planetary-computer")
    s1 = get_profile(
        "s1",
        s1_provider or ("planetary-computer" if provider in (None, "earth-search") else provider),
    )
    return s2, s1


def missing_bands(items: Any, bands: tuple[str, ...], profile: SensorProfile) -> dict[str, str]:
    """Per requested band that no item of `items` holds (or the profile does not map),
    why, in a phrase: the catalog lacks it, so no day could be built with it."""
    out: dict[str, str] = {}
    for band in bands:
        keys = profile.assets.get(band, [])
        if not keys:
            out[band] = f"the {profile.provider} profile maps no asset key to it"
            continue
        if not any(
            k in (it.assets if hasattr(it, "assets") else it["assets"])
            for it in items
            for k in keys
        ):
            out[band] = f"none of the {len(items)} items has an asset {' or '.join(keys)}"
    return out


def asset_key(item: Any, band: str, profile: SensorProfile) -> str:
    """The key of `band` in this item (first candidate present); a missing one raises."""
    assets = item.assets if hasattr(item, "assets") else item["assets"]
    for key in profile.assets.get(band, []):
        if key in assets:
            return key
    item_id = item.id if hasattr(item, "id") else item.get("id")
    raise InputError(
        f"item {item_id} has no asset for {band} "
        f"(looked for {', '.join(profile.assets.get(band, []))}; "
        f"it has {', '.join(sorted(assets))}): fix the profile mapping"
    )


def _props(item: Any) -> dict:
    return item.properties if hasattr(item, "properties") else item["properties"]


def s2_scale_offset(item: Any, key: str, profile: SensorProfile) -> tuple[float, float]:
    """(scale, offset) turning this asset's DN into reflectance.

    From the asset's `raster:bands` when present, else the provider's rule: DN / 10000,
    minus 0.1 (the +1000 DN offset) from processing baseline 04.00 on. Never both.
    """
    assets = item.assets if hasattr(item, "assets") else item["assets"]
    asset = assets[key]
    extra = asset.extra_fields if hasattr(asset, "extra_fields") else asset
    bands = extra.get("raster:bands") or []
    if bands and "scale" in bands[0]:
        return float(bands[0]["scale"]), float(bands[0].get("offset", 0.0))
    offset = 0.0
    if profile.baseline_offset:
        baseline = str(_props(item).get("s2:processing_baseline", "00.00"))
        try:
            major, minor = (int(p) for p in baseline.split(".")[:2])
        except ValueError:
            raise InputError(
                f"item has an unreadable s2:processing_baseline {baseline!r}"
            ) from None
        if (major, minor) >= (4, 0):
            offset = -0.1
    return 1e-4, offset


def item_epsg(item: Any) -> int | None:
    """EPSG code from `proj:epsg` or `proj:code` (current stactools write only the latter)."""
    props = _props(item)
    if props.get("proj:epsg"):
        return int(props["proj:epsg"])
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":")[1])
    return None


def relative_orbit(item: Any) -> int | None:
    """Relative orbit: `sat:relative_orbit`, else derived from `sat:absolute_orbit`."""
    props = _props(item)
    if props.get("sat:relative_orbit") is not None:
        return int(props["sat:relative_orbit"])
    absolute = props.get("sat:absolute_orbit")
    platform = str(props.get("platform", "")).upper()
    if absolute is not None and platform.startswith("SENTINEL-1"):
        # ESA: relative = (absolute - 73) mod 175 + 1 for S1A, (absolute - 27) mod 175 + 1 for S1B.
        shift = 27 if platform.endswith("B") else 73
        return (int(absolute) - shift) % 175 + 1
    return None


def item_datetime(item: Any) -> datetime:
    """The item's datetime as naive UTC."""
    from gapfill.grid import to_naive_utc

    if hasattr(item, "datetime") and item.datetime is not None:
        return to_naive_utc(item.datetime)
    raw = _props(item)["datetime"]
    return to_naive_utc(datetime.fromisoformat(raw.replace("Z", "+00:00")))
