"""Session-scoped fixtures: synthetic worlds, the real sample and one local STAC API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gapfill.demo import default_real_sample
from gapfill.synth import WorldSpec, make_world

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def real_sample() -> Path:
    path = default_real_sample()
    assert (path / "catalog.json").is_file(), f"real sample missing at {path}"
    return path


@pytest.fixture(scope="session")
def world_pc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 px flat-agri world, Planetary Computer conventions, 12 dates."""
    out = tmp_path_factory.mktemp("worlds") / "flat-pc"
    make_world(out, WorldSpec(size=64, dates=12, seed=0))
    return out


@pytest.fixture(scope="session")
def world_es(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 px mountain-arid world, Earth Search conventions, 6 dates."""
    out = tmp_path_factory.mktemp("worlds") / "mountain-es"
    make_world(
        out,
        WorldSpec(
            size=64, dates=6, seed=3, landscape="mountain-arid", s2_conventions="earth-search"
        ),
    )
    return out


@pytest.fixture(scope="session")
def stac_api(world_pc: Path, world_es: Path, real_sample: Path):
    """One real stac-fastapi-pgstac for the session, serving both worlds and the real sample."""
    from gapfill.stac import local_stac_api

    with local_stac_api([world_pc, world_es, real_sample]) as api:
        yield api


def world_meta(world: Path) -> dict:
    return json.loads((world / "world.json").read_text())


def load_item(name: str) -> dict:
    return json.loads((DATA / "items" / name).read_text())
