"""Scoring every live customer of a month with the champion models: tier, score, churn risk,
lifecycle stage, action segment and the top drivers of the customer's predicted value.

Customers with too little history (tenure under MIN_HISTORY_MONTHS) are valued by rule -- their
observed value per month (in the value measure) carried over the horizon -- and flagged
tiered_by_rule. While no model is champion yet (a short history cannot train one, or no model beat the
baselines), every customer is tiered by the best ranking available, month-wide: the better
baseline of the latest training's holdout, else the 12-month CLV where the month's CLV models were
fitted, else the weighted RFM score (ties broken by the observed run-rate), never a run-rate that is
zero for everyone because the deliveries carry no margins.

A month is scored in one pass over batches of customers (bounded memory at any bank size): each
batch's numbers -- predicted value, ranking key, churn, lifecycle stage, top drivers -- go to a
staging table; one SQL statement then cuts the month-wide tiers and percentiles, labels segments
and drivers, and replaces the month's rows of marts.customer_tiers in one transaction, so a re-run
replaces the month.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import duckdb
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from valuetier.core.months import parse_month
from valuetier.core.parameters import business_parameters
from valuetier.core.tables import TIERS_TABLE, ensure_tiers_tables
from valuetier.core.value_measure import ValueMeasure, resolve_value_measure
from valuetier.core.warehouse import append_frame, query_batches, transaction
from valuetier.tiering.metrics import tier_counts
from valuetier.tiering.registry import Registry
from valuetier.tiering.training import FEATURES, TrainedModels, feature_columns_sql
from valuetier.tiering.tree_ensemble import TreeEnsemble

MIN_HISTORY_MONTHS = 3
# The published months scored again by the challenger (valuetier/tiering/challenger.py); created with the
# tiers, so the dbt backtest that reads both always finds it.
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
    # Stable tiers: last month's incumbents rank this share of the customers higher (sticky_tier_sql).
    incumbent_margin: float = field(default_factory=lambda: business_parameters().tier_incumbent_margin)
    churn_risk: float = field(default_factory=lambda: business_parameters().at_risk_churn_probability)
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

    @cached_property
    def value_trees(self) -> TreeEnsemble:
        return TreeEnsemble.from_pipeline(self.models.value_model)

    def churn_probability(self, features: pd.DataFrame) -> np.ndarray:
        if self._churn_trees is None:  # a model from before one churn classifier: fold models averaged
            return self.models.predict_churn(features)
        return self._churn_trees.predict(features.loc[:, list(FEATURES)])

    @cached_property
    def _churn_trees(self) -> TreeEnsemble | None:
        churn = self.models.churn_model
        return TreeEnsemble.from_pipeline(churn) if isinstance(churn, Pipeline) else None


def lifecycle_stage(frame: pd.DataFrame, rules: ScoringRules) -> np.ndarray:
    inactive = frame.months_since_last_activity.fillna(np.inf) >= rules.dormant_months
    trend = frame.spend_trend_3m.astype(float)
    return np.select(
        [frame.tenure_months < MIN_HISTORY_MONTHS, inactive, trend < -rules.trend_change, trend > rules.trend_change],
        ["new", "dormant", "declining", "growing"],
        default="mature",
    )


# The action segment of a published row, from its tier, lifecycle stage and churn risk (SQL over
# the staged rows; without a churn model nobody is flagged at risk).
ACTION_SEGMENT_SQL = """CASE
    WHEN lifecycle_stage = 'new' AND value_tier <> 'low' THEN 'new high potential'
    WHEN value_tier = 'high' AND coalesce(churn_probability, 0) >= $churn_risk THEN 'high-value at risk'
    WHEN value_tier = 'high' THEN 'high-value loyal'
    WHEN value_tier = 'mid' AND lifecycle_stage = 'growing' THEN 'mid-value with growth potential'
    WHEN value_tier = 'mid' AND coalesce(churn_probability, 0) >= $churn_risk THEN 'mid-value at risk'
    WHEN value_tier = 'mid' THEN 'mid-value steady'
    WHEN lifecycle_stage = 'dormant' THEN 'low-value dormant'
    ELSE 'low-value maintain' END"""
# Every label ACTION_SEGMENT_SQL gives, with the tiers it gives it to (the playbook maps them to actions).
ACTION_SEGMENTS: dict[str, tuple[str, ...]] = {
    "new high potential": ("high", "mid"),
    "high-value at risk": ("high",),
    "high-value loyal": ("high",),
    "mid-value with growth potential": ("mid",),
    "mid-value at risk": ("mid",),
    "mid-value steady": ("mid",),
    "low-value dormant": ("low",),
    "low-value maintain": ("low",),
}
TOP_DRIVERS = 3


def value_drivers(champion: Champion, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted value, top driver feature indices, their contributions) for the rows of `features`.

    A contribution is occlusion: how much the predicted value moves when that one feature is set to
    its training median, the rest of the customer unchanged (computed from the trees in one pass,
    valuetier.tiering.tree_ensemble). The TOP_DRIVERS largest by size, ties to the earlier feature."""
    reference = np.array([champion.models.feature_medians.get(name, np.nan) for name in FEATURES])
    predicted, contributions = champion.value_trees.predict_with_occlusion(features.loc[:, list(FEATURES)], reference)
    top = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :TOP_DRIVERS]
    return predicted, top, np.take_along_axis(contributions, top, axis=1)


