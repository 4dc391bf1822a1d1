"""Determinism at scale: money stays DECIMAL wherever it is summed, ranked or compared, so the
indicators, RFM scores and rule tiers do not depend on how DuckDB splits the work across threads,
at a size where sums of floating-point money do."""

import hashlib
import shutil

import duckdb
import pytest

from tests.conftest import run_dbt
from valuetier.ingest.loader import ensure_raw_tables

pytestmark = pytest.mark.integration

CUSTOMERS, MONTHS, PER_CUSTOMER_MONTH = 30_000, 3, 33  # about 3 million transactions
MONEY_COLUMNS = ("monetary_12m", "profit_contribution_12m", "cumulative_amount", "amount_in_month")


def build_raw_bank(path) -> None:
    """A bank straight into the raw tables: customers and a few million transactions whose amounts
    span six orders of magnitude (where the order of float additions shows)."""
    with duckdb.connect(str(path)) as con:
        ensure_raw_tables(con)
        con.execute("SELECT setseed(0.42)")
        con.execute(
            f"""INSERT INTO raw.customers BY NAME
                SELECT printf('C%06d', i) AS customer_id, DATE '2023-06-01' AS opened_at,
                       DATE '2024-01-01' AS _delivery_month, 'customers/2024-01.csv' AS _source_file,
                       i + 1 AS _source_row
                FROM range({CUSTOMERS}) r(i)"""
        )
        con.execute(
            f"""INSERT INTO raw.transactions BY NAME
                SELECT printf('T%09d', i) AS transaction_id, printf('C%06d', i % {CUSTOMERS}) AS customer_id,
                       TIMESTAMP '2024-01-01 09:00:00' + INTERVAL (m) MONTH + INTERVAL (i % 27) DAY AS booked_at,
                       CAST(round(0.01 + exp(random() * 14) / 100, 2) AS DECIMAL(18, 2)) AS amount,
                       'EUR' AS currency, 'purchase' AS txn_type,
                       DATE '2024-01-01' + INTERVAL (m) MONTH AS _delivery_month,
                       'transactions.csv' AS _source_file, i + 1 AS _source_row
                FROM (SELECT i, i // ({CUSTOMERS} * {PER_CUSTOMER_MONTH}) AS m
                      FROM range({CUSTOMERS * PER_CUSTOMER_MONTH * MONTHS}) r(i))"""
        )


def sums_by_threads(path, threads: int) -> tuple:
    with duckdb.connect(str(path), read_only=True, config={"threads": str(threads)}) as con:
        return con.execute("SELECT sum(amount), sum(CAST(amount AS DOUBLE)) FROM raw.transactions").fetchall()[0]


def fingerprint(path, table: str) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_indicators_and_rule_tiers_do_not_depend_on_duckdbs_threads(tmp_path, monkeypatch):
    one = tmp_path / "one_thread.duckdb"
    build_raw_bank(one)
    two = tmp_path / "two_threads.duckdb"
    shutil.copy(one, two)
    # The size matters: here a float sum of the same amounts depends on the threads; a decimal one does not.
    decimal_1, float_1 = sums_by_threads(one, 1)
    decimal_2, float_2 = sums_by_threads(one, 2)
    assert decimal_1 == decimal_2 and float_1 != float_2

    for path, threads in ((one, "1"), (two, "2")):
        monkeypatch.setenv("VALUETIER_DUCKDB_THREADS", threads)
        run_dbt(["run", "--select", "+customer_tiers_rfm", "--full-refresh"], path, tmp_path / f"target{threads}")
    with duckdb.connect(str(two), read_only=True) as con:
        indicators = con.execute("SELECT count(*), count(DISTINCT month_start) FROM marts.customer_indicators_monthly")
        assert indicators.fetchall()[0] == (CUSTOMERS * MONTHS, MONTHS)
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'marts' AND table_name = 'customer_indicators_monthly'"
            ).fetchall()
        )
    assert all(types[c].startswith("DECIMAL") for c in MONEY_COLUMNS), types
    for table in ("marts.customer_indicators_monthly", "marts.customer_tiers_rfm"):
        assert fingerprint(one, table) == fingerprint(two, table), table


def test_month_profiles_do_not_depend_on_duckdbs_threads(tmp_path):
    """A month's profile is stored and compared across runs: its statistics (the geometric mean's
    sum of logs among them) are the same whatever the threads that computed them."""
    from valuetier.quality.suites import all_suites, profile_months

    path = tmp_path / "bank.duckdb"
    build_raw_bank(path)
    suite = next(s for s in all_suites() if s.table == "raw.transactions")
    profiles = []
    for threads in (1, 2):
        with duckdb.connect(str(path), config={"threads": str(threads)}) as con:
            delivered = con.execute("SELECT DISTINCT strftime(_delivery_month, '%Y-%m') FROM raw.transactions")
            months = sorted(m for (m,) in delivered.fetchall())
            profile_months(con, suite, months)
        profiles.append(fingerprint(path, "raw_quality.month_profiles"))
    assert profiles[0] == profiles[1]
    with duckdb.connect(str(path), read_only=True) as con:
        means = con.execute(
            "SELECT count(*), count(DISTINCT month) FROM raw_quality.month_profiles WHERE statistic = 'geomean:amount'"
        ).fetchone()
    assert means == (MONTHS, MONTHS)
