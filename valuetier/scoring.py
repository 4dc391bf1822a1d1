"""Scoring every live customer of a month with the champion models: tier, score, churn risk,
lifecycle stage, action segment and the top drivers of the customer's predicted value.

Customers with too little history (tenure under MIN_HISTORY_MONTHS) are valued by rule -- their
observed value per month (in the value measure) carried over the horizon -- and flagged
tiered_by_rule. While no model is champion yet (a short history cannot train one), every customer
is tiered by the best ranking available, month-wide: the 12-month CLV where the month's CLV
models were fitted, else the weighted RFM score (ties broken by the observed run-rate), never a
run-rate that is zero for everyone because the deliveries carry no margins.

A month is scored in batches of customers (bounded memory at a million customers): a first pass
predicts every customer's value, which fixes the month's tiers and percentiles; a second pass
describes each batch (churn, stage, segment, drivers) and appends it to marts.customer_tiers, all
in one transaction that first removes the month's rows, so a re-run replaces the month.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from valuetier.metrics import cut_tiers
from valuetier.months import parse_month
from valuetier.parameters import business_parameters
from valuetier.registry import Registry
from valuetier.training import FEATURES, TrainedModels, feature_columns_sql
from valuetier.value_measure import ValueMeasure, resolve_value_measure

MIN_HISTORY_MONTHS = 3
TIERS_TABLE = "marts.customer_tiers"
RULE_VERSION = "rule"
RULE_DRIVER = "rule: observed value per month x horizon"
# What a month's tiers rank: the champion model, or without one the best ranking available.
BASIS_DRIVERS = {
    "model": RULE_DRIVER,
    "clv": "rule: 12-month CLV (BG/NBD + Gamma-Gamma), no champion model yet",
    "rfm": "rule: weighted RFM score, no champion model yet",
}
LEGACY_MEASURES = {"profit_contribution": "profit", "transaction_amount": "revenue"}


class NothingToPublish(ValueError):
    """A month with delivered customers whose scoring would publish no tier at all."""


@dataclass(frozen=True)
class ScoringRules:
    high_share: float = field(default_factory=lambda: business_parameters().tier_high_share)
    mid_share: float = field(default_factory=lambda: business_parameters().tier_mid_share)
    # Cut points in predicted value instead of shares (both or neither): high from high_value, mid from mid_value.
    high_value: float | None = None
    mid_value: float | None = None
    horizon_months: int = field(default_factory=lambda: business_parameters().label_horizon_months)
    churn_risk: float = 0.30  # churn probability from which a customer counts as at risk
    trend_change: float = 0.20  # 3-month spend trend beyond which a customer is growing or declining
    dormant_months: int = 3  # months without activity from which a customer is dormant
    batch_size: int = 50_000  # customers described and written at a time


@dataclass(frozen=True)
class Champion:
    """The models that score, with the registry version they are recorded under."""

    version: str
    models: TrainedModels
    horizon_months: int = 6  # of the value the model predicts; the rule values short histories over it too
    value_measure: str = "profit"  # what the model predicts; the rule values short histories in it too


def lifecycle_stage(frame: pd.DataFrame, rules: ScoringRules) -> np.ndarray:
    inactive = frame.months_since_last_activity.fillna(np.inf) >= rules.dormant_months
    trend = frame.spend_trend_3m.astype(float)
    return np.select(
        [frame.tenure_months < MIN_HISTORY_MONTHS, inactive, trend < -rules.trend_change, trend > rules.trend_change],
        ["new", "dormant", "declining", "growing"],
        default="mature",
    )


def action_segment(tier: np.ndarray, stage: np.ndarray, churn: np.ndarray, rules: ScoringRules) -> np.ndarray:
    at_risk = churn >= rules.churn_risk
    return np.select(
        [
            (stage == "new") & (tier != "low"),
            (tier == "high") & at_risk,
            tier == "high",
            (tier == "mid") & (stage == "growing"),
            (tier == "mid") & at_risk,
            tier == "mid",
            stage == "dormant",
        ],
        [
            "new high potential",
            "high-value at risk",
            "high-value loyal",
            "mid-value with growth potential",
            "mid-value at risk",
            "mid-value steady",
            "low-value dormant",
        ],
        default="low-value maintain",
    )


def value_drivers(models: TrainedModels, features: pd.DataFrame, top: int = 3) -> list[str]:
    """Per-customer contributions, approximated by occlusion: how much the predicted value moves
    when one feature is set to its training median. The `top` largest, as 'feature (+1.23)'."""
    base = models.predict_value(features)
    contributions = np.empty((len(features), len(FEATURES)))
    for j, name in enumerate(FEATURES):
        occluded = features.copy()
        occluded[name] = models.feature_medians.get(name, np.nan)
        contributions[:, j] = base - models.predict_value(occluded)
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :top]
    return ["; ".join(f"{FEATURES[j]} ({contributions[i, j]:+.2f})" for j in order[i]) for i in range(len(features))]


def champion_measure(champion: Champion | None) -> ValueMeasure | None:
    """The value measure the champion predicts: short histories are valued by rule in it too."""
    if champion is None:
        return None
    return ValueMeasure(champion.value_measure, f"the champion {champion.version} predicts it")


def month_basis(champion: Champion | None, clv_fitted: bool) -> str:
    """What a month's tiers rank: the model, or without one CLV where fitted, else weighted RFM."""
    if champion is not None:
        return "model"
    return "clv" if clv_fitted else "rfm"


