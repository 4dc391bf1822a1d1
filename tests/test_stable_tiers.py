"""The stable tiers' rule (valuetier.tiering.scoring.sticky_tier_sql), month after month, against a
plain reading of it: exact tier sizes, last month's incumbents ranked the margin higher, the plain
cut kept beside it."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from valuetier.tiering.metrics import tier_counts
from valuetier.tiering.scoring import STAGE_COLUMNS, ScoringRules, publish_sql

SHARES = {"high_share": 0.10, "mid_share": 0.30}


def stage_of(ranking: np.ndarray) -> pd.DataFrame:
    n = len(ranking)
    frame = pd.DataFrame({column: [None] * n for column in STAGE_COLUMNS})
    frame["position"] = np.arange(n)
    frame["customer_id"] = [f"C{i:05d}" for i in range(n)]
    frame["month_start"] = pd.Timestamp("2024-01-01")
    frame["predicted_value"] = ranking
    frame["ranking"] = ranking
    frame["value_horizon_months"] = 6
    frame["tiered_by_rule"] = False
    frame["lifecycle_stage"] = "mature"
    frame["model_version"] = "v1"
    frame["rule_drivers"] = "rule"
    return frame.astype({"predicted_value": float, "ranking": float})


def published(stage: pd.DataFrame, rules: ScoringRules, last: pd.DataFrame | None) -> pd.DataFrame:
    with duckdb.connect() as con:
        con.register("stage", stage)
        previous = None
        if last is not None:
            con.register("last_month", last)
            previous = "SELECT customer_id, value_tier FROM last_month"
        sql = publish_sql("stage", len(stage), rules, previous=previous)
        return con.execute(f"SELECT * FROM ({sql}) ORDER BY position").df()


def by_the_rule(ranking: np.ndarray, last: dict[str, str], margin: float) -> np.ndarray:
    """The stable tiers read straight from the rule: high is the top share by place from the top
    minus the margin for last month's high; mid the next share of the rest by place minus the
    margin for last month's high and mid; ties to the better ranked."""
    n = len(ranking)
    ids = [f"C{i:05d}" for i in range(n)]
    order = np.lexsort((np.arange(n), -ranking))  # ranking desc, position
    tier_rank = np.empty(n, dtype=int)
    tier_rank[order] = np.arange(1, n + 1)
    place = (tier_rank - 1) / n
    high, mid = tier_counts(n, SHARES["high_share"], SHARES["mid_share"])
    was = np.array([last.get(c, "") for c in ids])
    high_key = place - np.where(was == "high", margin, 0)
    tiers = np.full(n, "low", dtype=object)
    tiers[np.lexsort((tier_rank, high_key))[:high]] = "high"
    mid_key = place - np.where(np.isin(was, ["high", "mid"]), margin, 0)
    rest = [i for i in np.lexsort((tier_rank, mid_key)) if tiers[i] != "high"]
    tiers[rest[: mid - high]] = "mid"
    return tiers


@pytest.mark.parametrize("margin", [0.0, 0.04, 0.2])
def test_stable_tiers_follow_the_rule_month_after_month(margin):
    rng = np.random.default_rng(3)
    rules = ScoringRules(**SHARES, incumbent_margin=margin)
    value = rng.lognormal(3, 1, 997)
    last = None
    for _ in range(6):
        value = value * rng.lognormal(0, 0.3, len(value))  # the ranking moves every month
        rows = published(stage_of(value), rules, last)
        expected = by_the_rule(
            value, {} if last is None else dict(zip(last.customer_id, last.value_tier, strict=True)), margin
        )
        assert rows.value_tier.tolist() == expected.tolist()
        high, mid = tier_counts(len(value), **SHARES)
        plain = np.array(["high"] * high + ["mid"] * (mid - high) + ["low"] * (len(value) - mid))
        assert rows.sort_values("value_score", ascending=False, kind="stable").plain_tier.tolist() == plain.tolist()
        assert rows.value_tier.value_counts().to_dict() == rows.plain_tier.value_counts().to_dict()
        kept = (rows.value_tier != rows.plain_tier).sum()
        assert kept == 0 if margin == 0 or last is None else kept > 0
        last = rows[["customer_id", "value_tier"]]


def test_an_incumbent_keeps_its_tier_within_the_margin_and_loses_it_beyond():
    rules = ScoringRules(**SHARES, incumbent_margin=0.04)
    value = np.arange(1000, 0, -1, dtype=float)  # C00000 first; the high tier is C00000..C00099
    last = pd.DataFrame({"customer_id": ["C00130", "C00150", "C00500"], "value_tier": ["high", "high", "mid"]})
    rows = published(stage_of(value), rules, last).set_index("customer_id")
    assert rows.loc["C00130", "value_tier"] == "high"  # 13 % from the top, less 4: inside the top 10 %
    assert rows.loc["C00130", "plain_tier"] == "mid"
    assert rows.loc["C00150", "value_tier"] == "mid"  # 15 % less 4 is still outside
    assert rows.loc["C00099", "value_tier"] == "mid"  # the plain cut's last high gives way to the incumbent
    assert rows.loc["C00500", "value_tier"] == "low"  # 50 % less 4: outside the top 40 %
    assert (rows.value_tier == "high").sum() == 100 and (rows.value_tier == "mid").sum() == 300


def test_value_cut_points_and_sizes_given_leave_the_plain_cut():
    value = np.arange(1000, 0, -1, dtype=float)
    last = pd.DataFrame({"customer_id": ["C00130"], "value_tier": ["high"]})
    by_value = published(stage_of(value), ScoringRules(high_value=900.0, mid_value=500.0), last)
    assert by_value.value_tier.tolist() == by_value.plain_tier.tolist()
    assert (by_value.value_tier == "high").sum() == 101
