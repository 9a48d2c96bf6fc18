"""Check deploy/ offline: render each kustomization, validate every custom resource against
the real CRD schema (KubeRay, Dask operator: ../shared/vendor/), core kinds with
kubernetes-validate, and the rules of our own (image tag = package version, rayVersion =
the Ray in the image, no plaintext secrets, limits on every container, …).

    python deploy/check.py                 # base and overlays/gpu; exit 1 on a problem

Used by tests/unit/test_deploy.py. Needs kubectl (for `kubectl kustomize`) and the
`dev` extra (jsonschema, kubernetes-validate).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "KUSTOMIZATIONS",
    "check_docs",
    "crd_schemas",
    "dockerfile_args",
    "render",
]

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
KUSTOMIZATIONS = {"base": DEPLOY / "k8s" / "base", "gpu": DEPLOY / "k8s" / "overlays" / "gpu"}
VENDOR = REPO.parent / "shared" / "vendor"
CRD_FILES = (
    "kuberay-crds/ray.io_rayjobs.yaml",
    "kuberay-crds/ray.io_rayclusters.yaml",
    "dask-operator-crds/daskjob.yaml",
    "dask-operator-crds/daskcluster.yaml",
    "dask-operator-crds/daskworkergroup.yaml",
)
# The oldest Kubernetes the manifests are for: CronJob timeZone and Job podFailurePolicy
# are GA from 1.31.
KUBERNETES_VERSION = "1.31.0"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ROOT_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)


def render(kustomization: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR` as a list of objects."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise FileNotFoundError("kubectl is not installed: it renders the kustomizations")
    out = subprocess.run(
        [kubectl, "kustomize", str(kustomization)], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.load_all(out, Loader=_Loader) if d]


@functools.cache
def crd_schemas(vendor: Path = VENDOR) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the CRD's openAPIV3Schema, tightened: a field a schema does not
    name is an error (the API server would drop it without a word)."""
    schemas = {}
    for name in CRD_FILES:
        crd = yaml.load((vendor / name).read_text(), Loader=_Loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _closed(version["schema"]["openAPIV3Schema"])
            # Every object has these; some CRDs leave them out of their schema.
            schema["properties"] = {**_ROOT_FIELDS, **schema["properties"]}
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _closed(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def dockerfile_args(path: Path = DEPLOY / "docker" / "Dockerfile") -> dict[str, str]:
    """The Dockerfile's `ARG NAME=default` lines."""
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", path.read_text(), re.MULTILINE))


def _containers(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container (and init container) anywhere in an object, with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for i, c in enumerate(value):
                    yield f"{path}/{key}/{i}", c
            else:
                yield from _containers(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _containers(value, f"{path}/{i}")


def check_docs(docs: list[dict[str, Any]], *, variant: str) -> list[str]:
    """Every problem in one rendered kustomization (empty: all good)."""
    import jsonschema
    import kubernetes_validate
    import ray

    import gapfill

    problems: list[str] = []
    schemas = crd_schemas()
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        if key in schemas:
            validator = jsonschema.Draft7Validator(schemas[key])
            for err in validator.iter_errors(doc):
                path = "/".join(str(p) for p in err.absolute_path)
                problems.append(f"{where}: {path}: {err.message}")
        elif "/" in key[0] and key[0].split("/")[0].endswith((".io", ".org")):
            problems.append(f"{where}: no vendored CRD for {key[0]} {key[1]}")
        else:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                problems.append(f"{where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{where}: {exc}")
        if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            problems.append(f"{where}: a Secret with data in the manifests (create it by hand)")
        problems += _container_rules(doc, where, variant, gapfill.__version__)
        spec = doc.get("spec", {})
        if doc.get("kind") in ("RayJob", "RayCluster"):
            cluster = spec.get("rayClusterSpec", spec)
            if cluster.get("rayVersion") != ray.__version__:
                problems.append(
                    f"{where}: rayVersion {cluster.get('rayVersion')!r} is not the image's "
                    f"Ray {ray.__version__}"
                )
        if doc.get("kind") == "RayJob" and spec.get("shutdownAfterJobFinishes") is not True:
            problems.append(f"{where}: shutdownAfterJobFinishes must be true")
        if doc.get("kind") == "CronJob":
            if spec.get("concurrencyPolicy") != "Forbid":
                problems.append(f"{where}: concurrencyPolicy must be Forbid")
            if "startingDeadlineSeconds" not in spec:
                problems.append(f"{where}: no startingDeadlineSeconds")
            if "backoffLimit" not in spec.get("jobTemplate", {}).get("spec", {}):
                problems.append(f"{where}: no backoffLimit")
    return problems


def _container_rules(doc: dict[str, Any], where: str, variant: str, version: str) -> list[str]:
    problems = []
    for path, c in _containers(doc):
        at = f"{where}{path} ({c.get('name')})"
        limits = c.get("resources", {}).get("limits", {})
        if not {"cpu", "memory"} <= set(limits):
            problems.append(f"{at}: no cpu/memory limits")
        image = str(c.get("image", ""))
        want = version + ("-cuda" if variant == "gpu" else "")
        if image.rpartition(":")[2] != want:
            problems.append(f"{at}: image {image!r} is not tagged {want} (the package version)")
        for env in c.get("env", []):
            if "value" in env and _SECRET_NAME.search(env["name"]):
                problems.append(f"{at}: {env['name']} is inline: take it from a Secret")
    return problems


def main() -> int:
    """Print every problem of every kustomization; 1 when there is one."""
    problems = []
    for variant, path in KUSTOMIZATIONS.items():
        problems += [f"{variant}: {p}" for p in check_docs(render(path), variant=variant)]
    for p in problems:
        print(p)
    print(f"{len(problems)} problems in {', '.join(KUSTOMIZATIONS)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
