"""The README's quality tables, printed from `benchmarks/results/RESULT.json` (written by
`benchmarks/quality.py --result RESULT`; default `quality`): every figure comes from the
stored JSON.

    .venv/bin/python benchmarks/quality_table.py [RESULT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _row(label: str, ev: dict, m: str, extra: str) -> str:
    o = ev["overall"][m]
    return (
        f"| {label} | {o['psnr']['mean']:.2f} [{o['psnr']['low']:.2f}, {o['psnr']['high']:.2f}] | "
        f"{o['ssim']['mean']:.3f} | {o['sam_deg']['mean']:.2f} | "
        f"{ev['wins'].get(m, 0)}/{len(ev['targets'])} | {extra} |"
    )


def table(data: dict, key: str = "evaluate", name: str = "quality") -> str:
    """Markdown for one kind of mask (`key`) and one cube: the baselines of the first run,
    then each run's model with its paired difference to the best baseline. A run scored on
    other days or pixels (a model that fills fewer pixels) gets its own baseline rows."""
    lines = [
        "| method | PSNR dB [90 %] | SSIM | SAM ° | days won | model − best baseline [90 %] |",
        "|---|---|---|---|---|---|",
    ]
    shown: tuple | None = None
    for run in data["runs"]:
        ev = run.get(key)
        if ev is None:
            continue
        names = ev["methods"]
        later = {m: " *" if ev["uses_later_days"][m] else "" for m in names}
        days = [t["day"] for t in ev["targets"]]
        baselines = tuple(round(ev["overall"][m]["psnr"]["mean"], 2) for m in names[1:])
        if (days, baselines) != shown:
            shown = (days, baselines)
            for m in names[1:]:
                lines.append(_row(m + later[m], ev, m, ""))
        best = max(names[1:], key=lambda m: ev["overall"][m]["psnr"]["mean"])
        d = ev["versus"][best]["psnr"]
        diff = f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] vs {best}"
        lines.append(_row(f"**{run['tag']}**{later['model']}", ev, "model", diff))
    sw = data["software"]
    lines.append("")
    lines.append(
        f"From `benchmarks/results/{name}.json` (gapfill {sw['gapfill']}, "
        f"commit {sw['git_sha'][:10]}{' + uncommitted changes' if sw.get('dirty') else ''}); "
        "`*`: uses clear days after the target; `+cal`: fitted to the day's clear pixels."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "quality"
    result = json.loads((RESULTS / f"{name}.json").read_text())
    for key, title in (("evaluate", "real cloud masks"), ("evaluate_whole_day", "whole days")):
        print(f"### {title}\n\n{table(result, key, name)}\n")
