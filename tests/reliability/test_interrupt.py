"""Faults of `gapfill train` with its own local Ray: a killed worker, Ctrl-C (build-cube
and fill: beside their SIGKILL tests in tests/integration). Here, after
tests/integration/test_train.py has stopped its Ray: a second local Ray on the machine
makes Ray's own address lookup fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import assert_clean_interrupt, signal_midway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _epochs(metrics) -> list[float]:
    lines = metrics.read_text().split() if metrics.exists() else []
    return [float(line.split(",")[0]) for line in lines[1:]]


def test_a_killed_worker_is_restarted_and_ctrl_c_stops_training_cleanly(tmp_path, cube_pc):
    """One `gapfill train` with its own local Ray, two faults. SIGKILL of the Ray Train
    worker process once an epoch is checkpointed: Ray Train restarts the worker group
    (`max_failures`, 1 by default) from that checkpoint and training goes on, each epoch
    once. Then Ctrl-C to the process group: exit 130 within seconds, one line, Ray's
    processes gone, no model exported."""
    import psutil

    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    argv = [
        sys.executable, "-m", "gapfill.cli", "train", "--cube", str(cube_pc), "--patch", "32",
        "--method", "cnn", "--preset", "test-tiny", "--epochs", "500", "--out", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    metrics = out / "metrics.csv"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True
        )
        deadline = time.monotonic() + 180
        while not _epochs(metrics):
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
            time.sleep(0.1)
        workers = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "RayTrainWorker" in " ".join(p.cmdline())
        ]
        assert workers, "no RayTrainWorker process among the run's descendants"
        workers[0].kill()
        killed_after = len(_epochs(metrics))
        mark: dict[str, int] = {}

        def recovered() -> bool:
            """Two more epochs since the kill; from here on, stderr is the Ctrl-C's (the
            kill's own report, Ray's tracebacks of the lost worker, comes before)."""
            if len(_epochs(metrics)) < killed_after + 2:
                return False
            mark["stderr"] = len(err.read_text())
            return True

        seconds, children = signal_midway(proc, signal.SIGINT, recovered, group=True, timeout=180)
    assert not workers[0].is_running()
    epochs = _epochs(metrics)
    assert epochs == list(range(len(epochs))), epochs  # resumed, nothing lost or repeated
    assert_clean_interrupt(proc, err.read_text()[mark["stderr"] :], seconds, children)
    assert not (out / "model.pt").exists()
