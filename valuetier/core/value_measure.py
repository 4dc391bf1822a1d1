"""The value measure that tiers rank, the training labels count, the CLV spend model values and the
evaluation realises: profit contribution (fee income + net interest margin) or revenue
(transaction amount). Set once as `value_measure` (valuetier.core.parameters); `auto` is profit where
the deliveries carry margins that are not all zero, else revenue -- the same rule as the dbt macro
`uses_profit_measure`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from valuetier.core.months import parse_month
from valuetier.core.parameters import VALUE_MEASURES, business_parameters


@dataclass(frozen=True)
class ValueMeasure:
    name: str  # profit or revenue
    reason: str  # why: configured, or what auto found

    @property
    def monthly_column(self) -> str:
        """Its column in intermediate.int_transactions_by_customer_month."""
        return "profit_contribution" if self.name == "profit" else "transaction_amount"

    @property
    def transaction_column(self) -> str:
        """Its column in intermediate.int_transactions_flagged (one row per transaction)."""
        return "profit_contribution" if self.name == "profit" else "amount"

    @property
    def cumulative_column(self) -> str:
        """Its running total in marts.customer_indicators_monthly."""
        return "cumulative_profit_contribution" if self.name == "profit" else "cumulative_amount"

    @property
    def described(self) -> str:
        label = "profit contribution" if self.name == "profit" else "revenue (transaction amount)"
        return f"{label}: {self.reason}"


def resolve_value_measure(
    con: duckdb.DuckDBPyConnection, setting: str | None = None, as_of: str | None = None
) -> ValueMeasure:
    """The measure in force (for the months up to `as_of`, when given: point in time)."""
    setting = setting or business_parameters().value_measure
    if setting not in VALUE_MEASURES:
        raise ValueError(f"value measure must be one of {', '.join(VALUE_MEASURES)}, not {setting!r}")
    if setting != "auto":
        return ValueMeasure(setting, "configured")
    bound = "" if as_of is None else f"WHERE month_start <= DATE '{parse_month(as_of)}'"
    margins = con.execute(
        "SELECT count(*) FILTER (WHERE profit_contribution <> 0) "
        f"FROM intermediate.int_transactions_by_customer_month {bound}"
    ).fetchone()[0]
    if margins:
        return ValueMeasure("profit", "auto: the deliveries carry fee income or net interest margin")
    return ValueMeasure("revenue", "auto: no fee income or net interest margin in the deliveries")
