"""The challenger scored on the published months, for the backtest's champion-against-challenger view."""

import dagster as dg

from orchestration.monthly import each_month, monthly_asset
from orchestration.resources import ValueTierSettings, WarehouseResource
from orchestration.scoring import TIERS
from valuetier.core.tables import CHALLENGER_TABLE
from valuetier.tiering.challenger import score_challenger_month
from valuetier.tiering.registry import Registry, RegistryError

CHALLENGER = dg.AssetKey(CHALLENGER_TABLE.split("."))


@monthly_asset(
    key=CHALLENGER,
    description="The published months scored again by the challenger (the most recent model version other "
    "than the champion), tiered the same way, so the backtest (evaluation/eval_model_backtest_monthly, ranking "
    "'challenger') compares champion and challenger on the same customers and months. Empty while the "
    "registry holds only the champion.",
    group_name="marts",
    kinds={"duckdb", "python", "scikit-learn"},
    deps=[TIERS, ["model", "tiering_model"]],
)
def customer_tiers_challenger(
    context: dg.AssetExecutionContext, valuetier: ValueTierSettings, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    registry = Registry(valuetier.current.models_dir)
    results, flow = each_month(
        context,
        warehouse,
        lambda con, month: score_challenger_month(con, month, registry),
        failures=(RegistryError,),
        failure_prefix="the challenger model cannot be used: ",
    )
    scored = [r for r in results if r]
    if scored:
        context.log.info(f"challenger {scored[-1].version}: {len(scored)} months scored")
    else:
        context.log.info("no challenger: the registry holds only the champion (or no model yet)")
    return dg.MaterializeResult(
        metadata={
            "challenger_version": scored[-1].version if scored else "none",
            "months_scored": dg.MetadataValue.int(len(scored)),
            "customers": dg.MetadataValue.int(sum(r.customers for r in scored)),
            **flow,
        }
    )
