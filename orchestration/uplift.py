"""The campaign uplift model: each customer's predicted conversion uplift for each product, learnt
each month from the A/B campaigns' finished contacts (valuetier.tiering.uplift)."""

import dagster as dg

from orchestration.dbt import INDICATORS
from orchestration.monthly import each_month, monthly_asset
from orchestration.resources import WarehouseResource
from valuetier.core.parameters import business_parameters
from valuetier.core.tables import CLV_TABLE, UPLIFT_TABLE
from valuetier.tiering.uplift import score_uplift_month

UPLIFT = dg.AssetKey(UPLIFT_TABLE.split("."))


@monthly_asset(
    key=UPLIFT,
    description="Each customer's predicted conversion uplift for each product: the chance a contact offering it "
    "makes the customer open it, less the chance without. A two-model (T-learner) estimate learnt from the A/B "
    "campaigns' treated and control contacts whose outcome window had closed by the month (point in time), on "
    "the indicators, CLV and delivered risk profile. Months without enough finished contacts with a control "
    "group get no rows: the CRM orders its contacts by the tier rule then.",
    group_name="marts",
    kinds={"duckdb", "python", "scikit-learn"},
    deps=[
        INDICATORS,
        dg.AssetKey(CLV_TABLE.split(".")),
        dg.AssetKey(["staging", "stg_campaign_contacts"]),
        dg.AssetKey(["staging", "stg_accounts"]),
        dg.AssetKey(["staging", "stg_customers"]),
    ],
)
def customer_uplift_monthly(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    outcome_months = business_parameters().outcome_months

    def month_uplift(con, month: str):
        result = score_uplift_month(con, month, outcome_months)
        if result.basis == "uplift":
            context.log.info(
                f"uplift {month}: {result.customers:,} customers scored by a model of {result.training_contacts:,} "
                f"contacts (conversion {result.treated_conversion:.1%} treated, {result.control_conversion:.1%} "
                f"control)"
            )
        else:
            context.log.info(f"uplift {month}: no model, contacts go by the tier rule: {result.basis}")
        return result

    results, flow = each_month(context, warehouse, month_uplift, rows_out=lambda rs: sum(r.customers for r in rs))
    latest = results[-1]
    return dg.MaterializeResult(
        metadata={
            "latest_month": latest.month,
            "latest_basis": latest.basis,
            "latest_training_contacts": dg.MetadataValue.int(latest.training_contacts),
            "months_with_model": dg.MetadataValue.int(sum(r.basis == "uplift" for r in results)),
            "months_without_model": dg.MetadataValue.json({r.month: r.basis for r in results if r.basis != "uplift"}),
            "customers": dg.MetadataValue.int(sum(r.customers for r in results)),
            **flow,
        }
    )
