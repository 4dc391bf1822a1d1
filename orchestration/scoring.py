"""Published tiers: every live customer of each month scored with the current champion model."""

import dagster as dg
from pydantic import Field

from orchestration.monthly import each_month, monthly_asset, rules_from
from orchestration.partitions import month_partitions
from orchestration.resources import ValueTierSettings, WarehouseResource
from valuetier.tiering.registry import Registry, RegistryError
from valuetier.tiering.scoring import NothingToPublish, ScoringRules, current_champion, score_month_tiers

TIERS = dg.AssetKey(["marts", "customer_tiers"])


class ScoringConfig(dg.Config):
    """What a run may change about the published tiers alone. The tier shares and the at-risk churn
    probability are business parameters (dbt_project.yml vars): every reader takes them from there,
    so they are not offered here. The challenger is cut into the published tiers' sizes, whatever
    cut made them (valuetier.tiering.challenger)."""

    high_value_threshold: float | None = Field(
        default=None,
        description="Cut by value instead of the tier shares (dbt_project.yml): predicted value over the horizon "
        "from which a customer is high.",
    )
    mid_value_threshold: float | None = Field(
        default=None, description="... and from which mid (set both thresholds, or neither)."
    )
    batch_size: int = Field(
        default=50_000, description="Customers scored and written at a time: bounds memory at any bank size."
    )


@monthly_asset(
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
)
def customer_tiers(
    context: dg.AssetExecutionContext,
    config: ScoringConfig,
    valuetier: ValueTierSettings,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    rules = rules_from(config, ScoringRules, high_value="high_value_threshold", mid_value="mid_value_threshold")
    registry = Registry(valuetier.current.models_dir)
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

    def month_tiers(con, month: str):
        result = score_month_tiers(con, month, champion, rules, context.log.debug, preferred)
        context.log.info(
            f"tiers {month}: {result.customers:,} customers ({result.tiers}), "
            f"{result.tiered_by_rule:,} by rule, ranked by {result.basis}, {result.value_measure}, "
            f"{result.seconds:.1f}s"
        )
        valuetier.pause("scoring")  # the stage's first month written
        return result

    scored, flow = each_month(context, warehouse, month_tiers, failures=(NothingToPublish,))
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
        TIERS, dg.AssetKey(["marts", "crm_actions"]), dg.AssetKey(["marts", "customer_tiers_challenger"])
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
