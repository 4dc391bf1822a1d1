"""One training of the tiering model, end to end: training set, models, holdout evaluation against
the baselines and the current champion, a new registry version, and the champion decision.

The holdout is later in time than all training data: its features are at month H, and every
training month's label horizon ends on or before H.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import pandas as pd

from valuetier.core.months import add_months
from valuetier.core.parameters import business_parameters
from valuetier.core.tables import MODEL_EVALUATION_COLUMNS, MODEL_EVALUATION_TABLE, create_table
from valuetier.tiering.metrics import churn_report, ranking_report
from valuetier.tiering.promotion import GINI, PromotionRules, decide
from valuetier.tiering.registry import ModelCard, Registry, RegistryError
from valuetier.tiering.scoring import ScoringRules
from valuetier.tiering.training import (
    FEATURES,
    SearchSpace,
    TrainedModels,
    TrainingDataError,
    build_training_set,
    holdout_batches,
    labelled_months,
    train_models,
)


class ChampionUnavailable(RegistryError):
    """The champion the registry names cannot be loaded: training and scoring stop, never treating
    it as no champion."""


def _parameter(name: str):
    return field(default_factory=lambda: getattr(business_parameters(), name))


MIN_TRAINING_MONTHS = 2  # time-ordered cross-validation needs two
PREFERRED_TRAINING_MONTHS = 3  # a shorter horizon is worth it to stack at least this many


@dataclass(frozen=True)
class TrainingPlan:
    horizon_months: int = _parameter("label_horizon_months")
    min_horizon_months: int = _parameter("min_label_horizon_months")  # how far a short history may shorten it
    training_months: int = 6
    holdout_month: str | None = None  # default: the latest month with a complete label horizon
    value_measure: str | None = None  # profit, revenue or auto; None: the business parameter
    high_share: float = _parameter("tier_high_share")
    mid_share: float = _parameter("tier_mid_share")
    promotion_margin: float = _parameter("promotion_margin")  # value capture a model must add over each baseline
    seed: int = 42


def plan_months(labelled: list[str], plan: TrainingPlan) -> tuple[list[str], str]:
    """(training months, holdout month): training labels end on or before the holdout's month."""
    if not labelled:
        raise TrainingDataError(f"no month has a complete {plan.horizon_months}-month label horizon yet")
    holdout = plan.holdout_month or labelled[-1]
    if holdout not in labelled:
        raise TrainingDataError(f"holdout month {holdout} has no complete label horizon")
    last_training = add_months(holdout, -plan.horizon_months)
    training = [m for m in labelled if m <= last_training][-plan.training_months :]
    if len(training) < MIN_TRAINING_MONTHS:
        raise TrainingDataError(
            f"need at least two training months on or before {last_training} (holdout {holdout}, horizon "
            f"{plan.horizon_months}); have {len(training)}"
        )
    return training, holdout


@dataclass(frozen=True)
class ChosenPlan:
    plan: TrainingPlan  # with the horizon chosen
    training_months: list[str]
    holdout_month: str
    note: str  # what was chosen and why, for the model card

    def as_dict(self) -> dict:
        return {
            "horizon_months": self.plan.horizon_months,
            "training_months": len(self.training_months),
            "holdout_month": self.holdout_month,
            "note": self.note,
        }


def adapt_plan(con: duckdb.DuckDBPyConnection, plan: TrainingPlan) -> ChosenPlan:
    """The plan that fits the history: the configured horizon when it leaves enough training
    months, else the longest shorter horizon (down to min_horizon_months) that stacks at least
    PREFERRED_TRAINING_MONTHS months, else the longest that stacks MIN_TRAINING_MONTHS."""
    fitting: list[tuple[int, list[str], str]] = []
    first_problem = None
    for horizon in range(plan.horizon_months, plan.min_horizon_months - 1, -1):
        try:
            training, holdout = plan_months(labelled_months(con, horizon), replace(plan, horizon_months=horizon))
        except TrainingDataError as exc:
            first_problem = first_problem or str(exc)
            continue
        fitting.append((horizon, training, holdout))
        if len(training) >= min(PREFERRED_TRAINING_MONTHS, plan.training_months):
            break
    if not fitting:
        raise TrainingDataError(
            f"{first_problem}; no label horizon from {plan.horizon_months} down to {plan.min_horizon_months} months "
            f"leaves {MIN_TRAINING_MONTHS} training months before a holdout"
        )
    preferred = [f for f in fitting if len(f[1]) >= min(PREFERRED_TRAINING_MONTHS, plan.training_months)]
    horizon, training, holdout = (preferred or fitting)[0]
    if horizon == plan.horizon_months:
        note = f"configured plan: {horizon}-month horizon, {len(training)} training months"
    else:
        why = first_problem or f"the {plan.horizon_months}-month horizon leaves too few training months"
        note = (
            f"adapted to the history: {horizon}-month horizon instead of {plan.horizon_months}, "
            f"{len(training)} training months ({why})"
        )
    return ChosenPlan(replace(plan, horizon_months=horizon), training, holdout, note)


