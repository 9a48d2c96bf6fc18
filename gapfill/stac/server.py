"""A real local STAC API: stac-fastapi-pgstac over a private PostgreSQL + PostGIS.

Used by the demo, the tests and `gapfill stac serve`. The database lives in a temp
folder owned by the `postgres` user when run as root (initdb refuses root), listens
on 127.0.0.1 only, and everything is torn down on exit, Ctrl-C or SIGTERM. Children
get a parent-death signal, so a killed parent leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gapfill.errors import InputError, ServiceError

__all__ = ["LocalStacApi", "local_stac_api", "load_catalog_dicts", "free_port"]

log = logging.getLogger(__name__)

# Properties that must compare as numbers in `query`/CQL2 filters and sorting.
_QUERYABLES = {
    "eo:cloud_cover": (
        '{"title": "Cloud cover", "type": "number", "minimum": 0, "maximum": 100}',
        "to_float",
    ),
    "sat:relative_orbit": (
        '{"title": "Relative orbit", "type": "integer", "minimum": 1}',
        "to_int",
    ),
}
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a child (before exec): get SIGTERM when the parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _as_user(uid: int | None, gid: int | None):
    def preexec() -> None:
        os.setsid()
        if gid is not None and uid is not None:
            os.setgid(gid)
            os.setuid(uid)
        _die_with_parent()  # after setuid, which clears the death signal

    return preexec


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _pg_bindir() -> Path:
    """The PostgreSQL server binaries, with PostGIS installed beside them."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    for path in found:
        bindir = Path(path).parent
        version = bindir.parent.name
        if glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"):
            return bindir
    if found:
        raise ServiceError(
            "PostGIS is not installed for PostgreSQL: run 'make setup' "
            "(or apt-get install postgresql-15-postgis-3)"
        )
    raise ServiceError(
        "PostgreSQL is not installed: run 'make setup' "
        "(or apt-get install postgresql postgresql-15-postgis-3)"
    )


def load_catalog_dicts(catalog_dirs: Sequence[str | Path]) -> tuple[list[dict], list[dict]]:
    """Collections (same ids merged: extents united) and items with absolute asset hrefs."""
    import pystac

    collections: dict[str, dict] = {}
    items: list[dict] = []
    seen: dict[tuple[str, str], Path] = {}
    for d in catalog_dirs:
        path = Path(d).resolve()
        root = path / "catalog.json" if path.is_dir() else path
        if not root.is_file():
            raise InputError(f"{d} has no catalog.json: give the folder of a static STAC catalog")
        try:
            cat = pystac.read_file(str(root))
        except Exception as exc:  # pystac raises many types for a broken file
            raise InputError(f"{root} is not a readable STAC catalog ({exc})") from None
        if not isinstance(cat, pystac.Catalog):
            raise InputError(f"{root} is a STAC {type(cat).__name__}, not a catalog")
        # Raw JSON, not pystac's objects: pystac migrates old extension versions on read
        # (projection v1 -> v2 drops proj:epsg), and the API must serve what providers do.
        for coll in cat.get_all_collections():
            _merge_collection(collections, _raw(coll.get_self_href()))
        for item in cat.get_items(recursive=True):
            href = item.get_self_href()
            data = _raw(href)
            cid = data.get("collection") or item.collection_id
            if cid is None:
                raise InputError(f"item {item.id} in {root} belongs to no collection")
            key = (cid, item.id)
            if key in seen:
                raise InputError(f"item {item.id} of {cid} is in both {seen[key]} and {root}")
            seen[key] = root
            base = Path(str(href)).parent
            for asset in data.get("assets", {}).values():
                if "://" not in asset["href"]:
                    asset["href"] = str((base / asset["href"]).resolve())
            data["links"] = []
            data["collection"] = cid
            items.append(data)
    for c in collections.values():
        c["links"] = []
    return list(collections.values()), items


def _raw(href: str | None) -> dict:
    if href is None:
        raise InputError("a STAC object in the catalog has no file")
    return json.loads(Path(href).read_text())


def _merge_collection(collections: dict[str, dict], new: dict) -> None:
    old = collections.get(new["id"])
    if old is None:
        collections[new["id"]] = new
        return
    # STAC: the first bbox is the overall extent, the others the parts.
    boxes = old["extent"]["spatial"]["bbox"][1:] or old["extent"]["spatial"]["bbox"][:1]
    boxes = boxes + new["extent"]["spatial"]["bbox"][-1:]
    overall = [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]
    old["extent"]["spatial"]["bbox"] = [overall, *boxes]
    oi, ni = old["extent"]["temporal"]["interval"][0], new["extent"]["temporal"]["interval"][0]
    starts = [t for t in (oi[0], ni[0]) if t]
    ends = [t for t in (oi[1], ni[1]) if t]
    old["extent"]["temporal"]["interval"] = [
        [min(starts) if starts else None, max(ends) if ends else None]
    ]


