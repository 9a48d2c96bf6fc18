"""Search Sentinel-1 and Sentinel-2 items for an AOI and an inclusive UTC date range."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pystac
from pystac_client import Client
from pystac_client.errors import ClientTypeError
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3.util.retry import Retry

from gapfill.errors import InputError, ServiceError
from gapfill.grid import AOI, DateRange
from gapfill.stac.providers import SensorProfile, item_datetime, relative_orbit

__all__ = ["SearchResult", "search", "open_client"]

log = logging.getLogger(__name__)


def _short_reason(text: str) -> str:
    low = text.lower()
    for needle, short in (
        ("connection refused", "connection refused"),
        ("name or service not known", "host not found"),
        ("temporary failure in name resolution", "host not found"),
        ("timed out", "timed out"),
        ("404", "HTTP 404 not found"),
    ):
        if needle in low:
            return short
    return text.splitlines()[0][:160] if text else "no answer"


def open_client(
    url: str, *, modifier: Any = None, retries: int = 3, timeout: float = 20.0
) -> Client:
    """Open a STAC API with bounded retries; unreachable or non-API URLs raise one clear error."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        backoff_factor=0.3,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
    )
    io = StacApiIO(max_retries=retry, timeout=(min(timeout, 5.0), timeout))
    try:
        client = Client.open(
            url, modifier=modifier, stac_io=io, timeout=(min(timeout, 5.0), timeout)
        )
    except APIError as exc:
        reason = _short_reason(str(exc))
        status = getattr(exc, "status_code", None)
        if status is not None:
            retried = f" after {retries} retries" if status >= 500 or status == 429 else ""
            raise ServiceError(
                f"the STAC API at {url} answered HTTP {status}{retried} ({reason}): "
                "check that the URL is a STAC API root, or try again later"
            ) from None
        raise ServiceError(
            f"could not reach the STAC API at {url} after {retries} retries ({reason}): "
            "check the URL and the network, or serve a local catalog with 'gapfill stac serve'"
        ) from None
    except (pystac.STACError, ValueError, ClientTypeError) as exc:
        raise ServiceError(
            f"{url} did not answer as a STAC API ({str(exc).splitlines()[0][:160]}): "
            "give the root URL of a STAC API"
        ) from None
    if not client.conforms_to("ITEM_SEARCH"):
        raise ServiceError(
            f"{url} is a static STAC catalog without item search: "
            "serve it with 'gapfill stac serve DIR' and search that URL"
        )
    return client


@dataclass
class SearchResult:
    """Items found per sensor, in time order, with what was searched."""

    aoi: AOI
    dates: DateRange
    s2_profile: SensorProfile
    s1_profile: SensorProfile
    max_cloud: float | None
    s2: list[pystac.Item]
    s1: list[pystac.Item]

    def summary(self) -> str:
        """One line: counts, days and orbits found."""
        s2_days = len({item_datetime(i).date() for i in self.s2})
        orbits = sorted({o for o in (relative_orbit(i) for i in self.s1) if o is not None})
        orbit_txt = f" on relative orbits {', '.join(map(str, orbits))}" if orbits else ""
        cloud = f" (eo:cloud_cover < {self.max_cloud:g}%)" if self.max_cloud is not None else ""
        return (
            f"{len(self.s2)} Sentinel-2 items on {s2_days} days{cloud} from "
            f"{self.s2_profile.provider}/{self.s2_profile.collection}, {len(self.s1)} Sentinel-1 "
            f"items{orbit_txt} from {self.s1_profile.provider}/{self.s1_profile.collection}, "
            f"{self.dates.start}..{self.dates.end}"
        )

    def rows(self) -> list[dict]:
        """One dict per item: sensor, datetime, id, cloud cover, orbit."""
        out = []
        for sensor, items in (("S2", self.s2), ("S1", self.s1)):
            for it in items:
                props = it.properties
                orbit = relative_orbit(it)
                out.append(
                    {
                        "sensor": sensor,
                        "datetime": item_datetime(it).isoformat() + "Z",
                        "id": it.id,
                        "collection": it.collection_id,
                        "cloud_cover": props.get("eo:cloud_cover"),
                        "relative_orbit": orbit,
                        "orbit_state": props.get("sat:orbit_state"),
                    }
                )
        return out

    def to_json(self) -> dict:
        """A machine-readable form for `--json`."""
        return {
            "aoi": self.aoi.geojson,
            "start": self.dates.start.isoformat(),
            "end": self.dates.end.isoformat(),
            "max_cloud": self.max_cloud,
            "s2": {
                "provider": self.s2_profile.provider,
                "url": self.s2_profile.url,
                "collection": self.s2_profile.collection,
            },
            "s1": {
                "provider": self.s1_profile.provider,
                "url": self.s1_profile.url,
                "collection": self.s1_profile.collection,
            },
            "items": self.rows(),
            "summary": self.summary(),
        }


def _search_one(
    client: Client,
    profile: SensorProfile,
    aoi: AOI,
    dates: DateRange,
    query: dict | None,
    page_size: int,
) -> list[pystac.Item]:
    try:
        collection_ids = {c.id for c in client.get_collections()}
    except APIError as exc:
        raise ServiceError(f"listing collections at {profile.url} failed: {exc}") from None
    if profile.collection not in collection_ids:
        raise InputError(
            f"collection {profile.collection!r} is not at {profile.url} "
            f"(it has: {', '.join(sorted(collection_ids)) or 'none'}): fix the profile"
        )
    try:
        found = client.search(
            collections=[profile.collection],
            intersects=aoi.geojson,
            datetime=dates.stac_interval,
            query=query,
            limit=page_size,
        )
        items = list(found.items())
    except APIError as exc:
        raise ServiceError(f"search at {profile.url} failed: {str(exc)[:300]}") from None
    items.sort(key=lambda i: (item_datetime(i), i.id))
    return items


def search(
    aoi: AOI,
    dates: DateRange,
    s2_profile: SensorProfile,
    s1_profile: SensorProfile,
    *,
    max_cloud: float | None = None,
    s1_dates: DateRange | None = None,
    page_size: int = 100,
    retries: int = 3,
) -> SearchResult:
    """Find Sentinel-2 and Sentinel-1 items over `aoi` within `dates` (inclusive, UTC).

    `max_cloud` filters Sentinel-2 by `eo:cloud_cover` (the `query` extension, which
    Earth Search, Planetary Computer and pgstac all support); Sentinel-1 is never filtered.
    `s1_dates` widens the Sentinel-1 search (e.g. by the S1/S2 matching gap).
    """
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise InputError(f"--max-cloud {max_cloud} must be a percentage between 0 and 100")
    clients: dict[tuple[str, bool], Client] = {}

    def client_for(p: SensorProfile) -> Client:
        key = (p.url, p.sign)
        if key not in clients:
            clients[key] = open_client(p.url, modifier=p.modifier(), retries=retries)
        return clients[key]

    query = {"eo:cloud_cover": {"lt": max_cloud}} if max_cloud is not None else None
    s2 = _search_one(client_for(s2_profile), s2_profile, aoi, dates, query, page_size)
    s1 = _search_one(client_for(s1_profile), s1_profile, aoi, s1_dates or dates, None, page_size)
    log.info("found %d S2 and %d S1 items", len(s2), len(s1))
    return SearchResult(aoi, dates, s2_profile, s1_profile, max_cloud, s2, s1)