def fingerprint(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()


RANKINGS = ("model", "rfm_weighted", "clv_12m")


def rankings(holdout: pd.DataFrame, model_values) -> dict[str, pd.Series]:
    """The model and the two baselines the seed asks for: weighted RFM score and the CLV ranking."""
    rfm = business_parameters().rfm_weighted(holdout.recency_score, holdout.frequency_score, holdout.monetary_score)
    return dict(zip(RANKINGS, (pd.Series(model_values), rfm, holdout.clv_12m.fillna(0)), strict=True))


def score_holdout(
    batches: Iterable[pd.DataFrame], models: TrainedModels, champion: TrainedModels | None
) -> pd.DataFrame:
    """Per holdout customer, in order: the realised value and churn, the three rankings (RANKINGS),
    the model's churn probability and the champion's predicted value (when there is one). Scored
    batch by batch, so the month's features are never held whole."""
    scored = []
    for batch in batches:
        part = batch.loc[:, ["realised_value", "churned"]].reset_index(drop=True)
        for name, values in rankings(batch, models.predict_value(batch)).items():
            part[name] = np.asarray(values)
        part["churn_probability"] = models.predict_churn(batch)
        if champion is not None:
            part["champion"] = champion.predict_value(batch)
        scored.append(part)
    if not scored:
        raise TrainingDataError("no live customers in the holdout month")
    return pd.concat(scored, ignore_index=True)


def train_and_decide(
    con: duckdb.DuckDBPyConnection,
    registry: Registry,
    plan: TrainingPlan,
    space: SearchSpace,
    staged: Callable[[], None] = lambda: None,
    batch_size: int = ScoringRules.batch_size,
) -> ModelCard:
    """Train, judge and register a version; `staged` is called once its files are staged, before
    they become a version (a pause point for the crash tests). The holdout month is scored
    `batch_size` customers at a time."""
    chosen = adapt_plan(con, plan)
    plan, training_months, holdout_month = chosen.plan, chosen.training_months, chosen.holdout_month
    train = build_training_set(
        con, training_months, plan.horizon_months, plan.value_measure, max_rows=space.max_rows, seed=plan.seed
    )
    models = train_models(train, space, plan.seed)
    champion = registry.champion_version()
    try:
        defender = registry.load(champion) if champion else None
    except RegistryError as exc:
        raise ChampionUnavailable(
            f"the champion {champion} cannot be loaded: {exc}. Training stops rather than treat it as no "
            "champion: restore its files, or make another version champion (valuetier model rollback VERSION)"
        ) from exc
    batches = holdout_batches(con, holdout_month, plan.horizon_months, train.value_measure, batch_size)
    holdout = score_holdout(batches, models, defender)

    metrics = {}
    scores = {name: holdout[name] for name in RANKINGS}
    for name, values in scores.items():
        metrics[name] = ranking_report(values, holdout.realised_value, plan.high_share, plan.mid_share).as_dict()
    metrics["model"]["churn"] = churn_report(holdout.churn_probability.to_numpy(), holdout.churned)
    promotion = decide(
        holdout.realised_value,
        scores,
        PromotionRules(plan.promotion_margin, plan.high_share, plan.mid_share, seed=plan.seed),
        (champion, holdout.champion.to_numpy()) if defender else None,
    )
    for name, figures in promotion.record["rankings"].items():
        if name in metrics:
            metrics[name][GINI] = figures[GINI]
    if defender:
        metrics["champion_on_this_holdout"] = {"version": champion, **promotion.record["rankings"]["champion"]}

    card = registry.register(
        models,
        staged=staged,
        training_months=training_months,
        holdout_month=holdout_month,
        horizon_months=plan.horizon_months,
        value_measure=f"{train.value_measure} ({train.value_measure_reason})",
        features=list(FEATURES),
        parameters={
            "value": models.value_params,
            "churn": models.churn_params,
            "seed": plan.seed,
            "search_space": space.grid(),
            "training_rows": models.rows,
            "plan": chosen.as_dict(),
            "cv": models.cv_scores,
        },
        metrics=metrics,
        data_fingerprint=fingerprint(train.frame),
    )
    decided = registry.decide(card, promotion.promoted, promotion.why, promotion.record)
    write_evaluation(con, decided)
    return decided


def write_evaluation(con: duckdb.DuckDBPyConnection, card: ModelCard) -> None:
    """One row per ranking and metric of a version's holdout, replacing that version's rows."""
    rows = []
    for ranking, report in card.metrics.items():
        if not isinstance(report, dict) or "per_tier" not in report:
            continue
        rows.append((ranking, "high_tier_value_capture", None, report["high_tier_value_capture"]))
        rows.append((ranking, "spearman", None, report["spearman"]))
        if GINI in report:
            rows.append((ranking, GINI, None, report[GINI]))
        for tier, scores in report["per_tier"].items():
            rows.extend((ranking, metric, tier, value) for metric, value in scores.items())
        rows.extend((ranking, metric, None, value) for metric, value in report.get("churn", {}).items())
    create_table(con, MODEL_EVALUATION_TABLE, MODEL_EVALUATION_COLUMNS)
    con.execute(f"DELETE FROM {MODEL_EVALUATION_TABLE} WHERE model_version = ?", [card.version])
    con.executemany(
        f"INSERT INTO {MODEL_EVALUATION_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(card.version, card.holdout_month, r, m, t, v, card.status) for r, m, t, v in rows],
    )