def predicted_values(
    frame: pd.DataFrame, champion: Champion | None, rules: ScoringRules, measure: ValueMeasure, basis: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted value over the horizon, ranking key, tiered by rule) for the rows of `frame`."""
    tenure = frame.tenure_months.to_numpy(dtype=float)
    horizon = champion.horizon_months if champion else rules.horizon_months
    observed_months = np.maximum(np.nan_to_num(tenure) + 1, 1)
    rule_value = np.nan_to_num(frame[measure.cumulative_column].to_numpy(dtype=float)) / observed_months * horizon
    if basis == "clv":
        clv = frame.clv_12m.to_numpy(dtype=float)
        predicted = np.where(np.isnan(clv), rule_value, clv * horizon / 12)
        return predicted, predicted, np.ones(len(frame), dtype=bool)
    if basis == "rfm":
        rfm = business_parameters().rfm_weighted(frame.recency_score, frame.frequency_score, frame.monetary_score)
        # The score (4 decimals, as customer_tiers_rfm) has few distinct values: the run-rate,
        # squashed into [0, 1), orders customers within a score.
        run_rate = np.maximum(rule_value, 0)
        key = np.round(rfm.to_numpy(dtype=float), 4) * 1e4 + run_rate / (1 + run_rate)
        return rule_value, key, np.ones(len(frame), dtype=bool)
    by_rule = tenure < MIN_HISTORY_MONTHS
    predicted = np.where(by_rule, rule_value, champion.models.predict_value(frame))
    return predicted, predicted, by_rule


def describe_customers(
    frame: pd.DataFrame,
    predicted: np.ndarray,
    by_rule: np.ndarray,
    tier: np.ndarray,
    score: np.ndarray,
    champion: Champion | None,
    rules: ScoringRules,
    basis: str = "model",
) -> pd.DataFrame:
    """The published row of each customer of `frame`, given the month-wide tier and score."""
    stage = lifecycle_stage(frame, rules)
    if champion is None:
        churn = np.full(len(frame), np.nan)
        drivers = [BASIS_DRIVERS[basis]] * len(frame)
    else:
        churn = champion.models.predict_churn(frame)
        drivers = np.where(by_rule, RULE_DRIVER, value_drivers(champion.models, frame.loc[:, list(FEATURES)]))
    return pd.DataFrame(
        {
            "customer_id": frame.customer_id.to_numpy(),
            "month_start": frame.month_start.to_numpy(),
            "value_tier": tier,
            "value_score": score,
            "predicted_value": np.round(predicted, 2),
            "churn_probability": np.round(churn, 4),
            "clv_12m": frame.clv_12m.to_numpy(),
            "lifecycle_stage": stage,
            # Without a churn model nobody is flagged at risk: the segment rests on tier and stage.
            "segment": action_segment(tier, stage, np.nan_to_num(churn), rules),
            "rfm_segment": frame.rfm_segment.to_numpy(),
            "top_drivers": np.asarray(drivers, dtype=object),
            "model_version": champion.version if champion else RULE_VERSION,
            "tiered_by_rule": by_rule,
        }
    )


def tiers_and_scores(
    predicted: np.ndarray, rules: ScoringRules, ranking: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Month-wide tiers (exact shares of the ranking, or value cut points when set) and 0-100
    percentiles of the ranking (the predicted value unless another ranking is given)."""
    ranking = predicted if ranking is None else ranking
    score = pd.Series(ranking).rank(method="average", pct=True).to_numpy()
    if rules.high_value is None and rules.mid_value is None:
        return cut_tiers(ranking, rules.high_share, rules.mid_share), np.round(100 * score, 1)
    if rules.high_value is None or rules.mid_value is None or rules.mid_value > rules.high_value:
        raise ValueError(f"value cut points need mid <= high, both set: {rules.mid_value}, {rules.high_value}")
    tier = np.select([predicted >= rules.high_value, predicted >= rules.mid_value], ["high", "mid"], default="low")
    return tier.astype(object), np.round(100 * score, 1)


