"""The per-worker training loop (runs inside Ray Train workers) and its checkpoints.

Determinism: every epoch reseeds torch, the sampler and augmentation from (seed, epoch,
rank), so a run resumed from the checkpoint of epoch e continues exactly as an
uninterrupted run would. Batch norm: plain BatchNorm per worker on CPU (gloo has no
SyncBatchNorm kernels; with batch 1 it normalises over one image, like InstanceNorm);
SyncBatchNorm across GPUs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from gapfill.models import get_method, input_channels, train_step
from gapfill.models.card import MODEL_FILE
from gapfill.models.discriminator import PatchDiscriminator
from gapfill.train.config import TrainConfig
from gapfill.train.data import (
    PatchIndex,
    Sample,
    augment,
    build_index,
    load_sample,
    load_samples,
    open_cube,
)

__all__ = [
    "PatchSet",
    "train_loop_per_worker",
    "ddp_options",
    "FAULT_KEY",
    "STATE_FILE",
]

STATE_FILE = "state.pt"
FAULT_KEY = "_fault_after_epoch"

log = logging.getLogger(__name__)


class PatchSet(Dataset):
    """Samples of one split as tensors; augmentation seeded by (seed, epoch, index)."""

    def __init__(self, samples: list[Sample], cfg: TrainConfig, task: str, train: bool) -> None:
        self.samples, self.cfg, self.task, self.train = samples, cfg, task, train
        self.epoch = 0
        self._cubes: dict[int, Any] = {}
        # Patches read once and kept while they fit `cache_mb` (each epoch re-reading them
        # from Zarr cost ~0.1 s a patch; small real cubes trained 5x slower than their steps).
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cache_left = cfg.cache_mb * 2**20
        # Rule `both`: the later side's channels, dropped at random in training so that one
        # network also serves the days that have no later clear day yet.
        both = task == "B" and cfg.data.reference.rule == "both"
        later = ("S1_t3:", "O3:", "age:t3", "avail:t3")
        self.later = [
            k
            for k, c in enumerate(input_channels(task, both, cfg.bands))
            if both and c.startswith(later)
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, m = (a.copy() for a in self._read(i))
        if self.train:
            rng = np.random.default_rng([self.cfg.seed, self.epoch, i])
            x, y, m = augment(x, y, m, rng)
            if self.later and rng.random() < self.cfg.later_dropout:
                x[self.later] = 0.0  # as model_input feeds a missing later side
        return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m)[None]

    def warm(self, indices: Iterable[int]) -> None:
        """Read the samples among `indices` that are not cached yet into the cache, as
        many as it has room for, a block of their cube at a time (`load_samples`): the
        epoch's batches then read nothing (one sample at a time, each read decodes whole
        Zarr chunks for every day it looks at: ~47 ms a cpu-tiny sample of the demo cube)."""
        todo = [i for i in dict.fromkeys(indices) if i not in self._cache]
        if not todo:
            return
        self._read(todo[0])  # what one sample takes in the cache
        if todo[0] not in self._cache:
            return
        size = sum(a.nbytes for a in self._cache[todo[0]])
        todo = todo[1 : 1 + self._cache_left // size]
        by_cube: dict[int, list[int]] = defaultdict(list)
        for i in todo:
            by_cube[self.samples[i].cube].append(i)
        for cube, members in by_cube.items():
            chosen = [self.samples[i] for i in members]
            for k, arrays in load_samples(self._cube(cube), chosen, self.cfg.data, self.task):
                self._keep(members[k], arrays)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample i as read from its cube, from the cache where it was kept."""
        if i in self._cache:
            return self._cache[i]
        s = self.samples[i]
        arrays = load_sample(self._cube(s.cube), s, self.cfg.data, self.task)
        self._keep(i, arrays)
        return arrays

    def _cube(self, index: int) -> Any:
        """Cube `index` of the config, opened once."""
        if index not in self._cubes:
            data = self.cfg.data
            self._cubes[index] = open_cube(data.cubes[index], data.storage_options)
        return self._cubes[index]

    def _keep(self, i: int, arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Cache sample i's arrays while the cache has room."""
        size = sum(a.nbytes for a in arrays)
        if size <= self._cache_left:
            self._cache[i] = arrays
            self._cache_left -= size


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch * 1009 + rank)


