"""Lazy package surfaces (PEP 562, as scientific-python's SPEC 1): a package's `__init__`
lists its public names and the modules that define them, and imports a module only when
one of its names is first used. So `import gapfill.train.loop` in a Ray worker, or the
card module on a GPU image without Dask, does not import the cube builder's rasterio,
pystac and Dask."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["attach"]


def attach(
    package: str, public: Sequence[str], where: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose `public` names (its `__all__`) are
    defined in its submodules as `where` ({submodule: names}) says."""
    module_of = {name: sub for sub, names in where.items() for name in names}
    if sorted(module_of) != sorted(public):
        raise ImportError(f"{package}: __all__ and its lazy imports name different objects")

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(public)

    return __getattr__, __dir__
