"""How well the Monte-Carlo dropout spread (`fill --uncertainty N`) covers the model's
errors: `gapfill evaluate --uncertainty N` on the demo's two cubes with the demo's models
(same regions and days as `make demo` scores them), stored as
`benchmarks/results/uncertainty.json` (with the tree measured); prints the README's table.

    make demo && .venv/bin/python benchmarks/uncertainty.py [--demo demo-output] [--passes 16]
    .venv/bin/python benchmarks/uncertainty.py --table      # the table, from the JSON
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, write_result  # noqa: E402

BEGIN = "<!-- uncertainty.py: begin -->"
END = "<!-- uncertainty.py: end -->"
CUBES = {"synthetic": "synthetic 256 px, east half held out", "real": "real sample 64 px"}


def table(data: dict) -> str:
    """Markdown: per cube, coverage of ±1.645σ, r(σ, |error|), the scale for 90 %."""
    lines = [
        "| cube | passes | errors within ±1.645σ (goal 90 %) | r(σ, \\|error\\|) | σ × this "
        "covers 90 % | σ = 0 | model vs best baseline (PSNR dB) | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, title in CUBES.items():
        r = data[key]
        u = r["uncertainty"]
        lines.append(
            f"| {title} | {u['passes']} | {u['coverage']:.1%} | {u['correlation']:.2f} | "
            f"{'none' if u['scale_for_90'] is None else format(u['scale_for_90'], '.1f')} | "
            f"{u['zero_sigma_share']:.1%} | "
            f"{r['model_psnr']:.2f} vs {r['best_baseline_psnr']:.2f} "
            f"({r['best_baseline']}) | {r['seconds']:.0f} |"
        )
    sw = data["software"]
    lines.append("")
    lines.append(
        f"From `benchmarks/results/uncertainty.json` (commit {sw['git_sha'][:10]}"
        f"{' + uncommitted changes' if sw.get('dirty') else ''}): `{data['command']}`."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo-output"))
    parser.add_argument("--passes", type=int, default=16)
    parser.add_argument("--table", action="store_true", help="only print the stored table")
    args = parser.parse_args()
    if not args.table:
        from gapfill.evaluate import EvaluateConfig, evaluate

        payload: dict = {"command": " ".join(["benchmarks/uncertainty.py", *sys.argv[1:]])}
        for key in CUBES:
            before = json.loads((args.demo / f"evaluate-{key}" / "report.json").read_text())
            cfg = EvaluateConfig.model_validate({**before["config"], "uncertainty": args.passes})
            t0 = time.perf_counter()
            report = evaluate(cfg)
            best = report.best_baseline()
            payload[key] = {
                "config": json.loads(cfg.model_dump_json()),
                "uncertainty": report.uncertainty,
                "targets": len(report.targets),
                "model_psnr": report.overall["model"]["psnr"]["mean"],
                "best_baseline": best,
                "best_baseline_psnr": report.overall[best]["psnr"]["mean"],
                "seconds": time.perf_counter() - t0,
            }
        print(f"wrote {write_result('uncertainty', payload)}")
    print(table(json.loads((RESULTS / "uncertainty.json").read_text())))


if __name__ == "__main__":
    main()