def champion_measure(champion: Champion | None) -> ValueMeasure | None:
    """The value measure the champion predicts: short histories are valued by rule in it too."""
    if champion is None:
        return None
    return ValueMeasure(champion.value_measure, f"the champion {champion.version} predicts it")


def month_basis(champion: Champion | None, clv_fitted: bool, preferred_baseline: str | None = None) -> str:
    """What a month's tiers rank: the model; without one, the better baseline of the latest
    training's holdout (Registry.preferred_baseline: weighted RFM when it beat the CLV ranking),
    else CLV where fitted, else weighted RFM."""
    if champion is not None:
        return "model"
    if preferred_baseline == "rfm_weighted":
        return "rfm"
    return "clv" if clv_fitted else "rfm"


def value_horizon(champion: Champion | None, rules: ScoringRules) -> int:
    """Months of value the predicted value stands for: the champion's label horizon, else the rule's."""
    return champion.horizon_months if champion else rules.horizon_months


def predicted_values(
    frame: pd.DataFrame, champion: Champion | None, rules: ScoringRules, measure: ValueMeasure, basis: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted value over the horizon, ranking key, tiered by rule) of the rows of `frame`, valued
    by rule: the model's rows (basis model, not tiered by rule) are left for value_drivers."""
    tenure = frame.tenure_months.to_numpy(dtype=float)
    horizon = value_horizon(champion, rules)
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
    return rule_value, rule_value.copy(), tenure < MIN_HISTORY_MONTHS


# One row per customer, numbers only: what the month-wide statement (publish_sql) tiers and labels.
STAGE_COLUMNS = {
    "position": "BIGINT",  # the customer's place in the month's customer_id order: ties in value break by it
    "customer_id": "VARCHAR",
    "month_start": "DATE",
    "predicted_value": "DOUBLE",
    "value_horizon_months": "INTEGER",
    "ranking": "DOUBLE",
    "tiered_by_rule": "BOOLEAN",
    "churn_probability": "DOUBLE",
    "clv_12m": "DOUBLE",
    "lifecycle_stage": "VARCHAR",
    "rfm_segment": "VARCHAR",
    "model_version": "VARCHAR",
    "rule_drivers": "VARCHAR",  # the drivers' text where no model drivers are (valued by rule)
    **{f"driver_{k}": "VARCHAR" for k in range(1, TOP_DRIVERS + 1)},
    **{f"contribution_{k}": "DOUBLE" for k in range(1, TOP_DRIVERS + 1)},
}


