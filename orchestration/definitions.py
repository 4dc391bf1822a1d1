"""The one entry point: `dagster dev -w workspace.yaml` and the tests load `defs()` from here.

A definitions function, not a module-level object: importing the orchestration reads neither the
environment nor the dbt manifest; loading the definitions does, once per process (a process that
runs several jobs, as the console runner does, resolves them all from the one Definitions).
"""

from functools import cache

import dagster as dg

from orchestration.actions import crm_actions
from orchestration.challenger import customer_tiers_challenger
from orchestration.clv import customer_clv_monthly
from orchestration.dbt import dbt_asset_definitions
from orchestration.ingestion import ingestion_assets, new_month_sensor, quarantine_table
from orchestration.jobs import build_months, monthly_latest_month, monthly_pipeline
from orchestration.logs import json_file_logger, progress_logger
from orchestration.model import quarterly_training, tiering_model, train_tiering_model
from orchestration.monitoring import alert_checks, monitoring
from orchestration.publishing import bi_marts
from orchestration.quality import expectation_checks
from orchestration.report import monthly_report
from orchestration.resources import build_resources
from orchestration.scoring import customer_tiers, rescore_on_new_champion, rescore_tiers
from orchestration.uplift import customer_uplift_monthly
from orchestration.versions import described


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()


@cache
def build_definitions() -> dg.Definitions:
    dbt_models, dbt_evaluation = dbt_asset_definitions()
    return dg.Definitions(
        assets=dg.map_asset_specs(
            described,
            [
                *ingestion_assets,
                quarantine_table,
                dbt_models,
                customer_clv_monthly,
                customer_tiers,
                customer_uplift_monthly,
                crm_actions,
                customer_tiers_challenger,
                dbt_evaluation,
                monitoring,
                bi_marts,
                monthly_report,
                tiering_model,
            ],
        ),
        asset_checks=[*expectation_checks, *alert_checks],
        jobs=[monthly_pipeline, build_months, train_tiering_model, rescore_tiers],
        schedules=[quarterly_training, monthly_latest_month],
        sensors=[new_month_sensor, rescore_on_new_champion],
        resources=build_resources(),
        # Only the loggers a run's config names are on; without any, Dagster's console logger.
        loggers={"console": dg.colored_console_logger, "progress": progress_logger, "json_file": json_file_logger},
    )
