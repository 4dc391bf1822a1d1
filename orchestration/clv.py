"""Customer lifetime value per live customer and month (BG/NBD + Gamma-Gamma, valuetier.clv.model)."""

import dagster as dg
from pydantic import Field

from orchestration.monthly import each_month, monthly_asset
from orchestration.resources import WarehouseResource
from valuetier.clv.estimates import estimate_month


class ClvConfig(dg.Config):
    calibration_months: int = Field(
        default=24,
        description="Months of transactions, ending at the scored month, that each month's models are fitted on.",
    )


@monthly_asset(
    key=["marts", "customer_clv_monthly"],
    description="Expected purchases, probability alive and undiscounted 12-month CLV (in the value measure: "
    "profit contribution, or revenue where the deliveries carry no margins) "
    "for every live customer of the month, from BG/NBD and Gamma-Gamma fitted on the month's calibration window.",
    group_name="marts",
    kinds={"duckdb", "python", "scipy"},
    deps=[["marts", "customer_indicators_monthly"], ["intermediate", "int_purchase_days_by_customer_month"]],
)
def customer_clv_monthly(
    context: dg.AssetExecutionContext, config: ClvConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    def month_clv(con, month: str):
        result = estimate_month(con, month, config.calibration_months)
        if result.total_clv_12m is None:
            context.log.warning(f"CLV {month}: models not fitted, values left null ({result.params})")
        else:
            context.log.info(f"CLV {month}: {result.customers} customers, total {result.total_clv_12m:,.2f}")
        return result

    scored, flow = each_month(context, warehouse, month_clv)
    latest = scored[-1]
    return dg.MaterializeResult(
        metadata={
            "customers": dg.MetadataValue.int(sum(r.customers for r in scored)),
            "latest_month": latest.month,
            "value_measure": latest.value_measure,
            "latest_model_params": dg.MetadataValue.json(latest.params),
            "clv_12m_total_by_month": dg.MetadataValue.json({r.month: r.total_clv_12m for r in scored}),
            "months_not_fitted": dg.MetadataValue.json([r.month for r in scored if r.total_clv_12m is None]),
            **flow,
        }
    )
