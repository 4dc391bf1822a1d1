"""Campaign uplift: how much more likely a contact makes a customer take up an offered product,
learnt from the bank's A/B campaigns, for every customer and product of a month.

A two-model (T-learner) estimate: one gradient-boosted classifier learns conversion among the
treated contacts, one among the control group (selected, not contacted); a customer's uplift for
a product is the first's probability minus the second's. Conversion is measured as the A/B
evaluation measures it (dbt's intermediate.int_ab_contact_outcomes, which is built after the tiers,
too late for this step: so read here from staging): the customer opened an account of the offered
product between the send and the outcome window's end (var outcome_months).

Point in time: the model of month M learns only from contacts whose outcome window had closed by
M's end, on the features of the month before each send (the month whose tiers the campaign
selected from): the indicators, CLV and the risk profile as delivered by then. It scores month M's
customers on month M's features. Labels are the only thing read past a contact's month, and never
past M.

A bank without A/B campaigns (no control groups), without an accounts delivery, or too early in its
history to have enough finished contacts gets no model for the month, and says why: the CRM then
orders its contacts by the tier rule (valuetier.application.playbook).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import duckdb
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from valuetier.core.contract import PRODUCT_TYPES, SOURCES
from valuetier.core.months import add_months, parse_month
from valuetier.core.tables import CLV_TABLE, INDICATORS_TABLE, UPLIFT_COLUMNS, UPLIFT_TABLE, create_table
from valuetier.core.warehouse import append_frame, query_batches, table_exists, transaction
from valuetier.tiering.scoring import ScoringRules
from valuetier.tiering.training import FEATURES, feature_columns_sql
from valuetier.tiering.tree_ensemble import TreeEnsemble

# The delivered risk profile as a level (the contract's codes, most cautious first): it is what
# drives a customer's appetite for a product in most banks' data (and the demo's), and none of the
# indicators carries it.
RISK_LEVELS = SOURCES["customers"].column("risk_profile").allowed
UPLIFT_FEATURES = (*FEATURES, "risk_level")
# Fewer finished contacts than this in either group, or no conversion in one of them, and the two
# classifiers would learn noise: the month gets no model.
MIN_CONTACTS_PER_GROUP = 300
SEED = 20261206
# The latest finished contacts a month's model learns from: every one at a small bank (the demo has
# 65,000 after three years), the latest few months' at a large one, so that a month's training
# stays seconds at a million customers (150,000 contacts a month).
MAX_TRAINING_CONTACTS = 250_000
# Small, shallow trees with large leaves: conversions are rare (a few in a hundred) and the control
# groups small, so a control model with the tiering model's freedom learns noise, and the difference
# of two noisy models ranks badly. On the demo, 40 trees of 5 leaves of at least 300 contacts rank
# the true uplift at a Spearman correlation of 0.69, 150 trees of 15 leaves at 0.52 (their top tenth:
# 1.58x and 1.43x random within tier; bench/results/uplift-targeting.md).
CLASSIFIER_PARAMS = {"max_iter": 40, "learning_rate": 0.05, "max_leaf_nodes": 5, "min_samples_leaf": 300}


@dataclass(frozen=True)
class UpliftResult:
    month: str
    customers: int  # customers scored (0 without a model)
    training_contacts: int
    treated_conversion: float | None
    control_conversion: float | None
    basis: str  # 'uplift', or why the month has no model
    seconds: float


def _risk_level_sql(alias: str) -> str:
    return f"CASE {alias}.risk_profile " + " ".join(f"WHEN '{r}' THEN {i}" for i, r in enumerate(RISK_LEVELS)) + " END"


def _versions_sql() -> str:
    """Each delivered version of a customer record, valid from its delivery month to the next one's."""
    return """SELECT customer_id, delivery_month, risk_profile,
                     lead(delivery_month) OVER (PARTITION BY customer_id ORDER BY delivery_month) AS next_delivery
              FROM staging.stg_customers"""


def _as_delivered(alias: str, month_column: str) -> str:
    return (
        f"v.customer_id = {alias}.customer_id AND v.delivery_month <= {month_column} "
        f"AND (v.next_delivery IS NULL OR v.next_delivery > {month_column})"
    )


