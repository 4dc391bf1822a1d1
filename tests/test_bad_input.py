"""The bad-input corpus: messy deliveries of one month driven through the real ingestion (contract
checks, quarantine, month replacement) and the Great Expectations raw suites, each case asserting its
exact outcome: a clear error naming file, row and column, or rows in quarantine with a reason. In
every case loaded + quarantined = delivered, and no earlier month changes."""

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valuetier.cli import main as cli
from valuetier.core.contract import SOURCE_ORDER, SOURCES
from valuetier.core.tables import QUARANTINE_TABLE
from valuetier.core.warehouse import quarantine_by_month
from valuetier.demo.generator import GeneratorConfig, generate
from valuetier.ingest.loader import DeliveryError, discover_months, load_month
from valuetier.ingest.mapping import parse_mapping

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Bank:
    landing: Path
    warehouse: Path  # every month but the last loaded
    month: str  # the month each case re-delivers
    earlier: str  # fingerprint of every raw and quarantine row before that month


def earlier_months(con: duckdb.DuckDBPyConnection, month: str) -> str:
    rows = [
        con.execute(f"SELECT * FROM raw.{s} WHERE _delivery_month < DATE '{month}-01' ORDER BY ALL").fetchall()
        for s in SOURCE_ORDER
    ]
    rows.append(
        con.execute(
            f"SELECT * FROM {QUARANTINE_TABLE} WHERE delivery_month < DATE '{month}-01' ORDER BY ALL"
        ).fetchall()
    )
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Bank:
    root = tmp_path_factory.mktemp("corpus")
    generate(
        GeneratorConfig(customers=800, months=6, seed=11, out=root / "landing", file_format="csv"),
        progress=lambda _: None,
    )
    months = discover_months(root / "landing")
    warehouse = root / "base.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        for month in months[:-1]:
            for source in SOURCE_ORDER:
                load_month(con, root / "landing", source, month)
        earlier = earlier_months(con, months[-1])
    return Bank(root / "landing", warehouse, months[-1], earlier)


def original(bank: Bank, source: str) -> pd.DataFrame:
    """The month's clean delivery, every value as the text it was delivered as."""
    return pd.read_csv(bank.landing / source / f"{bank.month}.csv", dtype=str, keep_default_na=False)


def deliver(bank: Bank, tmp_path: Path, source: str, content) -> Path:
    """Write the case's file (a DataFrame as CSV, or raw bytes) as the month's delivery; return it."""
    folder = tmp_path / "landing" / source
    folder.mkdir(parents=True)
    path = folder / f"{bank.month}.csv"
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    else:
        path.write_bytes(content)
    return path


def load(bank: Bank, tmp_path: Path, source: str, **kwargs):
    """Load the case's delivery into a copy of the bank's warehouse: (result or error, connection)."""
    warehouse = tmp_path / "warehouse.duckdb"
    if not warehouse.exists():
        shutil.copy(bank.warehouse, warehouse)
    con = duckdb.connect(str(warehouse))
    for parent in parents(source):  # the month's clean customers (and accounts) the rows refer to
        if not con.execute(f"SELECT count(*) FROM raw.{parent} WHERE _delivery_month = '{bank.month}-01'").fetchone()[
            0
        ]:
            load_month(con, bank.landing, parent, bank.month)
    try:
        outcome = load_month(con, tmp_path / "landing", source, bank.month, **kwargs)
    except DeliveryError as exc:
        outcome = exc
    assert earlier_months(con, bank.month) == bank.earlier, "an earlier month changed"
    return outcome, con


def parents(source: str) -> list[str]:
    """The sources a source's rows refer to, parents first."""
    found: list[str] = []
    for parent in SOURCES[source].depends_on:
        found += [p for p in [*parents(parent), parent] if p not in found]
    return found


def quarantined(con, source: str) -> list[tuple]:
    return con.execute(
        f"SELECT source_row, reason, column_name, detail FROM {QUARANTINE_TABLE} WHERE source = ? ORDER BY 1",
        [source],
    ).fetchall()


def accounted(result, delivered: int) -> None:
    assert result.delivered == delivered
    assert result.loaded + result.quarantined == delivered


