"""The challenger's scores: the same months as the published tiers, scored by the most recent model
version other than the champion, for the backtest's champion-against-challenger comparison
(evaluation.eval_model_backtest_monthly, ranking 'challenger').

The challenger is judged out of sample where the champion is in sample and the other way round
(each trained on its own months): the backtest says which months each trained on. Rows are
compared only where the challenger predicts the same months of value as the published tiers.

The challenger's tiers have the published tiers' sizes, month by month: whatever cut a run made
the published tiers with (the tier shares, or value thresholds from the launchpad), the two
rankings are compared on tiers of equal size.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from valuetier.core.months import parse_month
from valuetier.core.tables import CHALLENGER_TABLE, ensure_tiers_tables
from valuetier.core.warehouse import transaction
from valuetier.tiering.registry import Registry
from valuetier.tiering.scoring import (
    TIERS_TABLE,
    ScoringRules,
    champion_measure,
    publish_sql,
    registered_model,
    stage_month,
)


@dataclass(frozen=True)
class ChallengerScored:
    month: str
    version: str
    customers: int


def challenger_version(registry: Registry) -> str | None:
    """The most recent registered version that is not the champion, or None."""
    champion = registry.champion_version()
    others = [v for v in registry.versions() if v != champion]
    return others[-1] if others else None


def score_challenger_month(
    con: duckdb.DuckDBPyConnection, month: str, registry: Registry, rules: ScoringRules | None = None
) -> ChallengerScored | None:
    """Replace the month's challenger scores (none without a challenger: the month's rows go)."""
    rules = rules or ScoringRules()
    start = parse_month(month)
    version = challenger_version(registry)
    ensure_tiers_tables(con)
    if version is None:
        con.execute(f"DELETE FROM {CHALLENGER_TABLE} WHERE month_start = ?", [start])
        return None
    challenger = registered_model(registry, version)
    sizes = con.execute(
        f"""SELECT count(*) FILTER (WHERE value_tier = 'high'), count(*) FILTER (WHERE value_tier IN ('high', 'mid'))
            FROM {TIERS_TABLE} WHERE month_start = ?""",
        [start],
    ).fetchone()
    stage = "challenger_stage"
    try:
        staged = stage_month(con, month, challenger, rules, champion_measure(challenger), "model", stage)
        with transaction(con):
            con.execute(f"DELETE FROM {CHALLENGER_TABLE} WHERE month_start = ?", [start])
            # The published tiers' sizes, on the challenger's ranking, for the tiered customers.
            con.execute(
                f"""INSERT INTO {CHALLENGER_TABLE}
                    SELECT s.customer_id, s.month_start, s.model_version, s.value_tier, s.predicted_value,
                           s.value_horizon_months
                    FROM ({publish_sql(stage, staged, rules, tier_sizes=sizes)}) AS s
                    SEMI JOIN {TIERS_TABLE} AS t ON t.customer_id = s.customer_id AND t.month_start = s.month_start"""
            )
    finally:
        con.execute(f"DROP TABLE IF EXISTS {stage}")
    return ChallengerScored(month, version, staged)
