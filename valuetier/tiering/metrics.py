"""How well a ranking of customers tiers them: against the tiers their realised value gives them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score

TIERS = ("high", "mid", "low")


def tier_counts(customers: int, high_share: float, mid_share: float) -> tuple[int, int]:
    """(last rank in the high tier, last rank in the mid tier) of `customers` ranked highest first."""
    if not (high_share > 0 and mid_share >= 0 and high_share + mid_share <= 1):
        raise ValueError(f"tier shares must be positive and add up to at most 1: {high_share}, {mid_share}")
    return round(high_share * customers), round((high_share + mid_share) * customers)


def cut_tiers(scores: np.ndarray, high_share: float, mid_share: float) -> np.ndarray:
    """high / mid / low by rank of score (highest first): exact shares, ties broken by position so
    the same input always gives the same tiers."""
    scores = np.asarray(scores, dtype=float)
    high, mid = tier_counts(len(scores), high_share, mid_share)
    n = len(scores)
    order = np.lexsort((np.arange(n), -np.nan_to_num(scores, nan=-np.inf)))
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(1, n + 1)
    tiers = np.full(n, "low", dtype=object)
    tiers[rank <= mid] = "mid"
    tiers[rank <= high] = "high"
    return tiers


@dataclass(frozen=True)
class RankingReport:
    """A ranking judged against realised value on the same customers."""

    per_tier: dict[str, dict[str, float]]  # tier -> precision, recall, f1
    high_tier_value_capture: float  # share of all realised value held by the predicted high tier
    spearman: float

    def as_dict(self) -> dict:
        return {
            "per_tier": self.per_tier,
            "high_tier_value_capture": self.high_tier_value_capture,
            "spearman": self.spearman,
        }


def ranking_report(scores, realised, high_share: float, mid_share: float) -> RankingReport:
    scores, realised = np.asarray(scores, dtype=float), np.asarray(realised, dtype=float)
    predicted, actual = cut_tiers(scores, high_share, mid_share), cut_tiers(realised, high_share, mid_share)
    per_tier = {}
    for tier in TIERS:
        hit = np.sum((predicted == tier) & (actual == tier))
        precision = hit / max(np.sum(predicted == tier), 1)
        recall = hit / max(np.sum(actual == tier), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_tier[tier] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
        }
    total = realised.sum()
    capture = float(realised[predicted == "high"].sum() / total) if total else 0.0
    rho = stats.spearmanr(scores, realised).statistic
    return RankingReport(per_tier, round(capture, 4), round(float(rho), 4))


def churn_report(probability, churned) -> dict[str, float]:
    """Discrimination (ROC AUC) and calibration (Brier score, lower is better) of churn probabilities."""
    churned = np.asarray(churned, dtype=int)
    if churned.min() == churned.max():
        return {"auc": float("nan"), "brier": round(float(brier_score_loss(churned, probability)), 4)}
    return {
        "auc": round(float(roc_auc_score(churned, probability)), 4),
        "brier": round(float(brier_score_loss(churned, probability)), 4),
    }


def normalized_gini(score, realised) -> float:
    """The Gini of `realised` ordered by `score` (highest first) over the Gini of the best order:
    1 for a perfect ranking, 0 for one no better than random, -1 for the reverse. Tied scores
    share their average rank (a straight segment of the Lorenz curve), so ties cannot flatter."""

    def gini(order_by):
        rank = stats.rankdata(-np.asarray(order_by, dtype=float), method="average")
        n, total = len(realised), realised.sum()
        area = float(np.sum(realised * (n - rank + 0.5)) / (n * total))
        return 2 * area - 1

    realised = np.asarray(realised, dtype=float)
    best = gini(realised)
    return gini(score) / best if best else float("nan")
