"""Leases: one run at a time per store, on local disks and object stores alike.

A lease is a small JSON object beside the store (`NAME.lease`), created only if absent
(`open(..., "xb")`: `O_EXCL` on a local disk, a conditional write `If-None-Match: *` on
S3 through s3fs), holding its owner, host, pid, generation and expiry. The holder renews
it while it runs; a crashed holder's lease expires (at once where the holder ran on this
host and its pid is gone). Taking an expired lease over creates a marker object
`NAME.lease.gen-N` for the lease's next generation, also only if absent: of two runs
racing for one dead lease exactly one wins, on any store with exclusive create.

This replaces `flock` for runs that may meet on an object store, where no lock files
exist; the day locks of `fill` stay `flock` for local stores.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import fsspec

from gapfill.errors import GapfillError
from gapfill.storage import is_url, shown

__all__ = ["Lease", "LeaseInfo", "LeaseHeld", "EXIT_LEASE_HELD", "lease_location"]

log = logging.getLogger(__name__)

# EX_TEMPFAIL: "try again later" — what a scheduler should see when a run is refused
# because another one holds the lease (not a failure of the job).
EXIT_LEASE_HELD = 75


class LeaseHeld(GapfillError):
    """Another live run holds the lease."""

    exit_code = EXIT_LEASE_HELD


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease object holds."""

    owner: str
    host: str
    pid: int
    run_id: str
    generation: int
    acquired: str
    expires: str

    def expired(self, now: dt.datetime) -> bool:
        """Past its expiry, or held by a process of this host that no longer exists."""
        if now >= dt.datetime.fromisoformat(self.expires):
            return True
        return self.host == socket.gethostname() and not _pid_alive(self.pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def lease_location(store: str, suffix: str = ".lease") -> str:
    """Where the lease of the store at `store` (a path or URL) lives: beside it."""
    return store.rstrip("/") + suffix


class Lease:
    """The lease on one store; use `with Lease(...).held():` around a run."""

    def __init__(
        self,
        store: str,
        owner: str,
        *,
        ttl_s: float = 120.0,
        storage_options: dict[str, Any] | None = None,
        suffix: str = ".lease",
    ) -> None:
        self.store = store
        self.owner = owner
        self.ttl = dt.timedelta(seconds=ttl_s)
        self.fs, self.path = fsspec.core.url_to_fs(
            lease_location(store, suffix), **(storage_options or {})
        )
        self.run_id = uuid.uuid4().hex[:12]
        self.info: LeaseInfo | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _new_info(self, generation: int, now: dt.datetime) -> LeaseInfo:
        return LeaseInfo(
            owner=self.owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            run_id=self.run_id,
            generation=generation,
            acquired=now.isoformat(),
            expires=(now + self.ttl).isoformat(),
        )

    def _create(self, path: str, data: bytes) -> bool:
        """Write `data` at `path` only if nothing is there; False if something is."""
        try:
            with self.fs.open(path, "xb") as fh:
                fh.write(data)
        except FileExistsError:
            return False
        return True

    def read(self) -> LeaseInfo | None:
        """The lease now at this store, or None."""
        try:
            raw = self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None
        try:
            return LeaseInfo(**json.loads(raw))
        except (ValueError, TypeError):  # half-written by a crashed writer: treat as dead
            return LeaseInfo("?", "?", 0, "?", 0, _EPOCH, _EPOCH)

    def acquire(self) -> LeaseInfo:
        """Take the lease, or raise `LeaseHeld` naming its live holder."""
        if not is_url(self.store):
            self.fs.makedirs(self.fs._parent(self.path), exist_ok=True)
        now = _now()
        mine = self._new_info(1, now)
        held = None
        for _ in range(3):  # a lease released between our create and read: create again
            if self._create(self.path, _dumps(mine)):
                self.info = mine
                return mine
            held = self.read()
            if held is not None:
                break
        if held is not None and not held.expired(now):
            raise self._held(held)
        generation = (held.generation if held else 0) + 1
        if not self._create(f"{self.path}.gen-{generation}", self.run_id.encode()):
            raise self._held(self.read() or held)
        mine = self._new_info(generation, now)
        self.fs.pipe_file(self.path, _dumps(mine))
        self._clean_markers(below=generation)
        if held is not None:
            log.warning(
                "took over the expired lease of run %s (pid %d on %s, expired %s)",
                held.run_id,
                held.pid,
                held.host,
                held.expires,
            )
        self.info = mine
        return mine

    def _held(self, held: LeaseInfo | None) -> LeaseHeld:
        who = (
            f"run {held.run_id} of {held.owner} (pid {held.pid} on {held.host}, "
            f"lease until {held.expires[:19]}Z)"
            if held is not None
            else "another run"
        )
        return LeaseHeld(
            f"{shown(self.store)} is held by {who}: this run did nothing; the next "
            "scheduled run will go on once that one ends"
        )

    def renew(self) -> bool:
        """Push the expiry forward; False (and `lost` set) if another run took it over."""
        assert self.info is not None
        current = self.read()
        if current is None or current.run_id != self.run_id:
            self.lost.set()
            return False
        now = _now()
        self.info = LeaseInfo(**{**asdict(self.info), "expires": (now + self.ttl).isoformat()})
        self.fs.pipe_file(self.path, _dumps(self.info))
        return True

    def release(self) -> None:
        """Remove the lease (only if still ours) and its takeover markers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        current = self.read()
        if current is not None and current.run_id == self.run_id:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)
            self._clean_markers(below=None)
        self.info = None

    def _clean_markers(self, below: int | None) -> None:
        for marker in self.fs.glob(f"{self.path}.gen-*"):
            gen = marker.rsplit("-", 1)[-1]
            if gen.isdigit() and (below is None or int(gen) < below):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(marker)

    def _renew_loop(self) -> None:
        period = self.ttl.total_seconds() / 3
        while not self._stop.wait(period):
            try:
                if not self.renew():
                    log.error("the lease on %s was taken over by another run", shown(self.store))
                    return
            except OSError as exc:  # a blip of the store: try again next period
                log.warning("could not renew the lease on %s: %s", shown(self.store), exc)

    @contextlib.contextmanager
    def held(self) -> Iterator[LeaseInfo]:
        """Hold the lease for the body, renewed in a background thread."""
        info = self.acquire()
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name="lease", daemon=True)
        self._thread.start()
        try:
            yield info
        finally:
            self.release()


_EPOCH = "1970-01-01T00:00:00+00:00"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _dumps(info: LeaseInfo) -> bytes:
    return json.dumps(asdict(info), sort_keys=True).encode()