def stage_customers(
    frame: pd.DataFrame,
    champion: Champion | None,
    rules: ScoringRules,
    measure: ValueMeasure,
    basis: str,
    first_position: int = 0,
) -> pd.DataFrame:
    """The STAGE_COLUMNS of the rows of `frame`: predicted value, ranking key, churn, lifecycle
    stage and top drivers, before the month-wide tier cut."""
    predicted, ranking, by_rule = predicted_values(frame, champion, rules, measure, basis)
    n = len(frame)
    drivers = np.full((n, TOP_DRIVERS), None, dtype=object)
    contributions = np.full((n, TOP_DRIVERS), np.nan)
    if champion is None:
        churn = np.full(n, np.nan)
        rule_drivers = np.full(n, BASIS_DRIVERS[basis], dtype=object)
    else:
        churn = champion.churn_probability(frame)
        rule_drivers = np.where(by_rule, RULE_DRIVER, None)
        modelled = np.flatnonzero(~by_rule)
        if len(modelled):
            value, top, top_contributions = value_drivers(champion, frame.iloc[modelled])
            predicted[modelled], ranking[modelled] = value, value
            drivers[modelled] = np.asarray(FEATURES, dtype=object)[top]
            contributions[modelled] = top_contributions
    ranking = np.nan_to_num(ranking, nan=-np.inf)  # an unrankable customer goes last, never first
    return pd.DataFrame(
        {
            "position": np.arange(first_position, first_position + n),
            "customer_id": frame.customer_id.to_numpy(),
            "month_start": frame.month_start.to_numpy(),
            "predicted_value": predicted,
            "value_horizon_months": np.full(n, value_horizon(champion, rules), dtype="int32"),
            "ranking": ranking,
            "tiered_by_rule": by_rule,
            "churn_probability": churn,
            "clv_12m": frame.clv_12m.to_numpy(dtype=float),
            "lifecycle_stage": lifecycle_stage(frame, rules),
            "rfm_segment": frame.rfm_segment.to_numpy(),
            "model_version": champion.version if champion else RULE_VERSION,
            "rule_drivers": rule_drivers,
            **{f"driver_{k + 1}": drivers[:, k] for k in range(TOP_DRIVERS)},
            **{f"contribution_{k + 1}": contributions[:, k] for k in range(TOP_DRIVERS)},
        }
    )


def publish_sql(
    stage: str,
    customers: int,
    rules: ScoringRules,
    tier_sizes: tuple[int, int] | None = None,
    previous: str | None = None,
) -> str:
    """The published rows of the staged customers (`customers` of them): month-wide tiers, the 0-100
    percentile of the ranking (ties share their average rank), the action segment and the drivers' text.

    The plain cut (plain_tier) gives exact shares of the ranking, ties by position; or value cut
    points when set; or, given `tier_sizes`, the first `high` ranks high and the ranks up to
    `high + mid` mid. The published tier (value_tier) is the plain cut made stable where shares cut
    and `previous` names last month's published tiers (customer_id, value_tier): see sticky_tier_sql."""
    thresholds = tier_sizes is None and (rules.high_value is not None or rules.mid_value is not None)
    if not thresholds:
        high, mid = tier_sizes or tier_counts(customers, rules.high_share, rules.mid_share)
        plain = f"CASE WHEN tier_rank <= {high} THEN 'high' WHEN tier_rank <= {mid} THEN 'mid' ELSE 'low' END"
    elif rules.high_value is None or rules.mid_value is None or rules.mid_value > rules.high_value:
        raise ValueError(f"value cut points need mid <= high, both set: {rules.mid_value}, {rules.high_value}")
    else:
        plain = (
            f"CASE WHEN predicted_value >= {float(rules.high_value)!r} THEN 'high' "
            f"WHEN predicted_value >= {float(rules.mid_value)!r} THEN 'mid' ELSE 'low' END"
        )
    drivers = ", ".join(
        f"driver_{k} || ' (' || printf('%+.2f', contribution_{k}) || ')'" for k in range(1, TOP_DRIVERS + 1)
    )
    segment = ACTION_SEGMENT_SQL.replace("$churn_risk", repr(float(rules.churn_risk)))
    ranked = f"""SELECT *, {plain} AS plain_tier,
                   round(100 * (rank() OVER (ORDER BY ranking) + (count(*) OVER (PARTITION BY ranking) - 1) / 2)
                         / {customers}, 1) AS value_score
            FROM (SELECT *, row_number() OVER (ORDER BY ranking DESC, position) AS tier_rank FROM {stage})"""
    if previous is not None and not thresholds and rules.incumbent_margin > 0:
        ranked = sticky_tier_sql(ranked, previous, customers, high, mid, rules.incumbent_margin)
    else:
        ranked = f"SELECT *, plain_tier AS value_tier FROM ({ranked})"
    return f"""
        SELECT position, customer_id, month_start, value_tier, plain_tier, value_score,
               round(predicted_value, 2) AS predicted_value, value_horizon_months,
               round(churn_probability, 4) AS churn_probability,
               clv_12m, lifecycle_stage, {segment} AS segment, rfm_segment,
               coalesce(rule_drivers, concat_ws('; ', {drivers})) AS top_drivers, model_version, tiered_by_rule
        FROM ({ranked})"""


