"""deploy/ checked without a cluster or a Docker daemon: the Dockerfile with hadolint, the
kustomizations rendered by kubectl and validated against the vendored CRDs and core
Kubernetes schemas (deploy/check.py), and the configs they carry against our own models."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import check

kubectl = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed (it renders kustomize)"
)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {variant: check.render(path) for variant, path in check.KUSTOMIZATIONS.items()}


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(check.DEPLOY / "docker" / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_an_unpinned_install(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install torch\n")
    hadolint = Path(sys.executable).parent / "hadolint"
    assert subprocess.run([str(hadolint), str(bad)], capture_output=True).returncode != 0


def test_dockerfile_pins_the_versions_the_package_resolves() -> None:
    import ray
    import torch

    args = check.dockerfile_args()
    assert args["VARIANT"] == "cpu"
    assert args["TORCH_VERSION"] == torch.__version__.split("+")[0]
    assert args["RAY_VERSION"] == ray.__version__
    text = (check.DEPLOY / "docker" / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert "[server" not in text  # the local STAC API stays out of cluster images
    ignore = (check.REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][0] == "*"  # an allow-list: .venv, tests, data stay out


@kubectl
@pytest.mark.parametrize("variant", list(check.KUSTOMIZATIONS))
def test_manifests_pass_every_check(rendered: dict, variant: str) -> None:
    docs = rendered[variant]
    kinds = {d["kind"] for d in docs}
    assert {"RayJob", "RayCluster", "DaskJob", "DaskCluster", "CronJob"} <= kinds
    assert check.check_docs(docs, variant=variant) == []


@kubectl
@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        ("RayJob", lambda d: d["spec"].update(shutdownAfterJobFinish=True), "shutdownAfterJob"),
        ("RayJob", lambda d: d["spec"].update(shutdownAfterJobFinishes=False), "must be true"),
        (
            "RayCluster",
            lambda d: d["spec"].update(rayVersion="2.9.0"),
            "is not the image's Ray",
        ),
        (
            "DaskJob",
            lambda d: d["spec"]["cluster"]["spec"]["worker"].update(replicas="eight"),
            "not of type 'integer'",
        ),
        (
            "DaskCluster",
            lambda d: d["spec"]["worker"]["spec"]["containers"][0].pop("resources"),
            "no cpu/memory limits",
        ),
        (
            "CronJob",
            lambda d: d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
                "env"
            ].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}),
            "is inline",
        ),
        ("CronJob", lambda d: d["spec"].update(concurrencyPolicy="Allow"), "Forbid"),
        ("CronJob", lambda d: d["spec"].update(schedul="* * * * *"), "schedul"),
        (
            "CronJob",
            lambda d: d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].update(
                image="registry.example.com/gapfill:latest"
            ),
            "not tagged",
        ),
    ],
)
def test_check_finds_each_kind_of_mistake(
    rendered: dict, kind: str, change: Any, expected: str
) -> None:
    docs = copy.deepcopy(rendered["base"])
    change(_one(docs, kind))
    problems = check.check_docs(docs, variant="base")
    assert any(expected in p for p in problems), problems


@kubectl
def test_secrets_are_referenced_never_written(rendered: dict) -> None:
    for docs in rendered.values():
        assert not [d for d in docs if d["kind"] == "Secret"]
        names = {
            ref["name"]
            for _, c in check._containers(docs)
            for env in c.get("env", [])
            if (ref := env.get("valueFrom", {}).get("secretKeyRef"))
        }
        assert names == {"gapfill-object-store", "gapfill-planetary-computer"}


@kubectl
@pytest.mark.parametrize("variant", list(check.KUSTOMIZATIONS))
def test_configs_in_the_manifests_load_as_gapfill_reads_them(
    rendered: dict, variant: str, tmp_path: Path
) -> None:
    from gapfill.pipeline.spec import load_spec
    from gapfill.train import load_train_config

    docs = rendered[variant]
    train_yaml = _one(docs, "ConfigMap", "gapfill-train")["data"]["train.yaml"]
    (tmp_path / "train.yaml").write_text(train_yaml)
    train = load_train_config(tmp_path / "train.yaml")
    assert train.checkpoints and train.checkpoints.startswith("s3://")
    rayjob = _one(docs, "RayJob")
    assert "/etc/gapfill/train/train.yaml" in rayjob["spec"]["entrypoint"]
    workers = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    gpus = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert workers["replicas"] == train.workers
    assert float(gpus.get("nvidia.com/gpu", 0)) == train.gpus_per_worker

    pipelines = _one(docs, "ConfigMap", "gapfill-pipelines")["data"]
    for cron in (d for d in docs if d["kind"] == "CronJob"):
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        spec_path = Path(pod["containers"][0]["args"][-1])
        assert pod["containers"][0]["args"][:2] == ["gapfill", "run"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "pipelines")
        assert str(spec_path.parent) == mount["mountPath"]
        (tmp_path / spec_path.name).write_text(pipelines[spec_path.name])
        spec = load_spec(tmp_path / spec_path.name)
        assert spec.schedule == cron["spec"]["schedule"]
        assert spec.cube.location.startswith("s3://")


@kubectl
def test_gpu_overlay_asks_for_gpus_and_the_cuda_image(rendered: dict) -> None:
    docs = rendered["gpu"]
    fill = _one(docs, "DaskJob")
    assert fill["spec"]["job"]["spec"]["containers"][0]["args"][-2:] == ["--device", "cuda"]
    worker = fill["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert not any(
        "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
        for _, c in check._containers(rendered["base"])
    )


def test_vendored_crds_are_read(tmp_path: Path) -> None:
    schemas = check.crd_schemas()
    assert ("ray.io/v1", "RayJob") in schemas
    assert ("kubernetes.dask.org/v1", "DaskJob") in schemas
    assert yaml.safe_dump(schemas[("ray.io/v1", "RayJob")]).count("additionalProperties") > 10
