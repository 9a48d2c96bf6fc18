"""`train`: Ray Train (TorchTrainer, DDP) wiring, resume, and the run directory export."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import platform
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import torch
from ray.train import UserCallback

from gapfill._provenance import __version__, git_sha
from gapfill.cluster import same_software
from gapfill.cube import layout
from gapfill.errors import InputError, ServiceError
from gapfill.models import get_method, input_channels, receptive_field
from gapfill.models.card import ModelCard, load_model, save_model
from gapfill.storage import is_url, require_writable, shown
from gapfill.train.config import TrainConfig
from gapfill.train.data import build_index, open_cube
from gapfill.train.loop import FAULT_KEY, STATE_FILE, env_fault, train_loop_per_worker

__all__ = ["train", "TrainResult", "ray_session"]

log = logging.getLogger(__name__)


class TrainResult:
    """Where the run wrote its model, and its per-epoch metrics."""

    def __init__(self, run_dir: Path, history: list[dict]) -> None:
        self.run_dir, self.history = run_dir, history


def _write_metrics_csv(path: Path, history: list[dict]) -> None:
    """Per-epoch metrics as CSV, written to a temp file and renamed into place."""
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    tmp.replace(path)


def _read_metrics_csv(path: Path) -> dict[float, dict[str, float]]:
    """Rows of an earlier metrics.csv by epoch (empty when there is none)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = [
            {k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)
        ]
    return {r["epoch"]: r for r in rows if "epoch" in r}