def score_customers(
    frame: pd.DataFrame,
    champion: Champion | None,
    rules: ScoringRules,
    measure: ValueMeasure | None = None,
) -> pd.DataFrame:
    """One row per customer of `frame` (the indicator rows of one month, with features and CLV)."""
    basis = month_basis(champion, bool(frame.clv_12m.notna().any()))
    measure = measure or champion_measure(champion) or ValueMeasure("profit", "default")
    predicted, ranking, by_rule = predicted_values(frame, champion, rules, measure, basis)
    tier, score = tiers_and_scores(predicted, rules, ranking)
    return describe_customers(frame, predicted, by_rule, tier, score, champion, rules, basis)


@dataclass(frozen=True)
class MonthScored:
    month: str
    customers: int
    tiers: dict[str, int]
    tiered_by_rule: int
    model_version: str
    seconds: float
    basis: str = "model"  # model, or without a champion clv / rfm (BASIS_DRIVERS)
    value_measure: str = "profit"


def _batch_bounds(con: duckdb.DuckDBPyConnection, month: str, batch_size: int) -> list[tuple[str, str]]:
    """(first, last) customer_id of each batch of the month's live customers, in customer_id order."""
    ids = [
        r[0]
        for r in con.execute(
            "SELECT customer_id FROM marts.customer_indicators_monthly WHERE month_start = ? ORDER BY customer_id",
            [parse_month(month)],
        ).fetchall()
    ]
    return [(ids[first], ids[min(first + batch_size, len(ids)) - 1]) for first in range(0, len(ids), batch_size)]


def _month_batches(con: duckdb.DuckDBPyConnection, month: str, bounds: list[tuple[str, str]]) -> Iterator[pd.DataFrame]:
    """The month's live customers with features, one batch per (first, last) customer_id bound."""
    for first, last in bounds:
        yield con.execute(
            f"""SELECT i.customer_id, i.month_start, i.rfm_segment, {feature_columns_sql()}
                FROM marts.customer_indicators_monthly i
                LEFT JOIN marts.customer_clv_monthly c USING (customer_id, month_start)
                WHERE i.month_start = ? AND i.customer_id BETWEEN ? AND ?
                ORDER BY i.customer_id""",
            [parse_month(month), first, last],
        ).df()


