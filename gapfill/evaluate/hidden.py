"""`gapfill evaluate`: how good a fill is on the user's own cube, beside the baselines.

Clear target days (outside the model's training days and region, as its card records
them) get real cloud masks laid on them, taken from other days of the same cube — the
gap shapes that region really has. The hidden pixels are filled through the same kernel
as `gapfill fill` (`fill_window`, the card's reference rule) and by every baseline, and
scored against what was observed there, all methods on the same pixels. Figures: PSNR
and SSIM per band averaged over bands, SAM (the paper's MSA) in degrees, RMSE; per target
day and overall (the mean over target days) with a bootstrap 90 % interval over target
days, the paired difference of the model to each baseline, and the days each method wins.

Reads the region's crop of the whole cube at once: meant for evaluation regions of up
to a few thousand pixels a side.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gapfill._provenance import __version__, git_sha
from gapfill.cube import layout
from gapfill.cube.check import require_intact
from gapfill.cube.reference import lookahead_last, lookback_first
from gapfill.errors import InputError
from gapfill.evaluate._region import region_mask
from gapfill.fill import product
from gapfill.fill.baselines import BASELINES, baseline_fill
from gapfill.fill.calibrate import Calibration
from gapfill.fill.infer import Window, calibrate_day, fill_window
from gapfill.fill.run import check_fit
from gapfill.grid import UTCDay
from gapfill.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    Z90,
    Scores,
    masked_scores,
    mean_interval,
    spread_calibration,
)
from gapfill.models.card import ModelCard, load_model, weights_sha256
from gapfill.storage import absolute, require_writable, shown

__all__ = [
    "EvaluateConfig",
    "EvaluateReport",
    "TargetResult",
    "evaluate",
    "markdown",
    "print_report",
    "table_rows",
    "verdict",
    "MODEL",
    "CALIBRATED",
    "method_choice",
    "simulate_hidden",
]

log = logging.getLogger(__name__)

MODEL = "model"
# Baselines also scored fitted to the target day's clear pixels, named `NAME+cal`: what
# `gapfill fill --method NAME` gives (calibration is on by default), beside what a user
# gets by copying or interpolating without gapfill.
CALIBRATED = ("persistence", "interpolate")
CAL = "+cal"
# A PSNR gain below this is reported as a tie, whatever its interval.
MIN_GAIN_DB = 0.1


class EvaluateConfig(BaseModel):
    """An evaluation request: which cube, model, days and region, how masks are chosen."""

    model_config = ConfigDict(extra="forbid")

    cube: str
    model: str = Field(description="RUN_DIR with model.pt + model.json")
    start: UTCDay | None = Field(
        None, description="first target day; default: the day after the model's training days"
    )
    end: UTCDay | None = None
    region: str | None = Field(None, description="AOI text (lon/lat); default: the whole cube")
    allow_train_overlap: bool = False
    max_targets: int = Field(24, ge=1, description="at most this many target days, spread out")
    min_target_clear: float = Field(0.5, gt=0, le=1, description="clear share of a target day")
    mask_cloud: tuple[float, float] = Field(
        (0.05, 0.8), description="cloudy share of the days whose masks are laid on targets"
    )
    min_hidden_px: int = Field(32, ge=1)
    whole_day: bool = Field(
        False,
        description="hide every clear pixel of a target (a day all cloud, where calibration "
        "has nothing to fit) instead of another day's cloud mask",
    )
    seed: int = 0
    tile: int | None = Field(
        None, ge=16, description="inference tile (px, before halo); default: fill's by device"
    )
    bootstrap: int = Field(2000, ge=100)
    calibration: Calibration = Field(
        default_factory=Calibration, description="as `gapfill fill` applies it to the model"
    )
    uncertainty: int | None = Field(
        None,
        ge=2,
        le=256,
        description="Monte-Carlo dropout passes: how well their spread covers the model's "
        "errors (as `gapfill fill --uncertainty N` writes it)",
    )

    @model_validator(mode="after")
    def _days(self) -> EvaluateConfig:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        lo, hi = self.mask_cloud
        if not 0 <= lo < hi <= 1:
            raise ValueError("mask_cloud must be (low, high) with 0 <= low < high <= 1")
        return self


@dataclass(frozen=True)
class TargetResult:
    """One target day: the day whose mask hid its pixels, and each method's scores on the
    pixels every method could fill."""

    day: str
    mask_day: str
    hidden_px: int
    scores: dict[str, Scores]
    coverage: dict[str, float]


@dataclass
class EvaluateReport:
    """Per target day and overall figures of the model and every baseline."""

    cube: str
    model: str
    model_method: str
    region: str | None
    cube_id: str
    model_sha256: str
    calibration: dict[str, Any]
    methods: list[str]
    uses_later_days: dict[str, bool]
    targets: list[TargetResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    overall: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    versus: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    wins: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    # With `uncertainty` N: the model's Monte-Carlo dropout spread against its errors on
    # the scored pixels (gapfill.metrics.spread_calibration), plus "passes".
    uncertainty: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["software_version"], out["git_sha"] = __version__, git_sha()
        return out

    def best_baseline(self, metric: str = "psnr") -> str:
        """The baseline with the best mean `metric`."""
        sign = 1 if HIGHER_IS_BETTER[metric] else -1
        names = [m for m in self.methods if m != MODEL]
        return max(names, key=lambda m: sign * self.overall[m][metric]["mean"])

    def sam_not_worse(self) -> bool:
        """The model's mean SAM is at most every baseline's."""
        sam = self.overall[MODEL]["sam_deg"]["mean"]
        return all(sam <= self.overall[m]["sam_deg"]["mean"] for m in self.methods if m != MODEL)

    def model_wins(self) -> bool:
        """The model beats the best baseline: its paired PSNR gain is at least MIN_GAIN_DB
        with a 90 % interval above 0, and its SAM is not worse than any baseline's."""
        d = self.versus[self.best_baseline("psnr")]["psnr"]
        return d["low"] > 0 and d["mean"] >= MIN_GAIN_DB and self.sam_not_worse()