def sticky_tier_sql(ranked: str, previous: str, customers: int, high: int, mid: int, margin: float) -> str:
    """The stable tiers of the `ranked` rows (tier_rank 1..customers): the plain cut's sizes, with
    last month's incumbents ranked `margin` of the customers higher (hysteresis).

    The high tier is the first `high` customers by their place from the top, (tier_rank - 1) /
    customers, minus the margin for last month's high customers; the mid tier the next `mid - high`
    of the rest by their place minus the margin for last month's high and mid customers. Ties go to
    the better ranked. A customer in no tier last month (new, or not scored) gets no margin."""
    place = f"(tier_rank - 1) / {customers}"
    margin = repr(float(margin))
    return f"""
        WITH incumbents AS (
            SELECT r.*, p.value_tier AS last_tier
            FROM ({ranked}) AS r LEFT JOIN ({previous}) AS p ON p.customer_id = r.customer_id
        ),
        for_high AS (
            SELECT *, row_number() OVER (
                ORDER BY {place} - CASE WHEN last_tier = 'high' THEN {margin} ELSE 0 END ASC, tier_rank ASC
            ) <= {high} AS is_high
            FROM incumbents
        ),
        for_mid AS (
            SELECT *, row_number() OVER (
                PARTITION BY is_high
                ORDER BY {place} - CASE WHEN last_tier IN ('high', 'mid') THEN {margin} ELSE 0 END ASC, tier_rank ASC
            ) AS mid_rank
            FROM for_high
        )
        SELECT * EXCLUDE (last_tier, is_high, mid_rank),
               CASE WHEN is_high THEN 'high' WHEN mid_rank <= {mid - high} THEN 'mid' ELSE 'low' END AS value_tier
        FROM for_mid"""


def previous_tiers_sql(month: str) -> str:
    """Last month's published tiers (customer_id, value_tier): the incumbents of the stable cut."""
    return f"""SELECT customer_id, value_tier FROM {TIERS_TABLE}
               WHERE month_start = DATE '{parse_month(month)}' - INTERVAL 1 MONTH"""


