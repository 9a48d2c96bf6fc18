"""Scheduled regional jobs: a region spec and `gapfill run`, the reconciler that keeps
its cube and filled product up to date (the schedule itself belongs to cron/Kubernetes).
"""

from gapfill.pipeline.run import RunRecord, history, ledger_location, plan_fills, run_pipeline
from gapfill.pipeline.spec import RegionSpec, load_spec, spec_schema

__all__ = [
    "RegionSpec",
    "load_spec",
    "spec_schema",
    "RunRecord",
    "run_pipeline",
    "plan_fills",
    "history",
    "ledger_location",
]
