"""Scoring every live customer of a month with the champion models: tier, score, churn risk,
lifecycle stage, action segment and the top drivers of the customer's predicted value.

Customers with too little history (tenure under MIN_HISTORY_MONTHS) are valued by rule -- their
observed profit per month carried over the horizon -- and flagged tiered_by_rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from valuetier.metrics import cut_tiers
from valuetier.training import FEATURES, TrainedModels

MIN_HISTORY_MONTHS = 3


@dataclass(frozen=True)
class ScoringRules:
    high_share: float = 0.10
    mid_share: float = 0.30
    horizon_months: int = 6
    churn_risk: float = 0.30  # churn probability from which a customer counts as at risk
    trend_change: float = 0.20  # 3-month spend trend beyond which a customer is growing or declining
    dormant_months: int = 3  # months without activity from which a customer is dormant


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


def value_drivers(models: TrainedModels, features: pd.DataFrame, reference: pd.Series, top: int = 3) -> list[str]:
    """Per-customer contributions, approximated by occlusion: how much the predicted value moves
    when one feature is set to its training median. The `top` largest, as 'feature (+1.23)'."""
    base = models.predict_value(features)
    contributions = np.empty((len(features), len(FEATURES)))
    for j, name in enumerate(FEATURES):
        occluded = features.copy()
        occluded[name] = reference[name]
        contributions[:, j] = base - models.predict_value(occluded)
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :top]
    return ["; ".join(f"{FEATURES[j]} ({contributions[i, j]:+.2f})" for j in order[i]) for i in range(len(features))]


def score_customers(
    frame: pd.DataFrame, models: TrainedModels, reference: pd.Series, model_version: str, rules: ScoringRules
) -> pd.DataFrame:
    """One row per customer of `frame` (the indicator rows of one month, with CLV columns)."""
    features = frame.loc[:, list(FEATURES)].astype(float)
    predicted = models.predict_value(features)
    churn = models.predict_churn(features)
    by_rule = (frame.tenure_months < MIN_HISTORY_MONTHS).to_numpy()
    observed_months = np.maximum(frame.tenure_months.to_numpy() + 1, 1)
    rule_value = frame.cumulative_profit_contribution.astype(float).to_numpy() / observed_months * rules.horizon_months
    predicted = np.where(by_rule, rule_value, predicted)
    tier = cut_tiers(predicted, rules.high_share, rules.mid_share)
    rank = pd.Series(predicted).rank(method="average", pct=True).to_numpy()
    stage = lifecycle_stage(frame, rules)
    return pd.DataFrame(
        {
            "customer_id": frame.customer_id.to_numpy(),
            "month_start": frame.month_start.to_numpy(),
            "value_tier": tier,
            "value_score": np.round(100 * rank, 1),
            "predicted_value": np.round(predicted, 2),
            "churn_probability": np.round(churn, 4),
            "clv_12m": frame.clv_12m.to_numpy(),
            "lifecycle_stage": stage,
            "segment": action_segment(tier, stage, churn, rules),
            "rfm_segment": frame.rfm_segment.to_numpy() if "rfm_segment" in frame else None,
            "top_drivers": value_drivers(models, features, reference),
            "model_version": model_version,
            "tiered_by_rule": by_rule,
        }
    )
