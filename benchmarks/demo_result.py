"""Store what `make demo` printed — its two `gapfill evaluate` reports and what
`--method auto` chose — as `benchmarks/results/demo.json` (with the tree measured), and
print the README's demo table from it.

    make demo && .venv/bin/python benchmarks/demo_result.py [--demo demo-output]
    .venv/bin/python benchmarks/demo_result.py --table      # the table, from the JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS, write_result  # noqa: E402

ROWS = {
    "evaluate": "synthetic 256 px, east half held out",
    "evaluate_real": "real sample 64 px, clear days after 2018-05-31",
}


def table(data: dict) -> str:
    """Markdown: per cube, the model and every baseline (PSNR [90 %], SAM), and the choice
    of `--method auto`."""
    lines = []
    for key, title in ROWS.items():
        ev = data[key]
        n = len(ev["targets"])
        lines += [
            f"**{title}, {n} target days** — `--method auto` chose "
            f"`{data['choice'][key]['method']}`"
            f"{' (calibrated)' if data['choice'][key]['calibrated'] else ''}",
            "",
            "| method | PSNR dB [90 %] | SSIM | SAM ° | days won |",
            "|---|---|---|---|---|",
        ]
        for m in ev["methods"]:
            o = ev["overall"][m]
            label = f"model ({ev['model_method']})" if m == "model" else m
            label += " *" if ev["uses_later_days"][m] else ""
            lines.append(
                f"| {label} | {o['psnr']['mean']:.2f} [{o['psnr']['low']:.2f}, "
                f"{o['psnr']['high']:.2f}] | {o['ssim']['mean']:.3f} | "
                f"{o['sam_deg']['mean']:.2f} | {ev['wins'].get(m, 0)}/{n} |"
            )
        lines.append("")
    sw = data["software"]
    lines.append(
        f"From `benchmarks/results/demo.json` (gapfill {sw['gapfill']}, commit "
        f"{sw['git_sha'][:10]}{' + uncommitted changes' if sw.get('dirty') else ''}); `*`: "
        "uses clear days after the target; `+cal`: fitted to the day's clear pixels."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo-output"))
    parser.add_argument("--table", action="store_true", help="only print the stored table")
    args = parser.parse_args()
    if not args.table:
        summary = json.loads((args.demo / "demo-summary.json").read_text())
        choice = {
            "evaluate": json.loads(summary["fill"]["method_choice"]),
            "evaluate_real": json.loads(summary["fill_real"]["method_choice"]),
        }
        path = write_result(
            "demo",
            {
                "command": "make demo (gapfill demo --out demo-output)",
                "evaluate": summary["evaluate"],
                "evaluate_real": summary["evaluate_real"],
                "choice": choice,
            },
        )
        print(f"wrote {path}")
    print(table(json.loads((RESULTS / "demo.json").read_text())))


if __name__ == "__main__":
    main()
