"""Published tiers: every live customer of each month scored with the current champion model."""

import time

import dagster as dg
from pydantic import Field

from orchestration.flow import flow_metadata
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import WarehouseResource, pause, settings
from valuetier.core.parameters import business_parameters
from valuetier.tiering.registry import Registry, RegistryError
from valuetier.tiering.scoring import NothingToPublish, ScoringRules, current_champion, score_month_tiers

TIERS = dg.AssetKey(["marts", "customer_tiers"])


class ScoringConfig(dg.Config):
    high_share: float = Field(
        default=business_parameters().tier_high_share,
        description=(
            "Share of the month's live customers in the high tier (by predicted value); default: dbt_project.yml."
        ),
    )
    mid_share: float = Field(
        default=business_parameters().tier_mid_share, description="Share in the mid tier; the rest are low."
    )
    high_value_threshold: float | None = Field(
        default=None,
        description="Cut by value instead of shares: predicted value over the horizon from which a customer is high.",
    )
    mid_value_threshold: float | None = Field(
        default=None, description="... and from which mid (set both thresholds, or neither)."
    )
    churn_risk: float = Field(
        default=0.30, description="Churn probability from which a customer counts as at risk in the action segment."
    )
    batch_size: int = Field(
        default=50_000, description="Customers scored and written at a time: bounds memory at any bank size."
    )


@dg.asset(
    key=TIERS,
    description="The published tiers: value tier, 0-100 score, predicted value, churn probability, CLV, "
    "lifecycle stage, action segment, RFM segment and the top three drivers of every live customer of the "
    "month, scored by the champion tiering model (by rule while there is none, and for short histories).",
    group_name="marts",
    kinds={"duckdb", "python", "scikit-learn"},
    deps=[
        ["marts", "customer_indicators_monthly"],
        ["marts", "customer_clv_monthly"],
        ["model", "tiering_model"],
    ],
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def customer_tiers(
    context: dg.AssetExecutionContext, config: ScoringConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    rules = ScoringRules(
        high_share=config.high_share,
        mid_share=config.mid_share,
        high_value=config.high_value_threshold,
        mid_value=config.mid_value_threshold,
        churn_risk=config.churn_risk,
        batch_size=config.batch_size,
    )
    registry = Registry(settings().models_dir)
    try:
        champion = current_champion(registry)
    except RegistryError as exc:
        raise dg.Failure(description=f"the champion model cannot be used: {exc}") from exc
    preferred = None if champion else registry.preferred_baseline()
    if champion is None:
        context.log.warning(
            "no champion model: every customer is tiered by rule"
            + (f", ranked by {preferred}, the better baseline of the latest training" if preferred else "")
            + " (train with train_tiering_model)"
        )
    started, scored = time.perf_counter(), []
    with warehouse.connect() as con:
        for month in sorted(context.partition_keys):
            try:
                result = score_month_tiers(con, month, champion, rules, context.log.debug, preferred)
            except NothingToPublish as exc:
                raise dg.Failure(description=str(exc)) from exc
            context.log.info(
                f"tiers {month}: {result.customers:,} customers ({result.tiers}), "
                f"{result.tiered_by_rule:,} by rule, ranked by {result.basis}, {result.value_measure}, "
                f"{result.seconds:.1f}s"
            )
            scored.append(result)
            pause("scoring")  # the stage's first month written
        flow = flow_metadata(context, con, started)
    latest = scored[-1]
    return dg.MaterializeResult(
        metadata={
            "model_version": latest.model_version,
            "customers": dg.MetadataValue.int(sum(r.customers for r in scored)),
            "latest_month": latest.month,
            "latest_month_tiers": dg.MetadataValue.json(latest.tiers),
            "tiered_by_rule": dg.MetadataValue.int(sum(r.tiered_by_rule for r in scored)),
            "value_measure": latest.value_measure,
            "tier_basis": latest.basis,
            "tier_basis_by_month": dg.MetadataValue.json({r.month: r.basis for r in scored}),
            "customers_per_second": dg.MetadataValue.float(
                round(sum(r.customers for r in scored) / max(sum(r.seconds for r in scored), 1e-9), 1)
            ),
            **flow,
        }
    )


# The dbt evaluation and the monitoring come along: they are built from these tiers.
rescore_tiers = dg.define_asset_job(
    name="rescore_tiers",
    selection=dg.AssetSelection.assets(
        TIERS, dg.AssetKey(["marts", "crm_actions"]), dg.AssetKey(["marts", "challenger_scores"])
    )
    | dg.AssetSelection.groups("evaluation", "monitoring", "published"),
    partitions_def=month_partitions,
    executor_def=dg.in_process_executor,
    description="Score months again with the current champion (after a promotion or a rollback) and "
    "rebuild their tier evaluation and monitoring.",
)


@dg.asset_sensor(
    asset_key=dg.AssetKey(["model", "tiering_model"]),
    job=rescore_tiers,
    name="rescore_on_new_champion",
    description="When a training promotes a new champion, score the latest month with it.",
)
def rescore_on_new_champion(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    materialization = asset_event.asset_materialization
    metadata = materialization.metadata if materialization else {}
    status, version = metadata.get("status"), metadata.get("version")
    months = context.instance.get_dynamic_partitions(month_partitions.name)
    if status is None or status.value != "champion" or not months:
        return dg.SkipReason("the latest training did not promote a new champion")
    return dg.RunRequest(run_key=f"champion-{version.value}", partition_key=sorted(months)[-1])