def load_frame(bank: Bank, tmp_path: Path, source: str, frame: pd.DataFrame):
    """Deliver a frame as the month's CSV and load it: every row accounted for. (result, connection)"""
    deliver(bank, tmp_path, source, frame)
    result, con = load(bank, tmp_path, source)
    accounted(result, len(frame))
    return result, con


# --- the file cannot be read: a clear error naming the file, row and column --------------------


def test_empty_file(bank, tmp_path):
    path = deliver(bank, tmp_path, "transactions", b"")
    error, _ = load(bank, tmp_path, "transactions")
    assert isinstance(error, DeliveryError)
    assert str(error) == f"{path}: the file is empty (not even a header row)"


def test_wrong_delimiter(bank, tmp_path):
    frame = original(bank, "transactions")
    path = deliver(bank, tmp_path, "transactions", frame.to_csv(index=False, sep=";").encode())
    error, _ = load(bank, tmp_path, "transactions")
    assert isinstance(error, DeliveryError)
    assert str(error).startswith(f"{path}: row 0 (header): one column 'transaction_id;customer_id")
    assert "looks ';'-delimited" in str(error)


def test_gbk_encoded_names(bank, tmp_path):
    frame = original(bank, "customers")
    frame.loc[3, "full_name"] = "王小明"
    path = deliver(bank, tmp_path, "customers", frame.to_csv(index=False).encode("gbk"))
    error, _ = load(bank, tmp_path, "customers")
    assert isinstance(error, DeliveryError)
    assert str(error) == (
        f"{path}: row 4, column full_name: not UTF-8 text (GBK or Big5?); re-deliver the file encoded as UTF-8"
    )


def test_two_files_for_the_same_month(bank, tmp_path):
    path = deliver(bank, tmp_path, "transactions", original(bank, "transactions"))
    pq.write_table(pa.Table.from_pandas(original(bank, "transactions")), path.with_suffix(".parquet"))
    error, _ = load(bank, tmp_path, "transactions")
    assert isinstance(error, DeliveryError) and "two deliveries for transactions" in str(error)