def ensure_tiers_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {TIERS_TABLE} (
            customer_id VARCHAR NOT NULL, month_start DATE NOT NULL, value_tier VARCHAR NOT NULL,
            value_score DOUBLE NOT NULL, predicted_value DOUBLE NOT NULL, churn_probability DOUBLE,
            clv_12m DOUBLE, lifecycle_stage VARCHAR NOT NULL, segment VARCHAR NOT NULL, rfm_segment VARCHAR,
            top_drivers VARCHAR NOT NULL, model_version VARCHAR NOT NULL, tiered_by_rule BOOLEAN NOT NULL)"""
    )


def score_month_tiers(
    con: duckdb.DuckDBPyConnection,
    month: str,
    champion: Champion | None,
    rules: ScoringRules,
    progress: Callable[[str], None] = lambda _: None,
) -> MonthScored:
    """Replace the month's rows of marts.customer_tiers with every live customer scored."""
    started = time.perf_counter()
    measure = champion_measure(champion) or resolve_value_measure(con, as_of=month)
    basis = month_basis(champion, clv_fitted(con, month))
    predicted, ranking, by_rule = [], [], []
    bounds = _batch_bounds(con, month, rules.batch_size)  # read once: both passes walk the same batches
    for batch in _month_batches(con, month, bounds):
        values, key, rule = predicted_values(batch, champion, rules, measure, basis)
        predicted.append(values)
        ranking.append(key)
        by_rule.append(rule)
    if not predicted:
        _refuse_an_empty_month(con, month)
    predicted = np.concatenate(predicted) if predicted else np.empty(0)
    ranking = np.concatenate(ranking) if ranking else np.empty(0)
    by_rule = np.concatenate(by_rule) if by_rule else np.empty(0, dtype=bool)
    tier, score = tiers_and_scores(predicted, rules, ranking)
    ensure_tiers_table(con)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {TIERS_TABLE} WHERE month_start = ?", [parse_month(month)])
        done = 0
        for batch in _month_batches(con, month, bounds):
            rows = slice(done, done + len(batch))
            described = describe_customers(
                batch, predicted[rows], by_rule[rows], tier[rows], score[rows], champion, rules, basis
            )
            con.register("scored_batch", described)
            con.execute(f"INSERT INTO {TIERS_TABLE} BY NAME SELECT * FROM scored_batch")
            con.unregister("scored_batch")
            done += len(batch)
            progress(f"{month}: {done:,} of {len(predicted):,} customers scored")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    counts = {t: int(np.sum(tier == t)) for t in ("high", "mid", "low")}
    return MonthScored(
        month=month,
        customers=len(predicted),
        tiers=counts,
        tiered_by_rule=int(by_rule.sum()),
        model_version=champion.version if champion else RULE_VERSION,
        seconds=time.perf_counter() - started,
        basis=basis,
        value_measure=measure.name,
    )


def _refuse_an_empty_month(con: duckdb.DuckDBPyConnection, month: str) -> None:
    """A run that publishes nothing is a failure, not a success: customers were delivered by the
    month, yet none of them is live in it."""
    delivered = con.execute(
        "SELECT count(DISTINCT customer_id) FROM raw.customers WHERE _delivery_month <= ?", [parse_month(month)]
    ).fetchone()[0]
    if delivered:
        raise NothingToPublish(
            f"tiers {month}: 0 live customers to publish, though {delivered:,} customers were delivered by then. "
            "Check their opened_at and closed_at, and the liveness rule: an open account where accounts are "
            "delivered, else a transaction within inactivity_months (dbt_project/dbt_project.yml)."
        )


def clv_fitted(con: duckdb.DuckDBPyConnection, month: str) -> bool:
    """Whether the month's CLV models were fitted (its live customers have a clv_12m)."""
    return bool(
        con.execute(
            "SELECT count(clv_12m) FROM marts.customer_clv_monthly WHERE month_start = ?", [parse_month(month)]
        ).fetchone()[0]
    )


def current_champion(registry: Registry) -> Champion | None:
    """The champion of the registry, verified on load; None while no model has been promoted."""
    version = registry.champion_version()
    if version is None:
        return None
    card = registry.card(version)
    measure = card.value_measure.split()[0]
    return Champion(version, registry.load(version), card.horizon_months, LEGACY_MEASURES.get(measure, measure))
