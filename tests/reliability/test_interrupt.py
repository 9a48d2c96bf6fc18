"""Ctrl-C of `gapfill train` with its own local Ray. (build-cube and fill: beside their
SIGKILL tests in tests/integration.) Here, after tests/integration/test_train.py has
stopped its Ray: a second local Ray on the machine makes Ray's own address lookup fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import assert_clean_interrupt, signal_midway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_ctrl_c_stops_training_cleanly(tmp_path, cube_pc):
    """Ctrl-C to the process group of `gapfill train` (its own local Ray) once an epoch is
    done: exit 130 within seconds, one line, Ray's processes gone, no model exported."""
    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    argv = [
        sys.executable, "-m", "gapfill.cli", "train", "--cube", str(cube_pc), "--patch", "32",
        "--method", "cnn", "--preset", "test-tiny", "--epochs", "500", "--out", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True
        )
        metrics = out / "metrics.csv"
        seconds, children = signal_midway(
            proc, signal.SIGINT, lambda: metrics.exists() and len(metrics.read_text().split()) > 1,
            group=True, timeout=180,
        )  # fmt: skip
    assert_clean_interrupt(proc, err.read_text(), seconds, children)
    assert not (out / "model.pt").exists()


def test_a_killed_training_worker_resumes_from_its_last_checkpoint(tmp_path, cube_pc):
    """SIGKILL of the Ray Train worker process once an epoch is checkpointed: Ray Train
    restarts the worker group (`max_failures`, 1 by default) from that checkpoint and the
    run finishes with every epoch in metrics.csv once."""
    import psutil

    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    argv = [
        sys.executable, "-m", "gapfill.cli", "train", "--cube", str(cube_pc), "--patch", "32",
        "--method", "cnn", "--preset", "test-tiny", "--epochs", "4", "--out", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    metrics = out / "metrics.csv"
    with err.open("w") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        deadline = time.monotonic() + 180
        while not (metrics.exists() and len(metrics.read_text().split()) > 1):
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
            time.sleep(0.1)
        workers = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "RayTrainWorker" in " ".join(p.cmdline())
        ]
        assert workers, "no RayTrainWorker process among the run's descendants"
        workers[0].kill()
        assert proc.wait(timeout=240) == 0, err.read_text()[-3000:]
    epochs = [float(line.split(",")[0]) for line in metrics.read_text().split()[1:]]
    assert epochs == [0, 1, 2, 3], metrics.read_text()
    assert (out / "model.pt").is_file()
