"""Which kind of gapfill store a Zarr store is, read from its contract attrs.

The cube (`cube.zarr`) and the filled product (`filled.zarr`) are both day-flagged Zarr
stores on one grid; a product also carries its cube's contract attrs. Every verb names
the kind it reads or writes and refuses the other one before touching anything.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gapfill.errors import InputError
from gapfill.storage import is_url

__all__ = [
    "CUBE",
    "PRODUCT",
    "CUBE_CONTRACT_ATTR",
    "PRODUCT_CONTRACT_ATTR",
    "kind_of",
    "require",
    "day_chunk_keys",
    "missing_chunks",
    "WRITE_EMPTY_CHUNKS",
    "zarr_store",
    "exists",
]

# Day writes store every chunk, even one equal to the fill value (Zarr skips those by
# default): a missing chunk is then always damage, never an empty region.
WRITE_EMPTY_CHUNKS = True

CUBE, PRODUCT = "cube", "filled product"
CUBE_CONTRACT_ATTR = "cube_contract_version"
PRODUCT_CONTRACT_ATTR = "product_contract_version"


def kind_of(attrs: Mapping[str, Any]) -> str | None:
    """`PRODUCT`, `CUBE`, or None for a Zarr store gapfill did not write."""
    if PRODUCT_CONTRACT_ATTR in attrs:
        return PRODUCT
    if CUBE_CONTRACT_ATTR in attrs:
        return CUBE
    return None


def require(attrs: Mapping[str, Any], kind: str, where: str, hint: str) -> None:
    """Refuse, in one line ending with `hint`, a store that is not of `kind`."""
    found = kind_of(attrs)
    if found is None:
        raise InputError(f"{where} is not a gapfill {kind}: {hint}")
    if found != kind:
        raise InputError(f"{where} is a gapfill {found}, not a {kind}: {hint}")


def day_chunk_keys(array: Any, day: int) -> list[str]:
    """Store keys (relative to the array) of every chunk of time index `day` of a zarr
    array whose first dimension is time with chunks of one day."""
    grid = [range(-(-n // c)) for n, c in zip(array.shape[1:], array.chunks[1:], strict=True)]
    return [array.metadata.encode_chunk_key((day, *rest)) for rest in itertools.product(*grid)]


def missing_chunks(
    location: str,
    variables: Sequence[str],
    days: Iterable[int],
    storage_options: dict[str, Any] | None = None,
) -> dict[int, list[str]]:
    """Per time index of `days`, the `variable/key` of every chunk absent from the store
    at `location` (a path or an fsspec URL): one listing per variable, no chunk read."""
    import fsspec
    import zarr

    group = zarr.open_group(
        location, mode="r", zarr_format=3, storage_options=storage_options or None
    )
    fs, root = fsspec.core.url_to_fs(location, **(storage_options or {}))
    root = root.rstrip("/")
    out: dict[int, list[str]] = {}
    wanted = list(days)
    for name in variables:
        array = group[name]
        base = f"{root}/{name}"
        present = {p[len(base) + 1 :] for p in fs.find(base) if not p.endswith("zarr.json")}
        for t in wanted:
            gone = [f"{name}/{k}" for k in day_chunk_keys(array, t) if k not in present]
            if gone:
                out.setdefault(t, []).extend(gone)
    return out


def zarr_store(location: str, storage_options: dict[str, Any] | None = None) -> Any:
    """What zarr and xarray open for a store location: a local path as it is, a URL as an
    fsspec-backed zarr store carrying its `storage_options` (to every Dask worker too)."""
    if not is_url(location):
        return location
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(location, storage_options=storage_options or {})


def exists(location: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether anything (a store, a file, a folder, objects under the prefix) is there."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(location, **(storage_options or {}))
    return bool(fs.exists(path))