def _validation_set(index: PatchIndex, cfg: TrainConfig, rank: int, world: int) -> PatchSet:
    """This rank's share of the samples validation scores every epoch: the test samples
    (train samples if there is no test split), every `world`-th from `rank` on."""
    samples = (index.test or index.train)[: cfg.max_val_samples]
    samples = [s for s in samples if s.kind != "single"][rank::world]
    return PatchSet(samples, cfg.model_copy(), "B", train=False)


class _Validation:
    """Model vs the O1 baseline on the validation samples, scored on each patch's clear
    target pixels (patches at least half clear). Each rank scores its share of the patches
    and the sums are all-reduced (ranks used to wait while rank 0 scored them all): every
    rank returns the means over all of them. The patches are read, and O1 (which never
    changes) scored, once; each epoch only runs the model, `batch` patches at a time."""

    def __init__(self, ds: PatchSet, cfg: TrainConfig, task: str, batch: int = 8) -> None:
        from gapfill.metrics import masked_scores

        channels = input_channels("B", bands=cfg.bands)
        o1 = [channels.index(f"O1:{b}") for b in cfg.bands]
        s1_t2 = [i for i, c in enumerate(channels) if c.startswith("S1_t2:")]
        self.norm, self.batch = cfg.data.normalisation, batch
        self.inputs: list[torch.Tensor] = []
        self.truth: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        base = []
        ds.warm(range(len(ds)))
        for i in range(len(ds)):
            x, y, m = ds[i]
            mask = m[0].numpy()
            if mask.mean() < 0.5:
                continue
            truth = self.norm.optical_inverse(y.numpy())
            self.inputs.append(x if task == "B" else x[s1_t2])
            self.truth.append(truth)
            self.masks.append(mask)
            rng = self.norm.reflectance_max
            base.append(masked_scores(self.norm.optical_inverse(x[o1].numpy()), truth, mask, rng))
        self.base = _sums(base)

    def __call__(self, g: nn.Module, device: torch.device) -> dict[str, float]:
        """Means over every rank's patches (a collective: all ranks call it together)."""
        from gapfill.metrics import masked_scores

        scores = []
        g.eval()
        with torch.no_grad():
            for k in range(0, len(self.inputs), self.batch):
                part = self.inputs[k : k + self.batch]
                if len({tuple(t.shape) for t in part}) > 1:  # patches of several sizes
                    outs = [g(t[None].to(device)).float().cpu()[0] for t in part]
                else:
                    outs = list(g(torch.stack(part).to(device)).float().cpu())
                for j, out in enumerate(outs):
                    pred = self.norm.optical_inverse(out.numpy())
                    truth, mask = self.truth[k + j], self.masks[k + j]
                    scores.append(masked_scores(pred, truth, mask, self.norm.reflectance_max))
        g.train()
        totals = torch.tensor(_sums(scores) + self.base, dtype=torch.float64, device=device)
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals)
        sums = totals.cpu().tolist()
        val, o1 = sums[:4], sums[4:]
        if not val[0]:
            return {}
        return {**_means("val", val), **_means("o1", o1), "val_samples": val[0]}


_SCORED = ("psnr", "ssim", "sam_deg")


def _sums(scores: list[Any]) -> list[float]:
    """[count, then the sum of each of `_SCORED`] of per-patch scores."""
    return [float(len(scores))] + [float(sum(getattr(s, k) for s in scores)) for k in _SCORED]


