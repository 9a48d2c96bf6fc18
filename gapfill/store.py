"""Day-flagged Zarr stores: the one storage layer of the cube and the filled product.

The cube (`cube.zarr`) and the filled product (`filled.zarr`) are the same kind of
store: a template with a `time` axis, whole-chunk region writes, a per-day `complete`
flag written last, JSON attrs, consolidated metadata; at a local path or an fsspec URL
(`DayStore`). A product also carries its cube's contract attrs; every verb names the
kind it reads or writes and refuses the other one before touching anything.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

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
    "DayStore",
]

# Day writes store every chunk, even one equal to the fill value (Zarr skips those by
# default): a missing chunk is then always damage, never an empty region.
WRITE_EMPTY_CHUNKS = True

CUBE, PRODUCT = "cube", "filled product"
CUBE_CONTRACT_ATTR = "cube_contract_version"
PRODUCT_CONTRACT_ATTR = "product_contract_version"
# A product's attr: the cube it was filled from (named when a product is given as a cube).
SOURCE_CUBE_ATTR = "cube"


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


class DayStore:
    """A day-flagged store at a path or URL: how `build-cube` and `fill` create, extend,
    write, flag and describe theirs (the contracts of what is inside stay in
    `cube.layout` and `fill.product`)."""

    def __init__(self, location: str, storage_options: dict[str, Any] | None = None) -> None:
        self.location = location
        self.options = storage_options  # also those of a URL cube beside a local product
        self.zs = zarr_store(location, storage_options)

    @property
    def remote(self) -> bool:
        return is_url(self.location)

    def __str__(self) -> str:
        from gapfill.storage import shown

        return shown(self.location)

    def exists(self) -> bool:
        return exists(self.location, self.options if self.remote else None)

    def open(self) -> Any:
        """The store as an xarray Dataset (lazy, not from consolidated metadata)."""
        import xarray as xr

        return xr.open_zarr(self.zs, consolidated=False)

    def group(self, mode: Literal["r", "r+"] = "r+") -> Any:
        import zarr

        return zarr.open_group(self.zs, mode=mode, zarr_format=3, use_consolidated=False)

    def create(self, template: Any, encoding: dict[str, Any]) -> None:
        """Write the empty store (metadata, coordinates, `complete` all false). A local
        store is written aside and renamed into place, so a reader never sees half a
        template; an object store has no rename: it is written in place."""
        import os
        import shutil
        from pathlib import Path

        kw = {"compute": False, "zarr_format": 3, "consolidated": False, "mode": "w-"}
        if self.remote:
            template.to_zarr(self.zs, encoding=encoding, **kw)
            self.consolidate()
            return
        path = Path(self.location)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        template.to_zarr(tmp, encoding=encoding, **kw)
        _consolidate(str(tmp))
        tmp.rename(path)

    def append_days(self, template: Any, static: Sequence[str]) -> None:
        """Extend the time axis by the days of `template` (its `static` variables, which
        have no time axis, are already there); the attrs are the template's."""
        template.drop_vars(list(static)).to_zarr(
            self.zs, compute=False, zarr_format=3, consolidated=False, append_dim="time"
        )
        self.consolidate()

    def write_region(self, ds: Any, region: dict[str, slice]) -> None:
        """Write whole chunks of `ds` at `region` (every chunk stored, see
        `WRITE_EMPTY_CHUNKS`)."""
        ds.to_zarr(
            self.zs,
            region=region,
            mode="r+",
            zarr_format=3,
            consolidated=False,
            write_empty_chunks=WRITE_EMPTY_CHUNKS,
        )

    def write_block(self, name: str, index: int, y0: int, x0: int, values: Any) -> None:
        """Write stored (packed) `values` (..., y, x) of variable `name` at time `index`,
        rows and columns from (y0, x0): whole chunks, from any process (a Dask task);
        every chunk stored (`WRITE_EMPTY_CHUNKS`)."""
        import zarr

        array = zarr.open_array(self.zs, path=name, mode="r+", zarr_format=3)
        array = array.with_config({"write_empty_chunks": WRITE_EMPTY_CHUNKS})
        h, w = values.shape[-2:]
        array[(index, ..., slice(y0, y0 + h), slice(x0, x0 + w))] = values

    def update_json_attr(self, group: Any, name: str, update: dict[str, Any]) -> None:
        """Merge `update` into the JSON mapping held in attr `name`."""
        import json

        current = json.loads(str(group.attrs.get(name, "{}")))
        current.update(update)
        group.attrs[name] = json.dumps(current, sort_keys=True)

    def consolidate(self) -> None:
        _consolidate(self.zs)

    def remove(self) -> None:
        import fsspec

        opts = self.options if self.remote else None
        fs, root = fsspec.core.url_to_fs(self.location, **(opts or {}))
        if fs.exists(root):
            fs.rm(root, recursive=True)


def _consolidate(where: Any) -> None:
    from gapfill.cube import layout

    layout.consolidate(where)
