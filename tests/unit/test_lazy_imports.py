"""The lazy package surfaces (`gapfill._lazy`): every public name resolves, and the
modules that Ray workers, fill tasks and the GPU script import do not pull the cube
builder's or the fill driver's stack (each process would pay ~1.3 s for it)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from gapfill._lazy import attach


@pytest.mark.parametrize("package", ["gapfill.cube", "gapfill.fill"])
def test_every_public_name_resolves(package):
    mod = importlib.import_module(package)
    assert dir(mod) == sorted(mod.__all__)
    for name in mod.__all__:
        assert getattr(mod, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mod.nope


def test_a_name_without_its_module_is_refused():
    with pytest.raises(ImportError, match="different objects"):
        attach("gapfill.cube", ["build_cube", "extra"], {"build": ["build_cube"]})


def test_workers_and_tasks_import_no_builder_or_driver_stack():
    code = (
        "import sys\n"
        "import gapfill.train.loop, gapfill.fill.infer, gapfill.fill.task, gapfill.models.card\n"
        "heavy = ['rasterio', 'pystac', 'pystac_client', 'stackstac', 'odc']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
