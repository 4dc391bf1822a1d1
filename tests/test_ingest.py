"""Contract checks and row accounting, driven by the generator's fault manifest."""

import json

import duckdb
import pyarrow.parquet as pq
import pytest

from valuetier.core.contract import SOURCE_ORDER
from valuetier.core.months import month_range
from valuetier.demo.faults import FAULT_REASONS
from valuetier.demo.generator import GeneratorConfig, generate
from valuetier.ingest.loader import DeliveryError, discover_months, load_month


def _ingest_all(con, landing):
    results = []
    for month in discover_months(landing):
        for source in SOURCE_ORDER:
            results.append(load_month(con, landing, source, month))
    return results


@pytest.fixture(scope="module", params=["parquet", "csv"])
def dirty(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"dirty-{request.param}")
    generate(
        GeneratorConfig(
            customers=1500, months=4, seed=3, out=root / "landing", file_format=request.param, dirty_rate=0.03
        ),
        progress=lambda _: None,
    )
    con = duckdb.connect(str(root / "wh.duckdb"))
    results = _ingest_all(con, root / "landing")
    manifest = json.loads((root / "ground_truth" / "manifest.json").read_text())
    yield root, con, results, manifest
    con.close()


def _quarantine(con):
    return {
        (source, month, row): (reason, column)
        for source, month, row, reason, column in con.execute(
            "SELECT source, strftime(delivery_month, '%Y-%m'), source_row, reason, column_name "
            "FROM raw_quarantine.quarantined_rows"
        ).fetchall()
    }


def test_every_injected_row_fault_is_quarantined_with_its_reason(dirty):
    _, con, _, manifest = dirty
    quarantine = _quarantine(con)
    row_faults = [f for f in manifest["faults"] if f["row"] is not None]
    assert {f["fault"] for f in row_faults} == set(FAULT_REASONS)
    for fault in row_faults:
        reason, column = quarantine.get((fault["source"], fault["month"], fault["row"]), (None, None))
        assert reason == fault["expected_reason"], fault
        assert column == fault["column"], fault


def test_missing_required_column_refuses_the_file(clean):
    landing, con = clean
    path = landing / "digital_sessions" / "2023-01.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["channel"]), path)
    load_month(con, landing, "customers", "2023-01")
    with pytest.raises(
        DeliveryError, match=r"digital_sessions/2023-01\.parquet: row 0 \(header\): no required column channel;"
    ):
        load_month(con, landing, "digital_sessions", "2023-01")


def test_no_clean_row_is_quarantined(dirty):
    _, con, _, manifest = dirty
    injected = {(f["source"], f["month"], f["row"]) for f in manifest["faults"] if f["row"] is not None}
    whole_files = {(f["source"], f["month"]) for f in manifest["faults"] if f["row"] is None}
    extra = [k for k in _quarantine(con) if k not in injected and k[:2] not in whole_files]
    assert extra == []


def test_every_row_is_accounted_for(dirty):
    root, con, results, _ = dirty
    for r in results:
        assert r.loaded + r.quarantined == r.delivered
        in_raw = con.execute(
            f"SELECT count(*) FROM raw.{r.source} WHERE _delivery_month = ?", [f"{r.month}-01"]
        ).fetchone()[0]
        assert in_raw == r.loaded, r
    delivered = sum(r.delivered for r in results)
    stored = sum(con.execute(f"SELECT count(*) FROM raw.{s}").fetchone()[0] for s in SOURCE_ORDER)
    stored += con.execute("SELECT count(*) FROM raw_quarantine.quarantined_rows").fetchone()[0]
    assert stored == delivered


def test_quarantine_keeps_file_row_and_raw_values(dirty):
    _, con, _, manifest = dirty
    fault = next(f for f in manifest["faults"] if f["fault"] == "wrong_type")
    source_file, detail, raw = con.execute(
        "SELECT source_file, detail, raw_record FROM raw_quarantine.quarantined_rows "
        "WHERE source = ? AND strftime(delivery_month, '%Y-%m') = ? AND source_row = ?",
        [fault["source"], fault["month"], fault["row"]],
    ).fetchone()
    assert source_file == fault["file"]
    assert "12,50O" in detail
    assert json.loads(raw)["amount"] == "12,50O"


