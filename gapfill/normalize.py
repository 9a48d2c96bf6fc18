"""The "Normalisation and channels" contract, version 1.

SAR dB clipped (VV -25..0, VH -32.5..0) and reflectance clipped (0..the band's maximum:
`band_max`, recorded per band of the model's band set, else `reflectance_max`) map
linearly to [-1, 1]; the generator ends in tanh. Invalid input pixels (no data, no
S1) are imputed with 0 (the middle of the range) in normalised space and flagged; a NaN
never reaches the network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gapfill.bands import S1_POLS

__all__ = ["NORM_CONTRACT_VERSION", "Normalisation", "IMPUTED", "AGE_SCALE_DAYS", "model_input"]

NORM_CONTRACT_VERSION = "1"
IMPUTED = 0.0


class Normalisation(BaseModel):
    """Clip ranges; stored in the model card so that fill normalises as training did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = NORM_CONTRACT_VERSION
    sar_db: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {"VV": (-25.0, 0.0), "VH": (-32.5, 0.0)}
    )
    reflectance_max: float = Field(0.6, gt=0)
    band_max: dict[str, float] = Field(
        default_factory=dict,
        description="per band of the model's band set, in its order: the reflectance that "
        "maps to +1 (empty: reflectance_max for every band, as cards before band sets)",
    )

    def for_bands(self, bands: Sequence[str]) -> Normalisation:
        """This normalisation with a maximum recorded for each of `bands`, in their order
        (a band already given keeps its value; the others take `reflectance_max`)."""
        return self.model_copy(
            update={"band_max": {b: self.band_max.get(b, self.reflectance_max) for b in bands}}
        )

    def maxima(self, n: int) -> np.ndarray:
        """The reflectance that maps to +1, per band of an n-band set."""
        if not self.band_max:
            return np.full(n, self.reflectance_max, np.float32)
        if len(self.band_max) != n:
            raise ValueError(f"{n} bands given to a normalisation of {list(self.band_max)}")
        return np.array(list(self.band_max.values()), np.float32)

    def sar(self, db: np.ndarray) -> np.ndarray:
        """(pol, ...) dB in S1_POLS order -> [-1, 1]; NaN stays NaN."""
        out = np.empty(db.shape, np.float32)
        for i, pol in enumerate(S1_POLS):
            lo, hi = self.sar_db[pol]
            out[i] = 2.0 * (np.clip(db[i], lo, hi) - lo) / (hi - lo) - 1.0
        return out

    def _top(self, n: int, axis: int, ndim: int, dtype: np.dtype) -> float | np.ndarray:
        """The maxima of n bands shaped to broadcast along `axis`: one Python float when
        they are all equal (the same arithmetic, to the bit, as a single range)."""
        tops = self.maxima(n)
        if (tops == tops[0]).all():
            return (
                float(self.band_max[next(iter(self.band_max))])
                if self.band_max
                else (self.reflectance_max)
            )
        shape = [1] * ndim
        shape[axis] = n
        return tops.astype(dtype if np.issubdtype(dtype, np.floating) else np.float64).reshape(
            shape
        )

    def optical(self, refl: np.ndarray) -> np.ndarray:
        """(band, ...) reflectance in the band set's order -> [-1, 1]; NaN stays NaN."""
        refl = np.asarray(refl)
        top = self._top(refl.shape[0], 0, refl.ndim, refl.dtype)
        r = np.clip(refl, 0.0, top)
        return (2.0 * r / top - 1.0).astype(np.float32)

    def optical_inverse(self, unit: np.ndarray) -> np.ndarray:
        """[-1, 1] (band, ...) or (n, band, ...) -> reflectance (what the generator's
        output means)."""
        unit = np.asarray(unit, np.float32)
        axis = 0 if unit.ndim < 4 else 1
        top = self._top(unit.shape[axis], axis, unit.ndim, unit.dtype)
        return ((unit + 1.0) * 0.5 * top).astype(np.float32)

    @staticmethod
    def impute(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(channels, ...) -> (x with NaN replaced by IMPUTED, valid mask over all channels)."""
        valid = np.isfinite(x).all(axis=0)
        return np.where(np.isfinite(x), x, IMPUTED).astype(np.float32), valid


# Reference ages (days) are fed divided by this, clipped to [0, 2].
AGE_SCALE_DAYS = 60.0


def model_input(
    norm: Normalisation,
    task: str,
    s1_t2_db: np.ndarray,
    s1_t1_db: np.ndarray | None = None,
    o1_refl: np.ndarray | None = None,
    later: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The network input in the contract's channel order, imputed, and its valid mask.

    Task B: `S1_t2 (VV, VH), S1_t1 (VV, VH), O1 (the bands)`; task A: `S1_t2`.
    Rule `both` adds `later` = (S1_t3 dB, O3 reflectance, age of O1, days to O3): channels
    `S1_t3, O3, age:t1, age:t3, avail:t3`; where the later side is missing its channels
    are imputed and `avail:t3` is 0 (the causal case), which never makes a pixel invalid.
    Arrays are (channels, y, x) in physical units (dB, reflectance, days), NaN or a
    negative age where missing; training and filling both call this, so they feed the
    network the same way.
    """
    parts = [norm.sar(s1_t2_db)]
    if task == "B":
        if s1_t1_db is None or o1_refl is None:
            raise ValueError("task B needs S1_t1 and O1")
        parts += [norm.sar(s1_t1_db), norm.optical(o1_refl)]
    x, valid = norm.impute(np.concatenate(parts))
    if later is None:
        return x, valid
    s1_t3_db, o3_refl, age1, age3 = later
    side = np.concatenate([norm.sar(s1_t3_db), norm.optical(o3_refl)])
    avail = np.isfinite(side).all(axis=0) & (age3 >= 0)
    side = np.where(avail[None] & np.isfinite(side), side, IMPUTED)
    ages = [np.clip(np.maximum(a, 0) / AGE_SCALE_DAYS, 0, 2) for a in (age1, age3)]
    ages[1] = np.where(avail, ages[1], 0.0)
    extra = np.concatenate([side, np.stack([*ages, avail.astype(np.float32)])])
    return np.concatenate([x, extra.astype(np.float32)]), valid
