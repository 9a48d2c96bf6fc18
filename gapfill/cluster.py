"""Connecting to Dask: a scheduler address, or a LocalCluster started for the call."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from gapfill.errors import InputError

__all__ = ["dask_client"]


@contextlib.contextmanager
def dask_client(address: str | None, n_workers: int | None = None) -> Iterator[Any]:
    """A `distributed.Client` on `address`, else on a LocalCluster of worker processes with
    one thread each (torch and GDAL then do not oversubscribe the cores)."""
    from distributed import Client, LocalCluster

    # distributed sets its loggers to INFO on import (cluster start/stop chatter); keep
    # them at WARNING unless the user asked for DEBUG.
    if logging.getLogger("gapfill").getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"no Dask scheduler answers at {address} ({exc})") from None
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=n_workers or min(2, os.cpu_count() or 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