class _MetricsCsv(UserCallback):
    """Ray Train callback: RUN_DIR/metrics.csv grows by rank 0's row after every epoch.

    Callbacks run in Ray Train's controller, which Ray places on the driver's node, so
    the file is written on the machine that holds RUN_DIR wherever rank 0 runs (no
    shared disk assumed). Rows are keyed by epoch: a retried or resumed epoch replaces
    its row. The export rewrites the file from the last checkpoint's history.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[float, dict[str, float]] | None = None

    def after_report(self, run_context: object, metrics: list[dict], checkpoint: object) -> None:
        row = metrics[0] if metrics else {}
        if "epoch" not in row:
            return
        if self.rows is None:
            self.rows = _read_metrics_csv(self.path)
        self.rows[float(row["epoch"])] = {k: float(v) for k, v in row.items()}
        _write_metrics_csv(self.path, [self.rows[e] for e in sorted(self.rows)])


_POLL_VAR, _POLL_S = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2"
# Ray Train's preemption watcher: one more actor process per run (Ray Train imported)
# that polls the nodes' drain state. A local Ray is one node that nothing drains: gapfill
# starts it without the watcher (a process fewer; the seconds of a short run are the same:
# benchmarks/train_startup.py); set the variable to 1 to keep it. On a cluster
# (--ray-address) Ray's default stays.
PREEMPTION_VAR = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def _ray(address: str | None, cpus_needed: float) -> bool:
    """Connect to (or start) Ray; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address and address != "auto":
        _reachable(address)
    # Ray Train's controller takes each worker's report off a queue of one when it polls
    # the workers, every 2 s by default: epochs shorter than that waited for the poll in
    # `report` (cpu-tiny on the demo cube: 1.3 s of work, 1.7 s an epoch).
    env_vars = {_POLL_VAR: os.environ.get(_POLL_VAR, _POLL_S)}
    if not address:
        env_vars[PREEMPTION_VAR] = os.environ.get(PREEMPTION_VAR, "0")
    runtime_env = {
        "worker_process_setup_hook": f"{__name__}._quiet_ray_workers",
        "env_vars": env_vars,
    }
    try:
        if address:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        else:
            ray.init(
                num_cpus=max(int(cpus_needed) + 1, os.cpu_count() or 1),
                object_store_memory=256 * 1024**2,
                include_dashboard=False,
                log_to_driver=True,
                runtime_env=runtime_env,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "version mismatch" in str(exc).lower():
            raise InputError(
                f"the Ray cluster at {address} runs another Ray or Python ({first}): install "
                f"ray {ray.__version__} on Python {platform.python_version()} on every node "
                "(cluster/README.md)"
            ) from None
        raise ServiceError(f"no Ray cluster answers at {address} ({first})") from None
    if address:
        _check_nodes(address)
    return True


def _check_nodes(address: str, timeout_s: float = 120.0) -> None:
    """Every alive node of a cluster we did not start runs our gapfill and torch: asked of
    each node by a zero-CPU task pinned to it, before any training worker unpickles our
    code there (which would fail with a traceback deep in Ray Train, or run other code)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def versions() -> dict[str, str]:
        # Defined here, so Ray pickles it by value: it runs on a node without gapfill.
        import importlib.metadata as md

        found = {}
        for name in ("gapfill", "torch"):
            try:
                found[name] = md.version(name)
            except md.PackageNotFoundError:
                found[name] = "not installed"
        return found

    remote = ray.remote(num_cpus=0)(versions)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [
        remote.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in nodes
    ]
    try:
        found = ray.get(refs, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise ServiceError(
            f"the nodes of the Ray cluster at {address} did not answer within {timeout_s:g} s"
        ) from None
    log.debug("versions of the Ray nodes: %s", found)
    for node, software in zip(nodes, found, strict=True):
        same_software(software, f"Ray node {node['NodeManagerAddress']} ({node['NodeID'][:8]})")


def _quiet_ray_workers() -> None:
    """Runs in every Ray worker process of our jobs (`worker_process_setup_hook`).

    Ray Train V2's placement-group cleaner asks the state API (served by the dashboard)
    every second whether the controller lives, and warns each time it cannot: without
    a dashboard that is every second of a run. Its own failure handling is unchanged.
    Each worker's "Reporting training result N: TrainingReport(...)" line (the whole
    metrics dict, every epoch, every rank) is left to DEBUG: rank 0 logs one line per
    epoch with the losses and the validation against O1 instead.
    """
    logging.getLogger(
        "ray.train.v2._internal.execution.controller.placement_group_cleaner"
    ).setLevel(logging.ERROR)
    # On a local cluster there is no autoscaler: its resource request times out once per
    # run with a warning and a 20-line traceback ("safe to ignore", says Ray).
    logging.getLogger(
        "ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client"
    ).setLevel(logging.ERROR)
    # This module names its logger by its file path, not its module name.
    from ray.train.v2._internal.execution import context

    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (ray.init would retry for minutes) when nothing listens at the address."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise ServiceError(f"no Ray cluster answers at {address} ({exc})") from None


def _check_resources(cfg: TrainConfig) -> None:
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if cfg.gpus_per_worker > 0 and gpus < cfg.gpus_per_worker * cfg.workers:
        raise InputError(
            f"{cfg.workers} workers x {cfg.gpus_per_worker:g} GPU asked for, but the Ray "
            f"cluster has {gpus:g} GPUs: use --gpus-per-worker 0 or a cluster with GPUs"
        )


def _storage_fs(storage: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a checkpoint location (path or URL)."""
    if not is_url(storage):
        return pafs.LocalFileSystem(), storage
    try:
        return pafs.FileSystem.from_uri(storage)
    except (ValueError, OSError) as exc:
        raise InputError(
            f"checkpoints {shown(storage)}: {str(exc).splitlines()[0]} — use a local path or "
            "an s3://, gs://, abfs:// or hdfs:// URL"
        ) from None


def _check_writable(fs: pafs.FileSystem, path: str, storage: str) -> None:
    """Fail in one line, before Ray starts, when checkpoints cannot be written there."""
    probe = f"{path.rstrip('/')}/.gapfill-write-probe"
    try:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except OSError as exc:
        raise ServiceError(
            f"checkpoints cannot be written to {shown(storage)} ({str(exc).splitlines()[0]}): "
            "check the bucket, the endpoint and the credentials"
        ) from None


_FIXED = ("method", "preset", "data", "norm", "seed", "batch_size", "residual", "blend_active")
RUN_NAME = "train"


