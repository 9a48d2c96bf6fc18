"""Experiments: the paper's two (Tables III and IV, Fig. 4) on a three-region world."""

from gapfill.experiment.paper import ExperimentConfig, run_paper
from gapfill.experiment.regions import REGIONS

__all__ = ["ExperimentConfig", "REGIONS", "run_paper"]
