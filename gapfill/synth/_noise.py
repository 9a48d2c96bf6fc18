"""Block-independent random fields: every value is a pure function of (seed, position).

A world of any size can then be rendered block by block with bounded memory and the
result does not depend on the block size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0x165667B19E3779F9)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S11 = np.uint64(11)


def hash_u64(seed: int, *keys: np.ndarray | int) -> np.ndarray:
    """A well-mixed 64-bit hash per element of integer keys (murmur3 finaliser)."""
    h: Any = np.uint64((seed * 0x2545F4914F6CDD1D + 0x1234567) & 0xFFFFFFFFFFFFFFFF)
    mult = (_M1, _M2, _M3)
    with np.errstate(over="ignore"):
        for i, k in enumerate(keys):
            k64 = np.asarray(k).astype(np.int64).astype(np.uint64)
            h = h ^ (k64 * mult[i % 3] + np.uint64(i + 1))
            h = h ^ (h >> _S33)
            h = h * _F1
            h = h ^ (h >> _S33)
            h = h * _F2
            h = h ^ (h >> _S33)
    return np.asarray(h)


def hash_uniform(seed: int, *keys: np.ndarray | int) -> np.ndarray:
    """A uniform [0, 1) value per element from integer keys."""
    return (hash_u64(seed, *keys) >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)


def speckle(seed: int, *keys: np.ndarray | int, looks: int = 4) -> np.ndarray:
    """Multiplicative SAR speckle: Gamma(looks, 1/looks), mean 1, from one hash per pixel."""
    h = hash_u64(seed, *keys)
    logsum = np.zeros(h.shape)
    for k in range(looks):
        bits = (h >> np.uint64((16 * k) % 64)) & np.uint64(0xFFFF)
        logsum += np.log((bits.astype(np.float64) + 0.5) / 65536.0)
    return (-logsum / looks).astype(np.float32)


def value_noise(u: np.ndarray, v: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] on a lattice of `cell` metres."""
    gu, gv = u / cell, v / cell
    iu, iv = np.floor(gu), np.floor(gv)
    fu, fv = gu - iu, gv - iv
    su, sv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = iu.astype(np.int64), iv.astype(np.int64)
    if iu.size == 0:
        return np.zeros(iu.shape)
    u0, v0 = int(iu.min()), int(iv.min())
    nu, nv = int(iu.max()) - u0 + 2, int(iv.max()) - v0 + 2
    if nu * nv <= iu.size:
        # Hash each lattice corner once, then gather: same values, far fewer hashes.
        lu, lv = np.meshgrid(np.arange(u0, u0 + nu), np.arange(v0, v0 + nv))
        table = hash_uniform(seed, lu, lv)
        a, b = iu - u0, iv - v0
        c00, c10 = table[b, a], table[b, a + 1]
        c01, c11 = table[b + 1, a], table[b + 1, a + 1]
    else:
        c00 = hash_uniform(seed, iu, iv)
        c10 = hash_uniform(seed, iu + 1, iv)
        c01 = hash_uniform(seed, iu, iv + 1)
        c11 = hash_uniform(seed, iu + 1, iv + 1)
    top = c00 + (c10 - c00) * su
    bottom = c01 + (c11 - c01) * su
    return 2.0 * (top + (bottom - top) * sv) - 1.0


# Standard deviation of one value-noise octave (uniform corners, smoothstep blend),
# measured once on a large sample; used to normalise fractal sums to unit variance.
_OCTAVE_STD = 0.4287


def fractal(
    u: np.ndarray, v: np.ndarray, cell: float, seed: int, octaves: int = 5, gain: float = 0.55
) -> np.ndarray:
    """Fractal (1/f-like) noise with about zero mean and unit standard deviation."""
    total = np.zeros(np.broadcast(u, v).shape)
    norm = 0.0
    amp = 1.0
    for k in range(octaves):
        total += amp * value_noise(u, v, cell / 2**k, seed * 101 + k)
        norm += amp * amp
        amp *= gain
    return total / (math.sqrt(norm) * _OCTAVE_STD)


def normal_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF, to turn fractal noise into an about uniform field."""
    from scipy.special import ndtr

    return ndtr(z)
