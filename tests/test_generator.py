import json

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.conftest import FOREIGN_DELIVERY
from valuetier.core.contract import SOURCE_ORDER
from valuetier.demo.faults import FAULT_REASONS
from valuetier.demo.generator import GeneratorConfig, generate


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _make(tmp_path, name, **overrides):
    params = {"customers": 800, "months": 4, "seed": 11, "out": tmp_path / name / "landing"} | overrides
    summary = generate(GeneratorConfig(**params), progress=lambda _: None)
    return tmp_path / name, summary


def test_same_seed_gives_byte_identical_files(tmp_path):
    a, _ = _make(tmp_path, "a", dirty_rate=0.02)
    b, _ = _make(tmp_path, "b", dirty_rate=0.02)
    c, _ = _make(tmp_path, "c", seed=12, dirty_rate=0.02)
    files_a = _files(a)
    assert files_a == _files(b)
    assert files_a.keys() == _files(c).keys()
    assert files_a != _files(c)


def test_every_source_every_month_and_ground_truth_apart(tmp_path):
    root, summary = _make(tmp_path, "bank")
    for source in SOURCE_ORDER:
        assert sorted(p.name for p in (root / "landing" / source).iterdir()) == [
            f"2023-0{m}.parquet" for m in range(1, 5)
        ], source
    assert {p.name for p in (root / "ground_truth").iterdir()} == {
        "customer_traits.parquet",
        "monthly_value.parquet",
        "manifest.json",
    }
    truth = pq.read_table(root / "ground_truth" / "customer_traits.parquet")
    assert truth.num_rows == 800
    assert summary.faults == []


def test_streams_in_bounded_chunks(tmp_path):
    """Events are written one customer chunk at a time: row groups stay small whatever the bank size."""
    root, summary = _make(tmp_path, "chunked", customers=3000, chunk_size=250)
    _, whole = _make(tmp_path, "whole", customers=3000, chunk_size=3000)
    transactions = pq.ParquetFile(root / "landing" / "transactions" / "2023-04.parquet")
    assert transactions.num_row_groups > 5
    # 250 customers with Poisson counts capped at 60 a month each.
    assert summary.max_chunk_rows <= 250 * 60
    assert summary.max_chunk_rows < whole.max_chunk_rows / 4
    assert summary.rows.keys() == whole.rows.keys()


def test_heavy_tailed_value_and_churn(tmp_path):
    root, _ = _make(tmp_path, "bank", customers=3000, months=12)
    [(top_share, churned)] = duckdb.sql(f"""
        WITH value AS (
            SELECT customer_id, sum(profit_contribution) AS profit, bool_or(churned_this_month) AS churned
            FROM '{root}/ground_truth/monthly_value.parquet' GROUP BY 1)
        SELECT sum(profit) FILTER (WHERE r <= 0.1 * n) / sum(profit), avg(churned::int)
        FROM (SELECT *, row_number() OVER (ORDER BY profit DESC) r, count(*) OVER () n FROM value)""").fetchall()
    assert top_share > 0.3  # the top decile brings far more than a tenth of the profit
    assert 0.02 < churned < 0.5


def test_csv_and_dirty_manifest(tmp_path):
    root, summary = _make(tmp_path, "csv", file_format="csv", dirty_rate=0.03)
    assert (root / "landing" / "transactions" / "2023-02.csv").read_text().startswith('"transaction_id"')
    manifest = json.loads((root / "ground_truth" / "manifest.json").read_text())
    assert {f["fault"] for f in manifest["faults"]} == set(FAULT_REASONS)
    assert len(manifest["faults"]) == len(summary.faults)


@pytest.mark.parametrize("bad", [{"customers": 0}, {"file_format": "xlsx"}, {"dirty_rate": 0.9}, {"start": "2023-13"}])
def test_rejects_bad_configuration(tmp_path, bad):
    with pytest.raises(ValueError):
        GeneratorConfig(**({"customers": 10, "months": 1, "seed": 1, "out": tmp_path} | bad))


def test_future_date_faults_in_a_leap_february(tmp_path):
    """A fault dated a year after 29 February 2024 must still be a date (once, it crashed)."""
    _, summary = _make(tmp_path, "leap", months=1, start="2024-02", dirty_rate=0.05)
    future = [f for f in summary.faults if f.fault == "future_date"]
    assert future and all(f.month == "2024-02" for f in future)


def test_a_foreign_delivery_unlike_the_demo(tmp_path):
    from valuetier.ingest.mapping import load_mapping

    root, _ = _make(tmp_path, "foreign", months=5, **FOREIGN_DELIVERY)
    landing = root / "landing"
    assert sorted(p.name for p in landing.iterdir()) == ["customers", "mapping.yml", "transactions"]
    customers = (landing / "customers" / "2023-01.csv").read_text().splitlines()[0]
    assert "dob" not in customers and "income_segment" not in customers and "branch_city" in customers
    assert "dob" not in (landing / "mapping.yml").read_text()  # nor in the mapping: not delivered
    header = (landing / "transactions" / "2023-02.csv").read_text().splitlines()[0]
    assert header == '"txn_ref","cust_no","acct_no","txn_time","txn_amt","ccy","txn_code","txn_channel"'
    codes = duckdb.sql(f"SELECT DISTINCT txn_code FROM read_csv('{landing}/transactions/*.csv')").fetchall()
    assert {c for (c,) in codes} >= {"card_purchase", "transfer_in", "bill_payment", "fx_conversion"}
    joins = duckdb.sql(f"SELECT max(join_month_index) FROM '{root}/ground_truth/customer_traits.parquet'")
    assert joins.fetchall() == [(2,)]  # every customer acquired in the first 3 months
    # No changes after the cohorts: most later months deliver no customers file at all.
    assert len(list((landing / "customers").iterdir())) < 5
    mapping = load_mapping(landing / "mapping.yml")
    assert mapping.timezone == "Asia/Shanghai"
    assert mapping.source("transactions").codes["txn_type"].unmapped == "other"
