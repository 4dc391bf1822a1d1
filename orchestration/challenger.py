"""The challenger scored on the published months, for the backtest's champion-against-challenger view."""

import time

import dagster as dg

from orchestration.flow import flow_metadata
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import WarehouseResource, settings
from orchestration.scoring import TIERS
from valuetier.core.tables import CHALLENGER_TABLE
from valuetier.tiering.challenger import score_challenger_month
from valuetier.tiering.registry import Registry, RegistryError

CHALLENGER = dg.AssetKey(CHALLENGER_TABLE.split("."))


@dg.asset(
    key=CHALLENGER,
    description="The published months scored again by the challenger (the most recent model version other "
    "than the champion), tiered the same way, so the backtest (evaluation/eval_model_backtest_monthly, ranking "
    "'challenger') compares champion and challenger on the same customers and months. Empty while the "
    "registry holds only the champion.",
    group_name="marts",
    kinds={"duckdb", "python", "scikit-learn"},
    deps=[TIERS, ["model", "tiering_model"]],
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def challenger_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    registry = Registry(settings().models_dir)
    started, scored = time.perf_counter(), []
    with warehouse.connect() as con:
        for month in sorted(context.partition_keys):
            try:
                result = score_challenger_month(con, month, registry)
            except RegistryError as exc:
                raise dg.Failure(description=f"the challenger model cannot be used: {exc}") from exc
            if result:
                scored.append(result)
        flow = flow_metadata(context, con, started)
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
