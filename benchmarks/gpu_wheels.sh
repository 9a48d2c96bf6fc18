#!/usr/bin/env bash
# Wheels that gpu_check.py needs on a lent GPU machine (its image has torch, numpy, xarray
# and scipy, not these), at the versions of this venv, for its Python 3.12, into .whl/
# (git-ignored through .git/info/exclude). Carry `.whl` in the run; see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
pins=$(.venv/bin/python -m pip list --format=freeze 2>/dev/null |
  grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|typing[-_]extensions|shapely|pyproj)==')
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .whl $pins
ls .whl