def test_truncated_parquet(bank, tmp_path):
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    path = folder / f"{bank.month}.parquet"
    pq.write_table(pa.Table.from_pandas(original(bank, "transactions")), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    error, _ = load(bank, tmp_path, "transactions")
    assert isinstance(error, DeliveryError) and str(error).startswith(f"{path}: cannot be read")


# --- the file is read: every row loaded or quarantined with a reason --------------------------


def test_header_only_loads_nothing_and_the_volume_expectation_stops_the_month(bank, tmp_path):
    from valuetier.quality.suites import load_suite, validate

    header = ",".join(original(bank, "transactions").columns) + "\n"
    deliver(bank, tmp_path, "transactions", header.encode())
    result, con = load(bank, tmp_path, "transactions")
    accounted(result, 0)
    con.close()
    suite = load_suite(Path("expectations/raw_transactions.json").resolve())
    checked = validate(tmp_path / "warehouse.duckdb", tmp_path / "quality", suite, bank.month, bank.month)
    assert [o.expectation for o in checked.errors] == ["volume"]
    assert checked.rows == 0
    assert {k: checked.errors[0].samples[0][k] for k in ("month", "observed")} == {"month": bank.month, "observed": 0}


def test_utf8_with_bom_loads_every_row(bank, tmp_path):
    frame = original(bank, "transactions")
    deliver(bank, tmp_path, "transactions", frame.to_csv(index=False).encode("utf-8-sig"))
    result, _ = load(bank, tmp_path, "transactions")
    accounted(result, len(frame))
    assert result.quarantined == 0


def test_columns_reordered_and_extra_columns_load_the_same_rows(bank, tmp_path):
    frame = original(bank, "transactions")
    shuffled = frame[list(reversed(frame.columns))].assign(branch_code="B01", Campaign_Tag="x")
    deliver(bank, tmp_path, "transactions", shuffled)
    result, con = load(bank, tmp_path, "transactions")
    accounted(result, len(frame))
    assert result.quarantined == 0 and result.ignored_columns == ("branch_code", "campaign_tag")
    loaded = con.execute(f"SELECT transaction_id FROM raw.transactions WHERE _delivery_month = '{bank.month}-01'")
    assert sorted(r[0] for r in loaded.fetchall()) == sorted(frame.transaction_id)


def test_renamed_required_column_refuses_the_file_naming_the_column(bank, tmp_path):
    frame = original(bank, "transactions").rename(columns={"amount": "amt"})
    path = deliver(bank, tmp_path, "transactions", frame)
    error, con = load(bank, tmp_path, "transactions")
    assert isinstance(error, DeliveryError)
    assert str(error).startswith(f"{path}: row 0 (header): no required column amount;")
    assert quarantined(con, "transactions") == []  # nothing loaded or quarantined: the file is refused whole


def test_a_mapping_renames_the_column_and_names_it_when_it_is_missing(bank, tmp_path):
    frame = original(bank, "transactions").rename(columns={"amount": "txn_amt"})
    mapping = parse_mapping(Path("bank.yml"), {"sources": {"transactions": {"columns": {"amount": "txn_amt"}}}})
    deliver(bank, tmp_path, "transactions", frame)
    result, con = load(bank, tmp_path, "transactions", mapping=mapping)
    accounted(result, len(frame))
    assert result.quarantined == 0 and result.ignored_columns == ()
    con.close()
    shutil.rmtree(tmp_path / "landing")
    deliver(bank, tmp_path, "transactions", frame.drop(columns=["txn_amt"]))
    error, con = load(bank, tmp_path, "transactions", mapping=mapping)
    assert "no required column amount (mapped from txn_amt)" in str(error)
    con.close()
    # A column under the contract's own name is not the one the mapping names: refused, not loaded empty.
    shutil.rmtree(tmp_path / "landing")
    deliver(bank, tmp_path, "transactions", frame.rename(columns={"txn_amt": "amount"}))
    error, _ = load(bank, tmp_path, "transactions", mapping=mapping)
    assert "no required column amount (mapped from txn_amt)" in str(error)


def test_amounts_with_more_decimals_than_the_currency_are_quarantined_not_rounded(bank, tmp_path):
    frame = original(bank, "transactions")
    frame.loc[0, "amount"] = "12.345"
    frame.loc[1, "amount"] = "12.340"  # trailing zeros are the same cents
    frame.loc[2, "fee_income"] = "0.001"
    result, con = load_frame(bank, tmp_path, "transactions", frame)
    assert result.reasons == {"invalid_amount": 2}
    rows = quarantined(con, "transactions")
    assert [(r, reason, column) for r, reason, column, _ in rows] == [
        (1, "invalid_amount", "amount"),
        (3, "invalid_amount", "fee_income"),
    ]
    assert rows[0][3] == "more decimals than the currency's 2 minor units: 12.345"
    assert (
        con.execute(
            f"SELECT CAST(amount AS VARCHAR) FROM raw.transactions WHERE _delivery_month = '{bank.month}-01' "
            "AND _source_row = 2"
        ).fetchone()[0]
        == "12.34"
    )
    # A currency without minor units (yen, won): whole amounts only.
    con.close()
    whole = parse_mapping(Path("bank.yml"), {"money_minor_units": 0})
    result, con = load(bank, tmp_path, "transactions", mapping=whole)
    assert result.reasons["invalid_amount"] > 0.5 * len(frame)


def test_a_customer_delivered_twice_in_one_file_the_last_row_wins(bank, tmp_path):
    customers = original(bank, "customers")
    first = customers.iloc[0].copy()
    changed = first.copy()
    changed["city"] = "Kunming"
    resent = customers.iloc[1].copy()
    frame = pd.concat([customers, pd.DataFrame([changed, resent])], ignore_index=True)
    result, con = load_frame(bank, tmp_path, "customers", frame)
    n = len(customers)
    assert quarantined(con, "customers") == [
        (1, "duplicate_key", "customer_id", f"superseded by row {n + 1} (the last row of a key wins)"),
        (n + 2, "duplicate_key", "customer_id", "repeats row 2"),
    ]
    city = con.execute(
        f"SELECT city, _source_row FROM raw.customers WHERE _delivery_month = '{bank.month}-01' AND customer_id = ?",
        [first.customer_id],
    ).fetchall()
    assert city == [("Kunming", n + 1)]


def test_a_bank_s_own_codes_without_and_with_a_mapping(bank, tmp_path):
    frame = original(bank, "transactions")
    frame["txn_type"] = frame.txn_type.map({"purchase": "card_purchase", "transfer": "transfer_in"}).fillna(
        frame.txn_type
    )
    frame.loc[0, "txn_type"] = "fx_conversion"
    codes = frame.txn_type.value_counts()
    result, con = load_frame(bank, tmp_path, "transactions", frame)
    assert result.reasons == {"value_not_allowed": int(codes["card_purchase"] + codes["transfer_in"] + 1)}
    con.close()

    spec = {"map": {"card_purchase": "purchase", "transfer_in": "transfer"}, "unmapped": "quarantine"}
    strict = parse_mapping(Path("bank.yml"), {"sources": {"transactions": {"codes": {"txn_type": spec}}}})
    result, con = load(bank, tmp_path, "transactions", mapping=strict)
    assert result.reasons == {"value_not_allowed": 1}
    assert quarantined(con, "transactions")[0] == (
        1,
        "value_not_allowed",
        "txn_type",
        "not one of purchase, transfer, payment, withdrawal, investment (nor a code in bank.yml): fx_conversion",
    )
    loaded = dict(
        con.execute(
            f"SELECT txn_type, count(*) FROM raw.transactions WHERE _delivery_month = '{bank.month}-01' GROUP BY 1"
        ).fetchall()
    )
    assert loaded["purchase"] == codes["card_purchase"] and "card_purchase" not in loaded
    con.close()

    lenient = parse_mapping(
        Path("bank.yml"),
        {"sources": {"transactions": {"codes": {"txn_type": {**spec, "unmapped": "other"}}}}},
    )
    result, con = load(bank, tmp_path, "transactions", mapping=lenient)
    assert result.quarantined == 0 and result.other_codes == {"txn_type": {"fx_conversion": 1}}
    assert con.execute(
        f"SELECT txn_type FROM raw.transactions WHERE _delivery_month = '{bank.month}-01' AND _source_row = 1"
    ).fetchone() == ("other",)


def test_a_named_time_zone_is_the_clock_of_naive_and_converted_timestamps(bank, tmp_path):
    frame = original(bank, "transactions")
    middle = f"{bank.month}-15"
    frame.loc[0, "booked_at"] = f"{middle}T10:00:00Z"
    frame.loc[1, "booked_at"] = f"{middle} 10:00:00"
    shanghai = parse_mapping(Path("bank.yml"), {"timezone": "Asia/Shanghai"})
    deliver(bank, tmp_path, "transactions", frame)
    result, con = load(bank, tmp_path, "transactions", mapping=shanghai)
    assert result.quarantined == 0
    booked = con.execute(
        f"SELECT strftime(booked_at, '%d %H:%M') FROM raw.transactions "
        f"WHERE _delivery_month = '{bank.month}-01' AND _source_row <= 2 ORDER BY _source_row"
    ).fetchall()
    assert booked == [("15 18:00",), ("15 10:00",)]


def test_numeric_overflow_nan_and_infinity(bank, tmp_path, capsys):
    frame = original(bank, "transactions")
    bad = {1: "1e30", 2: "123456789012345678901234567890", 3: "NaN", 4: "inf", 5: "-Infinity"}
    for row, value in bad.items():
        frame.loc[row - 1, "amount"] = value
    result, con = load_frame(bank, tmp_path, "transactions", frame)
    assert result.reasons == {"invalid_type": 5}
    assert [(r, reason, column) for r, reason, column, _ in quarantined(con, "transactions")] == [
        (row, "invalid_type", "amount") for row in bad
    ]
    # What a data steward sees: the check's counts, the listing and the export with the raw values.
    assert quarantine_by_month(con, "transactions", bank.month, bank.month) == {bank.month: {"invalid_type": 5}}
    con.close()
    warehouse = str(tmp_path / "warehouse.duckdb")
    assert cli(["quarantine", "--warehouse", warehouse, "list", "--month", bank.month, "--limit", "2"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith(f"5 quarantined rows for {bank.month}, showing 2")
    assert f"{bank.month}.csv:1" in listing and "invalid_type" in listing and f"{bank.month}.csv:3" not in listing
    out = tmp_path / "export" / "quarantine.csv"
    assert cli(["quarantine", "--warehouse", warehouse, "export", "--month", bank.month, "--out", str(out)]) == 0
    exported = pd.read_csv(out, dtype=str)
    assert exported.source_row.tolist() == [str(r) for r in bad]
    assert [json.loads(r)["amount"] for r in exported.raw_record] == list(bad.values())


def test_dates_in_the_future_and_before_1900(bank, tmp_path):
    customers = original(bank, "customers")
    customers.loc[0, "opened_at"] = "2099-01-01"
    customers.loc[1, "birth_date"] = "1850-05-05"
    result, con = load_frame(bank, tmp_path, "customers", customers)
    rows = quarantined(con, "customers")
    assert [(r, reason, column) for r, reason, column, _ in rows] == [
        (1, "date_implausible", "opened_at"),
        (2, "date_implausible", "birth_date"),
    ]
    assert "after the delivery month" in rows[0][3] and "before 1900-01-01" in rows[1][3]

    transactions = original(bank, "transactions")
    transactions.loc[0, "booked_at"] = "2099-03-01 10:00:00"
    result, con = load_frame(bank, tmp_path, "transactions", transactions)
    assert quarantined(con, "transactions")[0][:3] == (1, "date_outside_month", "booked_at")


def test_timezone_aware_and_naive_timestamps_mixed(bank, tmp_path):
    """Naive values are UTC; a value with an offset is converted to UTC, not stripped of it."""
    frame = original(bank, "transactions")
    middle = f"{bank.month}-15"
    frame.loc[0, "booked_at"] = f"{middle}T10:00:00+08:00"
    frame.loc[1, "booked_at"] = f"{middle}T10:00:00Z"
    frame.loc[2, "booked_at"] = f"{middle} 10:00:00"
    result, con = load_frame(bank, tmp_path, "transactions", frame)
    assert result.quarantined == 0
    booked = dict(
        con.execute(
            f"SELECT _source_row, strftime(booked_at, '%d %H:%M') FROM raw.transactions "
            f"WHERE _delivery_month = '{bank.month}-01' AND _source_row <= 3"
        ).fetchall()
    )
    assert booked == {1: "15 02:00", 2: "15 10:00", 3: "15 10:00"}


def test_negative_balance_allowed_negative_amount_not(bank, tmp_path):
    balances = original(bank, "balances")
    balances.loc[0, "balance"] = "-1250.50"  # an overdrawn or credit-card account
    result, con = load_frame(bank, tmp_path, "balances", balances)
    assert result.quarantined == 0
    assert con.execute(
        f"SELECT balance FROM raw.balances WHERE _delivery_month = '{bank.month}-01' AND _source_row = 1"
    ).fetchone()[0] == pytest.approx(-1250.50)

    transactions = original(bank, "transactions")
    transactions.loc[0, "amount"] = "-5.00"
    result, con = load_frame(bank, tmp_path, "transactions", transactions)
    assert quarantined(con, "transactions")[0][:3] == (1, "out_of_range", "amount")


def test_transactions_of_customers_not_delivered_yet(bank, tmp_path):
    frame = original(bank, "transactions")
    frame.loc[0, "customer_id"] = "C-FROM-NEXT-MONTH"
    result, con = load_frame(bank, tmp_path, "transactions", frame)
    assert result.reasons == {"unknown_customer": 1}
    assert quarantined(con, "transactions")[0] == (
        1,
        "unknown_customer",
        "customer_id",
        f"no customer C-FROM-NEXT-MONTH delivered on or before {bank.month}",
    )


def test_non_ascii_ids_round_trip(bank, tmp_path):
    customers = original(bank, "customers")
    new = customers.iloc[[0]].assign(customer_id="客户-0001", full_name="王小明")
    deliver(bank, tmp_path, "customers", pd.concat([customers, new], ignore_index=True))
    result, con = load(bank, tmp_path, "customers")
    accounted(result, len(customers) + 1)
    assert result.quarantined == 0
    con.close()
    transactions = original(bank, "transactions")
    transactions.loc[0, ["transaction_id", "customer_id"]] = ["交易-0001", "客户-0001"]
    result, con = load_frame(bank, tmp_path, "transactions", transactions)
    assert result.quarantined == 0
    assert con.execute("SELECT customer_id FROM raw.transactions WHERE transaction_id = '交易-0001'").fetchone() == (
        "客户-0001",
    )


def test_the_same_file_delivered_twice_replaces_the_month(bank, tmp_path):
    frame = original(bank, "transactions")
    deliver(bank, tmp_path, "transactions", frame)
    first, con = load(bank, tmp_path, "transactions")
    con.close()
    again, con = load(bank, tmp_path, "transactions")
    accounted(again, len(frame))
    count = con.execute(f"SELECT count(*) FROM raw.transactions WHERE _delivery_month = '{bank.month}-01'")
    assert count.fetchone()[0] == first.loaded == again.loaded == len(frame)


def test_a_file_larger_than_one_read_streams_in_batches(bank, tmp_path):
    """A file bigger than memory is never read at once: Parquet streams in batches of `batch_rows`
    (CSV in 16 MB blocks) through the checks. Shown with batches far smaller than the file."""
    frame = original(bank, "transactions")
    frame.loc[10, "amount"] = "-1"  # one bad row, in the first batch
    frame.loc[len(frame) - 1, "currency"] = None  # and one in the last
    folder = tmp_path / "landing" / "transactions"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pandas(frame, preserve_index=False), folder / f"{bank.month}.parquet", row_group_size=500
    )
    progress: list[str] = []
    result, con = load(bank, tmp_path, "transactions", batch_rows=97, progress=progress.append)
    accounted(result, len(frame))
    assert len(frame) > 10 * 97 and len(progress) >= 10
    assert [(r, reason) for r, reason, _, _ in quarantined(con, "transactions")] == [
        (11, "out_of_range"),
        (len(frame), "missing_value"),
    ]


# --- every delivered value read exactly ---------------------------------------------------------


def test_whole_numbers_are_read_only_as_written_in_decimal_digits(bank, tmp_path):
    """DuckDB's own cast rounds 6.5 to 7 and reads 1e3, 0x10 and 1_000; a whole-number column takes
    plain digits only. Surrounding spaces are not part of the number, and 7.0 is the whole number 7."""
    frame = original(bank, "nps_responses")
    written = {1: "6.5", 2: "1e3", 3: "0x10", 4: " 7 ", 5: "7.0", 6: "8.5", 7: "1_0", 8: "+7"}
    for row, value in written.items():
        frame.loc[row - 1, "score"] = value
    result, con = load_frame(bank, tmp_path, "nps_responses", frame)
    rows = quarantined(con, "nps_responses")
    assert rows == [
        (row, "invalid_type", "score", f"not a whole number in decimal digits: {written[row]}")
        for row in (1, 2, 3, 6, 7)
    ]
    loaded = dict(
        con.execute(
            f"SELECT _source_row, score FROM raw.nps_responses WHERE _delivery_month = '{bank.month}-01' "
            "AND _source_row IN (4, 5, 8)"
        ).fetchall()
    )
    assert loaded == {4: 7, 5: 7, 8: 7}


def test_money_is_read_only_in_plain_decimal_notation(bank, tmp_path):
    frame = original(bank, "transactions")
    written = {1: "1e3", 2: "0x10", 3: " 12.50 ", 4: "1_000.00", 5: ".5"}
    for row, value in written.items():
        frame.loc[row - 1, "amount"] = value
    result, con = load_frame(bank, tmp_path, "transactions", frame)
    assert quarantined(con, "transactions") == [
        (row, "invalid_type", "amount", f"not a decimal number: {written[row]}") for row in (1, 2, 4)
    ]
    loaded = con.execute(
        f"SELECT CAST(amount AS VARCHAR) FROM raw.transactions WHERE _delivery_month = '{bank.month}-01' "
        "AND _source_row IN (3, 5) ORDER BY _source_row"
    ).fetchall()
    assert loaded == [("12.50",), ("0.50",)]


def test_a_parquet_double_in_a_whole_number_column_loads_only_when_whole(bank, tmp_path):
    frame = original(bank, "nps_responses").assign(score=lambda f: f.score.astype(float))
    frame.loc[0, "score"] = 6.5
    frame.loc[1, "score"] = 7.0
    folder = tmp_path / "landing" / "nps_responses"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / f"{bank.month}.parquet")
    result, con = load(bank, tmp_path, "nps_responses")
    accounted(result, len(frame))
    assert quarantined(con, "nps_responses") == [
        (1, "invalid_type", "score", "not a whole number in decimal digits: 6.5")
    ]
    assert con.execute(
        f"SELECT score FROM raw.nps_responses WHERE _delivery_month = '{bank.month}-01' AND _source_row = 2"
    ).fetchone() == (7,)


def test_a_date_alone_in_a_timestamp_column_is_midnight_in_the_mapping_s_zone(bank, tmp_path):
    """'2017-02-08' once matched the offset pattern ('-08' read as UTC-8) and moved with the host's
    time zone; a zone offset is recognised only after a time of day."""
    frame = original(bank, "transactions")
    frame.loc[0, "booked_at"] = f"{bank.month}-08"
    frame.loc[1, "booked_at"] = f"{bank.month}-08 10:00:00-05:00"
    frame.loc[2, "booked_at"] = f"{bank.month}-08T10:00:00+0800"
    frame.loc[3, "booked_at"] = f"{bank.month}-08 10:00 UTC"
    new_york = parse_mapping(Path("bank.yml"), {"timezone": "America/New_York"})
    deliver(bank, tmp_path, "transactions", frame)
    result, con = load(bank, tmp_path, "transactions", mapping=new_york)
    assert result.quarantined == 0
    booked = con.execute(
        f"SELECT strftime(booked_at, '%d %H:%M') FROM raw.transactions "
        f"WHERE _delivery_month = '{bank.month}-01' AND _source_row <= 4 ORDER BY _source_row"
    ).fetchall()
    clock = ZoneInfo("America/New_York")
    instants = [f"{bank.month}-08T10:00:00-05:00", f"{bank.month}-08T10:00:00+08:00", f"{bank.month}-08T10:00:00+00:00"]
    converted = [datetime.fromisoformat(t).astimezone(clock).strftime("%d %H:%M") for t in instants]
    assert booked == [("08 00:00",), *[(c,) for c in converted]]
    assert converted[1].startswith("07 ")  # +08:00 is the evening before in New York


# The optional sources' own rules: an unknown parent, a code not allowed, out of range, a missing
# required column, a duplicate key with a conflicting value. (source, rule, change, outcome): the
# outcome is the first quarantined row (row, reason, column) or the start of the file's error.
NO_CODED_COLUMN = {"balances", "nps_responses"}  # the contract gives them no coded column
NO_RANGED_COLUMN = {"accounts"}  # no numeric column; its dates' bounds stand in


def _set(column: str, value: str, row: int = 0):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame

    return change


def _drop(column: str):
    return lambda frame: frame.drop(columns=[column])


def _repeat_with(column: str, value: str):
    """The first row's key delivered again with another value in `column`."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        again = frame.iloc[[0]].assign(**{column: value})
        return pd.concat([frame, again], ignore_index=True)

    return change


OPTIONAL_SOURCE_RULES = [
    ("accounts", "unknown parent", _set("customer_id", "C-NOBODY"), (1, "unknown_customer", "customer_id")),
    ("accounts", "code not allowed", _set("product_type", "crypto"), (1, "value_not_allowed", "product_type")),
    ("accounts", "out of range", _set("opened_at", "2099-01-01"), (1, "date_implausible", "opened_at")),
    ("accounts", "missing required column", _drop("product_type"), "no required column product_type"),
    ("accounts", "duplicate key", _repeat_with("product_type", "loan"), (1, "duplicate_key", "account_id")),
    ("balances", "unknown parent", _set("account_id", "A-NOBODY"), (1, "unknown_account", "account_id")),
    ("balances", "out of range", _set("balance", "200000000000.00"), (1, "out_of_range", "balance")),
    ("balances", "missing required column", _drop("balance"), "no required column balance"),
    ("balances", "duplicate key", _repeat_with("balance", "1.00"), (1, "duplicate_key", "account_id")),
    ("digital_sessions", "unknown parent", _set("customer_id", "C-NOBODY"), (1, "unknown_customer", "customer_id")),
    ("digital_sessions", "code not allowed", _set("channel", "kiosk"), (1, "value_not_allowed", "channel")),
    ("digital_sessions", "out of range", _set("duration_s", "90000"), (1, "out_of_range", "duration_s")),
    ("digital_sessions", "missing required column", _drop("started_at"), "no required column started_at"),
    ("digital_sessions", "duplicate key", _repeat_with("duration_s", "5"), ("last", "duplicate_key", "session_id")),
    ("service_interactions", "unknown parent", _set("customer_id", "C-NOBODY"), (1, "unknown_customer", "customer_id")),
    ("service_interactions", "code not allowed", _set("kind", "praise"), (1, "value_not_allowed", "kind")),
    ("service_interactions", "out of range", _set("satisfaction", "6"), (1, "out_of_range", "satisfaction")),
    ("service_interactions", "missing required column", _drop("kind"), "no required column kind"),
    (
        "service_interactions",
        "duplicate key",
        _repeat_with("kind", "complaint"),
        ("last", "duplicate_key", "interaction_id"),
    ),
    ("campaign_contacts", "unknown parent", _set("customer_id", "C-NOBODY"), (1, "unknown_customer", "customer_id")),
    ("campaign_contacts", "code not allowed", _set("test_group", "vip"), (1, "value_not_allowed", "test_group")),
    ("campaign_contacts", "out of range", _set("cost", "-1.00"), (1, "out_of_range", "cost")),
    ("campaign_contacts", "missing required column", _drop("campaign_id"), "no required column campaign_id"),
    ("campaign_contacts", "duplicate key", _repeat_with("cost", "9.99"), ("last", "duplicate_key", "contact_id")),
    ("nps_responses", "unknown parent", _set("customer_id", "C-NOBODY"), (1, "unknown_customer", "customer_id")),
    ("nps_responses", "out of range", _set("score", "11"), (1, "out_of_range", "score")),
    ("nps_responses", "missing required column", _drop("score"), "no required column score"),
    ("nps_responses", "duplicate key", _repeat_with("score", "0"), ("last", "duplicate_key", "response_id")),
]


def test_every_optional_source_has_a_case_for_each_rule():
    rules = {"unknown parent", "code not allowed", "out of range", "missing required column", "duplicate key"}
    covered = {(source, rule) for source, rule, _, _ in OPTIONAL_SOURCE_RULES}
    for source in (s for s in SOURCE_ORDER if not SOURCES[s].required):
        expected = set(rules)
        if source in NO_CODED_COLUMN:
            assert not any(c.allowed for c in SOURCES[source].columns), source
            expected.discard("code not allowed")
        if source in NO_RANGED_COLUMN:
            assert not any(c.min is not None or c.max is not None for c in SOURCES[source].columns), source
        assert {r for s, r in covered if s == source} == expected, source


@pytest.mark.parametrize(
    "source, rule, change, outcome", OPTIONAL_SOURCE_RULES, ids=[f"{s}-{r}" for s, r, _, _ in OPTIONAL_SOURCE_RULES]
)
def test_an_optional_source_s_own_rules(bank, tmp_path, source, rule, change, outcome):
    frame = change(original(bank, source))
    path = deliver(bank, tmp_path, source, frame)
    result, con = load(bank, tmp_path, source)
    if isinstance(outcome, str):
        assert isinstance(result, DeliveryError) and str(result).startswith(f"{path}: row 0 (header): {outcome}")
        return
    accounted(result, len(frame))
    row, reason, column = outcome
    assert quarantined(con, source)[0][:3] == (len(frame) if row == "last" else row, reason, column)
    assert result.quarantined == 1


@pytest.mark.parametrize(
    "source, start, end",
    [("accounts", "opened_at", "closed_at"), ("service_interactions", "opened_at", "resolved_at"),
     ("campaign_contacts", "sent_at", "responded_at"), ("campaign_contacts", "sent_at", "converted_at")],
)  # fmt: skip
def test_an_interval_that_ends_before_it_starts_is_quarantined(bank, tmp_path, source, start, end):
    """Resolved before opened, responded before sent: quarantined with the reason, never loaded for a
    downstream model to drop or to count as a negative duration."""
    frame = original(bank, source)
    row = int(frame.index[frame[start] != ""][0])
    began = pd.Timestamp(frame.loc[row, start])
    frame.loc[row, end] = str((began - pd.Timedelta(days=1)).date())
    result, con = load_frame(bank, tmp_path, source, frame)
    assert result.reasons == {"ends_before_start": 1}
    [(r, reason, column, detail)] = quarantined(con, source)
    assert (r, reason, column) == (row + 1, "ends_before_start", end)
    assert detail.startswith(f"{end} ") and f" is before {start} " in detail