@dataclass
class LocalStacApi:
    """A running local STAC API; use `local_stac_api(...)` to start one."""

    url: str
    port: int
    pg_port: int
    dsn: str
    n_collections: int
    n_items: int
    _procs: list[subprocess.Popen] = field(default_factory=list, repr=False)
    _tmp: Path | None = field(default=None, repr=False)

    def alive(self) -> bool:
        """Whether the database and the API processes are still running."""
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    def upsert(self, items: Sequence[dict], collections: Sequence[dict] = ()) -> None:
        """Insert or replace items (and collections) in the running API's database, as new
        acquisitions arrive in a real catalogue."""
        from pypgstac.db import PgstacDB
        from pypgstac.load import Loader, Methods

        with PgstacDB(dsn=self.dsn) as db:
            loader = Loader(db)
            if collections:
                loader.load_collections(iter(collections), Methods.upsert)
            if items:
                loader.load_items(iter(items), Methods.upsert)
        self.n_items += len(items)

    def close(self) -> None:
        """Stop the API and the database and remove the data folder."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                # postgres: SIGINT is the "fast" shutdown; uvicorn stops on SIGINT too.
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._procs.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _wait_for(check, what: str, proc: subprocess.Popen, timeout: float, logfile: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace")[-1500:] if logfile.exists() else ""
            raise ServiceError(
                f"{what} exited during start-up (code {proc.returncode}): "
                f"{tail.strip().splitlines()[-1] if tail.strip() else 'no output'}"
            )
        if check():
            return
        time.sleep(0.1)
    # The log lives in a folder removed on the way out: quote its end, not its path.
    lines = logfile.read_text(errors="replace").strip().splitlines() if logfile.exists() else []
    raise ServiceError(
        f"{what} did not become ready within {timeout:.0f} s "
        f"(last log line: {lines[-1][:200] if lines else 'none'})"
    )


@contextlib.contextmanager
def local_stac_api(
    catalogs: Sequence[str | Path], port: int | None = None, *, startup_timeout: float = 60.0
) -> Iterator[LocalStacApi]:
    """Start PostgreSQL + pgstac + stac-fastapi-pgstac on 127.0.0.1 and load `catalogs`.

    `port` is the API's port (a free one when None); a port in use is an `InputError`.
    """
    _require_server_extra()
    collections, items = load_catalog_dicts(catalogs)
    port = port or None  # 0: any free port
    if port is not None and _port_in_use(port):
        raise InputError(f"port {port} on 127.0.0.1 is already in use: pick another with --port")
    bindir = _pg_bindir()
    tmp = Path(tempfile.mkdtemp(prefix="gapfill-stac-"))
    os.chmod(tmp, 0o755)
    data, sock = tmp / "pgdata", tmp / "sock"
    data.mkdir()
    sock.mkdir()
    uid = gid = None
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        uid, gid = pw.pw_uid, pw.pw_gid
        for p in (data, sock):
            os.chown(p, uid, gid)
    os.chmod(data, 0o700)
    api = LocalStacApi(url="", port=0, pg_port=0, dsn="", n_collections=0, n_items=0, _tmp=tmp)
    try:
        pg_log = tmp / "initdb.log"
        with open(pg_log, "wb") as out:
            rc = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_as_user(uid, gid),
                check=False,
            ).returncode
        if rc != 0:
            raise ServiceError(f"initdb failed (see {pg_log}): {pg_log.read_text()[-300:].strip()}")
        pg_port = free_port()
        pg_logfile = tmp / "postgres.log"
        pg = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(pg_port),
                "-k",
                str(sock),
                "-h",
                "127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=50",
            ],
            stdout=open(pg_logfile, "wb"),
            stderr=subprocess.STDOUT,
            preexec_fn=_as_user(uid, gid),
        )
        api._procs.append(pg)
        dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        _wait_for(lambda: _pg_ready(dsn), "PostgreSQL", pg, startup_timeout, pg_logfile)
        _migrate_and_load(dsn, collections, items)
        api_port = port if port is not None else free_port()
        api_log = tmp / "api.log"
        env = {
            **os.environ,
            "PGUSER": "postgres",
            "PGPASSWORD": "unused",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(pg_port),
            "PGDATABASE": "postgres",
            "ENABLE_RESPONSE_MODELS": "false",
            "DB_MIN_CONN_SIZE": "1",
            "DB_MAX_CONN_SIZE": "4",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "stac_fastapi.pgstac.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--log-level",
                "warning",
            ],
            stdout=open(api_log, "wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
            preexec_fn=_as_user(None, None),
        )
        api._procs.append(server)
        url = f"http://127.0.0.1:{api_port}"
        _wait_for(
            lambda: _http_ok(url + "/_mgmt/ping"),
            "stac-fastapi-pgstac",
            server,
            startup_timeout,
            api_log,
        )
        api.url, api.port, api.pg_port, api.dsn = url, api_port, pg_port, dsn
        api.n_collections, api.n_items = len(collections), len(items)
        log.info(
            "local STAC API at %s: %d collections, %d items", url, len(collections), len(items)
        )
        yield api
    finally:
        api.close()


def _require_server_extra() -> None:
    """The API and pgstac come with the `server` extra; say so before starting anything."""
    import importlib.util

    for module in ("psycopg", "pypgstac", "stac_fastapi.pgstac", "uvicorn"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise InputError(
                f"the local STAC API needs the server extra (no module {module}): "
                "pip install 'gapfill[server]'"
            )


def _pg_ready(dsn: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _migrate_and_load(dsn: str, collections: list[dict], items: list[dict]) -> None:
    import psycopg
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods
    from pypgstac.migrate import Migrate

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    with PgstacDB(dsn=dsn) as db:
        Migrate(db).run_migration()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET search_path TO pgstac, public")
        for name, (definition, wrapper) in _QUERYABLES.items():
            conn.execute("DELETE FROM pgstac.queryables WHERE name = %s", (name,))
            conn.execute(
                "INSERT INTO pgstac.queryables (name, definition, property_wrapper, "
                "property_index_type) VALUES (%s, %s::jsonb, %s, 'BTREE')",
                (name, definition, wrapper),
            )
    with PgstacDB(dsn=dsn) as db:
        loader = Loader(db)
        loader.load_collections(iter(collections), Methods.upsert)
        if items:
            loader.load_items(iter(items), Methods.upsert)
