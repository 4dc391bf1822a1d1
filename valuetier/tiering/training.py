"""Point-in-time training sets and the tiering models (value regression, calibrated churn).

For a training month M the features are the customer's indicators at M (and CLV at M); the labels
come from the horizon after M: realised value (the value measure summed over months M+1..M+h) and
churn (no transaction in the horizon, or no longer live at its end). Labels read later months on
purpose; features never do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from valuetier.core.value_measure import ValueMeasure, resolve_value_measure
from valuetier.core.warehouse import query_batches

FEATURES: tuple[str, ...] = (
    "tenure_months",
    "recency_days",
    "frequency_12m",
    "monetary_12m",
    "profit_contribution_12m",
    "average_ticket_12m",
    "largest_transaction_12m",
    "repeat_purchase_month_share_12m",
    "purchase_month_ratio",
    "cumulative_amount",
    "cumulative_profit_contribution",
    "assets_under_management",
    "product_count",
    "holds_savings",
    "holds_term_deposit",
    "holds_fund",
    "holds_insurance",
    "holds_credit_card",
    "holds_loan",
    "holds_wealth",
    "spend_change_mom",
    "spend_trend_3m",
    "transactions_in_month",
    "amount_in_month",
    "logins_in_month",
    "logins_3m",
    "feature_usage_rate_3m",
    "interactions_3m",
    "median_response_hours_12m",
    "complaints_12m",
    "complaint_satisfaction_12m",
    "last_nps_score",
    "retention_streak_months",
    "months_since_last_activity",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "clv_12m",
    "expected_purchases_12m",
    "probability_alive",
)
CLV_FEATURES = ("clv_12m", "expected_purchases_12m", "probability_alive")


class TrainingDataError(ValueError):
    """No usable training data: the message says which months and why."""


@dataclass(frozen=True)
class TrainingSet:
    frame: pd.DataFrame  # customer_id, month_start, FEATURES..., realised_value, churned
    value_measure: str
    value_measure_reason: str
    horizon_months: int
    available_rows: int  # customer-months in the training months, before any sampling

    @property
    def months(self) -> list:
        return sorted(self.frame.month_start.unique())

    def features(self) -> pd.DataFrame:
        return self.frame.loc[:, list(FEATURES)]


def feature_columns_sql() -> str:
    """FEATURES as DOUBLE columns, from indicators aliased `i` and CLV aliased `c` (same month)."""
    return ", ".join(f"CAST({'c' if f in CLV_FEATURES else 'i'}.{f} AS DOUBLE) AS {f}" for f in FEATURES)


def labelled_months(con: duckdb.DuckDBPyConnection, horizon_months: int) -> list[str]:
    """Indicator months whose whole label horizon lies within the processed months (YYYY-MM)."""
    rows = con.execute(
        """SELECT strftime(m.month_start, '%Y-%m') FROM marts.customer_indicators_monthly i
           JOIN (SELECT month_start, row_number() OVER (ORDER BY month_start) AS k FROM intermediate.int_months) m
             USING (month_start)
           WHERE m.k + ? <= (SELECT count(*) FROM intermediate.int_months)
           GROUP BY 1 ORDER BY 1""",
        [horizon_months],
    ).fetchall()
    return [r[0] for r in rows]


def build_training_set(
    con: duckdb.DuckDBPyConnection,
    months: list[str],
    horizon_months: int = 6,
    value_measure: str | None = None,
    max_rows: int | None = None,
    seed: int = 0,
) -> TrainingSet:
    """Stack the given training months: features at M, labels from M+1..M+horizon (in the value
    measure: profit or revenue; None is the business parameter). With max_rows, the same share of
    each month's customers is sampled in the warehouse (seeded), so a large bank's training set is
    never read whole."""
    (sql, params), measure, available = _training_set_query(con, months, horizon_months, value_measure, max_rows, seed)
    frame = con.execute(sql, params).df()
    if frame.empty:
        raise TrainingDataError(f"no live customers in the training months {', '.join(months)}")
    return TrainingSet(frame, measure.name, measure.reason, horizon_months, available)


def holdout_batches(
    con: duckdb.DuckDBPyConnection, month: str, horizon_months: int, value_measure: str, batch_size: int
) -> Iterator[pd.DataFrame]:
    """A holdout month's rows as build_training_set gives them (every live customer with features
    and labels), in customer order, `batch_size` at a time: a month's features are never held whole."""
    (sql, params), _, _ = _training_set_query(con, [month], horizon_months, value_measure, None, 0)
    return query_batches(con, sql, params, batch_size)