def _means(prefix: str, sums: list[float]) -> dict[str, float]:
    """Means from `_sums`, named `{prefix}_{score}`."""
    return {f"{prefix}_{k}": total / sums[0] for k, total in zip(_SCORED, sums[1:], strict=True)}


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point: DDP over workers, one checkpoint per epoch."""
    import ray.train
    import ray.train.torch

    fault_after = config.pop(FAULT_KEY, None)
    cfg = TrainConfig.model_validate(config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        # torch sized its thread pool when it was imported, before Ray set OMP_NUM_THREADS
        # for this worker: two workers on two cores ran 2 threads each, and their spinning
        # made small steps slow (a cpu-tiny epoch on the demo's synthetic cube: 10 s, 2.2 s
        # with one thread each).
        torch.set_num_threads(max(1, int(cfg.cpus)))
    method = get_method(cfg.method)
    index = build_index(cfg.data, method.task)
    dataset = PatchSet(index.train, cfg, method.task, train=True)
    validate = _Validation(_validation_set(index, cfg, rank, world), cfg, method.task)
    sampler: DistributedSampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=False
    )
    loader = ray.train.torch.prepare_data_loader(
        DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=0),
        add_dist_sampler=False,
    )
    on_gpu = device.type == "cuda"
    torch.manual_seed(cfg.seed)  # the same initial weights in every run of this config
    g: nn.Module = cfg.generator()
    d: nn.Module | None = None
    if method.adversarial:
        width = len(input_channels(method.task, cfg.both, cfg.bands)) + len(cfg.bands)
        d = PatchDiscriminator(width, norm=cfg.norm)
    if on_gpu and world > 1:
        g = nn.SyncBatchNorm.convert_sync_batchnorm(g)
        d = nn.SyncBatchNorm.convert_sync_batchnorm(d) if d is not None else None
    if on_gpu:
        g = g.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    g = ray.train.torch.prepare_model(g, parallel_strategy_kwargs=ddp_options())
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = None
    if d is not None:
        d = ray.train.torch.prepare_model(d, parallel_strategy_kwargs=ddp_options())
        opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=cfg.betas)

    start, history = 0, []
    ckpt = ray.train.get_checkpoint()
    if ckpt is None and cfg.init is not None:  # warm start (checked in the driver)
        weights = Path(cfg.init) / MODEL_FILE
        _unwrap(g).load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    if ckpt is not None:
        with ckpt.as_directory() as path:
            state = torch.load(Path(path) / STATE_FILE, map_location=device, weights_only=True)
        _unwrap(g).load_state_dict(state["generator"])
        opt_g.load_state_dict(state["opt_g"])
        if d is not None and opt_d is not None:
            _unwrap(d).load_state_dict(state["discriminator"])
            opt_d.load_state_dict(state["opt_d"])
        start, history = int(state["epoch"]) + 1, list(state["history"])

    reported_at = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        _seed_epoch(cfg.seed, epoch, rank)
        sampler.set_epoch(epoch)
        dataset.epoch = epoch
        sums = dict.fromkeys(("loss_g", "loss_l1", "loss_d"), torch.zeros((), device=device))
        steps, waited = 0, 0.0
        began = time.perf_counter()
        if epoch == start:  # every patch an epoch of any rank may draw, if the cache holds it
            dataset.warm(range(len(dataset)))
        warmed = time.perf_counter()
        batches = iter(loader)
        while True:
            asked = time.perf_counter()
            batch = next(batches, None)
            waited += time.perf_counter() - asked
            if batch is None:
                break
            x, y, m = batch
            if on_gpu:
                x = x.to(memory_format=torch.channels_last)
            losses = train_step(g, d, opt_g, opt_d, (x, y, m), method.l1_weight, on_gpu)
            for k, v in losses.items():
                sums[k] = sums[k] + v.float()
            steps += 1
        metrics: dict[str, float] = {k: v.item() / max(steps, 1) for k, v in sums.items()}
        metrics["epoch"] = float(epoch)
        metrics["steps"] = float(steps)
        # Where rank 0's epoch went (seconds): reading patches into the cache (the first
        # epoch), waiting for batches, the steps (all-reduce included), validation; and
        # the whole epoch, counted from the return of the previous epoch's report (so it
        # holds that checkpoint and report: summed over epochs, the loop's wall time).
        stepped = time.perf_counter()
        metrics["seconds_read"] = round(warmed - began, 3)
        metrics["seconds_batches"] = round(waited, 3)
        metrics["seconds_steps"] = round(stepped - warmed - waited, 3)
        if world > 1:  # rank 0's batch-norm statistics (the checkpoint's) on every rank
            for buffer in _unwrap(g).buffers():
                torch.distributed.broadcast(buffer, src=0)
        metrics.update(validate(_unwrap(g), device))
        metrics["seconds_validation"] = round(time.perf_counter() - stepped, 3)
        metrics["seconds_epoch"] = round(time.perf_counter() - reported_at, 3)
        if rank == 0:
            log.info("epoch %d/%d: %s", epoch + 1, cfg.epochs, _summary(metrics))
            history.append(metrics)
            with tempfile.TemporaryDirectory() as tmp:
                state = {
                    "generator": _unwrap(g).state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "discriminator": _unwrap(d).state_dict() if d is not None else {},
                    "opt_d": opt_d.state_dict() if opt_d is not None else {},
                    "epoch": epoch,
                    "history": history,
                    "config": cfg.redacted().model_dump_json(),
                }
                torch.save(state, Path(tmp) / STATE_FILE)
                reported = _report(metrics, ray.train.Checkpoint.from_directory(tmp))
        else:
            reported = _report(metrics)
        reported_at = time.perf_counter()
        if not reported:
            return
        if fault_after is not None and epoch == int(fault_after["epoch"]) and rank == 0:
            marker = Path(fault_after["marker"])
            if not marker.exists():
                marker.write_text(str(epoch))
                raise RuntimeError(f"injected failure after epoch {epoch}")


def _report(metrics: dict[str, float], checkpoint: Any = None) -> bool:
    """`ray.train.report`; False when the run is being aborted (Ctrl-C on the driver:
    Ray Train kills its synchronisation actor first), so that the worker stops quietly
    instead of printing a traceback after the user asked to stop."""
    import ray

    try:
        ray.train.report(metrics, checkpoint=checkpoint)
    except ray.exceptions.RayActorError:
        log.debug("the run is being aborted: stopping this worker")
        return False
    return True


def ddp_options() -> dict[str, Any]:
    """DistributedDataParallel options for G and D (`prepare_model`'s strategy kwargs).

    No buffer sync per forward: by default DDP broadcasts rank 0's batch-norm running
    statistics at every forward — a blocking collective per call, three per step here.
    Training forwards use batch statistics, and checkpoints come from rank 0, whose
    buffers a broadcast never changes, so the saved model is the same without it.
    `gradient_as_bucket_view`: gradients live in the all-reduce buckets (one copy less).
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # torch 2.13 renamed the per-forward half of `broadcast_buffers`.
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return {sync: False, "gradient_as_bucket_view": True}


def _summary(metrics: dict[str, float]) -> str:
    """One line per epoch: the losses, and the model vs O1 on the validation patches."""
    parts = [f"L1 {metrics['loss_l1']:.4f}"]
    if metrics.get("loss_d"):
        parts.append(f"D {metrics['loss_d']:.3f}")
    if "val_psnr" in metrics:
        parts.append(
            f"val PSNR {metrics['val_psnr']:.2f} dB (O1 {metrics['o1_psnr']:.2f}), "
            f"SAM {metrics['val_sam_deg']:.2f}° (O1 {metrics['o1_sam_deg']:.2f}) "
            f"on {metrics['val_samples']:.0f} patches"
        )
    return ", ".join(parts)


def _unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper."""
    inner = getattr(model, "module", model)
    assert isinstance(inner, nn.Module)
    return inner


def env_fault() -> int | None:
    """$GAPFILL_TRAIN_FAIL_AFTER_EPOCH: fail once after that epoch (tests)."""
    raw = os.environ.get("GAPFILL_TRAIN_FAIL_AFTER_EPOCH")
    return int(raw) if raw else None
