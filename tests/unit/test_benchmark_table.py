"""The benchmark table in benchmarks/README.md is the one printed from the stored JSONs."""

from __future__ import annotations

from pathlib import Path

from benchmarks.table import BEGIN, END, table

README = Path(__file__).resolve().parents[2] / "benchmarks" / "README.md"


def test_the_readme_table_is_the_one_the_results_print():
    text = README.read_text()
    shown = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert shown == table(), "run: .venv/bin/python benchmarks/table.py, paste between the markers"
