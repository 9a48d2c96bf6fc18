"""Connecting to Dask: a scheduler address, or a LocalCluster started for the call."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from gapfill import _interrupt
from gapfill.errors import InputError, ServiceError

__all__ = ["dask_client", "local_cluster"]


@contextlib.contextmanager
def local_cluster(n_workers: int | None = None, *, torch_workers: bool = False) -> Iterator[Any]:
    """A LocalCluster of worker processes with one thread each (torch and GDAL then do not
    oversubscribe the cores) and no dashboard.

    `torch_workers`: start the workers without Dask's `MALLOC_TRIM_THRESHOLD_` (65536).
    Setting it turns off glibc's dynamic mmap threshold, so every activation tensor is
    mmap'ed and unmapped again: measured 13.4 s vs 9.4 s for the same 10 generator
    passes. Workers of a remote cluster that run `fill` want the same.
    """
    import dask
    from distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    if torch_workers:
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    # The whole mapping: dask.config turns "_" into "-" in dotted keys.
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": environ}),
        _sigint_ignored_by_children(),
    ):
        cluster = LocalCluster(
            n_workers=n_workers or min(2, os.cpu_count() or 1),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # Without a dashboard the scheduler still serves /health and /metrics over
            # HTTP, on 8787 by default: a free loopback port instead, so two runs on one
            # machine do not contend for it ("Port 8787 is already in use").
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
    with cluster:
        try:
            yield cluster
        except BaseException:
            _quiet_teardown()
            raise


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Ctrl-C in a terminal signals the whole process group. Worker processes spawned
    while SIGINT is ignored keep ignoring it (an ignored signal survives exec, and Python
    then installs no KeyboardInterrupt handler), so only the gapfill process reacts: it
    stops, closes the cluster and says how to resume, instead of every worker printing
    its own traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _quiet_teardown() -> None:
    """After Ctrl-C or a failed task, closing the cluster cancels its in-flight gathers
    and connections; Dask and asyncio log each as an error with a traceback. The one line
    `gapfill: interrupted` (or the error, re-raised with its own traceback where it is a
    bug) says what happened."""
    _interrupt.stopping()
    for name in ("distributed", "asyncio", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


@contextlib.contextmanager
def dask_client(
    address: str | None, n_workers: int | None = None, *, torch_workers: bool = False
) -> Iterator[Any]:
    """A `distributed.Client` on `address`, else on a `local_cluster` started for the call."""
    from distributed import Client

    # distributed sets its loggers to INFO on import (cluster start/stop chatter); keep
    # them at WARNING unless the user asked for DEBUG.
    if logging.getLogger("gapfill").getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if address:
        try:
            client = Client(address, timeout="10s")
        except ValueError as exc:
            raise InputError(
                f"--dask-scheduler {address!r} is not a scheduler address ({exc}): give "
                "tcp://HOST:PORT"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise ServiceError(f"no Dask scheduler answers at {address} ({exc})") from None
        with client:
            _forward_logs(client)
            yield client
        return
    with (
        local_cluster(n_workers, torch_workers=torch_workers) as cluster,
        Client(cluster) as client,
    ):
        _forward_logs(client)
        with contextlib.suppress(Exception):
            client.run(_drop_task_failure_logs)
        try:
            yield client
        except BaseException:
            _quiet_teardown()
            with contextlib.suppress(Exception):
                client.run(_quiet_teardown)
            raise


class _NoTaskFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


def _drop_task_failure_logs() -> None:
    """In our own LocalCluster's workers: a failed task's exception reaches the client,
    which re-raises it (one line for a user or machine error, the remote traceback for a
    bug), so the worker's own "Compute Failed" warning with its traceback is noise."""
    logging.getLogger("distributed.worker").addFilter(_NoTaskFailures())


def _forward_logs(client: Any) -> None:
    """gapfill's warnings and errors in worker tasks reach the user's terminal."""
    client.forward_logging("gapfill", level=logging.WARNING)
