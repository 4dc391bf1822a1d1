"""One stage of the pipeline over a month range, run through Dagster with the production assets, in
its own process (so the benchmark measures that stage's time and memory alone).

    python bench/stages.py STAGE FIRST LAST

Stages, in the order a first run does them: ingest (the raw assets), dbt (the dbt models up to the
marts, with their dbt tests), clv, uplift (the campaign uplift model), training (the
train_tiering_model job), scoring (the tiers and the CRM actions, which the evaluation reads),
evaluation (the evaluation dbt models, with the challenger's scores they read), monitoring (drift
and alerts, and the monthly reports), checks (every Great Expectations suite); then, for the new
month, new_month_indicators (the raw assets and the dbt models up to the indicators and the customer
dimension their tests read, with their dbt tests: what the pandas baseline is compared with) and
new_month, the production monthly_pipeline job (all of it).
"""

from __future__ import annotations

import sys

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.definitions import defs
from orchestration.partitions import month_partitions
from orchestration.quality import CHECK_NAME
from orchestration.run import register_months, run_job
from orchestration.scoring import TIERS
from valuetier.core.months import months_between

CLV = dg.AssetKey(["marts", "customer_clv_monthly"])
UPLIFT = dg.AssetKey(["marts", "customer_uplift_monthly"])
INDICATORS = dg.AssetKey(["marts", "customer_indicators_monthly"])
DIM_CUSTOMER = dg.AssetKey(["marts", "dim_customer"])  # the indicators' relationship test reads it
CRM_ACTIONS = dg.AssetKey(["marts", "crm_actions"])
CHALLENGER = dg.AssetKey(["marts", "customer_tiers_challenger"])
REPORT = dg.AssetKey(["published", "monthly_report"])
STAGES = (
    "ingest",
    "dbt",
    "clv",
    "uplift",
    "training",
    "scoring",
    "evaluation",
    "monitoring",
    "checks",
    "new_month_indicators",
    "new_month",
)


def selections() -> dict[str, dg.AssetSelection]:
    expectations = dg.AssetSelection.checks(
        *(k for k in defs().resolve_asset_graph().asset_check_keys if k.name == CHECK_NAME)
    )
    return {
        "ingest": dg.AssetSelection.groups("raw").without_checks(),
        "dbt": dg.AssetSelection.groups("staging", "intermediate", "marts")
        - dg.AssetSelection.assets(CLV, UPLIFT, TIERS, CRM_ACTIONS, CHALLENGER)
        - expectations,
        "clv": dg.AssetSelection.assets(CLV).without_checks(),
        "uplift": dg.AssetSelection.assets(UPLIFT).without_checks(),
        # The CRM actions with the tiers: the evaluation's fairness review reads them.
        "scoring": dg.AssetSelection.assets(TIERS, CRM_ACTIONS).without_checks(),
        "evaluation": dg.AssetSelection.groups("evaluation") | dg.AssetSelection.assets(CHALLENGER),
        "monitoring": (dg.AssetSelection.groups("monitoring") | dg.AssetSelection.assets(REPORT)) - expectations,
        "checks": expectations,
        "new_month_indicators": dg.AssetSelection.assets(INDICATORS, DIM_CUSTOMER).upstream() - expectations,
    }


def run_stage(stage: str, first: str, last: str) -> bool:
    with dg.DagsterInstance.get() as instance:
        register_months(instance, months_between(first, last))
        if stage == "training":
            return run_job(instance, "train_tiering_model").success
        tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
        if stage == "new_month":
            return run_job(instance, "monthly_pipeline", tags).success
        job = dg.define_asset_job(
            name=f"bench_{stage}",
            selection=selections()[stage],
            partitions_def=month_partitions,
            executor_def=dg.in_process_executor,
        )
        resolved = dg.Definitions.merge(defs(), dg.Definitions(jobs=[job])).resolve_job_def(job.name)
        return resolved.execute_in_process(instance=instance, tags=tags, raise_on_error=False).success


if __name__ == "__main__":
    name, first_month, last_month = sys.argv[1:4]
    if name not in STAGES:
        sys.exit(f"unknown stage {name!r}; one of {', '.join(STAGES)}")
    sys.exit(0 if run_stage(name, first_month, last_month) else 1)