def _latest_checkpoint(fs: pafs.FileSystem, run_path: str) -> str | None:
    """The checkpoint folder Ray Train resumes from: the latest in its manager snapshot,
    else the newest `checkpoint_*` folder; None when the run has none yet."""
    try:
        with fs.open_input_stream(f"{run_path}/checkpoint_manager_snapshot.json") as f:
            snapshot = json.loads(f.read())
        return str(snapshot["latest_checkpoint_result"]["checkpoint_dir_name"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        infos = fs.get_file_info(pafs.FileSelector(run_path, allow_not_found=True))
    except OSError as exc:
        raise ServiceError(
            f"cannot list the checkpoints in {shown(run_path)} ({str(exc).splitlines()[0]})"
        ) from None
    names = sorted(
        i.base_name
        for i in infos
        if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")
    )
    return names[-1] if names else None


def _check_checkpoint(fs: pafs.FileSystem, root: str, storage: str, cfg: TrainConfig) -> None:
    """The checkpoint a re-run would resume from must load and belong to this run.

    Checked in the driver, before Ray starts: a damaged or foreign checkpoint would
    otherwise fail every worker start (and every retry) with a traceback.
    """
    run_path = f"{root.rstrip('/')}/{RUN_NAME}"
    name = _latest_checkpoint(fs, run_path)
    if name is None:
        return
    where = f"{shown(storage)}/{RUN_NAME}/{name}"
    try:
        with fs.open_input_stream(f"{run_path}/{name}/{STATE_FILE}") as f:
            state = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True)
        old = TrainConfig.stored(state["config"])
        int(state["epoch"])
    except Exception as exc:  # torch raises RuntimeError/EOFError/pickle errors alike
        why = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise InputError(
            f"checkpoint {where} cannot be read ({why}): move "
            f"{shown(storage)} aside to start over, or choose another --out/--checkpoints"
        ) from None
    diff = _differences(old, cfg)
    if diff:
        raise InputError(
            f"checkpoint {where} belongs to a run with other {', '.join(diff)}: give this "
            "run its own --checkpoints location"
        )


def _differences(old: TrainConfig, new: TrainConfig) -> list[str]:
    """The settings a resumed run must keep that differ, compared without credentials
    (what config.json and checkpoints store; older runs may still hold some). A run
    stored before band sets trained on its cubes' bands with one reflectance range: it is
    compared as that (its cubes are compared too)."""
    if old.data.bands is None and new.data.bands is not None:
        data = old.data.model_copy(
            update={
                "bands": new.data.bands,
                "normalisation": old.data.normalisation.for_bands(new.data.bands),
            }
        )
        old = old.model_copy(update={"data": data})
    a, b = old.redacted(), new.redacted()
    return [k for k in _FIXED if getattr(a, k) != getattr(b, k)]


def _stored_config(run_dir: Path) -> TrainConfig | None:
    """The config of the run stored in RUN_DIR; None where it holds none."""
    existing = run_dir / "config.json"
    if not existing.is_file():
        return None
    try:
        return TrainConfig.stored(existing.read_text())
    except ValueError:
        raise InputError(
            f"{existing} is not a gapfill training config: choose another --out"
        ) from None


def stored_differences(run_dir: str | Path, cfg: TrainConfig) -> list[str]:
    """The settings in which the run stored in RUN_DIR differs from `cfg` so that `train`
    would refuse to resume it (empty: none stored, or the same run)."""
    try:
        old = _stored_config(Path(run_dir))
    except InputError:
        return ["config"]
    if old is None:
        return []
    try:
        cfg = with_cube_bands(cfg)  # as train() compares it
    except InputError:  # cubes that cannot be read: train refuses them; compare as given
        pass
    return _differences(old, cfg)


def _check_run_dir(run_dir: Path, cfg: TrainConfig) -> None:
    """A RUN_DIR that holds another run (other method/preset/data) is refused, not reused."""
    old = _stored_config(run_dir)
    if old is not None:
        diff = _differences(old, cfg)
        default = str(run_dir / "ray")
        if (old.redacted().checkpoints or default) != (cfg.redacted().checkpoints or default):
            where = old.checkpoints or default
            how = "omit --checkpoints" if old.checkpoints is None else "pass its --checkpoints"
            raise InputError(
                f"{run_dir} keeps its checkpoints at {shown(where)}"
                f": {how} to resume it, or choose another --out"
            )
        if diff:
            raise InputError(
                f"{run_dir} holds a run with other {', '.join(diff)}: "
                "choose another --out or the same settings to resume"
            )
    elif run_dir.exists() and any(p.name != "ray" for p in run_dir.iterdir()):
        raise InputError(f"{run_dir} is not empty and holds no gapfill run: choose another --out")


def _check_init(cfg: TrainConfig) -> None:
    """`--init RUN_DIR` must hold a model of the same architecture and inputs."""
    assert cfg.init is not None
    _, card = load_model(cfg.init)
    mine = cfg.generator().cfg
    channels = input_channels(get_method(cfg.method).task, cfg.both, cfg.bands)
    if card.generator != mine or tuple(card.input_channels) != channels:
        raise InputError(
            f"--init {cfg.init} holds a {card.method}/{card.preset} generator "
            f"({card.generator.model_dump()}), not this run's {cfg.method}/{cfg.preset} "
            f"({mine.model_dump()}): give a run of the same method, preset and options"
        )


def with_cube_bands(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with the cubes' band set (one for all of them: a network reads and writes a
    fixed set) and a normalisation recorded per band; refused in one line otherwise."""
    sets: dict[tuple[str, ...], str] = {}
    for path in cfg.data.cubes:
        sets.setdefault(layout.bands_of(open_cube(path, cfg.data.storage_options)), path)
    if len(sets) > 1:
        shown_sets = "; ".join(f"{shown(p)}: {','.join(b)}" for b, p in sets.items())
        raise InputError(
            f"the cubes hold different band sets ({shown_sets}): train on cubes of one "
            "band set (build them with the same --bands)"
        )
    bands = next(iter(sets))
    if cfg.data.bands is not None and cfg.data.bands != bands:
        raise InputError(
            f"data.bands is {','.join(cfg.data.bands)} but the cubes hold {','.join(bands)}: "
            "leave data.bands out (it is the cubes') or train on cubes of those bands"
        )
    data = cfg.data.model_copy(
        update={"bands": bands, "normalisation": cfg.data.normalisation.for_bands(bands)}
    )
    return cfg.model_copy(update={"data": data})


def _fit_patch(cfg: TrainConfig) -> TrainConfig:
    """A patch larger than the smallest cube shrinks to fit it (a multiple of 16 px), and
    says so: a preset's patch must not keep a small region from training."""
    sides = []
    for path in cfg.data.cubes:
        ds = open_cube(path, cfg.data.storage_options)
        sides.append(min(ds.sizes["y"], ds.sizes["x"]))
    fit = max(16, min(sides) // 16 * 16)
    if cfg.data.patch <= min(sides) or fit >= cfg.data.patch:
        return cfg
    log.warning(
        "patch %d px is larger than the smallest cube (%d px a side): training on %d px patches",
        cfg.data.patch,
        min(sides),
        fit,
    )
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"patch": fit})})


