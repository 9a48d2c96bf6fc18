"""Local services listen on the loopback interface only: the STAC API and its PostgreSQL,
and the Dask LocalCluster that fill and build-cube start for themselves."""

from __future__ import annotations

import ipaddress

import psutil
import pytest

pytestmark = pytest.mark.integration


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    return [
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]


def test_local_services_listen_on_loopback_only(stac_api, dask_address):
    me = psutil.Process()
    ours = {me.pid, *(p.pid for p in me.children(recursive=True))}
    sockets = _listening(ours)
    ports = {port for _, _, port in sockets}
    assert int(stac_api.url.rsplit(":", 1)[1]) in ports  # the API is among them
    assert int(dask_address.rsplit(":", 1)[1]) in ports  # and the Dask scheduler
    assert len({pid for pid, _, _ in sockets}) >= 4  # API, postgres, 2 Dask workers
    assert all(ipaddress.ip_address(ip).is_loopback for _, ip, _ in sockets), sockets
