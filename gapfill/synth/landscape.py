"""The physics of the synthetic world: land cover, spectra, backscatter, phenology, events.

Everything is a pure function of (spec, position in metres, time in days), so a world
renders block by block with bounded memory and identical results for any block size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gapfill.bands import DEFAULT_BANDS
from gapfill.synth._noise import fractal, hash_uniform, normal_cdf, value_noise
from gapfill.synth.spec import WorldSpec

__all__ = ["Landscape", "CLASSES", "LANDSCAPES", "BANDS"]

# Land-cover classes of the truth map.
CLASSES = {0: "water", 1: "crop", 2: "forest", 3: "urban", 4: "bare"}
WATER, CROP, FOREST, URBAN, BARE = range(5)

LANDSCAPES = ("flat-agri", "mountain-arid")

# The bands the world renders (the default ten) and their surface reflectance per class;
# crops mix soil and canopy. Typical library spectra: vegetation climbs the red edge
# (B05-B07) to the NIR plateau (B08, B8A) and falls in the short-wave infrared where
# leaf water absorbs (B11, B12); soils rise slowly into the SWIR; water is dark beyond
# the red; snow is bright in the visible and NIR and dark in the SWIR (what tells it
# from cloud).
BANDS = DEFAULT_BANDS
_SPECTRA = {
    #        B02    B03    B04    B05    B06    B07    B08    B8A    B11    B12
    "water": (0.055, 0.050, 0.030, 0.022, 0.018, 0.016, 0.015, 0.013, 0.008, 0.005),
    "flood": (0.085, 0.090, 0.070, 0.060, 0.045, 0.040, 0.035, 0.032, 0.020, 0.012),
    "forest": (0.030, 0.060, 0.030, 0.100, 0.250, 0.310, 0.340, 0.350, 0.170, 0.080),
    "urban": (0.110, 0.125, 0.135, 0.150, 0.170, 0.180, 0.190, 0.200, 0.240, 0.210),
    "soil": (0.085, 0.115, 0.150, 0.180, 0.200, 0.210, 0.220, 0.235, 0.300, 0.250),
    "arid": (0.150, 0.205, 0.270, 0.300, 0.315, 0.325, 0.330, 0.345, 0.420, 0.370),
    "canopy": (0.025, 0.070, 0.030, 0.120, 0.330, 0.420, 0.460, 0.470, 0.230, 0.110),
    "snow": (0.780, 0.770, 0.760, 0.750, 0.730, 0.710, 0.680, 0.650, 0.080, 0.060),
}
# How much a wet day darkens soil per band, relative to the visible: water absorbs most
# in the short-wave infrared.
_WETTING = np.array([1.0, 1.0, 1.0, 1.0, 1.1, 1.1, 1.2, 1.2, 1.8, 2.0])[:, None]
# Backscatter in dB (VV, VH) per class.
_SIGMA = {
    "water": (-22.0, -28.5),
    "forest": (-7.5, -13.0),
    "urban": (-3.5, -10.5),
    "soil": (-12.0, -19.5),
    "arid": (-13.5, -22.0),
    "canopy": (-9.0, -14.5),
    "snow": (-15.0, -22.0),
}


@dataclass
class Static:
    """Per-pixel properties that do not change with time."""

    cls: np.ndarray
    parcel: np.ndarray
    sow: np.ndarray
    harvest: np.ndarray
    build: np.ndarray
    flood_zone: np.ndarray
    texture: np.ndarray
    elevation: np.ndarray
    slope_x: np.ndarray
    slope_y: np.ndarray


class Landscape:
    """A deterministic synthetic landscape for one `WorldSpec`."""

    def __init__(self, spec: WorldSpec) -> None:
        self.spec = spec
        self.seed = spec.seed * 7919 + (0 if spec.landscape == "flat-agri" else 104729)
        extent = spec.size * spec.resolution
        # Large features scale with the world (so a 64 px test world has them all) but
        # stay within physical bounds; parcels keep a fixed physical size.
        self.feature = float(np.clip(extent / 2.5, 300.0, 6000.0))
        self.parcel_size = 120.0 if spec.landscape == "flat-agri" else 90.0
        self.extent = extent
        season = spec.revisit_days * max(spec.dates - 1, 1)
        self.season = float(season)
        rng = np.random.default_rng(self.seed)
        self.flood_window = (season * rng.uniform(0.35, 0.5), season * rng.uniform(0.6, 0.75))
        self.river_phase = rng.uniform(0, 2 * np.pi, 3)
        self._moisture = rng.uniform(-1, 1, 4096)

    # ---- static layers -------------------------------------------------------------
    def _river_distance(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        e = self.extent
        p = self.river_phase
        centre = e * (
            0.5
            + 0.18 * np.sin(2 * np.pi * u / e * 1.3 + p[0])
            + 0.07 * np.sin(2 * np.pi * u / e * 3.1 + p[1])
        )
        return np.abs(v - centre)

    def static(self, u: np.ndarray, v: np.ndarray) -> Static:
        """Land cover, parcels, crop calendar, events and terrain at positions (u, v) in m."""
        s = self.seed
        flat = self.spec.landscape == "flat-agri"
        f = self.feature
        # Terrain: plains ~10 m of relief; mountains up to ~900 m, less in small worlds
        # so that slopes stay plausible (mostly under ~35 degrees).
        relief = 10.0 if flat else min(900.0, 0.35 * f)
        elevation = relief * fractal(u, v, f * 1.5, s + 1, octaves=5, gain=0.5)
        d = self.spec.resolution
        ex = relief * fractal(u + d, v, f * 1.5, s + 1, octaves=5, gain=0.5)
        ey = relief * fractal(u, v + d, f * 1.5, s + 1, octaves=5, gain=0.5)
        slope_x, slope_y = (ex - elevation) / d, (ey - elevation) / d
        river = self._river_distance(u, v)
        river_width = max(0.012 * self.extent, 25.0)

        # Parcels: rows of fixed height, column edges shifted per row (a brick pattern).
        ps = self.parcel_size
        row = np.floor(v / ps).astype(np.int64)
        shift = hash_uniform(s + 2, row) * ps
        width = ps * (1.0 + hash_uniform(s + 3, row))
        col = np.floor((u + shift) / width).astype(np.int64)
        parcel = (row * 100003 + col) & 0x7FFFFFFF
        r_kind = hash_uniform(s + 4, row, col)

        forest_n = fractal(u, v, f, s + 5, octaves=4)
        urban_n = fractal(u, v, f * 0.6, s + 6, octaves=4)
        lake_n = fractal(u, v, f * 0.8, s + 7, octaves=4)
        cls = np.full(u.shape, CROP, dtype=np.uint8)
        if flat:
            cls[r_kind > 0.88] = BARE
            cls[forest_n > 1.1] = FOREST
            cls[urban_n > 1.35] = URBAN
            cls[lake_n > 1.7] = WATER
        else:
            low = elevation < -0.15 * relief
            cls[:] = BARE
            cls[low & (r_kind < 0.8)] = CROP
            cls[forest_n > 1.5] = FOREST
            cls[(urban_n > 1.5) & low] = URBAN
            cls[lake_n > 2.1] = WATER
        cls[river < river_width] = WATER

        # Crop calendar per parcel: three crop types with different sowing and harvest.
        ctype = np.floor(hash_uniform(s + 8, parcel) * 3).astype(np.int64)
        season = self.season
        sow = season * np.array([-0.3, 0.05, 0.2])[ctype] + 8 * hash_uniform(s + 9, parcel)
        harvest = season * np.array([0.45, 0.7, 1.3])[ctype] + 10 * hash_uniform(s + 10, parcel)
        # Construction: a few crop or bare parcels become urban on a day in the season.
        build_p = hash_uniform(s + 11, parcel)
        build = np.where(
            (build_p < 0.04) & ((cls == CROP) | (cls == BARE)),
            season * (0.2 + 0.6 * hash_uniform(s + 12, parcel)),
            np.inf,
        )
        # Flooding: low land beside the river.
        flood_zone = (river < river_width * (4 + 3 * value_noise(u, v, f * 0.3, s + 13))) & (
            elevation < (0.8 * relief if flat else 0.0)
        )
        flood_zone &= cls != URBAN
        texture = 0.06 * fractal(u, v, 40.0, s + 14, octaves=3) + 0.03 * value_noise(
            u, v, ps, s + 15
        )
        return Static(
            cls, parcel, sow, harvest, build, flood_zone, texture, elevation, slope_x, slope_y
        )

    # ---- time-varying state ----------------------------------------------------------
    def _veg_fraction(self, st: Static, t: float) -> np.ndarray:
        grow = 1.0 / (1.0 + np.exp(-(t - st.sow - 18.0) / 6.0))
        grown = np.where(t >= st.harvest, 0.06, grow * (t >= st.sow))
        return grown

    def _state(self, st: Static, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class, vegetation fraction, flooded) at time t (days since the first date)."""
        cls = st.cls.copy()
        cls[t >= st.build] = URBAN
        veg = np.where(cls == CROP, self._veg_fraction(st, t), 0.0)
        veg = np.where(cls == FOREST, 0.85, veg)
        f0, f1 = self.flood_window
        flooded = st.flood_zone & (f0 <= t) & (t <= f1) & (cls != WATER)
        return cls, veg, flooded

    def _snow(self, st: Static, t: float) -> np.ndarray:
        if self.spec.landscape == "flat-agri":
            return np.zeros(st.cls.shape, bool)
        # The snow line descends through the season from above the highest peaks.
        relief = min(900.0, 0.35 * self.feature)
        line = relief * (2.5 - 1.2 * t / max(self.season, 1.0))
        return st.elevation > line

    def moisture(self, t: float) -> float:
        """Soil moisture anomaly of the day, in [-1, 1]."""
        return float(self._moisture[int(np.floor(t)) % self._moisture.size])

    def reflectance(self, st: Static, t: float) -> np.ndarray:
        """True cloud-free surface reflectance (band of `BANDS`, ...) at time t."""
        cls, veg, flooded = self._state(st, t)
        soil_key = "soil" if self.spec.landscape == "flat-agri" else "arid"
        sp = {k: np.array(v)[:, None] for k, v in _SPECTRA.items()}
        shape = cls.shape
        flat = cls.reshape(-1)
        vegf = veg.reshape(-1)
        wet = 1.0 - 0.12 * self.moisture(t) * _WETTING
        soil = sp[soil_key] * wet
        out = soil * (1 - vegf) + sp["canopy"] * vegf
        out = np.where(flat == WATER, sp["water"], out)
        out = np.where(flat == FOREST, sp["forest"], out)
        out = np.where(flat == URBAN, sp["urban"], out)
        out = np.where(flooded.reshape(-1), sp["flood"], out)
        out = np.where(self._snow(st, t).reshape(-1), sp["snow"], out)
        out = out.reshape((len(BANDS),) + shape) * (1.0 + st.texture)
        if self.spec.landscape != "flat-agri":
            # Sun from the south-east at 35 degrees elevation (late autumn).
            sun = np.array([np.cos(np.radians(35)) * 0.7, -np.cos(np.radians(35)) * 0.7])
            n = np.sqrt(1 + st.slope_x**2 + st.slope_y**2)
            shade = (np.sin(np.radians(35)) + sun[0] * -st.slope_x + sun[1] * st.slope_y) / n
            out = out * np.clip(shade / np.sin(np.radians(35)), 0.25, 1.6)
        return np.clip(out, 0.0005, 1.2).astype(np.float32)

    def backscatter_db(
        self, st: Static, t: float, ascending: bool, incidence_offset: float
    ) -> np.ndarray:
        """Backscatter (VV, VH) in dB at time t, for an orbit of the given direction."""
        cls, veg, flooded = self._state(st, t)
        soil_key = "soil" if self.spec.landscape == "flat-agri" else "arid"
        sg = {k: np.array(v).reshape(2, *([1] * cls.ndim)) for k, v in _SIGMA.items()}
        m = self.moisture(t)
        soil = sg[soil_key] + 2.0 * m
        out = soil * (1 - veg) + sg["canopy"] * veg + 1.5 * veg * (1 - veg)
        out = np.where(cls == WATER, sg["water"], out)
        out = np.where(cls == FOREST, sg["forest"], out)
        out = np.where(cls == URBAN, sg["urban"], out)
        out = np.where(flooded, sg["water"] + 1.0, out)
        out = np.where(self._snow(st, t), sg["snow"], out)
        out = out + 25.0 * st.texture + incidence_offset
        if self.spec.landscape != "flat-agri":
            # Right-looking SAR: ascending looks east, descending west; slopes that face
            # the sensor are brighter (foreshortening), those facing away darker.
            look = 1.0 if ascending else -1.0
            out = out + 6.0 * np.tanh(-look * st.slope_x * 1.5)
        return out.astype(np.float32)

    def landcover(self, st: Static, t: float) -> np.ndarray:
        """The land-cover class at time t (flooded land counts as water)."""
        cls, _, flooded = self._state(st, t)
        cls = cls.copy()
        cls[flooded] = WATER
        return cls

    # ---- clouds ----------------------------------------------------------------------
    def cloud_opacity(
        self, u: np.ndarray, v: np.ndarray, date_index: int, cover: float
    ) -> np.ndarray:
        """Cloud opacity in [0, 1] from a fractal field thresholded to the day's cover."""
        if cover <= 0.005:
            return np.zeros(np.broadcast(u, v).shape, np.float32)
        z = fractal(u, v, self.feature * 0.9, self.seed + 1000 + date_index, octaves=6, gain=0.6)
        unif = normal_cdf(z)
        return np.clip((unif - (1.0 - cover)) / 0.06 + 0.5, 0.0, 1.0).astype(np.float32)

    def shadow_offset(self) -> tuple[float, float]:
        """Where shadows fall relative to their cloud, in metres (u, v)."""
        return (-0.05 * self.feature - 60.0, -0.04 * self.feature - 40.0)
