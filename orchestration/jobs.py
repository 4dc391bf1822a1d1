"""The monthly pipeline job: ingest a month (or a range), build the dbt marts, tiers and evaluation;
and the same without tiers and evaluation, for a new installation that trains its first model
before it scores."""

import dagster as dg

from orchestration.partitions import month_partitions
from orchestration.scoring import TIERS

# In-process: the steps share the one DuckDB writer in turn, and a run starts no extra processes.
monthly_pipeline = dg.define_asset_job(
    name="monthly_pipeline",
    # Everything partitioned by month; the tiering model trains on its own schedule (orchestration/model.py).
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("model"),
    partitions_def=month_partitions,
    executor_def=dg.in_process_executor,
    description="Ingest the month's deliveries, build indicators, tiers and the tier evaluation, and publish "
    "the marts BI reads.",
)

# A new installation builds every month up to the indicators and CLV, trains, then scores each month
# once (rescore_tiers) instead of scoring by rule first and again with the first model.
build_months = dg.define_asset_job(
    name="build_months",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.groups("model", "evaluation", "monitoring", "published")
    - dg.AssetSelection.assets(TIERS),
    partitions_def=month_partitions,
    executor_def=dg.in_process_executor,
    description="Ingest the months' deliveries and build indicators and CLV, without tiers: a new "
    "installation trains its first model and then scores each month once (rescore_tiers).",
)
