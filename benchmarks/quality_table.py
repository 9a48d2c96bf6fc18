"""The README's quality table, printed from `benchmarks/results/quality.json` (written by
`benchmarks/quality.py`): every figure comes from the stored JSON.

    .venv/bin/python benchmarks/quality_table.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "quality.json"


def table(data: dict) -> str:
    """Markdown: per run, the model and each baseline — mean PSNR [90 %], SSIM, SAM, wins."""
    lines = [
        "| run | method | PSNR dB [90 %] | SSIM | SAM ° | days won | model − best baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"]:
        ev = run["evaluate"]
        n = len(ev["targets"])
        names = ev["methods"]
        baselines = [m for m in names if m != "model"]
        best = max(baselines, key=lambda m: ev["overall"][m]["psnr"]["mean"])
        d = ev["versus"][best]["psnr"]
        for m in names:
            o = ev["overall"][m]
            later = " *" if ev["uses_later_days"][m] else ""
            label = f"model ({ev['model_method']}){later}" if m == "model" else m + later
            diff = f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] vs {best}"
            lines.append(
                f"| {run['tag'] if m == 'model' else ''} | {label} | "
                f"{o['psnr']['mean']:.2f} [{o['psnr']['low']:.2f}, {o['psnr']['high']:.2f}] | "
                f"{o['ssim']['mean']:.3f} | {o['sam_deg']['mean']:.2f} | "
                f"{ev['wins'].get(m, 0)}/{n} | {diff if m == 'model' else ''} |"
            )
    sw = data["software"]
    lines.append("")
    lines.append(
        f"From `{RESULT.relative_to(Path(__file__).parent.parent)}` (gapfill {sw['gapfill']}, "
        f"commit {sw['git_sha'][:10]}{' + uncommitted changes' if sw.get('dirty') else ''}); "
        f"`*`: uses clear days after the target."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(RESULT.read_text())))
