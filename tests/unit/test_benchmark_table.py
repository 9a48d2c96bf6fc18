"""The benchmark table in benchmarks/README.md is the one printed from the stored JSONs."""

from __future__ import annotations

from pathlib import Path

from benchmarks.table import BEGIN, END, table

README = Path(__file__).resolve().parents[2] / "benchmarks" / "README.md"


def test_the_readme_table_is_the_one_the_results_print():
    text = README.read_text()
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert shown == table(), "run: .venv/bin/python benchmarks/table.py, paste between the markers"


def test_the_readme_uncertainty_table_is_the_one_its_results_print():
    import json

    from benchmarks import uncertainty

    text = (README.parents[1] / "README.md").read_text()
    start = text.index(uncertainty.BEGIN) + len(uncertainty.BEGIN)
    shown = text[start : text.index(uncertainty.END)].strip()
    stored = json.loads((uncertainty.RESULTS / "uncertainty.json").read_text())
    assert shown == uncertainty.table(stored), (
        "run: .venv/bin/python benchmarks/uncertainty.py --table"
    )


def test_the_readme_experiment_tables_are_the_ones_their_run_prints():
    import json

    from benchmarks import experiment_table

    text = (README.parents[1] / "README.md").read_text()
    start = text.index(experiment_table.BEGIN) + len(experiment_table.BEGIN)
    shown = text[start : text.index(experiment_table.END)].strip()
    stored = json.loads(experiment_table.STORED.read_text())
    assert shown == experiment_table.block(stored), (
        "run: .venv/bin/python benchmarks/experiment_table.py, paste between the markers"
    )
