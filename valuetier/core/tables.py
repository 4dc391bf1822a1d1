"""Every relation the Python steps write, with its DDL, and the dbt relations they read: one home for
the warehouse's names, so that a module reads a table without importing the stage that writes it.
(dbt's own models are described in dbt_project/models; their names here are those Python reads.)"""

from __future__ import annotations

import duckdb

from valuetier.core.contract import PRODUCT_TYPES, Source

# Written by ingestion (valuetier.ingest.loader): one table per source of the contract, and the quarantine.
RAW_SCHEMA = "raw"
QUARANTINE_TABLE = "raw_quarantine.quarantined_rows"
QUARANTINE_COLUMNS = (
    "source VARCHAR NOT NULL, delivery_month DATE NOT NULL, source_file VARCHAR NOT NULL, source_row BIGINT, "
    "reason VARCHAR NOT NULL, column_name VARCHAR, detail VARCHAR, raw_record VARCHAR"
)
# Written where a source-month is loaded (valuetier.quality.profiles): what its raw suite checks, one
# value per statistic, so the checks read a few rows per month instead of the month's rows again.
PROFILES_TABLE = "raw_quality.month_profiles"
PROFILES_COLUMNS = "suite VARCHAR NOT NULL, month DATE NOT NULL, statistic VARCHAR NOT NULL, value DOUBLE"
# Written by CLV (valuetier.clv.estimates).
CLV_TABLE = "marts.customer_clv_monthly"
CLV_COLUMNS = """customer_id VARCHAR NOT NULL, month_start DATE NOT NULL, repeat_purchases_calibration INTEGER,
    expected_purchases_12m DOUBLE, probability_alive DOUBLE, expected_value_per_purchase DOUBLE,
    clv_12m DECIMAL(18, 2), model_params VARCHAR"""
# Written by scoring and the challenger (valuetier.tiering).
TIERS_TABLE = "marts.customer_tiers"
TIERS_COLUMNS = """customer_id VARCHAR NOT NULL, month_start DATE NOT NULL, value_tier VARCHAR NOT NULL,
    value_score DOUBLE NOT NULL, predicted_value DOUBLE NOT NULL, value_horizon_months INTEGER,
    churn_probability DOUBLE, clv_12m DOUBLE, lifecycle_stage VARCHAR NOT NULL, segment VARCHAR NOT NULL,
    rfm_segment VARCHAR, top_drivers VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
    tiered_by_rule BOOLEAN NOT NULL, plain_tier VARCHAR"""
CHALLENGER_TABLE = "marts.customer_tiers_challenger"
CHALLENGER_COLUMNS = """customer_id VARCHAR NOT NULL, month_start DATE NOT NULL, model_version VARCHAR NOT NULL,
    value_tier VARCHAR NOT NULL, predicted_value DOUBLE NOT NULL, value_horizon_months INTEGER NOT NULL"""
# Written by the training cycle (valuetier.tiering.training_cycle): each version's holdout report.
MODEL_EVALUATION_TABLE = "marts.model_evaluation"
MODEL_EVALUATION_COLUMNS = """model_version VARCHAR, holdout_month VARCHAR, ranking VARCHAR, metric VARCHAR,
    tier VARCHAR, value DOUBLE, status VARCHAR"""
# Written by the CRM playbook (valuetier.application.playbook).
CRM_ACTIONS_TABLE = "marts.crm_actions"
CRM_ACTIONS_COLUMNS = """month_start DATE NOT NULL, customer_id VARCHAR NOT NULL, value_tier VARCHAR NOT NULL,
    segment VARCHAR NOT NULL, service_level VARCHAR NOT NULL, channel VARCHAR NOT NULL,
    next_best_product VARCHAR, next_best_product_uptake DOUBLE, pricing_treatment VARCHAR NOT NULL,
    max_contacts_per_month INTEGER NOT NULL, playbook_line INTEGER NOT NULL, playbook_sha256 VARCHAR NOT NULL,
    predicted_uplift DOUBLE, contact_priority INTEGER, priority_basis VARCHAR"""
