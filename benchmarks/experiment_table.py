"""The README's tables of `gapfill experiment paper`, from a stored run.

    .venv/bin/gapfill experiment paper      # --out experiment-paper, cpu-tiny, 8 epochs
    .venv/bin/python benchmarks/experiment_table.py --store experiment-paper
    .venv/bin/python benchmarks/experiment_table.py          # the block, from the JSON

`--store OUT` copies OUT/report.json (which names the tree the run came from) to
`benchmarks/results/experiment-paper.json`; the block printed is what the README holds
between its markers (a test compares).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RESULTS  # noqa: E402
from gapfill.experiment.paper import tables  # noqa: E402

BEGIN = "<!-- experiment-paper: begin -->"
END = "<!-- experiment-paper: end -->"
STORED = RESULTS / "experiment-paper.json"


def block(report: dict) -> str:
    """The tables, then where they come from (settings, tree, time)."""
    st, tree = report["settings"], report["tree"]
    timings = report["train_seconds_per_run"]
    return "\n".join(
        [
            tables(report),
            "",
            f"From `benchmarks/results/experiment-paper.json` (scored at commit "
            f"{tree['git_sha'][:10]}{' + uncommitted changes' if tree['dirty'] else ''}, runs "
            f"trained at {', '.join(s[:10] for s in report['trained_by'])}): preset "
            f"`{st['preset']}`, "
            f"{st['epochs'] or 'the preset default'} epochs, {st['size']} px × {st['dates']} "
            f"days per region, {st['workers']} Ray Train worker(s) per run, {st['parallel']} "
            f"runs at once; {len(timings)} runs trained in {sum(timings.values()) / 60:.0f} "
            "min of run time on 2 cores. Mean over test days [bootstrap 90 % interval].",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an experiment's OUT folder to store")
    args = parser.parse_args()
    if args.store is not None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.store / "report.json", STORED)
    print(BEGIN)
    print(block(json.loads(STORED.read_text())))
    print(END)


if __name__ == "__main__":
    main()