def _training_set_query(
    con: duckdb.DuckDBPyConnection,
    months: list[str],
    horizon_months: int,
    value_measure: str | None,
    max_rows: int | None,
    seed: int,
) -> tuple[tuple[str, list], ValueMeasure, int]:
    """The training set's (query, parameters), its value measure and the customer-months available;
    months without a complete label horizon are refused."""
    measure = resolve_value_measure(con, value_measure)
    ready = set(labelled_months(con, horizon_months))
    unready = [m for m in months if m not in ready]
    if unready:
        raise TrainingDataError(
            f"no complete {horizon_months}-month label horizon (or no indicators) for {', '.join(unready)}"
        )
    if not months:
        raise TrainingDataError("no training months given")
    in_months = "strftime(month_start, '%Y-%m') IN (SELECT unnest(?::VARCHAR[]))"
    available = con.execute(
        f"SELECT count(*) FROM marts.customer_indicators_monthly WHERE {in_months}", [list(months)]
    ).fetchone()[0]
    share = 1.0 if not max_rows or available <= max_rows else max_rows / available
    sql = f"""
        WITH months AS (
            SELECT month_start, row_number() OVER (ORDER BY month_start) AS k FROM intermediate.int_months
        ),
        sampled AS (
            SELECT customer_id, month_start FROM marts.customer_indicators_monthly
            WHERE {in_months}
            QUALIFY row_number() OVER (PARTITION BY month_start ORDER BY hash(customer_id, {int(seed)}), customer_id)
                    <= ceil({share!r} * count(*) OVER (PARTITION BY month_start))
        ),
        base AS (
            SELECT i.customer_id, i.month_start, h.month_start AS horizon_end, {feature_columns_sql()}
            FROM marts.customer_indicators_monthly i
            JOIN sampled USING (customer_id, month_start)
            JOIN months m USING (month_start)
            JOIN months h ON h.k = m.k + {int(horizon_months)}
            LEFT JOIN marts.customer_clv_monthly c USING (customer_id, month_start)
        ),
        outcome AS (
            SELECT b.customer_id, b.month_start,
                   coalesce(sum(t.{measure.monthly_column}), 0) AS realised_value,
                   coalesce(sum(t.transaction_count), 0) AS horizon_transactions
            FROM base b
            LEFT JOIN intermediate.int_transactions_by_customer_month t
              ON t.customer_id = b.customer_id AND t.month_start > b.month_start AND t.month_start <= b.horizon_end
            GROUP BY 1, 2
        )
        SELECT b.* EXCLUDE (horizon_end), CAST(o.realised_value AS DOUBLE) AS realised_value,
               (o.horizon_transactions = 0 OR NOT EXISTS (
                   SELECT 1 FROM marts.customer_indicators_monthly e
                   WHERE e.customer_id = b.customer_id AND e.month_start = b.horizon_end)) AS churned
        FROM base b JOIN outcome o USING (customer_id, month_start)
        ORDER BY b.month_start, b.customer_id
        """
    return (sql, [list(months)]), measure, available


