"""The one entry point: `dagster dev -w workspace.yaml` and the tests load `defs` from here."""

import dagster as dg

from orchestration.clv import customer_clv_monthly
from orchestration.dbt import valuetier_dbt_models
from orchestration.ingestion import ingestion_assets, new_month_sensor
from orchestration.jobs import monthly_pipeline
from orchestration.model import quarterly_training, tiering_model, train_tiering_model
from orchestration.resources import build_resources

defs = dg.Definitions(
    assets=[*ingestion_assets, valuetier_dbt_models, customer_clv_monthly, tiering_model],
    jobs=[monthly_pipeline, train_tiering_model],
    schedules=[quarterly_training],
    sensors=[new_month_sensor],
    resources=build_resources(),
)
