"""The campaign uplift model (valuetier.tiering.uplift) on small hand-made data: its training set is
point in time (only contacts whose outcome window had closed by the month, conversions inside the
window only, features of the month before the send and the risk profile as delivered then); the
two-model estimate ranks a known uplift; a month without enough contacts gets no model and says
why; and dbt's list of uplift columns is the contract's products."""

import re
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from valuetier.core.contract import PRODUCT_TYPES
from valuetier.core.tables import CLV_TABLE, INDICATORS_TABLE, UPLIFT_TABLE
from valuetier.tiering.training import CLV_FEATURES, FEATURES
from valuetier.tiering.uplift import (
    MIN_CONTACTS_PER_GROUP,
    UPLIFT_FEATURES,
    design,
    fit_uplift,
    no_model_reason,
    score_uplift_month,
    training_contacts,
)

K = 3  # outcome months


def test_dbt_reads_one_uplift_column_per_product_of_the_contract():
    macro = (REPO / "dbt_project" / "macros" / "uplift_for_product.sql").read_text()
    listed = re.search(r"for product in \[([^\]]*)\]", macro).group(1)
    assert tuple(p.strip(" '") for p in listed.split(",")) == PRODUCT_TYPES


def warehouse(contacts: list[tuple], accounts: list[tuple], customers: list[tuple]) -> duckdb.DuckDBPyConnection:
    """The relations the training set reads, with one indicator row per customer and month of 2024."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging; CREATE SCHEMA marts")
    con.execute("""CREATE TABLE staging.stg_campaign_contacts (contact_id VARCHAR, customer_id VARCHAR,
                   campaign_id VARCHAR, product_offered VARCHAR, ab_group VARCHAR, sent_at TIMESTAMP)""")
    con.executemany("INSERT INTO staging.stg_campaign_contacts VALUES (?, ?, ?, ?, ?, ?)", contacts)
    con.execute("CREATE TABLE staging.stg_accounts (customer_id VARCHAR, product_type VARCHAR, opened_at DATE)")
    if accounts:
        con.executemany("INSERT INTO staging.stg_accounts VALUES (?, ?, ?)", accounts)
    con.execute("CREATE TABLE staging.stg_customers (customer_id VARCHAR, delivery_month DATE, risk_profile VARCHAR)")
    con.executemany("INSERT INTO staging.stg_customers VALUES (?, ?, ?)", customers)
    indicators = [f for f in FEATURES if f not in CLV_FEATURES]
    con.execute(
        f"CREATE TABLE {INDICATORS_TABLE} AS SELECT c.customer_id, m.month_start, "
        + ", ".join(f"CAST(m.k AS DOUBLE) AS {f}" for f in indicators)
        + " FROM (SELECT DISTINCT customer_id FROM staging.stg_customers) c, "
        "(SELECT CAST(range AS DATE) AS month_start, row_number() OVER () AS k "
        " FROM range(DATE '2024-01-01', DATE '2025-01-01', INTERVAL 1 MONTH)) m"
    )
    con.execute(
        f"CREATE TABLE {CLV_TABLE} AS SELECT customer_id, month_start, "
        + ", ".join(f"1.0 AS {f}" for f in CLV_FEATURES)
        + f" FROM {INDICATORS_TABLE}"
    )
    return con


def test_the_training_set_holds_only_contacts_whose_window_closed_by_the_month():
    sent = {"A": datetime(2024, 2, 10), "B": datetime(2024, 3, 5), "C": datetime(2024, 4, 20)}
    contacts = [
        ("k1", "A", "cmp", "fund", "treatment", sent["A"]),
        ("k2", "A", "cmp", "fund", "control", sent["A"]),
        ("k3", "B", "cmp", "loan", "treatment", sent["B"]),
        ("k4", "C", "cmp", "fund", "treatment", sent["C"]),
        ("k5", "C", "nocontrol", "fund", "treatment", sent["C"]),  # a campaign without a control group
        ("k6", "B", "cmp", "fund", None, sent["B"]),  # in neither group
    ]
    accounts = [
        ("A", "fund", date(2024, 4, 30)),  # inside A's window (Feb send: to the end of April)
        ("B", "loan", date(2024, 6, 1)),  # after B's window (March send: to the end of May)
        ("B", "fund", date(2024, 3, 10)),  # another product
    ]
    customers = [
        ("A", date(2024, 1, 1), "growth"),
        ("B", date(2024, 1, 1), "conservative"),
        ("B", date(2024, 3, 1), "aggressive"),  # delivered after B's selection month (February)
        ("C", date(2024, 1, 1), "balanced"),
    ]
    con = warehouse(contacts, accounts, customers)
    # A February send's window closes at the end of April; March's at the end of May.
    assert training_contacts(con, "2024-03", K).empty
    april = training_contacts(con, "2024-04", K)
    assert list(april.contact_id) == ["k1", "k2"]
    may = training_contacts(con, "2024-05", K).set_index("contact_id")
    assert list(may.index) == ["k1", "k2", "k3"]
    assert may.converted.to_dict() == {"k1": True, "k2": True, "k3": False}
    assert may.treated.to_dict() == {"k1": True, "k2": False, "k3": True}
    # Features of the month before the send, the risk profile as delivered by then.
    assert may.loc["k1", "month_start"] == pd.Timestamp("2024-01-01")
    assert may.loc["k3", "month_start"] == pd.Timestamp("2024-02-01")
    assert may.loc["k3", "tenure_months"] == 2.0
    assert may.loc["k3", "risk_level"] == 0.0  # conservative in February; aggressive only from March
    assert set(training_contacts(con, "2024-12", K).contact_id) == {"k1", "k2", "k3", "k4"}
    # A bank with more finished contacts than a model needs learns from the latest sent.
    assert list(training_contacts(con, "2024-12", K, max_contacts=2).contact_id) == ["k3", "k4"]


def synthetic_contacts(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Contacts whose true uplift rises with risk_level and tenure; the control group a fifth."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f: rng.normal(size=n) for f in UPLIFT_FEATURES})
    frame["risk_level"] = rng.integers(0, 4, n).astype(float)
    frame["last_nps_score"] = np.nan  # a feature no contact has
    uplift = 0.02 + 0.04 * frame.risk_level + 0.03 * (frame.tenure_months > 0)
    base = 0.03 + 0.02 * (frame.monetary_12m > 0)
    frame["treated"] = rng.random(n) < 0.8
    frame["converted"] = rng.random(n) < base + uplift * frame.treated
    frame["product_offered"] = rng.choice(PRODUCT_TYPES, n)
    return frame, uplift.to_numpy()


def test_the_two_model_estimate_ranks_a_known_uplift():
    train, _ = synthetic_contacts(40_000, seed=1)
    score, truth = synthetic_contacts(10_000, seed=2)
    model = fit_uplift(train)
    assert "last_nps_score" not in model.columns  # an empty feature has no bins; left out, not filled
    predicted = model.uplift(score, "fund")
    assert np.corrcoef(np.argsort(np.argsort(predicted)), np.argsort(np.argsort(truth)))[0, 1] > 0.6
    top = np.argsort(-predicted)[: len(score) // 10]
    assert truth[top].mean() > 1.5 * truth.mean()
    assert np.array_equal(predicted, fit_uplift(train).uplift(score, "fund"))  # the same data, the same model
    # Walked by compiled code, the classifiers' own probabilities, bit for bit.
    x = design(score, "fund", model.columns)
    assert np.array_equal(predicted, model.treated.predict_proba(x)[:, 1] - model.control.predict_proba(x)[:, 1])


def test_a_month_without_enough_finished_contacts_gets_no_model_and_says_why():
    contacts, _ = synthetic_contacts(10 * MIN_CONTACTS_PER_GROUP, seed=3)
    assert no_model_reason(contacts) is None
    assert "no A/B campaign contact" in no_model_reason(contacts.iloc[0:0])
    controls = contacts[~contacts.treated].head(MIN_CONTACTS_PER_GROUP - 1)
    reason = no_model_reason(pd.concat([contacts[contacts.treated], controls]))
    assert reason == f"{MIN_CONTACTS_PER_GROUP - 1} control contacts with a closed outcome window, fewer than 300"
    assert "same outcome" in no_model_reason(contacts.assign(converted=False))


@pytest.mark.parametrize("month", ["2024-03", "2024-06"])
def test_a_month_without_a_model_has_no_uplift_rows(month):
    contacts = [("k1", "A", "cmp", "fund", "treatment", datetime(2024, 2, 10))]
    con = warehouse(contacts, [], [("A", date(2024, 1, 1), "growth")])
    result = score_uplift_month(con, month, K)
    assert result.basis != "uplift" and result.customers == 0
    assert con.execute(f"SELECT count(*) FROM {UPLIFT_TABLE}").fetchone()[0] == 0
