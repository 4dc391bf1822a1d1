"""CLV per live customer and month, from the warehouse: calibration data in SQL, models in clv.py.

Point in time: the calibration window of month M ends at M's last day; nothing later is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from valuetier.clv.model import WEEKS_PER_YEAR, ClvFitError, customer_lifetime_value, expected_purchases, fit_bgnbd
from valuetier.core.months import add_months, month_end, parse_month
from valuetier.core.tables import CLV_COLUMNS, CLV_TABLE, create_table
from valuetier.core.value_measure import ValueMeasure, resolve_value_measure
from valuetier.core.warehouse import transaction


@dataclass(frozen=True)
class ClvMonth:
    month: str
    customers: int
    repeat_customers: int
    params: dict[str, float]
    total_clv_12m: float | None  # None when the models could not be fitted
    value_measure: str = "profit"


def calibration_data(
    con: duckdb.DuckDBPyConnection, month: str, calibration_months: int, measure: ValueMeasure | None = None
) -> pd.DataFrame:
    """One row per live customer of the month: x, t_x and T in weeks, mean value of repeat purchases.

    A purchase is a day with a transaction that is not flagged anomalous; its value is the day's
    value in the value measure (profit contribution, or revenue where the deliveries carry no
    margins). Customers without a purchase in the window get x = t_x = 0 and T = the
    window's length. The window's purchase days are added up from their monthly summaries
    (intermediate.int_purchase_days_by_customer_month): months do not share days.
    """
    first = parse_month(add_months(month, 1 - calibration_months))
    last_day = month_end(month)
    window_weeks = ((last_day - first).days + 1) / 7.0
    measure = measure or resolve_value_measure(con, as_of=month)
    value = measure.transaction_column
    return con.execute(
        f"""
        WITH per_customer AS (
            SELECT customer_id, min(first_purchase_day) AS first_day, max(last_purchase_day) AS last_day,
                   sum(purchase_days) - 1 AS x,
                   (sum({value}) - arg_min(first_day_{value}, first_purchase_day)) / nullif(sum(purchase_days) - 1, 0)
                       AS mean_repeat_value
            FROM intermediate.int_purchase_days_by_customer_month
            WHERE month_start BETWEEN DATE '{first}' AND DATE '{parse_month(month)}'
            GROUP BY 1
        )
        SELECT i.customer_id,
               coalesce(p.x, 0)::DOUBLE AS x,
               coalesce(date_diff('day', p.first_day, p.last_day) / 7.0, 0)::DOUBLE AS t_x,
               coalesce((date_diff('day', p.first_day, DATE '{last_day}') + 1) / 7.0, {window_weeks})::DOUBLE AS T,
               coalesce(p.mean_repeat_value, 0)::DOUBLE AS mean_repeat_value
        FROM marts.customer_indicators_monthly i
        LEFT JOIN per_customer p USING (customer_id)
        WHERE i.month_start = DATE '{parse_month(month)}'
        ORDER BY i.customer_id
        """
    ).df()


def estimate_month(con: duckdb.DuckDBPyConnection, month: str, calibration_months: int = 24) -> ClvMonth:
    """Fit BG/NBD and Gamma-Gamma on the month's calibration window; replace the month's rows.

    A window the models cannot be fitted on (too few repeat customers) still gets one row per live
    customer, with null values and the reason in model_params."""
    measure = resolve_value_measure(con, as_of=month)
    data = calibration_data(con, month, calibration_months, measure)
    n = len(data)
    create_table(con, CLV_TABLE, CLV_COLUMNS)
    try:
        result = customer_lifetime_value(data.x, data.t_x, data["T"], data.mean_repeat_value)
    except ClvFitError as exc:
        result, params = None, {"not_fitted": str(exc)}
        purchases = alive = value = clv = np.full(n, np.nan)
    else:
        params = {f"bgnbd_{k}": round(v, 6) for k, v in result.bgnbd.__dict__.items()}
        params |= {f"gamma_gamma_{k}": round(v, 6) for k, v in result.gamma_gamma.__dict__.items()}
        purchases, alive = result.expected_purchases_12m, result.probability_alive
        value, clv = result.expected_value_per_purchase, result.clv_12m
    frame = pd.DataFrame(
        {
            "customer_id": data.customer_id,
            "month_start": parse_month(month),
            "repeat_purchases_calibration": data.x.astype("int32"),
            "expected_purchases_12m": np.round(purchases, 6),
            "probability_alive": np.round(alive, 6),
            "expected_value_per_purchase": np.round(value, 6),
            "clv_12m": np.round(clv, 2),
        }
    )
    with transaction(con):
        con.execute(f"DELETE FROM {CLV_TABLE} WHERE month_start = ?", [parse_month(month)])
        con.register("_clv", frame)
        # The month's parameters are one value: a constant of the INSERT, not a column built row by row.
        con.execute(
            f"INSERT INTO {CLV_TABLE} SELECT *, ? AS model_params FROM _clv ORDER BY customer_id", [str(params)]
        )
        con.unregister("_clv")
    total = float(np.nansum(np.round(clv, 2))) if result is not None else None
    return ClvMonth(month, n, int((data.x > 0).sum()), params, total, measure.name)


def holdout_purchases(
    con: duckdb.DuckDBPyConnection, month: str, horizon_months: int = 12, calibration_months: int = 24
) -> tuple[float, float]:
    """(predicted, realised) repeat purchase days in the horizon after `month`, summed over its live
    customers. Reads data after `month` on purpose: this is the model's holdout evaluation."""
    data = calibration_data(con, month, calibration_months)
    params = fit_bgnbd(data.x, data.t_x, data["T"])
    horizon_weeks = horizon_months * WEEKS_PER_YEAR / 12
    predicted = float(expected_purchases(params, horizon_weeks, data.x, data.t_x, data["T"]).sum())
    start, end = parse_month(add_months(month, 1)), parse_month(add_months(month, horizon_months))
    con.register("_customers", data[["customer_id"]])
    realised = con.execute(
        f"""SELECT count(DISTINCT (customer_id, CAST(booked_at AS DATE)))
            FROM intermediate.int_transactions_flagged
            WHERE NOT is_anomalous AND month_start BETWEEN DATE '{start}' AND DATE '{end}'
              AND customer_id IN (SELECT customer_id FROM _customers)"""
    ).fetchall()[0][0]
    con.unregister("_customers")
    return predicted, float(realised)
