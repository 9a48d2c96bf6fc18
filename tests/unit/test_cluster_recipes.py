"""cluster/: the Ray cluster-launcher template passes Ray's own validation and pins the
versions the package resolves; the Dask worker environment is the same everywhere it is
written; the sizing table is the one the stored results print."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from benchmarks.sizing import BEGIN, END, table

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "cluster" / "ray-aws-gpu.yaml"


def _validate(config: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(config))


def test_the_launcher_template_passes_rays_validation() -> None:
    _validate(yaml.safe_load(LAUNCHER.read_text()))


def test_rays_validation_catches_a_broken_template() -> None:
    config = yaml.safe_load(LAUNCHER.read_text())
    config["available_node_types"]["gpu-worker"]["resourcez"] = {"GPU": 1}
    with pytest.raises(Exception, match="resourcez"):
        _validate(config)
    config = yaml.safe_load(LAUNCHER.read_text())
    config["head_node_type"] = "missing"
    with pytest.raises(ValueError, match="head_node_type"):
        _validate(config)


def test_the_launcher_installs_the_versions_the_package_resolves() -> None:
    import ray
    import torch

    config = yaml.safe_load(LAUNCHER.read_text())
    setup = " ".join(config["setup_commands"])
    assert f"ray[default,train,data]=={ray.__version__}" in setup
    assert f"torch=={torch.__version__.split('+')[0]}" in setup
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}


def _environ_values(text: str) -> list[dict]:
    found = re.findall(r"""PRE_SPAWN_ENVIRON\W*(?:value:\s*)?'(\{[^']*\})'""", text)
    return [json.loads(v) for v in found]


def test_the_dask_worker_environment_is_written_the_same_everywhere() -> None:
    from tests.integration.test_clusters import DASK_WORKER_ENV

    tested = json.loads(DASK_WORKER_ENV["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"])
    places = [
        REPO / "cluster" / "README.md",
        REPO / "deploy" / "k8s" / "base" / "daskcluster.yaml",
        REPO / "deploy" / "k8s" / "base" / "daskjob-fill.yaml",
    ]
    for place in places:
        values = _environ_values(place.read_text())
        assert values and all(v == tested for v in values), place
    assert "MALLOC_TRIM_THRESHOLD_" not in tested


def test_the_sizing_table_is_the_one_the_results_print() -> None:
    text = (REPO / "cluster" / "README.md").read_text()
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert shown == table(), "run: .venv/bin/python benchmarks/sizing.py, paste between markers"
