"""Leases on a local disk and on a real S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import subprocess
import sys

import pytest

from gapfill.lease import EXIT_LEASE_HELD, Lease, LeaseHeld, LeaseInfo, lease_location
from gapfill.stac.server import free_port


@pytest.fixture(scope="module")
def s3_options():
    """A real S3 API (moto server) on a free loopback port, with one bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket="gapfill-test"
    )
    yield {
        "key": "test",
        "secret": "test",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    server.stop()


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """(store location, storage options) on a local disk or in a bucket."""
    if request.param == "local":
        return str(tmp_path / "filled.zarr"), None
    opts = request.getfixturevalue("s3_options")
    return f"s3://gapfill-test/{tmp_path.name}/filled.zarr", opts


def _lease(where, **kw) -> Lease:
    store, opts = where
    return Lease(store, "test", storage_options=opts, **kw)


def _plant(lease: Lease, **changes) -> None:
    """Write a lease object as another run would have left it."""
    info = LeaseInfo(
        owner="other",
        host="elsewhere",
        pid=1,
        run_id="theirs",
        generation=1,
        acquired="2024-01-01T00:00:00+00:00",
        expires=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat(),
    )
    lease.fs.pipe_file(lease.path, json.dumps(dataclasses.asdict(info) | changes).encode())


def test_a_second_run_is_refused_while_the_first_holds_the_lease(where):
    first, second = _lease(where), _lease(where)
    with first.held():
        with pytest.raises(LeaseHeld) as err:
            second.acquire()
        assert err.value.exit_code == EXIT_LEASE_HELD == 75
        assert f"run {first.run_id}" in str(err.value) and "\n" not in str(err.value)
    assert first.read() is None  # released: nothing left beside the store
    with second.held():
        assert second.read().run_id == second.run_id


def test_an_expired_lease_is_taken_over(where):
    lease = _lease(where)
    _plant(lease, expires="2024-01-01T01:00:00+00:00")
    info = lease.acquire()
    assert info.generation == 2 and lease.read().run_id == lease.run_id
    lease.release()
    assert lease.fs.glob(f"{lease.path}*") == []


def test_a_live_lease_of_another_host_is_respected(where):
    lease = _lease(where)
    _plant(lease)
    with pytest.raises(LeaseHeld, match="run theirs of other"):
        lease.acquire()


def test_a_dead_local_holder_frees_its_lease_before_expiry(where):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lease = _lease(where)
    _plant(lease, host=socket.gethostname(), pid=int(dead.stdout))
    assert lease.acquire().generation == 2
    lease.release()


def test_of_two_runs_taking_over_one_dead_lease_only_one_wins(where):
    lease = _lease(where)
    _plant(lease, expires="2024-01-01T01:00:00+00:00")
    # The other taker created the next generation's marker first.
    lease.fs.pipe_file(f"{lease.path}.gen-2", b"winner")
    with pytest.raises(LeaseHeld):
        lease.acquire()


def test_a_holder_whose_lease_was_taken_over_knows_it(where):
    lease = _lease(where, ttl_s=60)
    lease.acquire()
    assert lease.renew()
    _plant(lease, generation=2)
    assert not lease.renew() and lease.lost.is_set()
    lease.release()
    assert lease.read().run_id == "theirs"  # not ours to remove


def test_the_lease_lives_beside_the_store():
    assert lease_location("s3://b/x/filled.zarr/") == "s3://b/x/filled.zarr.lease"
