"""Whether a newly trained model earns the champion's place, judged on one holdout.

A model replaces the rules it would replace only when it beats them: its predicted high tier must
capture more of the holdout's realised value than the weighted-RFM ranking and the CLV ranking do,
by the business parameter `promotion_margin` (dbt_project.yml), and its normalised Gini must be
higher than both. Against a current champion it must be no worse beyond the noise of the holdout:
the difference in captured value is bootstrapped over customers, and a challenger whose whole
interval lies below zero is clearly worse. Otherwise the champion stays; with no champion, the
tiers rank by the better baseline (`better_baseline`).

The decision is a record for the model card: every ranking compared with its figures, the margin,
the noise band and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from valuetier.tiering.metrics import cut_tiers, normalized_gini

BASELINES = ("rfm_weighted", "clv_12m")  # the rankings a model must beat: the seed's weighted RFM and the CLV ranking
CAPTURE = "high_tier_value_capture"
GINI = "normalized_gini"


@dataclass(frozen=True)
class PromotionRules:
    margin: float  # high-tier value capture a model must add over each baseline (promotion_margin)
    high_share: float
    mid_share: float
    bootstrap_rounds: int = 200
    confidence: float = 0.95
    seed: int = 42


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    better_baseline: str  # of BASELINES, the one with the larger capture: what tiers rank without a champion
    why: str
    record: dict  # for the model card's `promotion` field


def capture(scores: np.ndarray, realised: np.ndarray, high_share: float, mid_share: float) -> float:
    """Share of all realised value held by the customers the scores put in the high tier."""
    total = realised.sum()
    return float(realised[cut_tiers(scores, high_share, mid_share) == "high"].sum() / total) if total else 0.0


def capture_difference_interval(
    challenger: np.ndarray, champion: np.ndarray, realised: np.ndarray, rules: PromotionRules
) -> tuple[float, float]:
    """The bootstrap interval (over customers, resampled with replacement) of the challenger's
    capture minus the champion's, on the same holdout."""
    rng = np.random.default_rng(rules.seed)
    n = len(realised)
    top = max(round(rules.high_share * n), 1)
    challenger, champion = np.nan_to_num(challenger, nan=-np.inf), np.nan_to_num(champion, nan=-np.inf)

    def top_capture(scores: np.ndarray, value: np.ndarray) -> float:
        # The high tier's share by partition, not a full sort: linear in the customers, each round.
        total = value.sum()
        return float(value[np.argpartition(-scores, top - 1)[:top]].sum() / total) if total else 0.0

    differences = []
    for _ in range(rules.bootstrap_rounds):
        pick = rng.integers(0, n, n)
        value = realised[pick]
        differences.append(top_capture(challenger[pick], value) - top_capture(champion[pick], value))
    tail = (1 - rules.confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return round(float(low), 4), round(float(high), 4)


def decide(
    realised,
    rankings: dict[str, np.ndarray],
    rules: PromotionRules,
    champion: tuple[str, np.ndarray] | None = None,
) -> Promotion:
    """`rankings` holds the model's scores ('model') and each baseline's, on the holdout's customers;
    `champion` the current champion's version and scores on the same customers, if there is one."""
    realised = np.asarray(realised, dtype=float)
    scores = {name: np.asarray(values, dtype=float) for name, values in rankings.items()}
    if champion is not None:
        scores["champion"] = np.asarray(champion[1], dtype=float)
    figures = {
        name: {
            CAPTURE: round(capture(values, realised, rules.high_share, rules.mid_share), 4),
            GINI: round(float(normalized_gini(values, realised)), 4),
        }
        for name, values in scores.items()
    }
    model = figures["model"]
    failures = []
    for baseline in BASELINES:
        wanted = round(figures[baseline][CAPTURE] + rules.margin, 4)
        if model[CAPTURE] < wanted:
            failures.append(
                f"captures {model[CAPTURE]:.1%} of holdout value, under {baseline}'s {figures[baseline][CAPTURE]:.1%} "
                f"+ the margin {rules.margin:.1%}"
            )
        if not model[GINI] > figures[baseline][GINI]:
            failures.append(
                f"normalised Gini {model[GINI]:.3f} does not beat {baseline}'s {figures[baseline][GINI]:.3f}"
            )
    band = None
    if champion is not None:
        band = capture_difference_interval(scores["model"], scores["champion"], realised, rules)
        if band[1] < 0:
            failures.append(
                f"captures {model[CAPTURE]:.1%} against the champion {champion[0]}'s "
                f"{figures['champion'][CAPTURE]:.1%}: "
                f"worse beyond the holdout's noise ({rules.confidence:.0%} interval of the difference {band[0]:+.1%} "
                f"to {band[1]:+.1%})"
            )
    better = max(BASELINES, key=lambda b: (figures[b][CAPTURE], figures[b][GINI]))
    promoted = not failures
    if promoted:
        why = (
            f"promoted: captures {model[CAPTURE]:.1%} of holdout value (weighted RFM "
            f"{figures['rfm_weighted'][CAPTURE]:.1%}, CLV ranking {figures['clv_12m'][CAPTURE]:.1%}, margin "
            f"{rules.margin:.1%}) with normalised Gini {model[GINI]:.3f}"
            + (
                f"; against the champion {champion[0]} ({figures['champion'][CAPTURE]:.1%}) the difference lies in "
                f"{band[0]:+.1%}..{band[1]:+.1%}"
                if champion is not None
                else "; no champion before it"
            )
        )
    else:
        stays = f"the champion {champion[0]} stays" if champion is not None else f"tiers rank by {better} (no champion)"
        why = "not promoted: the model " + "; ".join(failures) + f". {stays}"
    record = {
        "promoted": promoted,
        "rankings": figures,
        "margin": rules.margin,
        "champion": champion[0] if champion is not None else None,
        "champion_difference_interval": list(band) if band else None,
        "confidence": rules.confidence,
        "bootstrap_rounds": rules.bootstrap_rounds,
        "better_baseline": better,
        "why": why,
    }
    return Promotion(promoted, better, why, record)