def _create_stage(con: duckdb.DuckDBPyConnection, name: str) -> None:
    columns = ", ".join(f"{column} {kind}" for column, kind in STAGE_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")


def score_customers(
    frame: pd.DataFrame,
    champion: Champion | None,
    rules: ScoringRules,
    measure: ValueMeasure | None = None,
) -> pd.DataFrame:
    """One published row per customer of `frame` (the indicator rows of one month, with features
    and CLV), in the order of `frame`: the statement the asset runs, on an in-memory DuckDB."""
    basis = month_basis(champion, bool(frame.clv_12m.notna().any()))
    measure = measure or champion_measure(champion) or ValueMeasure("profit", "default")
    staged = stage_customers(frame, champion, rules, measure, basis)
    with duckdb.connect() as con:
        _create_stage(con, "stage")
        append_frame(con, "stage", staged)
        published = con.execute(f"SELECT * FROM ({publish_sql('stage', len(frame), rules)}) ORDER BY position").df()
    return published.drop(columns="position")


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


def _month_batches(con: duckdb.DuckDBPyConnection, month: str, batch_size: int) -> Iterator[pd.DataFrame]:
    """The month's live customers with features, in customer_id order, `batch_size` at a time (the
    connection writes the stage meanwhile)."""
    sql = f"""SELECT i.customer_id, i.month_start, i.rfm_segment, {feature_columns_sql()}
              FROM marts.customer_indicators_monthly i
              LEFT JOIN marts.customer_clv_monthly c USING (customer_id, month_start)
              WHERE i.month_start = ?
              ORDER BY i.customer_id"""
    return query_batches(con, sql, [parse_month(month)], batch_size)


def stage_month(
    con: duckdb.DuckDBPyConnection,
    month: str,
    champion: Champion | None,
    rules: ScoringRules,
    measure: ValueMeasure,
    basis: str,
    stage: str,
    progress: Callable[[str], None] = lambda _: None,
) -> int:
    """Stage every live customer of the month in the temp table `stage`, batch by batch (bounded
    memory at any bank size); the number staged."""
    _create_stage(con, stage)
    staged = 0
    for batch in _month_batches(con, month, rules.batch_size):
        append_frame(con, stage, stage_customers(batch, champion, rules, measure, basis, staged))
        staged += len(batch)
        progress(f"{month}: {staged:,} customers scored")
    return staged


def score_month_tiers(
    con: duckdb.DuckDBPyConnection,
    month: str,
    champion: Champion | None,
    rules: ScoringRules,
    progress: Callable[[str], None] = lambda _: None,
    preferred_baseline: str | None = None,
) -> MonthScored:
    """Replace the month's rows of marts.customer_tiers with every live customer scored: one pass
    over batches of customers stages the numbers (bounded memory at any bank size), then one
    statement tiers, labels and publishes the month, in a transaction that first removes the
    month's rows, so a re-run replaces the month."""
    started = time.perf_counter()
    measure = champion_measure(champion) or resolve_value_measure(con, as_of=month)
    basis = month_basis(champion, clv_fitted(con, month), preferred_baseline)
    stage = "scoring_stage"
    try:
        staged = stage_month(con, month, champion, rules, measure, basis, stage, progress)
        if not staged:
            _refuse_an_empty_month(con, month)
        ensure_tiers_tables(con)
        with transaction(con):
            con.execute(f"DELETE FROM {TIERS_TABLE} WHERE month_start = ?", [parse_month(month)])
            published = publish_sql(stage, staged, rules, previous=previous_tiers_sql(month))
            con.execute(f"INSERT INTO {TIERS_TABLE} BY NAME SELECT * EXCLUDE (position) FROM ({published})")
        counts = dict(
            con.execute(
                f"SELECT value_tier, count(*) FROM {TIERS_TABLE} WHERE month_start = ? GROUP BY 1",
                [parse_month(month)],
            ).fetchall()
        )
        by_rule = con.execute(f"SELECT count(*) FILTER (WHERE tiered_by_rule) FROM {stage}").fetchall()[0][0]
    finally:
        con.execute(f"DROP TABLE IF EXISTS {stage}")
    return MonthScored(
        month=month,
        customers=staged,
        tiers={t: int(counts.get(t, 0)) for t in ("high", "mid", "low")},
        tiered_by_rule=int(by_rule),
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
    return None if version is None else registered_model(registry, version)


def registered_model(registry: Registry, version: str) -> Champion:
    """A registered model version, verified on load, ready to score."""
    card = registry.card(version)
    measure = card.value_measure.split()[0]
    return Champion(version, registry.load(version), card.horizon_months, LEGACY_MEASURES.get(measure, measure))
