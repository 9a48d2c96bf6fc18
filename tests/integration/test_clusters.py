"""Ray and Dask clusters of separate processes on 127.0.0.1, started as cluster/README.md
says (`ray start --head` + `ray start --address`, `dask scheduler` + `dask worker`), not
by gapfill: train, build-cube and fill against them give what the local runs give, survive
a lost node or worker, and refuse workers with other software or without the paths."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import torch
import xarray as xr

from gapfill.fill import FillConfig, fill, product
from tests.conftest import cube_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

BIN = Path(sys.executable).parent
CLI = [sys.executable, "-m", "gapfill.cli"]
DASK_WORKER_ENV = {"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": json.dumps(
    {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1}
)}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_AUTH_MODE": "disabled", **extra}


def _kill_marked(marker: str) -> None:
    """SIGKILL every process whose command line holds `marker`, and their children: what
    a lost machine looks like to the rest of the cluster."""
    victims = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in " ".join(p.info["cmdline"] or []):
            victims += [p, *p.children(recursive=True)]
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=10)


def _other_gapfill(root: Path) -> str:
    """A folder that, first on PYTHONPATH, makes a process see gapfill 9.9.9 installed (a
    real distribution record, found by importlib.metadata like any other)."""
    dist = root / "gapfill-9.9.9.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gapfill\nVersion: 9.9.9\n")
    return str(root)


def _one_line_error(result: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-3000:]
    assert lines and lines[-1].startswith("gapfill: error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


class RayNodes:
    """A Ray head (no CPUs: it holds the driver's controller, as on KubeRay) and worker
    nodes, each `ray start` with its own temp dir, so it can be killed alone and nothing
    touches /tmp/ray (where a plain `ray.init()` would find it)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gfray", dir="/tmp"))  # unix socket length
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[str] = []
        # A lost node is declared dead after 2 missed health checks 1 s apart (Ray's
        # defaults: 5 x 3 s), so the test waits seconds, not half a minute, to see it.
        health = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "2"}
        self._start(
            "head", "--head", "--port", str(self.port), "--num-cpus", "0",
            "--include-dashboard", "false", "--dashboard-port", str(_free_port()),
            env=_env(**health),
        )  # fmt: skip

    def _start(self, name: str, *args: str, env: dict[str, str] | None = None) -> str:
        temp = self.root / name
        temp.mkdir()
        done = subprocess.run(
            [str(BIN / "ray"), "start", *args, "--node-ip-address", "127.0.0.1",
             "--temp-dir", str(temp), "--dashboard-agent-listen-port", str(_free_port()),
             "--disable-usage-stats"],
            capture_output=True, text=True, env=env or _env(), timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        self.nodes.append(name)
        return str(temp)

    def add_node(self, name: str, cpus: int = 1, env: dict[str, str] | None = None) -> str:
        return self._start(
            name, "--address", self.address, "--num-cpus", str(cpus), env=env or _env()
        )

    def kill(self, name: str) -> None:
        _kill_marked(str(self.root / name))

    def stop(self) -> None:
        for name in reversed(self.nodes):
            self.kill(name)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_nodes() -> Iterator[RayNodes]:
    nodes = RayNodes()
    try:
        yield nodes
    finally:
        nodes.stop()


class DaskProcesses:
    """`dask scheduler` and `dask worker` processes, each in its own session so that one
    can be killed whole (nanny and worker)."""

    def __init__(self, n_workers: int) -> None:
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self.procs: dict[str, subprocess.Popen] = {}
        self._spawn(
            "scheduler",
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port,
             "--dashboard-address", f"127.0.0.1:{_free_port()}"],
        )  # fmt: skip
        for i in range(n_workers):
            self.add_worker(f"w{i}")
        self.wait_for(n_workers)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.procs[name] = subprocess.Popen(
            argv,
            cwd=tempfile.gettempdir(),
            env=env or _env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def add_worker(self, name: str, *, env: dict[str, str] | None = None, prefix=()) -> None:
        argv = [
            *prefix, str(BIN / "dask"), "worker", self.address, "--name", name,
            "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
        ]  # fmt: skip
        self._spawn(name, argv, env={**(env or _env()), **DASK_WORKER_ENV})

    def wait_for(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            deadline = time.monotonic() + timeout
            while len(client.scheduler_info()["workers"]) != n:
                assert time.monotonic() < deadline, client.scheduler_info()["workers"].keys()
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for name in [n for n in self.procs if n != "scheduler"] + ["scheduler"]:
            self.kill(name)


@pytest.fixture(scope="module")
def dask_procs() -> Iterator[DaskProcesses]:
    procs = DaskProcesses(2)
    try:
        yield procs
    finally:
        procs.stop()


@pytest.fixture(scope="module")
def filled_local(tmp_path_factory, cube_pc, model_tiny, dask_address) -> Path:
    """The reference: the cube filled on the session's LocalCluster."""
    out = tmp_path_factory.mktemp("local") / "filled.zarr"
    fill(
        FillConfig(cube=str(cube_pc), model=str(model_tiny), out=str(out)),
        dask_scheduler=dask_address,
    )
    return out


def _values(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    ds = xr.open_zarr(path)
    return {n: ds[n].values for n in names}


def _assert_same(a: Path, b: Path, names: tuple[str, ...]) -> None:
    va, vb = _values(a, names), _values(b, names)
    for name in names:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=name)


PRODUCT_VARS = (*product.DAY_VARS, product.COMPLETE)


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)


def _train_argv(cube: Path, out: Path, *extra: str) -> list[str]:
    # One CPU per worker on both sides: a local run's default is the machine's CPUs, and
    # weights equal bit for bit only at the same torch thread count.
    return [
        *CLI, "train", "--cube", str(cube), "--patch", "32", "--method", "mtcnn",
        "--preset", "test-tiny", "--epochs", "2", "--workers", "1", "--seed", "3",
        "--cpus-per-worker", "1", "--out", str(out), *extra,
    ]  # fmt: skip


def test_train_on_separate_ray_nodes_survives_a_lost_node_and_equals_a_local_run(
    tmp_path, cube_pc, ray_nodes
):
    """`gapfill train --ray-address` on a head + one worker node. Once the first epoch is
    checkpointed the worker node is SIGKILLed whole (raylet, workers); a new node joins,
    as a cluster's autoscaler or KubeRay would bring one, and Ray Train resumes from the
    checkpoint (max_failures). The model equals the local run's bit for bit (same seed,
    same data order; resume is exact)."""
    local = tmp_path / "local"
    # The local run (its own Ray) alongside: the two compete for the cores, which changes
    # timings, not results.
    reference = subprocess.Popen(
        _train_argv(cube_pc, local), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=_env(),
    )  # fmt: skip
    ray_nodes.add_node("a")
    out, err = tmp_path / "cluster", tmp_path / "stderr.txt"
    argv = _train_argv(cube_pc, out, "--ray-address", ray_nodes.address)
    with err.open("w") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=_env())
        deadline = time.monotonic() + 180
        while not list((out / "ray").rglob("checkpoint_*")):
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
            time.sleep(0.1)
        ray_nodes.kill("a")
        ray_nodes.add_node("b")
        assert proc.wait(timeout=240) == 0, err.read_text()[-3000:]
    _, local_err = reference.communicate(timeout=240)
    assert reference.returncode == 0, local_err[-3000:]
    log = err.read_text()
    assert "Connected to Ray cluster" in log
    epochs = [row.split(",")[0] for row in (out / "metrics.csv").read_text().split()[1:]]
    assert [float(e) for e in epochs] == [0.0, 1.0]  # resumed: nothing lost or repeated
    a, b = _weights(local), _weights(out)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ray_nodes_with_other_software_or_no_gpu_are_refused_in_one_line(
    tmp_path, cube_pc, ray_nodes
):
    if "b" not in ray_nodes.nodes:
        ray_nodes.add_node("b")
    no_gpu = subprocess.run(
        _train_argv(cube_pc, tmp_path / "gpu", "--ray-address", ray_nodes.address,
                    "--gpus-per-worker", "1"),
        capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    _one_line_error(no_gpu, 2, "0 GPUs")

    # Run from elsewhere than the checkout: Ray puts the driver's folder first on its
    # workers' sys.path, and the checkout's gapfill.egg-info would be found before the
    # node's own packages.
    fake = _other_gapfill(tmp_path / "other")
    ray_nodes.add_node("other", env=_env(PYTHONPATH=fake))
    try:
        other = subprocess.run(
            _train_argv(cube_pc, tmp_path / "other-run", "--ray-address", ray_nodes.address),
            capture_output=True, text=True, env=_env(), cwd=tmp_path,
        )  # fmt: skip
    finally:
        ray_nodes.kill("other")
    _one_line_error(other, 2, "Ray node ", "gapfill 9.9.9", "this process gapfill")
    assert not (tmp_path / "other-run" / "model.pt").exists()


def test_build_cube_and_fill_on_separate_dask_workers_equal_local_runs(
    tmp_path, world_pc, stac_api, cube_pc, model_tiny, filled_local, dask_procs
):
    from gapfill.cube import build_cube

    cube = tmp_path / "cube.zarr"
    build_cube(cube, cube_config(world_pc, stac_api.url), dask_scheduler=dask_procs.address)
    names = tuple(xr.open_zarr(cube_pc).data_vars)
    assert {"s2", "s1", "clear"} <= set(names)
    _assert_same(cube_pc, cube, names)

    out = tmp_path / "filled.zarr"
    done = subprocess.run(
        [*CLI, "fill", "--cube", str(cube_pc), "--model", str(model_tiny), "--out", str(out),
         "--dask-scheduler", dask_procs.address],
        capture_output=True, text=True, env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same(filled_local, out, PRODUCT_VARS)


def test_a_dask_worker_killed_mid_fill_costs_nothing(
    tmp_path, cube_pc, model_tiny, filled_local, dask_procs
):
    """SIGKILL of one whole `dask worker` (nanny and worker: a lost machine) while its
    tasks run: the scheduler reruns them on the other worker, region writes are
    idempotent, and the product equals the LocalCluster run."""
    import threading

    import zarr

    out = tmp_path / "filled.zarr"
    at_kill: dict[str, object] = {}

    def kill_midway() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            chunks = (out / product.S2 / "c").rglob("*")
            if (out / product.S2).exists() and sum(p.is_file() for p in chunks) >= 4:
                at_kill["complete"] = zarr.open_array(str(out / product.COMPLETE), mode="r")[:]
                dask_procs.kill("w0")
                at_kill["killed"] = True
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_midway, daemon=True)
    killer.start()
    try:
        fill(
            FillConfig(cube=str(cube_pc), model=str(model_tiny), out=str(out)),
            dask_scheduler=dask_procs.address,
        )
    finally:
        killer.join()
        dask_procs.add_worker("w0")
    assert at_kill.get("killed"), "the worker was never killed mid-way"
    assert not np.asarray(at_kill["complete"]).all(), "killed only after the last day"
    _assert_same(filled_local, out, PRODUCT_VARS)
    dask_procs.wait_for(2)


def _fill_with_an_extra_worker(
    dask_procs: DaskProcesses, name: str, out: Path, cube: Path, model: Path, **worker: Any
) -> subprocess.CompletedProcess:
    """`gapfill fill --dask-scheduler` while one more worker, started with `worker`
    (env / prefix), is part of the cluster; that worker is gone again afterwards."""
    dask_procs.add_worker(name, **worker)
    try:
        dask_procs.wait_for(3)
        return subprocess.run(
            [*CLI, "fill", "--cube", str(cube), "--model", str(model), "--out", str(out),
             "--dask-scheduler", dask_procs.address],
            capture_output=True, text=True, env=_env(),
        )  # fmt: skip
    finally:
        dask_procs.kill(name)
        dask_procs.wait_for(2)


def test_dask_workers_with_other_software_are_refused_and_nothing_is_left(
    tmp_path, cube_pc, model_tiny, dask_procs
):
    out = tmp_path / "filled.zarr"
    env = _env(PYTHONPATH=_other_gapfill(tmp_path / "other"))
    result = _fill_with_an_extra_worker(dask_procs, "other", out, cube_pc, model_tiny, env=env)
    _one_line_error(result, 2, "Dask worker tcp://127.0.0.1:", "gapfill 9.9.9")
    assert not out.exists() and not list(tmp_path.glob("*.zarr*"))


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare -m` (root) to give one worker its own mounts"
)
def test_a_dask_worker_that_cannot_see_the_cube_is_named(tmp_path, cube_pc, model_tiny, dask_procs):
    """A worker on a machine without the shared mount, made here with a mount namespace
    in which an empty tmpfs hides the cube's folder."""
    hidden = cube_pc.parent
    out = tmp_path / "filled.zarr"
    blind = ("unshare", "-m", "sh", "-c", f'mount -t tmpfs none "{hidden}" && exec "$0" "$@"')
    result = _fill_with_an_extra_worker(dask_procs, "blind", out, cube_pc, model_tiny, prefix=blind)
    _one_line_error(result, 2, "cannot read the cube", str(cube_pc), "tcp://127.0.0.1:")
    assert not out.exists()
    assert (cube_pc / "zarr.json").is_file()  # hidden from that worker only