def time_ordered_folds(month_of_row: pd.Series, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation that respects time: each fold validates on one month and trains on the
    months before it (the last `folds` months validate)."""
    months = sorted(month_of_row.unique())
    if len(months) < 2:
        raise TrainingDataError("time-ordered cross-validation needs at least two training months")
    values = month_of_row.to_numpy()
    return [
        (np.flatnonzero(values < month), np.flatnonzero(values == month))
        for month in months[-min(folds, len(months) - 1) :]
    ]


@dataclass(frozen=True)
class SearchSpace:
    """Hyperparameters tried by the time-ordered grid search (one config object, shown in the UI)."""

    learning_rate: tuple[float, ...] = (0.05, 0.1)
    max_leaf_nodes: tuple[int, ...] = (15, 31)
    min_samples_leaf: tuple[int, ...] = (20, 100)
    max_iter: int = 200
    folds: int = 3
    # Rows fitted at most, sampled evenly from every training month: past a few hundred thousand
    # customer-months the holdout barely moves, while every fit's cost grows with the rows.
    max_rows: int = 300_000
    # Rows the grid search fits its candidates on (a sample of the fitted rows, evenly from every
    # month); the winner is then refit on all max_rows. Ranking candidates needs far fewer rows
    # than the final fit, and the search is most of training's cost: 48 fits against 2.
    max_search_rows: int = 100_000

    def grid(self) -> dict[str, list]:
        """Parameter grid for the boosting step of the model pipelines."""
        return {
            "model__learning_rate": list(self.learning_rate),
            "model__max_leaf_nodes": list(self.max_leaf_nodes),
            "model__min_samples_leaf": list(self.min_samples_leaf),
        }


class EmptyFeaturesToConstant(BaseEstimator, TransformerMixin):
    """Features empty in every row seen at fit (say, a 3-month trend in a bank's first months) carry
    no information, and scikit-learn's binner fails on them: they become a constant, which trees
    ignore. Remembered at fit, so scoring treats the same columns the same way."""

    def fit(self, x: pd.DataFrame, y=None):
        self.empty_ = list(x.columns[x.isna().all()])
        return self

    def transform(self, x: pd.DataFrame) -> pd.DataFrame:
        return x.assign(**{name: 0.0 for name in self.empty_}) if self.empty_ else x


def _boosting(estimator) -> Pipeline:
    return Pipeline([("empty_features", EmptyFeaturesToConstant()), ("model", estimator)])


@dataclass
class TrainedModels:
    value_model: Pipeline
    # One boosted classifier refit on every training month; its log loss makes its probabilities
    # calibrated (on the demo's holdout, Brier 0.064 against 0.0665 for the three isotonic-calibrated
    # fold models that earlier versions averaged, which still load: CalibratedClassifierCV).
    churn_model: Pipeline
    value_params: dict
    churn_params: dict
    cv_scores: dict = field(default_factory=dict)
    feature_medians: dict = field(default_factory=dict)  # the reference point of per-customer drivers
    rows: dict = field(default_factory=dict)  # training rows available, fitted and searched (SearchSpace)

    def predict_value(self, features: pd.DataFrame) -> np.ndarray:
        return self.value_model.predict(features.loc[:, list(FEATURES)])

    def predict_churn(self, features: pd.DataFrame) -> np.ndarray:
        return self.churn_model.predict_proba(features.loc[:, list(FEATURES)])[:, 1]


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most max_rows rows, the same share of every month (seeded), in the frame's order."""
    if len(frame) <= max_rows:
        return frame
    share = max_rows / len(frame)
    kept = frame.groupby("month_start", group_keys=False).sample(frac=share, random_state=seed).index
    return frame.loc[frame.index.isin(kept)].reset_index(drop=True)


def _search(estimator, space: SearchSpace, x: pd.DataFrame, y: np.ndarray, folds, scoring: str) -> GridSearchCV:
    return GridSearchCV(estimator, space.grid(), cv=folds, scoring=scoring, n_jobs=1, refit=False).fit(x, y)


def _best(search: GridSearchCV, estimator: Pipeline, x: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """The search's best candidate, refit on every fitted row."""
    return clone(estimator).set_params(**search.best_params_).fit(x, y)


def train_models(training: TrainingSet, space: SearchSpace, seed: int) -> TrainedModels:
    """Value: gradient boosting with a Poisson loss (non-negative, heavy-tailed value, mean-seeking);
    churn: gradient boosting with the log loss. Both tuned by time-ordered grid search (on at most
    max_search_rows of the rows) and the winners refit on every fitted row."""
    frame = sample_rows(training.frame, space.max_rows, seed)
    searched = sample_rows(frame, space.max_search_rows, seed)
    x, search_x = frame.loc[:, list(FEATURES)], searched.loc[:, list(FEATURES)]
    folds = time_ordered_folds(searched.month_start, space.folds)
    # Poisson needs non-negative targets; a net refund over a horizon counts as no value.
    value_target = np.clip(frame.realised_value.to_numpy(), 0, None)
    search_value_target = np.clip(searched.realised_value.to_numpy(), 0, None)
    value_estimator = _boosting(
        HistGradientBoostingRegressor(loss="poisson", max_iter=space.max_iter, random_state=seed)
    )
    churn_estimator = _boosting(HistGradientBoostingClassifier(max_iter=space.max_iter, random_state=seed))
    value_search = _search(value_estimator, space, search_x, search_value_target, folds, "neg_mean_poisson_deviance")
    churn_search = _search(
        churn_estimator, space, search_x, searched.churned.astype(int).to_numpy(), folds, "neg_log_loss"
    )
    return TrainedModels(
        value_model=_best(value_search, value_estimator, x, value_target),
        churn_model=_best(churn_search, churn_estimator, x, frame.churned.astype(int).to_numpy()),
        value_params=value_search.best_params_,
        churn_params=churn_search.best_params_,
        cv_scores={
            "value_neg_poisson_deviance": round(float(value_search.best_score_), 6),
            "churn_neg_log_loss": round(float(churn_search.best_score_), 6),
        },
        feature_medians={name: float(value) for name, value in x.median().items()},
        rows={"available": training.available_rows, "fitted": len(frame), "searched": len(searched)},
    )