def _fit(trainer: Any) -> Any:
    """`trainer.fit()` with Ctrl-C reported as Ctrl-C. Ray Train installs its own SIGINT
    handler for the call (it aborts the run, then `sys.exit`s) and never restores the
    previous one: restore it, and turn that exit into the KeyboardInterrupt it was, so
    the CLI says `interrupted` and how to resume (the last checkpoint is kept)."""
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if on_main else None
    try:
        return trainer.fit()
    except SystemExit:
        raise KeyboardInterrupt from None
    finally:
        if on_main:
            signal.signal(signal.SIGINT, previous)


def _with_cpus(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with `cpus_per_worker` set: when left out, this machine's CPUs (no more than
    a running Ray has) shared among the workers, whole CPUs, at least one each; on a
    cluster (`ray_address`) 1, as Ray Train's default (its nodes may differ in size)."""
    if cfg.cpus_per_worker is not None:
        return cfg
    cpus = 1.0
    if not cfg.ray_address:
        import ray

        total = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        total = total or os.cpu_count() or 1
        if ray.is_initialized():
            total = min(total, int(ray.cluster_resources().get("CPU", 1)))
        cpus = float(max(1, total // cfg.workers))
    return cfg.model_copy(update={"cpus_per_worker": cpus})


@contextlib.contextmanager
def ray_session(cfg: TrainConfig) -> Iterator[None]:
    """Ray connected (or started, as `train` would for `cfg`) for the block: several
    `train` calls inside share one Ray instead of starting one each."""
    started = _ray(cfg.ray_address, cfg.workers * _with_cpus(cfg).cpus)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def train(cfg: TrainConfig) -> TrainResult:
    """Train `cfg.method` on the cubes through Ray Train; re-running resumes; exports
    RUN_DIR/model.pt + model.json + metrics.csv."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    require_writable(cfg.out, "--out")
    run_dir = Path(cfg.out).resolve()
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir} is a file, not a run folder: choose another --out")
    storage = cfg.checkpoints or str(run_dir / "ray")
    method = get_method(cfg.method)
    cfg = with_cube_bands(_fit_patch(cfg))
    if cfg.init is not None:
        _check_init(cfg)
    build_index(cfg.data, method.task)  # fail fast, in the driver, on a cube with no sample
    _check_run_dir(run_dir, cfg)
    fs, root = _storage_fs(storage)
    if is_url(storage):
        _check_writable(fs, root, storage)
    _check_checkpoint(fs, root, storage, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.redacted().model_dump_json(indent=2))
    cfg = _with_cpus(cfg)
    started = _ray(cfg.ray_address, cfg.workers * cfg.cpus)
    try:
        _check_resources(cfg)
        # Workers run in other folders: give them the absolute RUN_DIR.
        loop_cfg: dict = cfg.model_copy(update={"out": str(run_dir)}).model_dump(mode="json")
        fault = env_fault()
        if fault is not None:
            loop_cfg[FAULT_KEY] = {"epoch": fault, "marker": str(run_dir / ".fault-injected")}
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config=loop_cfg,
            scaling_config=ScalingConfig(
                num_workers=cfg.workers,
                use_gpu=cfg.gpus_per_worker > 0,
                resources_per_worker={
                    "CPU": cfg.cpus,
                    **({"GPU": cfg.gpus_per_worker} if cfg.gpus_per_worker else {}),
                },
            ),
            run_config=RunConfig(
                name=RUN_NAME,
                storage_path=storage,
                checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
                failure_config=FailureConfig(max_failures=cfg.max_failures),
                # Typed as Ray Tune's Callback (Train V1); V2 takes UserCallback.
                callbacks=[_MetricsCsv(run_dir / "metrics.csv")],  # type: ignore[list-item]
            ),
        )
        result = _fit(trainer)
    finally:
        if started:
            import ray

            ray.shutdown()
    if result.checkpoint is None:
        raise ServiceError(f"training ended without a checkpoint ({result.error})")
    with result.checkpoint.as_directory() as path:
        state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)
    g = cfg.generator()
    g.load_state_dict(state["generator"])
    history = list(state["history"])
    last = history[-1] if history else {}
    card = ModelCard(
        method=cfg.method,
        task=method.task,
        preset=cfg.preset,
        generator=g.cfg,
        input_channels=input_channels(method.task, cfg.both, cfg.bands),
        bands=cfg.bands,
        normalisation=cfg.data.normalisation,
        reference=cfg.data.reference,
        receptive_field_px=receptive_field(g),
        training_cubes=cfg.redacted().data.cubes,
        training_cube_ids=tuple(
            str(open_cube(c, cfg.data.storage_options).attrs.get(layout.CUBE_ID, ""))
            for c in cfg.data.cubes
        ),
        training_region=cfg.data.train_region,
        held_out_region=cfg.data.test_region,
        training_until=cfg.data.until,
        seed=cfg.seed,
        epochs=int(state["epoch"]) + 1,
        metrics={k: float(v) for k, v in last.items()},
        software_version=__version__,
        git_sha=git_sha(),
    )
    save_model(run_dir, g, card)
    _write_metrics_csv(run_dir / "metrics.csv", history)
    log.info("model written to %s (%d epochs)", run_dir, card.epochs)
    return TrainResult(run_dir, history)
