"""The monthly pipeline job: ingest a month (or a range), build the dbt marts, tiers and evaluation;
and the same without tiers and evaluation, for a new installation that trains its first model
before it scores."""

import dagster as dg

from orchestration.actions import CRM_ACTIONS
from orchestration.challenger import CHALLENGER
from orchestration.partitions import month_partitions
from orchestration.resources import ValueTierSettings
from orchestration.scoring import TIERS
from valuetier.ingest.loader import discover_months

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
    - dg.AssetSelection.assets(TIERS, CRM_ACTIONS, CHALLENGER),
    partitions_def=month_partitions,
    executor_def=dg.in_process_executor,
    description="Ingest the months' deliveries and build indicators and CLV, without tiers: a new "
    "installation trains its first model and then scores each month once (rescore_tiers).",
)


@dg.schedule(
    job=monthly_pipeline,
    cron_schedule="0 6 5 * *",  # the 5th at 06:00, when the month's late files have come in
    name="monthly_latest_month",
    description="Once a month, run the latest landed month again beside new_month_sensor's first run: it "
    "takes in the files that came after that run (late_source_file alerts) and registers the month if the "
    "sensor is off.",
)
def monthly_latest_month(context: dg.ScheduleEvaluationContext, valuetier: ValueTierSettings):
    landing = valuetier.current.landing_dir
    months = discover_months(landing)
    if not months:
        return dg.SkipReason(f"no transactions file in {landing} yet")
    latest = months[-1]
    if latest not in context.instance.get_dynamic_partitions(month_partitions.name):
        context.instance.add_dynamic_partitions(month_partitions.name, [latest])
    tick = context.scheduled_execution_time.strftime("%Y-%m") if context.scheduled_execution_time else "now"
    return dg.RunRequest(run_key=f"scheduled-{tick}-{latest}", partition_key=latest)
