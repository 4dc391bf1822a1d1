"""The monthly pipeline job: ingest a month (or a range), build the dbt marts, tiers and evaluation."""

import dagster as dg

from orchestration.partitions import month_partitions

# In-process: the steps share the one DuckDB writer in turn, and a run starts no extra processes.
monthly_pipeline = dg.define_asset_job(
    name="monthly_pipeline",
    # Everything partitioned by month; the tiering model trains on its own schedule (orchestration/model.py).
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("model"),
    partitions_def=month_partitions,
    executor_def=dg.in_process_executor,
    description="Ingest the month's deliveries, build indicators, tiers and the tier evaluation.",
)
