"""Connecting to Dask: a scheduler address, or a LocalCluster started for the call."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from gapfill import _interrupt
from gapfill.errors import InputError, ServiceError
from gapfill.storage import is_url

__all__ = ["check_workers", "dask_client", "local_cluster", "same_software"]

# What a remote worker must share with the client: tasks are pickled by reference to
# gapfill's functions, and the model's weights are read with the workers' torch.
SOFTWARE = ("gapfill", "torch")


@contextlib.contextmanager
def local_cluster(n_workers: int | None = None) -> Iterator[Any]:
    """A LocalCluster of worker processes with one thread each (torch and GDAL then do not
    oversubscribe the cores) and no dashboard.

    The workers start without Dask's `MALLOC_TRIM_THRESHOLD_` (65536). Setting it turns
    off glibc's dynamic mmap threshold, so every array of a few MB (an activation tensor,
    a COG window) is mmap'ed, page-faulted in and unmapped again: measured 13.4 s vs
    9.4 s for the same 10 generator passes, and 0.411 s vs 0.278 s for the same cube
    tile (read, masks, S1 matching, write). Workers of a remote cluster want the same.
    """
    import dask
    from distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
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
    _interrupt.quiet_teardown_logs()


@contextlib.contextmanager
def dask_client(
    address: str | None,
    n_workers: int | None = None,
    *,
    reads: Mapping[str, str | None] | None = None,
    writes: Mapping[str, str | None] | None = None,
) -> Iterator[Any]:
    """A `distributed.Client` on `address`, else on a `local_cluster` started for the call.

    On a scheduler address the workers are checked first (`check_workers`): same gapfill
    and torch as this process, and the local paths in `reads` / `writes` ({what: path})
    visible to each of them, since tasks read the cube and write the store themselves.
    """
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
            check_workers(client, address, reads=reads or {}, writes=writes or {})
            yield client
        return
    with (
        local_cluster(n_workers) as cluster,
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


def same_software(found: Mapping[str, str], where: str) -> None:
    """Refuse in one line when `found` ({package: version, or an error text}, from one
    worker or node) differs from this process's gapfill or torch. torch is compared by
    release (2.13.0+cpu on a CPU client and 2.13.0 with CUDA on a GPU worker agree)."""
    for name in SOFTWARE:
        mine, theirs = _version(name), found.get(name, "not installed")
        if name == "torch":
            mine, theirs = mine.split("+")[0], theirs.split("+")[0]
        if mine != theirs:
            raise InputError(
                f"{where} has {name} {theirs}, this process {name} {mine}: install the same "
                f"{' and '.join(SOFTWARE)} on every worker (cluster/README.md)"
            )


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def check_workers(
    client: Any,
    address: str,
    *,
    reads: Mapping[str, str | None],
    writes: Mapping[str, str | None],
    wait_s: float = 30.0,
) -> None:
    """Before any task of a cluster we did not start: it has workers, they run our gapfill
    and torch, and they see the local paths the tasks will open (a worker on another
    machine without the shared mount would otherwise fail task by task, or write into its
    own disk). URLs are left to the tasks (credentials are the workers' own)."""
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError:
        raise ServiceError(
            f"the Dask scheduler at {address} has no workers after {wait_s:g} s: start "
            "`dask worker` processes for it (cluster/README.md)"
        ) from None
    # The stdlib's function, not one of ours: it unpickles on a worker without gapfill.
    versions = {
        name: client.run(importlib.metadata.version, name, on_error="return") for name in SOFTWARE
    }
    for worker in sorted(versions["gapfill"]):
        found = {
            name: v if isinstance(v := versions[name].get(worker), str) else "not installed"
            for name in SOFTWARE
        }
        same_software(found, f"Dask worker {worker}")
    checks: list[tuple[str, str | None, Callable[[str], bool], str]] = [
        (what, p, os.path.exists, "read") for what, p in reads.items()
    ]
    checks += [(what, p, _parent_writable, "write") for what, p in writes.items()]
    for what, path, probe, verb in checks:
        if not path or is_url(path):
            continue
        for worker, ok in sorted(client.run(probe, path, on_error="return").items()):
            if ok is not True:
                raise InputError(
                    f"Dask worker {worker} cannot {verb} the {what} {path}: the workers open "
                    "it themselves; mount it at the same path on every worker or use an "
                    "object-store URL (cluster/README.md)"
                )


def _parent_writable(path: str) -> bool:
    """On a worker: the folder that holds `path` is there and writable."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    return os.path.isdir(parent) and os.access(parent, os.W_OK)


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
