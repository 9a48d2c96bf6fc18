"""`gapfill experiment paper`: He & Yokoya's two experiments on a three-region world.

Case 1 (Table III): CNN, cGAN, MTCNN and MTcGAN trained on region 1's west half, tested
on its east half, beside O1. Case 2 (Table IV): MTCNN and MTcGAN trained on the west
half of each region alone and of all three together, tested on region 2's east half.
Beyond the paper, as extra rows: linear interpolation between the clear days around a
gap, and MTCNN with the reference rule `both` (the earlier and the later clear day).
Every model is trained through Ray Train (`gapfill.train.train`) and scored with
`gapfill.evaluate.compare_models` on the same pixels as O1. Re-running resumes: worlds,
cubes and finished runs are kept; scores, tables and figures are made again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gapfill._provenance import __version__, git_dirty, git_sha
from gapfill.errors import InputError
from gapfill.evaluate.compare import O1, Comparison, compare_models
from gapfill.experiment.regions import REGIONS, build_cubes, held_out_area, make_worlds
from gapfill.storage import require_writable

if TYPE_CHECKING:
    from gapfill.train import TrainConfig

__all__ = [
    "ExperimentConfig",
    "RunSpec",
    "CASE1",
    "CASE2",
    "PAPER",
    "run_paper",
    "markdown",
    "tables",
]

log = logging.getLogger(__name__)

MARKER = "experiment.json"
ALL = ("r1", "r2", "r3")


class ExperimentConfig(BaseModel):
    """What `gapfill experiment paper` runs; everything but `out` must match to resume."""

    model_config = ConfigDict(extra="forbid")

    out: str
    preset: str = Field("cpu-tiny", description="training preset (gapfill train --preset)")
    epochs: int | None = Field(
        8, ge=1, description="per run (None: the preset's); the default takes ~30 min on 2 cores"
    )
    size: int = Field(256, ge=64, le=2048, description="each region's side in 10 m pixels")
    dates: int = Field(12, ge=6, le=60, description="Sentinel-2 days per region")
    workers: int = Field(1, ge=1, description="Ray Train workers per run")
    parallel: int = Field(2, ge=1, le=16, description="runs trained at once (Ray shares CPUs)")
    seed: int = 0
    max_days: int = Field(8, ge=1, description="clear test days scored per case, the last ones")

    @field_validator("preset")
    @classmethod
    def _known(cls, v: str) -> str:
        from gapfill.train.config import TRAIN_PRESETS

        if v not in TRAIN_PRESETS:
            raise ValueError(f"unknown preset {v!r}: use one of {', '.join(TRAIN_PRESETS)}")
        return v

    def settings(self) -> dict[str, Any]:
        """What a resumed experiment must share with the stored one."""
        return self.model_dump(mode="json", exclude={"out"})


@dataclass(frozen=True)
class RunSpec:
    """One training run: a method, the regions whose west halves it trains on, a rule."""

    method: Literal["cnn", "cgan", "mtcnn", "mtcgan"]
    train: tuple[str, ...]
    rule: Literal["causal", "both"] = "causal"

    @property
    def name(self) -> str:
        where = "all" if self.train == ALL else "+".join(self.train)
        return f"{self.method}{'-both' if self.rule == 'both' else ''}-{where}"


CASE1 = [RunSpec(m, ("r1",)) for m in ("cnn", "cgan", "mtcnn", "mtcgan")]
CASE1_EXTRA = [RunSpec("mtcnn", ("r1",), "both")]
CASE2_SETS: dict[str, tuple[str, ...]] = {"r2": ("r2",), "r1": ("r1",), "r3": ("r3",), "all": ALL}
CASE2 = [RunSpec(m, s) for m in ("mtcnn", "mtcgan") for s in CASE2_SETS.values()]
CASE2_EXTRA = [RunSpec("mtcnn", ("r2",), "both")]

# He & Yokoya (2018), Tables III and IV: (PSNR dB, SSIM, MSA). The paper does not state
# MSA's unit; ours is SAM in degrees.
PAPER: dict[str, Any] = {
    "case1": {
        "cnn": (26.60, 0.6477, 0.6769),
        "cgan": (26.79, 0.6519, 0.6581),
        "mtcnn": (30.61, 0.9028, 0.3796),
        "mtcgan": (32.32, 0.9110, 0.3146),
        "O1": (29.77, 0.8528, 0.5529),
    },
    "case2": {
        "mtcnn": {
            "r2": (35.08, 0.9508, 0.4684),
            "r1": (29.44, 0.8585, 0.8400),
            "r3": (34.30, 0.9412, 0.5138),
            "all": (34.38, 0.9479, 0.4774),
        },
        "mtcgan": {
            "r2": (35.25, 0.9509, 0.4629),
            "r1": (31.09, 0.8850, 0.6137),
            "r3": (34.44, 0.9413, 0.5070),
            "all": (34.83, 0.9463, 0.4649),
        },
        "O1": (34.01, 0.9401, 0.5319),
    },
}
LABEL = {"cnn": "CNN", "cgan": "cGAN", "mtcnn": "MTCNN", "mtcgan": "MTcGAN"}
INDEX = (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4), ("sam_deg", "MSA (SAM, °)", 3))


def _check_out(cfg: ExperimentConfig) -> Path:
    """OUT is new, or holds this same experiment (resumed); anything else is refused."""
    out = Path(cfg.out).resolve()
    require_writable(out, "--out")
    marker = out / MARKER
    if marker.is_file():
        try:
            stored = json.loads(marker.read_text())
        except (ValueError, OSError):
            stored = {}
        stored = stored if isinstance(stored, dict) else {}
        old = stored.get("settings")
        old = old if isinstance(old, dict) else {}
        if stored.get("experiment") != "paper" or old != cfg.settings():
            diff = sorted(k for k in cfg.settings() if old.get(k) != cfg.settings()[k])
            raise InputError(
                f"{out} holds another experiment's runs (other {', '.join(diff) or 'kind'}): "
                "choose another --out, or the same settings to resume it"
            )
    elif out.exists() and any(out.iterdir()):
        raise InputError(
            f"{out} is not empty and holds no gapfill experiment: choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"experiment": "paper", "settings": cfg.settings()}, indent=2))
    return out


def _train_config(cfg: ExperimentConfig, spec: RunSpec, out: Path, cubes: dict, worlds: dict):
    from gapfill.cube.reference import ReferenceRule
    from gapfill.train import DataConfig, TrainConfig

    data = DataConfig(
        cubes=tuple(str(cubes[k]) for k in spec.train),
        test_region=held_out_area(worlds, spec.train),
        min_target_clear=0.3,
        reference=ReferenceRule(rule=spec.rule, same_orbit=False),
    )
    extra = {} if cfg.epochs is None else {"epochs": cfg.epochs}
    return TrainConfig(
        data=data,
        out=str(out / "runs" / spec.name),
        method=spec.method,
        preset=cfg.preset,
        workers=cfg.workers,
        cpus_per_worker=1.0,  # `--parallel` runs share the CPUs (`_runs_at_once`)
        seed=cfg.seed,
        **extra,
    )


def _train_all(cfg: ExperimentConfig, out: Path, cubes: dict, worlds: dict) -> dict[str, str]:
    """Every run of both cases, in one Ray session; finished runs are kept. Returns run
    name -> RUN_DIR; training seconds go to OUT/timings.json as each run ends."""
    from gapfill.train import ray_session, stored_differences, train

    specs = list(dict.fromkeys([*CASE1, *CASE1_EXTRA, *CASE2, *CASE2_EXTRA]))
    configs = {s.name: _train_config(cfg, s, out, cubes, worlds) for s in specs}
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    todo = [
        s.name
        for s in specs
        if not (Path(configs[s.name].out) / "model.pt").is_file()
        or stored_differences(configs[s.name].out, configs[s.name])
    ]
    # Longest first (adversarial runs take ~2.5x, all regions ~3x): parallel runs end together.
    cost = {s.name: (2.5 if s.method in ("cgan", "mtcgan") else 1.0) * len(s.train) for s in specs}
    todo.sort(key=lambda n: -cost[n])
    if todo:
        lock = threading.Lock()

        def one(name: str) -> None:
            t0 = time.perf_counter()
            result = train(configs[name])
            with lock:
                timings[name] = round(time.perf_counter() - t0, 1)
                _write_json(timings_path, timings)
                typer.echo(
                    f"[{len(timings)}] trained {name} ({timings[name]:.0f} s, "
                    f"{len(result.history)} epochs)"
                )

        with ray_session(configs[todo[0]]):
            at_once = _runs_at_once(cfg.parallel, configs[todo[0]])
            with ThreadPoolExecutor(at_once, thread_name_prefix="run") as pool:
                for future in [pool.submit(one, name) for name in todo]:
                    future.result()
    return {n: c.out for n, c in configs.items()}


def _runs_at_once(parallel: int, one: TrainConfig) -> int:
    """`parallel`, but on a local Ray no more runs than its CPUs hold at once: a run beyond
    that waits for CPUs anyway, its worker group's start times out after 60 s and is
    retried (a traceback in the log), and its start-up slows the runs that train (12 test
    runs on 2 cores: 286 s of training at 4 at once, 245 s at 2). A cluster's address is
    left as asked: an autoscaler adds nodes for runs that wait."""
    import ray

    if one.ray_address:
        return parallel
    per_run = one.workers * one.cpus
    fits = max(1, int(ray.cluster_resources().get("CPU", 1) // per_run))
    if fits < parallel:
        log.info("--parallel %d: %d runs at once, what this machine's CPUs hold", parallel, fits)
    return min(parallel, fits)


def _card_sha(run_dir: str) -> str:
    """The commit whose code trained a run (from its model card)."""
    return str(json.loads((Path(run_dir) / "model.json").read_text()).get("git_sha", ""))


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _cell(overall: dict, method: str, key: str, digits: int) -> str:
    s = overall[method][key]
    return f"{s['mean']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]"


def _paper_cell(value: float, digits: int) -> str:
    """A figure as the paper prints it: PSNR to 2 decimals, SSIM and MSA to 4."""
    return f"{value:.{2 if digits == 2 else 4}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _order(means: dict[str, float]) -> str:
    return " < ".join(sorted(means, key=lambda m: means[m]))


def _case1(case: dict[str, Any]) -> tuple[list[str], dict]:
    overall, vs, names = case["overall"], case["versus_O1"], case["runs"]
    cols = [*(names[LABEL[s.method]] for s in CASE1), O1]
    head = ["Index", *(LABEL[s.method] for s in CASE1), "O1"]
    rows = [[label, *(_cell(overall, c, k, d) for c in cols)] for k, label, d in INDEX]
    rows.append(["PSNR − O1 (dB)", *(_cell(vs, c, "psnr", 2) for c in cols[:-1]), "0"])
    paper = PAPER["case1"]
    prow = [
        [label, *(_paper_cell(paper[m][i], d) for m in (*LABEL, "O1"))]
        for i, (_, label, d) in enumerate(INDEX)
    ]
    extra_names = {"interpolate": "interpolate", names["MTCNN-both"]: "MTCNN, rule both"}
    extra = [
        [shown, *(_cell(overall, m, k, d) for k, _, d in INDEX), _cell(vs, m, "psnr", 2)]
        for m, shown in extra_names.items()
    ]
    psnr = {label: overall[c]["psnr"]["mean"] for label, c in zip(head[1:], cols, strict=True)}
    want = ["CNN", "cGAN", "O1", "MTCNN", "MTcGAN"]
    ours = _order(psnr)
    holds = max(psnr["CNN"], psnr["cGAN"]) < psnr["O1"] < psnr["MTCNN"] < psnr["MTcGAN"]
    lines = [
        f"Tested on region 1's east half (like Iraq): {len(case['days'])} whole clear days "
        f"({', '.join(case['days'])}), {sum(case['pixels'])} pixels scored by every method. "
        "Mean over days [bootstrap 90 % interval].",
        "",
        *_table(head, rows),
        "",
        "The paper's Table III:",
        "",
        *_table(["Index", *(LABEL[m] for m in LABEL), "O1"], prow),
        "",
        "Beyond the paper (same days and pixels):",
        "",
        *_table(["Method", *(label for _, label, _ in INDEX), "PSNR − O1 (dB)"], extra),
        "",
        f"Ordering by PSNR — paper: {' < '.join(want)}; ours: {ours}: "
        + ("**holds**." if holds else "**differs**."),
    ]
    return lines, {"ordering": ours, "paper_ordering_holds": holds}


def _case2(case: dict[str, Any]) -> tuple[list[str], dict]:
    overall, vs, names = case["overall"], case["versus_O1"], case["runs"]
    sets = list(CASE2_SETS)
    head = [
        "Method",
        "Index",
        *(f"{k} ({REGIONS[k].paper_name})" if k != "all" else "mixed" for k in sets),
        "O1",
    ]
    rows, prow = [], []
    best: dict[str, str] = {}
    for m in ("mtcnn", "mtcgan"):
        for k, label, d in INDEX:
            cells = [_cell(overall, names[f"{m}@{s}"], k, d) for s in sets]
            rows.append([LABEL[m], label, *cells, _cell(overall, O1, k, d)])
            paper = PAPER["case2"]
            pcells = [_paper_cell(paper[m][s][INDEX.index((k, label, d))], d) for s in sets]
            prow.append(
                [LABEL[m], label, *pcells, _paper_cell(paper["O1"][INDEX.index((k, label, d))], d)]
            )
        rows.append(
            [
                LABEL[m],
                "PSNR − O1 (dB)",
                *(_cell(vs, names[f"{m}@{s}"], "psnr", 2) for s in sets),
                "0",
            ]
        )
        psnr = {s: overall[names[f"{m}@{s}"]]["psnr"]["mean"] for s in sets}
        best[m] = max(psnr, key=lambda s: psnr[s])
    extra_names = {
        "interpolate": "interpolate",
        names["MTCNN-both"]: "MTCNN, rule both (trained on r2)",
    }
    extra = [
        [shown, *(_cell(overall, m, k, d) for k, _, d in INDEX), _cell(vs, m, "psnr", 2)]
        for m, shown in extra_names.items()
    ]
    same = all(b == "r2" for b in best.values())
    lines = [
        f"Tested on region 2's east half (like Jianghan): {len(case['days'])} whole clear days "
        f"({', '.join(case['days'])}), {sum(case['pixels'])} pixels scored by every method.",
        "",
        *_table(head, rows),
        "",
        "The paper's Table IV:",
        "",
        *_table(head, prow),
        "",
        "Beyond the paper (same days and pixels):",
        "",
        *_table(["Method", *(label for _, label, _ in INDEX), "PSNR − O1 (dB)"], extra),
        "",
        "Best training set by PSNR — paper: r2 (the test region's own) for both; ours: "
        + ", ".join(f"{LABEL[m]} {b}" for m, b in best.items())
        + (": **holds**." if same else ": **differs**."),
    ]
    return lines, {"best_training_set": best, "same_region_best_holds": same}


def _figure(png: Path, comp: Comparison, panels: dict[str, str]) -> Path:
    """The paper's Fig. 4 layout: S1_t2, O1, the truth O2, then each simulation."""
    from gapfill.evaluate.figures import panels_png, sar_colour
    from gapfill.fill.quicklook import true_colour

    f = comp.figure
    images = [
        ("S1_t2", sar_colour(f["S1_t2"])),
        ("O1", true_colour(f[O1])),
        (f"O2 {f['day']}", true_colour(f["O2"])),
    ]
    images += [(label, true_colour(f[key])) for label, key in panels.items()]
    return panels_png(png, images)