def training_contacts(
    con: duckdb.DuckDBPyConnection, month: str, outcome_months: int, max_contacts: int = MAX_TRAINING_CONTACTS
) -> pd.DataFrame:
    """The treated and control contacts of A/B campaigns whose outcome window closed by the end of
    `month` (the `max_contacts` latest sent), with the features of the month before each send and
    whether it converted."""
    if not table_exists(con, "staging", "stg_campaign_contacts") or not table_exists(con, "staging", "stg_accounts"):
        return pd.DataFrame()
    end = parse_month(add_months(month, 1))
    return con.execute(
        f"""
        WITH ab_campaigns AS (
            SELECT campaign_id FROM staging.stg_campaign_contacts
            GROUP BY campaign_id HAVING count(*) FILTER (WHERE ab_group = 'control') > 0),
        contacts AS (
            SELECT c.contact_id, c.customer_id, c.product_offered, c.ab_group = 'treatment' AS treated, c.sent_at,
                   CAST(date_trunc('month', c.sent_at) - INTERVAL 1 MONTH AS DATE) AS month_start,
                   CAST(date_trunc('month', c.sent_at) + INTERVAL ({outcome_months}) MONTH AS DATE) AS window_end
            FROM staging.stg_campaign_contacts AS c
            JOIN ab_campaigns USING (campaign_id)
            WHERE c.ab_group IN ('treatment', 'control')),
        finished AS (
            SELECT * FROM contacts WHERE window_end <= $end
            QUALIFY row_number() OVER (ORDER BY sent_at DESC, contact_id DESC) <= $cap),
        openings AS (
            SELECT DISTINCT f.contact_id
            FROM finished AS f
            JOIN staging.stg_accounts AS a
              ON a.customer_id = f.customer_id AND a.product_type = f.product_offered
             AND a.opened_at >= CAST(f.sent_at AS DATE) AND a.opened_at < f.window_end),
        versions AS ({_versions_sql()})
        SELECT f.contact_id, f.customer_id, f.month_start, f.product_offered, f.treated,
               o.contact_id IS NOT NULL AS converted,
               {feature_columns_sql()}, CAST({_risk_level_sql("v")} AS DOUBLE) AS risk_level
        FROM finished AS f
        JOIN {INDICATORS_TABLE} AS i ON i.customer_id = f.customer_id AND i.month_start = f.month_start
        LEFT JOIN {CLV_TABLE} AS c ON c.customer_id = f.customer_id AND c.month_start = f.month_start
        LEFT JOIN versions AS v ON {_as_delivered("f", "f.month_start")}
        LEFT JOIN openings AS o ON o.contact_id = f.contact_id
        ORDER BY f.contact_id""",
        {"end": end, "cap": max_contacts},
    ).df()


def month_customers(con: duckdb.DuckDBPyConnection, month: str, batch_size: int) -> Iterator[pd.DataFrame]:
    """The month's customers (its indicators) with the model's features as of the month, in
    customer_id order, `batch_size` at a time."""
    sql = f"""
        WITH versions AS ({_versions_sql()})
        SELECT i.customer_id, {feature_columns_sql()}, CAST({_risk_level_sql("v")} AS DOUBLE) AS risk_level
        FROM {INDICATORS_TABLE} AS i
        LEFT JOIN {CLV_TABLE} AS c ON c.customer_id = i.customer_id AND c.month_start = i.month_start
        LEFT JOIN versions AS v ON {_as_delivered("i", "i.month_start")}
        WHERE i.month_start = $month
        ORDER BY i.customer_id"""
    return query_batches(con, sql, {"month": parse_month(month)}, batch_size)


def design(frame: pd.DataFrame, products: pd.Series | str, columns: list[str]) -> np.ndarray:
    """The model's inputs: the features (missing values left missing: the trees route them) and the
    offered product, one column per product."""
    x = frame.loc[:, columns].to_numpy(dtype=float)
    offered = np.asarray(products) if not isinstance(products, str) else np.full(len(frame), products)
    one_hot = np.stack([(offered == p).astype(float) for p in PRODUCT_TYPES], axis=1)
    return np.hstack([x, one_hot])