# Written by the campaign uplift model (valuetier.tiering.uplift): each customer's predicted uplift
# for each product, the months that have a model.
UPLIFT_TABLE = "marts.customer_uplift_monthly"
UPLIFT_COLUMNS = (
    "month_start DATE NOT NULL, customer_id VARCHAR NOT NULL, "
    + "".join(f"uplift_{product} DOUBLE NOT NULL, " for product in PRODUCT_TYPES)
    + "training_contacts INTEGER NOT NULL, trained_through DATE NOT NULL"
)
# Written by monitoring (valuetier.application.monitoring).
MONITORING_SCHEMA = "monitoring"
ALERTS_TABLE = f"{MONITORING_SCHEMA}.alerts"
ALERTS_COLUMNS = """month_start DATE NOT NULL, kind VARCHAR NOT NULL, subject VARCHAR NOT NULL,
    severity VARCHAR NOT NULL, metric DOUBLE, threshold DOUBLE, reason VARCHAR NOT NULL"""
DRIFT_TABLE = f"{MONITORING_SCHEMA}.drift_monthly"
DRIFT_COLUMNS = """month_start DATE NOT NULL, measure VARCHAR NOT NULL, subject VARCHAR NOT NULL,
    psi DOUBLE NOT NULL, reference VARCHAR NOT NULL"""
# The champion's training months binned once per column (edges and counts), kept while those months'
# rows are unchanged (the fingerprint): each month's population drift then reads only its own rows.
REFERENCE_BINS_TABLE = f"{MONITORING_SCHEMA}.reference_bins"
REFERENCE_BINS_COLUMNS = """table_name VARCHAR NOT NULL, column_name VARCHAR NOT NULL,
    reference_months VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, edges DOUBLE[] NOT NULL,
    bins INTEGER[] NOT NULL, counts BIGINT[] NOT NULL"""

# Built by dbt, read by the Python steps.
INDICATORS_TABLE = "marts.customer_indicators_monthly"
FAIRNESS_TABLE = "evaluation.eval_tier_fairness_monthly"


def create_table(con: duckdb.DuckDBPyConnection, name: str, columns: str) -> None:
    """The table (and its schema) if it does not exist yet; an existing table is left as it is."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {name.split('.')[0]}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")


def raw_table_columns(source: Source) -> str:
    """A source's raw table: the contract's columns (personal data as its keyed hash) and where each
    row came from."""
    columns = ", ".join(f"{c.stored_name} {c.type}" for c in source.columns)
    return f"{columns}, _delivery_month DATE NOT NULL, _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL"


def ensure_tiers_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The tiers and the challenger's scores."""
    create_table(con, TIERS_TABLE, TIERS_COLUMNS)
    # Warehouses scored before the evaluation's backtest needed the horizon: their earlier rows keep
    # a null horizon, which the backtest leaves out, until the months are rescored.
    con.execute(f"ALTER TABLE {TIERS_TABLE} ADD COLUMN IF NOT EXISTS value_horizon_months INTEGER")
    # Likewise the plain cut, before tiers were made stable: null until the month is rescored.
    con.execute(f"ALTER TABLE {TIERS_TABLE} ADD COLUMN IF NOT EXISTS plain_tier VARCHAR")
    create_table(con, CHALLENGER_TABLE, CHALLENGER_COLUMNS)


def ensure_crm_actions_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The CRM actions, and the uplift scores their contact priority reads."""
    create_table(con, CRM_ACTIONS_TABLE, CRM_ACTIONS_COLUMNS)
    # Tables written before contacts were prioritised: null until the month is written again.
    for column in ("predicted_uplift DOUBLE", "contact_priority INTEGER", "priority_basis VARCHAR"):
        con.execute(f"ALTER TABLE {CRM_ACTIONS_TABLE} ADD COLUMN IF NOT EXISTS {column}")
    create_table(con, UPLIFT_TABLE, UPLIFT_COLUMNS)


def ensure_monitoring_tables(con: duckdb.DuckDBPyConnection) -> None:
    create_table(con, ALERTS_TABLE, ALERTS_COLUMNS)
    create_table(con, DRIFT_TABLE, DRIFT_COLUMNS)
    create_table(con, REFERENCE_BINS_TABLE, REFERENCE_BINS_COLUMNS)