def _label(name: str, report: EvaluateReport) -> str:
    label = f"model ({report.model_method})" if name == MODEL else name
    return label + (" *" if report.uses_later_days[name] else "")


def table_rows(report: EvaluateReport) -> list[list[str]]:
    """Rows of the summary table: method, each metric with its 90 % interval, wins."""
    rows = []
    for name in report.methods:
        cells = [_label(name, report)]
        for metric in METRICS:
            s = report.overall[name][metric]
            digits = 4 if metric in ("ssim", "rmse") else 2
            cells.append(f"{s['mean']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]")
        cells.append(f"{report.wins.get(name, 0)}/{len(report.targets)}")
        rows.append(cells)
    return rows


HEADER = ["method", "PSNR dB", "SSIM", "SAM deg", "RMSE", "days won (PSNR)"]


def markdown(report: EvaluateReport) -> str:
    """report.md: the summary table, the model against each baseline, and every target."""
    masks = (
        "every clear pixel hidden (whole-day gaps: calibration has nothing to fit)"
        if report.config.get("whole_day")
        else "real cloud masks of other days of the cube"
    )
    lines = [
        f"# gapfill evaluate: {Path(report.cube).name}",
        "",
        f"Model `{report.model}` ({report.model_method}); region: {report.region or 'whole cube'}; "
        f"{len(report.targets)} target days, {masks}. "
        "Mean over target days [bootstrap 90 % interval over target days]; all methods on "
        "the same hidden pixels. `*`: uses clear days after the target.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    lines += ["", "Model minus baseline (paired over target days):", ""]
    lines += ["| baseline | ΔPSNR dB | ΔSSIM | ΔSAM deg |", "|---|---|---|---|"]
    for name, d in report.versus.items():
        cells = [
            f"{d[m]['mean']:+.3f} [{d[m]['low']:+.3f}, {d[m]['high']:+.3f}]"
            for m in ("psnr", "ssim", "sam_deg")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| day | mask from | hidden px | " + " | ".join(report.methods) + " (PSNR) |"]
    lines.append("|" + "---|" * (3 + len(report.methods)))
    for t in report.targets:
        psnr = " | ".join(f"{t.scores[m].psnr:.2f}" for m in report.methods)
        lines.append(f"| {t.day} | {t.mask_day} | {t.hidden_px} | {psnr} |")
    if report.uncertainty:
        lines += ["", uncertainty_line(report)]
    for day, why in report.skipped.items():
        lines.append(f"\nskipped {day}: {why}")
    return "\n".join(lines) + "\n"


def uncertainty_line(report: EvaluateReport) -> str:
    """One sentence on how well the model's Monte-Carlo dropout spread covers its errors."""
    u = report.uncertainty
    return (
        f"Uncertainty ({u['passes']} Monte-Carlo dropout passes): "
        f"{u['coverage']:.1%} of the model's errors lie within ±{Z90}σ (goal 90 %); "
        f"r(σ, |error|) = {u['correlation']:.2f}; "
        + (
            f"σ × {u['scale_for_90']:.2f} would cover 90 %"
            if u["scale_for_90"] is not None
            else f"no scale of σ covers 90 % (σ = 0 for {u['zero_sigma_share']:.0%})"
        )
        + f" ({u['values']} pixel-band values)."
    )


def print_report(report: EvaluateReport, title: str | None = None) -> None:
    """The summary table on the terminal (rich), the model against the best baseline."""
    import sys

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or f"{Path(report.cube).name}: {len(report.targets)} target days")
    for col in HEADER:
        table.add_column(col)
    for row in table_rows(report):
        table.add_row(*row)
    console = Console(width=160 if not sys.stdout.isatty() else None)
    console.print(table)
    console.print(verdict(report) + "; * uses clear days after the target")
    if report.uncertainty:
        console.print(uncertainty_line(report))


def verdict(report: EvaluateReport) -> str:
    """One line: does the model beat the best baseline, given the 90 % interval of the
    paired PSNR difference over target days (and SAM not worse)?"""
    best = report.best_baseline("psnr")
    d = report.versus[best]["psnr"]
    if d["high"] < 0 or (d["mean"] < 0 and not report.sam_not_worse()):
        word = "does NOT beat"
    elif report.model_wins():
        word = "beats"
    else:
        word = f"ties with (within its interval or {MIN_GAIN_DB} dB, or SAM worse)"
    return (
        f"model {word} the best baseline: PSNR {d['mean']:+.2f} dB vs {best} "
        f"[90 % {d['low']:+.2f}, {d['high']:+.2f}]"
    )


def _training_overlap(card: ModelCard, cube: Any, cube_path: str, inside: np.ndarray) -> float:
    """Share of the evaluation region's pixels the model was trained on, if it was trained
    on this cube (0 otherwise); days are handled by `training_until`."""
    same = str(cube.attrs.get(layout.CUBE_ID, "")) in {i for i in card.training_cube_ids if i}
    same |= shown(absolute(cube_path)) in card.training_cubes
    if not same:
        return 0.0
    trained = region_mask(cube, card.training_region)
    if card.held_out_region:
        trained &= ~region_mask(cube, card.held_out_region)
    return float((trained & inside).sum()) / max(int(inside.sum()), 1)


def _days_in_range(
    cfg: EvaluateConfig, card: ModelCard, overlap: float
) -> tuple[date | None, date | None]:
    """The target window; by default it starts after the model's training days when the
    model saw this region of this cube, and an overlapping window is refused."""
    start, end = cfg.start, cfg.end
    if overlap > 0.02 and not cfg.allow_train_overlap:
        until = card.training_until
        if until is None:
            raise InputError(
                f"the model was trained on this cube's days and on {overlap:.0%} of the "
                "evaluation region: give a --region outside its training region (the card's "
                "held-out region), or --allow-train-overlap to score training pixels"
            )
        first = until + timedelta(days=1)
        if start is None:
            start = first
        elif start < first:
            raise InputError(
                f"--start {start} overlaps the model's training days (up to {until}) on "
                f"{overlap:.0%} of the region: give --start {first} or later, or "
                "--allow-train-overlap"
            )
    return start, end


def _summarise(report: EvaluateReport, n_boot: int, seed: int) -> None:
    per = {
        m: {k: np.array([getattr(t.scores[m], k) for t in report.targets]) for k in METRICS}
        for m in report.methods
    }
    for m in report.methods:
        report.overall[m] = {k: mean_interval(per[m][k], n_boot, seed) for k in METRICS}
    for m in report.methods:
        if m != MODEL:
            report.versus[m] = {
                k: mean_interval(per[MODEL][k] - per[m][k], n_boot, seed) for k in METRICS
            }
    report.wins = {m: 0 for m in report.methods}
    for i in range(len(report.targets)):
        best = max(report.methods, key=lambda m: per[m]["psnr"][i])
        report.wins[best] += 1


def _spread(candidates: list[int]) -> list[int]:
    """Candidates in an order whose every prefix is spread over the whole list (van der
    Corput order of their positions), so that the first N scored cover the window."""

    def radical_inverse(i: int) -> float:
        out, base = 0.0, 0.5
        while i:
            out += base * (i & 1)
            i >>= 1
            base /= 2
        return out

    return [c for _, c in sorted((radical_inverse(i), c) for i, c in enumerate(candidates))]


def evaluate(cfg: EvaluateConfig, out: str | Path | None = None) -> EvaluateReport:
    """Score the model of `cfg.model` and every baseline on hidden clear pixels of
    `cfg.cube`; with `out`, write report.json, report.md and a PNG per target there."""
    if out is not None:
        require_writable(out, "--out")
        _require_report_or_absent(Path(out))
    cube = layout.open_cube(cfg.cube, chunks=None)
    times = cube["time"].values
    complete = cube[layout.COMPLETE].values
    require_intact(cfg.cube, cube)
    model, card = load_model(cfg.model)
    check_fit(card, cube, cfg.model)
    names = [str(t)[:10] for t in times]
    inside_full = region_mask(cube, cfg.region)
    if not inside_full.any():
        raise InputError(f"--region {cfg.region!r} holds no pixel of cube {cfg.cube}")
    overlap = _training_overlap(card, cube, cfg.cube, inside_full)
    start, end = _days_in_range(cfg, card, overlap)
    rows, cols = np.nonzero(inside_full.any(axis=1))[0], np.nonzero(inside_full.any(axis=0))[0]
    halo = card.receptive_field_px // 2 + cfg.calibration.halo_px  # the context fill reads
    ys = slice(max(rows[0] - halo, 0), min(rows[-1] + 1 + halo, cube.sizes["y"]))
    xs = slice(max(cols[0] - halo, 0), min(cols[-1] + 1 + halo, cube.sizes["x"]))
    crop = cube.isel(y=ys, x=xs)
    inside = inside_full[ys, xs]
    s2 = np.asarray(crop[layout.S2].values, np.float32)
    s1 = np.asarray(crop[layout.S1].values, np.float32)
    orbit = np.asarray(crop[layout.S1_ORBIT].values)
    observed = np.isfinite(s2).all(axis=1) & complete[:, None, None]
    clear = np.asarray(crop[layout.CLEAR].values, bool) & observed
    cloudy = observed & ~clear
    n_obs = (observed & inside).sum(axis=(1, 2))
    clear_share = (clear & inside).sum(axis=(1, 2)) / np.maximum(inside.sum(), 1)
    cloud_share = (cloudy & inside).sum(axis=(1, 2)) / np.maximum(n_obs, 1)
    lo, hi = cfg.mask_cloud
    donors = [k for k in range(len(times)) if complete[k] and lo <= cloud_share[k] <= hi]
    in_window = [
        t
        for t in range(len(times))
        if complete[t]
        and (start is None or names[t] >= start.isoformat())
        and (end is None or names[t] <= end.isoformat())
    ]
    candidates = [t for t in in_window if clear_share[t] >= cfg.min_target_clear]
    window = f"{start or names[0]} to {end or names[-1]}"
    if not candidates:
        raise InputError(
            f"no clear target day in {cfg.cube} from {window} (need {cfg.min_target_clear:.0%} "
            f"of the region clear; {len(in_window)} complete days in the window): widen "
            "--start/--end or the --region"
        )
    if not donors:
        raise InputError(
            f"no day of {cfg.cube} has a cloud mask with {lo:.0%}-{hi:.0%} cloud over the "
            "region to lay on the targets"
        )
    calibrated = CALIBRATED if cfg.calibration.enabled else ()
    methods = [MODEL, *BASELINES, *(b + CAL for b in calibrated)]
    report = EvaluateReport(
        cube=absolute(cfg.cube),
        model=absolute(cfg.model),
        model_method=card.method,
        region=cfg.region,
        cube_id=str(cube.attrs.get(layout.CUBE_ID, "")),
        model_sha256=weights_sha256(Path(cfg.model) / "model.pt"),
        calibration=cfg.calibration.model_dump(mode="json"),
        methods=methods,
        uses_later_days={
            MODEL: card.reference.rule == "both",
            **{b.name: b.uses_later_days for b in BASELINES.values()},
            **{b + CAL: BASELINES[b].uses_later_days for b in calibrated},
        },
        config=json.loads(cfg.model_dump_json()),
    )
    rng_px = card.normalisation.reflectance_max
    horizon = card.reference.lookback_days
    figures: list[tuple[str, dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
    errors: list[np.ndarray] = []
    sigmas: list[np.ndarray] = []
    for t in _spread(candidates):
        if len(report.targets) == cfg.max_targets:
            break
        order = np.random.default_rng([cfg.seed, t]).permutation([k for k in donors if k != t])
        hidden, mask_day = np.zeros_like(inside), -1
        if cfg.whole_day:
            hidden, mask_day = clear[t] & inside, t
            order = order[:0]
        for k in order[:8]:
            hidden = clear[t] & inside & cloudy[k]
            if hidden.sum() >= cfg.min_hidden_px:
                mask_day = int(k)
                break
        if mask_day < 0:
            report.skipped[names[t]] = "no other day's clouds hide enough of its clear pixels"
            continue
        preds, sigma = _predict(
            t, hidden, times, s2, s1, clear, orbit, model, card, cfg, horizon, calibrated
        )
        valid = {m: hidden & np.isfinite(p).all(axis=0) for m, p in preds.items()}
        common = np.logical_and.reduce(list(valid.values()))
        if common.sum() < cfg.min_hidden_px:
            report.skipped[names[t]] = (
                f"only {int(common.sum())} hidden pixels can be filled by every method"
            )
            continue
        truth = s2[t]
        if sigma is not None:
            errors.append((preds[MODEL] - truth)[:, common])
            sigmas.append(sigma[:, common])
        report.targets.append(
            TargetResult(
                day=names[t],
                mask_day="whole day" if cfg.whole_day else names[mask_day],
                hidden_px=int(hidden.sum()),
                scores={m: masked_scores(preds[m], truth, common, rng_px) for m in methods},
                coverage={m: round(float(valid[m].sum()) / int(hidden.sum()), 4) for m in methods},
            )
        )
        figures.append((names[t], preds, truth, common))
    report.targets.sort(key=lambda r: r.day)
    figures.sort(key=lambda f: f[0])
    if not report.targets:
        raise InputError(
            f"no target day of {cfg.cube} from {window} could be scored: "
            + "; ".join(f"{d}: {w}" for d, w in list(report.skipped.items())[:3])
        )
    _summarise(report, cfg.bootstrap, cfg.seed)
    if cfg.uncertainty is not None:
        report.uncertainty = {
            "passes": cfg.uncertainty,
            **spread_calibration(
                np.concatenate(errors, axis=None), np.concatenate(sigmas, axis=None)
            ),
        }
    if out is not None:
        _write(report, Path(out), figures)
    return report


def _hidden_window(
    t: int,
    hidden: np.ndarray,
    times: np.ndarray,
    s2: np.ndarray,
    s1: np.ndarray,
    clear: np.ndarray,
    orbit: np.ndarray,
    card: ModelCard,
) -> tuple[Window, int]:
    """The days the card's reference rule may read for day `t`, with `hidden` no longer
    clear on day `t`, and the index of the window's first day."""
    first = lookback_first(times, t, card.reference)
    days = slice(first, lookahead_last(times, t, card.reference) + 1)
    seen = clear[days].copy()
    seen[t - first] &= ~hidden
    return Window(times[days], s2[days], s1[days], seen, orbit[days]), first


def simulate_hidden(
    t: int,
    hidden: np.ndarray,
    times: np.ndarray,
    s2: np.ndarray,
    s1: np.ndarray,
    clear: np.ndarray,
    orbit: np.ndarray,
    model: Any,
    card: ModelCard,
    *,
    tile: int | None,
    calibration: Calibration | None = None,
    uncertainty: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's reflectance (band, y, x) for day `t` of a crop's series with `hidden`
    clouded over, as `gapfill fill` computes it (`fill_window`, the card's reference rule);
    NaN where the model gives nothing; and its Monte-Carlo dropout spread where asked."""
    win, first = _hidden_window(t, hidden, times, s2, s1, clear, orbit, card)
    res = fill_window(
        win,
        [t - first],
        [True],
        model,
        card,
        tile=tile,
        batch=1,
        calibration=calibration,
        uncertainty=uncertainty,
    )
    sim = np.where((res.status[0] == product.FILLED)[None], res.s2[0], np.nan)
    return sim, None if res.uncertainty is None else res.uncertainty[0]


def _predict(
    t: int,
    hidden: np.ndarray,
    times: np.ndarray,
    s2: np.ndarray,
    s1: np.ndarray,
    clear: np.ndarray,
    orbit: np.ndarray,
    model: Any,
    card: ModelCard,
    cfg: EvaluateConfig,
    horizon: int,
    calibrated: tuple[str, ...],
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Each method's reflectance (band, y, x) for day `t` with `hidden` clouded over; NaN
    where a method has no value; and the model's Monte-Carlo dropout spread where asked.
    The calibrated baselines fit on the clear pixels left visible, as the model does."""
    sim, sigma = simulate_hidden(
        t,
        hidden,
        times,
        s2,
        s1,
        clear,
        orbit,
        model,
        card,
        tile=cfg.tile,
        calibration=cfg.calibration,
        uncertainty=cfg.uncertainty,
    )
    win, first = _hidden_window(t, hidden, times, s2, s1, clear, orbit, card)
    out = {MODEL: sim}
    for name in BASELINES:
        out[name] = baseline_fill(name, times, s2, clear, t, horizon)
    for name in calibrated:
        values = out[name]
        has_value = np.asarray(np.isfinite(values).all(axis=0))
        fitted = calibrate_day(values, win, t - first, has_value, cfg.calibration)
        out[name + CAL] = np.maximum(fitted, layout.S2_MIN_VALID)
    return out, sigma


def _is_report(path: Path) -> bool:
    try:
        return "model_sha256" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return False


def _require_report_or_absent(out: Path) -> None:
    """A re-run replaces its own report; anything else at `--out` (a file, a folder of
    the user's) is refused, never replaced."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink():
        if not any(out.iterdir()) or _is_report(out / "report.json"):
            return
    raise InputError(
        f"--out {out} exists and is not a report of 'gapfill evaluate' (which replaces only "
        "its own reports): choose another --out"
    )


def _write(
    report: EvaluateReport,
    out: Path,
    figures: list[tuple[str, dict[str, np.ndarray], np.ndarray, np.ndarray]],
) -> None:
    """report.json, report.md and one PNG per target, written aside and renamed into place
    (a failed run leaves the previous report whole)."""
    from gapfill.evaluate.figures import target_png

    _require_report_or_absent(out)  # again: minutes have passed since evaluate() began
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    (tmp / "report.md").write_text(markdown(report))
    for day, preds, truth, mask in figures:
        target_png(tmp / f"{day}.png", day, preds, truth, mask)
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def method_choice(report: EvaluateReport) -> tuple[str, bool, str]:
    """What `gapfill fill --method auto` fills with after `report`: the model where it beats
    every baseline (`model_wins`: a tie is no reason to run a network), else the best
    baseline; with whether to calibrate, and one line saying why."""
    calibrated = bool(report.calibration.get("enabled", False))
    if report.model_wins():
        return MODEL, calibrated, verdict(report)
    best = report.best_baseline("psnr")
    return best.removesuffix(CAL), best.endswith(CAL), verdict(report)