def run_paper(cfg: ExperimentConfig) -> dict[str, Any]:
    """Run (or resume) both cases into `cfg.out`; returns what report.json holds."""
    t_start = time.perf_counter()
    # The tree this run's code came from (later edits are not what it ran).
    sha, dirty = git_sha(), git_dirty()
    tree = {"git_sha": sha, "dirty": dirty}
    out = _check_out(cfg)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    worlds = make_worlds(out, cfg.size, cfg.dates)
    seconds["worlds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    cubes = build_cubes(out, worlds)
    seconds["cubes"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    runs = _train_all(cfg, out, cubes, worlds)
    seconds["training"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    names1 = {LABEL[s.method]: s.name for s in CASE1} | {"MTCNN-both": CASE1_EXTRA[0].name}
    case1 = compare_models(
        cubes["r1"],
        {n: runs[n] for n in names1.values()},
        held_out_area(worlds, ("r1",)),
        max_days=cfg.max_days,
    )
    names2 = {
        f"{s.method}@{k}": s.name for s in CASE2 for k, v in CASE2_SETS.items() if v == s.train
    } | {"MTCNN-both": CASE2_EXTRA[0].name}
    case2 = compare_models(
        cubes["r2"],
        {n: runs[n] for n in names2.values()},
        held_out_area(worlds, ("r2",)),
        max_days=cfg.max_days,
    )
    seconds["scoring"] = round(time.perf_counter() - t0, 1)
    fig1 = _figure(out / "figure-case1.png", case1, {LABEL[s.method]: s.name for s in CASE1})
    fig2 = _figure(
        out / "figure-case2.png",
        case2,
        {f"{LABEL[m]} {s}": names2[f"{m}@{s}"] for m in ("mtcnn", "mtcgan") for s in CASE2_SETS},
    )
    timings = (
        json.loads((out / "timings.json").read_text()) if (out / "timings.json").is_file() else {}
    )
    seconds["total"] = round(time.perf_counter() - t_start, 1)
    report: dict[str, Any] = {
        "experiment": "paper",
        "settings": cfg.settings(),
        "gapfill": __version__,
        "tree": tree,
        "seconds_this_invocation": seconds,
        "train_seconds_per_run": timings,
        "trained_by": sorted({_card_sha(run) for run in runs.values()}),
        "case1": {"runs": names1, **case1.to_json()},
        "case2": {"runs": names2, **case2.to_json()},
        "paper": PAPER,
        "figures": [fig1.name, fig2.name],
    }
    md = markdown(report)  # adds each case's verdict to the report
    _write_json(out / "report.json", report)
    tmp = out / f".report.md.{os.getpid()}.tmp"
    tmp.write_text(md)
    tmp.replace(out / "report.md")
    typer.echo(md)
    return report


def tables(report: dict[str, Any]) -> str:
    """Both cases' tables, the paper's beside ours, and whether its orderings hold, from a
    report.json (what the README shows of a stored run)."""
    lines1, verdict1 = _case1(report["case1"])
    lines2, verdict2 = _case2(report["case2"])
    report["case1"].update(verdict1)
    report["case2"].update(verdict2)
    return "\n".join(
        ["**Case 1 (Table III)**", "", *lines1, "", "**Case 2 (Table IV)**", "", *lines2]
    )


def markdown(report: dict[str, Any]) -> str:
    """report.md: settings, time, tables, figures."""
    st, tree = report["settings"], report["tree"]
    timings = report["train_seconds_per_run"]
    body = tables(report)
    epochs = st["epochs"] or "the preset's"
    return "\n".join(
        [
            "# He & Yokoya's experiments on a three-region synthetic world",
            "",
            f"Preset `{st['preset']}`, {epochs} epochs, regions of "
            f"{st['size']} px × {st['dates']} days; gapfill {report['gapfill']} "
            f"({tree['git_sha'][:12]}{', dirty' if tree['dirty'] else ''}; runs trained by "
            f"{', '.join(sha[:12] for sha in report['trained_by'])}). Training took "
            f"{sum(timings.values()) / 60:.1f} min for {len(timings)} runs; this invocation "
            f"{report['seconds_this_invocation']['total'] / 60:.1f} min.",
            "",
            body,
            "",
            f"![Fig. 4]({report['figures'][0]}) ![Fig. 5]({report['figures'][1]})",
            "",
        ]
    )
