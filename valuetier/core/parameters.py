"""Business parameters: one home, the `vars:` block of dbt_project/dbt_project.yml.

dbt reads them as vars; Python reads the same block here, so tier shares, the label horizon, RFM
weights, the value measure, anomaly thresholds and the outcome window cannot drift apart. A run
that overrides one with dbt `--vars` overrides it for dbt only: change the file instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

import yaml

from valuetier.core.settings import DBT_PROJECT_DIR

DBT_PROJECT_FILE = DBT_PROJECT_DIR / "dbt_project.yml"
VALUE_MEASURES = ("profit", "revenue", "auto")
# What the fairness review groups customers by (dbt_project/models/evaluation/eval_tier_fairness_monthly.sql).
FAIRNESS_ATTRIBUTES = ("age_band", "income_band", "risk_profile", "city")


@dataclass(frozen=True)
class BusinessParameters:
    value_measure: str
    tier_high_share: float
    tier_mid_share: float
    tier_incumbent_margin: float
    at_risk_churn_probability: float
    fairness_min_ratio: float
    fairness_false_alarm_rate: float
    fairness_min_group_customers: int
    fairness_protected_attributes: tuple[str, ...]
    fairness_reviewed_actions: tuple[str, ...]
    fairness_age_bands: tuple[int, ...]
    targeting_contact_share: float
    promotion_margin: float
    rfm_weight_recency: float
    rfm_weight_frequency: float
    rfm_weight_monetary: float
    label_horizon_months: int
    min_label_horizon_months: int
    outcome_months: int
    outcome_windows_months: tuple[int, ...]
    inactivity_months: int
    anomaly_z_threshold: float
    anomaly_min_history: int
    burst_transactions_per_day: int
    exclude_anomalous_transactions: bool
    digital_features_available: int

    def __post_init__(self) -> None:
        if self.value_measure not in VALUE_MEASURES:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.value_measure must be one of {VALUE_MEASURES}")
        if not (
            self.tier_high_share > 0 and self.tier_mid_share >= 0 and self.tier_high_share + self.tier_mid_share <= 1
        ):
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.tier_high_share + tier_mid_share must lie in (0, 1]")
        if not 0 <= self.tier_incumbent_margin < 1:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.tier_incumbent_margin must lie in [0, 1)")
        if not 0 < self.at_risk_churn_probability <= 1:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.at_risk_churn_probability must lie in (0, 1]")
        if not 0 < self.fairness_min_ratio <= 1:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.fairness_min_ratio must lie in (0, 1]")
        if not 0 < self.fairness_false_alarm_rate <= 0.5:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.fairness_false_alarm_rate must lie in (0, 0.5]")
        if list(self.fairness_age_bands) != sorted(set(self.fairness_age_bands)) or not self.fairness_age_bands:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.fairness_age_bands must be ages in rising order")
        unknown = set(self.fairness_protected_attributes) - set(FAIRNESS_ATTRIBUTES)
        if unknown:
            raise ValueError(
                f"{DBT_PROJECT_FILE}: vars.fairness_protected_attributes: {', '.join(sorted(unknown))} is none of "
                f"{', '.join(FAIRNESS_ATTRIBUTES)}"
            )
        if not 0 < self.targeting_contact_share <= 1:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.targeting_contact_share must lie in (0, 1]")
        if not 0 <= self.promotion_margin < 1:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.promotion_margin must lie in [0, 1)")
        if not 1 <= self.min_label_horizon_months <= self.label_horizon_months:
            raise ValueError(f"{DBT_PROJECT_FILE}: vars.min_label_horizon_months must be 1..label_horizon_months")
        if self.outcome_months not in self.outcome_windows_months or min(self.outcome_windows_months) < 1:
            raise ValueError(
                f"{DBT_PROJECT_FILE}: vars.outcome_windows_months must be months >= 1 and hold outcome_months"
            )

    def age_band_names(self) -> list[str]:
        """The fairness review's age bands, youngest first, as eval_tier_fairness_monthly names them."""
        bands = self.fairness_age_bands
        inner = [f"{low}-{high - 1}" for low, high in zip(bands, bands[1:], strict=False)]
        return [f"under {bands[0]}", *inner, f"{bands[-1]} and over"]

    def rfm_weighted(self, recency, frequency, monetary):
        """The weighted RFM score (1-5 scale) that the rule baseline ranks, as customer_tiers_rfm does."""
        total = self.rfm_weight_recency + self.rfm_weight_frequency + self.rfm_weight_monetary
        return (
            self.rfm_weight_recency * recency
            + self.rfm_weight_frequency * frequency
            + self.rfm_weight_monetary * monetary
        ) / total


@cache
def business_parameters() -> BusinessParameters:
    variables = yaml.safe_load(DBT_PROJECT_FILE.read_text())["vars"]
    missing = [f.name for f in fields(BusinessParameters) if f.name not in variables]
    if missing:
        raise ValueError(f"{DBT_PROJECT_FILE}: vars lacks {', '.join(missing)}")
    cast = {
        "str": str,
        "float": float,
        "int": int,
        "bool": bool,
        "tuple[int, ...]": lambda v: tuple(map(int, v)),
        "tuple[str, ...]": lambda v: tuple(map(str, v)),
    }
    return BusinessParameters(**{f.name: cast[f.type](variables[f.name]) for f in fields(BusinessParameters)})
