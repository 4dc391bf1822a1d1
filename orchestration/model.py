"""The tiering model: trained and versioned on its own schedule, not per month."""

import time

import dagster as dg
from pydantic import Field

from orchestration.flow import flow_metadata
from orchestration.partitions import WAREHOUSE_POOL
from orchestration.resources import ValueTierSettings, WarehouseResource
from valuetier.tiering.registry import Registry, RegistryError
from valuetier.tiering.training import SearchSpace, TrainingDataError
from valuetier.tiering.training_cycle import TrainingPlan, train_and_decide


class TrainingConfig(dg.Config):
    horizon_months: int | None = Field(
        default=None,
        description=(
            "Months after a training month whose realised value and churn are the labels; default: the business "
            "parameter label_horizon_months (dbt_project.yml), shortened to fit a short history."
        ),
    )
    training_months: int = Field(
        default=6, description="Training months stacked (the latest whose labels end before the holdout)."
    )
    holdout_month: str | None = Field(
        default=None, description="YYYY-MM; default: the latest month with a complete label horizon."
    )
    seed: int = Field(
        default=42, description="Seed of the sampling, the folds and the fits: the same seed, the same model."
    )
    learning_rate: list[float] = Field(default=[0.05, 0.1], description="Learning rates the grid search tries.")
    max_leaf_nodes: list[int] = Field(default=[15, 31], description="Leaves per tree the grid search tries.")
    min_samples_leaf: list[int] = Field(
        default=[20, 100], description="Fewest customer-months in a leaf, as the grid search tries them."
    )
    max_iter: int = Field(default=200, description="Boosting iterations (trees) of each model.")
    cv_folds: int = Field(default=3, description="Time-ordered cross-validation folds the grid search ranks on.")
    max_training_rows: int = Field(
        default=SearchSpace.max_rows,
        description=(
            "Customer-months fitted at most, sampled evenly from the training months (bounds training at any bank"
            " size)."
        ),
    )
    max_search_rows: int = Field(
        default=SearchSpace.max_search_rows,
        description=(
            "Customer-months the grid search ranks candidates on (a sample of the fitted rows); the winner is "
            "refit on all."
        ),
    )


@dg.asset(
    key=["model", "tiering_model"],
    description="A new version of the tiering model (value and churn), validated on a later holdout against "
    "the weighted-RFM and CLV rankings and the champion; promoted only when it beats both rankings by the "
    "promotion_margin (dbt_project.yml) and by normalised Gini, and is no worse than the champion beyond the "
    "holdout's noise. Registry: 'models' beside the warehouse; holdout metrics in marts.model_evaluation.",
    group_name="model",
    kinds={"python", "scikit-learn"},
    deps=[["marts", "customer_indicators_monthly"], ["marts", "customer_clv_monthly"]],
    pool=WAREHOUSE_POOL,
)
def tiering_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    valuetier: ValueTierSettings,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    plan = TrainingPlan(
        **({"horizon_months": config.horizon_months} if config.horizon_months else {}),
        training_months=config.training_months,
        holdout_month=config.holdout_month,
        seed=config.seed,
    )
    space = SearchSpace(
        learning_rate=tuple(config.learning_rate),
        max_leaf_nodes=tuple(config.max_leaf_nodes),
        min_samples_leaf=tuple(config.min_samples_leaf),
        max_iter=config.max_iter,
        folds=config.cv_folds,
        max_rows=config.max_training_rows,
        max_search_rows=config.max_search_rows,
    )
    started, registry = time.perf_counter(), Registry(valuetier.current.models_dir)
    with warehouse.connect() as con:
        try:
            card = train_and_decide(con, registry, plan, space, staged=lambda: valuetier.pause("training"))
        except (TrainingDataError, RegistryError) as exc:  # RegistryError: a champion that cannot be loaded
            raise dg.Failure(description=str(exc)) from exc
        # In: the labelled rows the model was fitted and checked on; out: one model version.
        flow = flow_metadata(context, con, started, rows_in=card.parameters["training_rows"]["fitted"], rows_out=1)
    context.log.info(f"{card.version}: {card.status} ({card.decision})")
    return dg.MaterializeResult(
        metadata={
            "version": card.version,
            "status": card.status,
            "decision": card.decision,
            "promotion": dg.MetadataValue.json(card.promotion),
            "holdout_month": card.holdout_month,
            "training_months": dg.MetadataValue.json(card.training_months),
            "value_measure": card.value_measure,
            "horizon_months": card.horizon_months,
            "training_plan": dg.MetadataValue.json(card.parameters.get("plan", {})),
            "holdout_metrics": dg.MetadataValue.json(card.metrics),
            "artifact_sha256": card.artifact_sha256,
            "model_card": dg.MetadataValue.path(str(registry.root / card.version / "card.json")),
            **flow,
        }
    )


train_tiering_model = dg.define_asset_job(
    name="train_tiering_model",
    selection=[tiering_model],
    executor_def=dg.in_process_executor,
    description="Train, validate and version the tiering model; promote it if it beats the champion.",
)

quarterly_training = dg.ScheduleDefinition(
    name="quarterly_training",
    job=train_tiering_model,
    cron_schedule="0 6 10 1,4,7,10 *",  # the 10th of each quarter's first month, after month-end deliveries
    description="Retrain the tiering model every quarter.",
)