def test_reloading_a_month_replaces_it(dirty):
    root, con, results, _ = dirty
    before = {s: con.execute(f"SELECT count(*) FROM raw.{s}").fetchone()[0] for s in SOURCE_ORDER}
    quarantined = con.execute("SELECT count(*) FROM raw_quarantine.quarantined_rows").fetchone()[0]
    for source in SOURCE_ORDER:
        again = load_month(con, root / "landing", source, "2023-02")
        [first] = [r for r in results if r.source == source and r.month == "2023-02"]
        assert (again.loaded, again.quarantined) == (first.loaded, first.quarantined)
    assert before == {s: con.execute(f"SELECT count(*) FROM raw.{s}").fetchone()[0] for s in SOURCE_ORDER}
    assert quarantined == con.execute("SELECT count(*) FROM raw_quarantine.quarantined_rows").fetchone()[0]


@pytest.fixture
def clean(tmp_path):
    generate(GeneratorConfig(customers=300, months=2, seed=5, out=tmp_path / "landing"), progress=lambda _: None)
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    yield tmp_path / "landing", con
    con.close()


def test_missing_required_file_names_it(clean):
    landing, con = clean
    (landing / "transactions" / "2023-02.parquet").unlink()
    load_month(con, landing, "customers", "2023-02")
    with pytest.raises(DeliveryError, match=r"required file missing: .*transactions/2023-02\.parquet"):
        load_month(con, landing, "transactions", "2023-02")


def test_missing_optional_source_is_a_skip_that_says_so(clean):
    landing, con = clean
    (landing / "nps_responses" / "2023-01.parquet").unlink()
    load_month(con, landing, "customers", "2023-01")
    result = load_month(con, landing, "nps_responses", "2023-01")
    assert result.delivered == 0
    assert "optional source nps_responses not delivered for 2023-01" in result.skipped


def test_two_files_for_one_month_is_an_error(clean):
    landing, con = clean
    (landing / "transactions" / "2023-01.csv").write_text("transaction_id\n")
    with pytest.raises(DeliveryError, match="two deliveries for transactions 2023-01"):
        load_month(con, landing, "transactions", "2023-01")


def test_truncated_parquet_names_the_file(clean):
    landing, con = clean
    path = landing / "transactions" / "2023-01.parquet"
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DeliveryError, match=r"transactions/2023-01\.parquet: cannot be read"):
        load_month(con, landing, "transactions", "2023-01")


def test_events_outside_the_delivery_month_and_bad_values_in_csv(tmp_path):
    landing = tmp_path / "landing"
    (landing / "customers").mkdir(parents=True)
    (landing / "transactions").mkdir()
    (landing / "customers" / "2024-02.csv").write_text("customer_id,opened_at\nC1,2020-01-01\nC2,2030-01-01\n")
    (landing / "transactions" / "2024-02.csv").write_text(
        "transaction_id,customer_id,booked_at,amount,currency,txn_type\n"
        "T1,C1,2024-02-29 23:59:59,10.00,CNY,purchase\n"  # leap day: inside the month
        "T2,C1,2024-03-01 00:00:00,10.00,CNY,purchase\n"  # next month
        "T3,C1,2024-02-10 10:00:00,,CNY,purchase\n"  # empty required value
        "T4,C1,2024-02-10 10:00:00,5.00,CNY,gift\n"  # not an allowed type
        "T5,C2,2024-02-10 10:00:00,5.00,CNY,purchase\n"  # customer quarantined, so unknown
    )
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        customers = load_month(con, landing, "customers", "2024-02")
        assert customers.reasons == {"date_implausible": 1}
        result = load_month(con, landing, "transactions", "2024-02")
        rows = dict(
            con.execute(
                "SELECT source_row, reason || ':' || column_name FROM raw_quarantine.quarantined_rows "
                "WHERE source = 'transactions'"
            ).fetchall()
        )
    assert (result.delivered, result.loaded) == (5, 1)
    assert rows == {
        2: "date_outside_month:booked_at",
        3: "missing_value:amount",
        4: "value_not_allowed:txn_type",
        5: "unknown_customer:customer_id",
    }


def test_months_come_from_transactions_files(clean):
    landing, _ = clean
    (landing / "transactions" / "notes.csv").write_text("x\n")
    assert discover_months(landing) == month_range("2023-01", 2)