@dataclass(frozen=True)
class UpliftModel:
    treated: HistGradientBoostingClassifier
    control: HistGradientBoostingClassifier
    columns: list[str]  # the features with at least one value among the training contacts

    def uplift(self, customers: pd.DataFrame, product: str) -> np.ndarray:
        """Treated minus control probability of conversion: the classifiers' own predict_proba bit
        for bit, scored by compiled code (valuetier.tiering.tree_ensemble), about 6x faster than
        predict_proba on a million rows, which counts at a million customers and seven products a month."""
        x = design(customers, product, self.columns)
        return self._trees[0].predict(x) - self._trees[1].predict(x)

    @cached_property
    def _trees(self) -> tuple[TreeEnsemble, TreeEnsemble]:
        return TreeEnsemble.from_pipeline(self.treated), TreeEnsemble.from_pipeline(self.control)


def no_model_reason(contacts: pd.DataFrame) -> str | None:
    """Why these training contacts cannot make a model, or None when they can."""
    if contacts.empty:
        return "no A/B campaign contact with a closed outcome window (no control groups, or no accounts delivery)"
    for treated, name in ((True, "treated"), (False, "control")):
        group = contacts[contacts.treated == treated]
        if len(group) < MIN_CONTACTS_PER_GROUP:
            return f"{len(group)} {name} contacts with a closed outcome window, fewer than {MIN_CONTACTS_PER_GROUP}"
        if group.converted.nunique() < 2:
            return f"the {name} contacts all have the same outcome"
    return None


def fit_uplift(contacts: pd.DataFrame) -> UpliftModel:
    """The T-learner on finished contacts (training_contacts)."""
    columns = [f for f in UPLIFT_FEATURES if contacts[f].notna().any()]  # an all-empty column has no bins

    def classifier(rows: pd.DataFrame) -> HistGradientBoostingClassifier:
        model = HistGradientBoostingClassifier(**CLASSIFIER_PARAMS, early_stopping=False, random_state=SEED)
        return model.fit(design(rows, rows.product_offered, columns), rows.converted.to_numpy(dtype=int))

    return UpliftModel(classifier(contacts[contacts.treated]), classifier(contacts[~contacts.treated]), columns)


def score_uplift_month(
    con: duckdb.DuckDBPyConnection, month: str, outcome_months: int, batch_size: int = ScoringRules.batch_size
) -> UpliftResult:
    """Train the month's model and write every customer's uplift for every product (replacing the
    month): the customers scored `batch_size` at a time into a stage (memory holds a batch, not the
    month), then published in one transaction. Without a model the month's rows are removed and the
    result says why."""
    started = time.perf_counter()
    create_table(con, UPLIFT_TABLE, UPLIFT_COLUMNS)
    start = parse_month(month)
    contacts = training_contacts(con, month, outcome_months)
    reason = no_model_reason(contacts)
    if reason is not None:
        with transaction(con):
            con.execute(f"DELETE FROM {UPLIFT_TABLE} WHERE month_start = ?", [start])
        return UpliftResult(month, 0, len(contacts), None, None, reason, time.perf_counter() - started)
    model = fit_uplift(contacts)
    trained_through = pd.Timestamp(contacts.month_start.max()).date()
    stage, scored = "uplift_stage", 0
    con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS SELECT * FROM {UPLIFT_TABLE} LIMIT 0")
    try:
        for customers in month_customers(con, month, batch_size):
            scores = pd.DataFrame({"month_start": start, "customer_id": customers.customer_id})
            for product in PRODUCT_TYPES:
                scores[f"uplift_{product}"] = model.uplift(customers, product)
            scores["training_contacts"] = len(contacts)
            scores["trained_through"] = trained_through
            append_frame(con, stage, scores)
            scored += len(customers)
        with transaction(con):
            con.execute(f"DELETE FROM {UPLIFT_TABLE} WHERE month_start = ?", [start])
            con.execute(f"INSERT INTO {UPLIFT_TABLE} SELECT * FROM {stage}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {stage}")
    treated = contacts[contacts.treated]
    control = contacts[~contacts.treated]
    return UpliftResult(
        month,
        scored,
        len(contacts),
        float(treated.converted.mean()),
        float(control.converted.mean()),
        "uplift",
        time.perf_counter() - started,
    )
