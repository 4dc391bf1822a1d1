"""`valuetier validate-landing`: a landing folder checked with the ingestion's own checks and the
delivery mapping, without a warehouse; every file-level error class, every quarantine reason,
mapping errors, exit codes and --json."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import FOREIGN_DELIVERY
from valuetier.cli import main as cli
from valuetier.contract import Reason
from valuetier.generator import GeneratorConfig, generate
from valuetier.mapping import MappingError, parse_mapping

CUSTOMERS = "customer_id,opened_at,birth_date\nC1,2020-01-01,1980-02-02\nC2,2021-05-05,\n"
TRANSACTIONS = (
    "transaction_id,customer_id,booked_at,amount,currency,txn_type\n"
    "T1,C1,2024-01-10 10:00:00,10.00,CNY,purchase\n"
    "T2,C2,2024-01-11 10:00:00,25.50,CNY,payment\n"
)


def write(landing: Path, source: str, month: str, text: str | bytes, suffix: str = "csv") -> Path:
    path = landing / source / f"{month}.{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def check(landing: Path, *args: str, capsys) -> tuple[int, dict]:
    code = cli(["validate-landing", str(landing), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def landing(tmp_path) -> Path:
    root = tmp_path / "landing"
    write(root, "customers", "2024-01", CUSTOMERS)
    write(root, "transactions", "2024-01", TRANSACTIONS)
    return root


def test_a_clean_folder_passes_and_touches_no_warehouse(landing, capsys, tmp_path):
    code = cli(["validate-landing", str(landing)])
    out = capsys.readouterr().out
    assert code == 0
    assert "transactions/2024-01.csv" in out and "delivered          2  loads          2" in out
    assert "no file-level errors" in out
    assert not list(tmp_path.rglob("*.duckdb"))


def test_every_quarantine_reason_with_its_first_rows(landing, capsys):
    write(
        landing,
        "customers",
        "2024-01",
        CUSTOMERS + "C3,2030-01-01,\nC4,2019-01-01,\nC4,2019-01-01,\n",  # a future opening; a re-sent row
    )
    write(
        landing,
        "accounts",
        "2024-01",
        "account_id,customer_id,product_type,opened_at,closed_at\nA1,C1,savings,2020-01-01,\n"
        "A2,C1,savings,2020-01-01,2019-12-31\n",  # closed before it opened
    )
    write(landing, "balances", "2024-01", "account_id,month_end,balance\nA1,2024-01-31,100.00\nA9,2024-01-31,5.00\n")
    write(
        landing,
        "transactions",
        "2024-01",
        TRANSACTIONS
        + "T3,C1,2024-01-12 10:00:00,,CNY,purchase\n"  # missing_value
        + "T4,C1,2024-01-12 10:00:00,12,50,CNY,purchase\n".replace("12,50", "12x50")  # invalid_type
        + "T5,C1,2024-01-12 10:00:00,1.005,CNY,purchase\n"  # invalid_amount
        + "T6,C1,2024-01-12 10:00:00,-3.00,CNY,purchase\n"  # out_of_range
        + "T7,C1,2024-01-12 10:00:00,3.00,CNY,gift\n"  # value_not_allowed
        + "T8,C1,2024-02-01 00:00:01,3.00,CNY,purchase\n"  # date_outside_month
        + "T1,C1,2024-01-13 10:00:00,3.00,CNY,purchase\n"  # duplicate_key
        + "T9,C9,2024-01-13 10:00:00,3.00,CNY,purchase\n",  # unknown_customer
    )
    code, report = check(landing, capsys=capsys)
    assert code == 0 and report["ok"]
    files = {f["source"]: f for f in report["files"]}
    assert files["transactions"]["reasons"] == {
        r: 1
        for r in (
            "date_outside_month",
            "duplicate_key",
            "invalid_amount",
            "invalid_type",
            "missing_value",
            "out_of_range",
            "unknown_customer",
            "value_not_allowed",
        )
    }
    assert files["customers"]["reasons"] == {"date_implausible": 1, "duplicate_key": 1}
    assert files["balances"]["reasons"] == {"unknown_account": 1}
    assert files["accounts"]["reasons"] == {"ends_before_start": 1}
    seen = {r for f in report["files"] for r in f["reasons"]}
    assert seen == {r.value for r in Reason}
    first = {row["reason"]: row for row in files["transactions"]["first_rows"]}
    assert first["invalid_amount"] == {
        "row": 5,
        "reason": "invalid_amount",
        "column": "amount",
        "detail": "more decimals than the currency's 2 minor units: 1.005",
    }
    assert first["duplicate_key"]["row"] == 9 and first["unknown_customer"]["column"] == "customer_id"
    assert files["transactions"]["delivered"] == 10 and files["transactions"]["loaded"] == 2


@pytest.mark.parametrize(
    "case, content, suffix, message",
    [
        ("empty file", b"", "csv", "the file is empty"),
        ("another delimiter", TRANSACTIONS.replace(",", ";").encode(), "csv", "looks ';'-delimited"),
        (
            "not UTF-8",
            TRANSACTIONS.replace("CNY", "\u4eba\u6c11\u5e01").encode("gbk"),
            "csv",
            "row 1, column currency: not UTF-8",
        ),
        ("truncated parquet", b"PAR1\x00\x01\x02", "parquet", "cannot be read"),
        (
            "missing required column",
            TRANSACTIONS.replace("amount", "amt").encode(),
            "csv",
            "row 0 (header): no required column amount",
        ),
    ],
)
def test_each_file_level_error_is_named_and_fails(landing, capsys, case, content, suffix, message):
    (landing / "transactions" / "2024-01.csv").unlink()
    path = write(landing, "transactions", "2024-01", content, suffix)
    code, report = check(landing, capsys=capsys)
    assert code == 1 and not report["ok"], case
    [error] = report["errors"]
    assert error.startswith(str(path)) and message in error, error


def test_two_files_for_a_month_misnamed_files_and_missing_months(landing, capsys):
    write(landing, "transactions", "2024-03", TRANSACTIONS.replace("2024-01", "2024-03"))
    write(landing, "transactions", "2024-03", TRANSACTIONS.replace("2024-01", "2024-03"), "parquet")
    write(landing, "transactions", "jan-2024", TRANSACTIONS)
    write(landing, "customers", "2024-05", CUSTOMERS)
    code, report = check(landing, capsys=capsys)
    assert code == 1
    errors = "\n".join(report["errors"])
    assert "jan-2024.csv: the file name is not a month" in errors
    assert "transactions: no file for 2024-02, between 2024-01 and 2024-03" in errors
    assert "customers/2024-05.csv: no transactions file for 2024-05" in errors
    assert "two deliveries for transactions 2024-03" in errors


def test_required_customers_never_delivered(tmp_path, capsys):
    landing = tmp_path / "landing"
    write(landing, "transactions", "2024-01", TRANSACTIONS)
    code, report = check(landing, capsys=capsys)
    assert code == 1 and "required file missing" in report["errors"][0]


@pytest.mark.parametrize(
    "document, key",
    [
        ({"tz": "UTC"}, "(top level).tz: unknown key"),
        ({"timezone": "Mars/Olympus"}, "timezone: not a time zone name"),
        ({"money_minor_units": 3}, "money_minor_units: must be a whole number from 0 to 2"),
        ({"sources": {"trades": {}}}, "sources.trades: unknown key"),
        ({"sources": {"transactions": {"columns": {"amt": "x"}}}}, "sources.transactions.columns.amt: unknown key"),
        (
            {"sources": {"transactions": {"columns": {"amount": "x", "currency": "X"}}}},
            "sources.transactions.columns.currency: 'X' is already mapped to amount",
        ),
        (
            {"sources": {"transactions": {"codes": {"currency": {"map": {}}}}}},
            "sources.transactions.codes.currency: transactions.currency is not a coded column",
        ),
        (
            {"sources": {"transactions": {"codes": {"txn_type": {"map": {"card": "shopping"}}}}}},
            "sources.transactions.codes.txn_type.map.card: 'shopping' is not a category of txn_type",
        ),
        (
            {"sources": {"transactions": {"codes": {"txn_type": {"unmapped": "drop"}}}}},
            "sources.transactions.codes.txn_type.unmapped: must be quarantine or other, not 'drop'",
        ),
    ],
)
def test_mapping_errors_name_the_key(document, key):
    with pytest.raises(MappingError) as error:
        parse_mapping(Path("bank.yml"), document)
    assert str(error.value).startswith(f"bank.yml: {key}")


def test_a_bad_mapping_file_exits_2(landing, tmp_path, capsys):
    bad = tmp_path / "mapping.yml"
    bad.write_text("sources:\n  transactions:\n    codes:\n      txn_type:\n        unmapped: drop\n")
    assert cli(["validate-landing", str(landing), "--mapping", str(bad)]) == 2
    assert "txn_type.unmapped: must be quarantine or other" in capsys.readouterr().err
    bad.write_text("sources: [unclosed\n")
    assert cli(["validate-landing", str(landing), "--mapping", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert cli(["validate-landing", str(tmp_path / "nowhere")]) == 2


def test_a_foreign_bank_fails_without_its_mapping_and_passes_with_it(tmp_path, capsys):
    landing = tmp_path / "foreign" / "landing"
    generate(
        GeneratorConfig(customers=300, months=3, seed=9, out=landing, **FOREIGN_DELIVERY),
        progress=lambda _: None,
    )
    mapping = landing / "mapping.yml"
    code, report = check(landing, capsys=capsys)  # mapping.yml in the landing folder is the default
    assert code == 0 and report["mapping"] == str(mapping)
    transactions = [f for f in report["files"] if f["source"] == "transactions"]
    assert all(f["quarantined"] == 0 and f["loaded"] == f["delivered"] > 0 for f in transactions)
    assert all(set(f["other_codes"]) == {"txn_type"} for f in transactions)
    elsewhere = tmp_path / "kept.yml"
    mapping.rename(elsewhere)
    code, report = check(landing, capsys=capsys)
    assert code == 1 and "no required column customer_id" in report["errors"][0]
    code, report = check(landing, "--mapping", str(elsewhere), capsys=capsys)
    assert code == 0


def test_streams_a_file_in_batches(tmp_path, capsys):
    """A Parquet file of many row groups is read batch by batch, as ingestion does."""
    landing = tmp_path / "landing"
    write(landing, "customers", "2024-01", CUSTOMERS)
    rows = 120_000
    table = pa.table(
        {
            "transaction_id": [f"T{i}" for i in range(rows)],
            "customer_id": ["C1"] * rows,
            "booked_at": pa.array([1704880800_000_000] * rows, pa.timestamp("us")),
            "amount": [1.25] * rows,
            "currency": ["CNY"] * rows,
            "txn_type": ["purchase"] * rows,
        }
    )
    (landing / "transactions").mkdir()
    pq.write_table(table, landing / "transactions" / "2024-01.parquet", row_group_size=10_000)
    code, report = check(landing, capsys=capsys)
    assert code == 0
    [f] = [f for f in report["files"] if f["source"] == "transactions"]
    assert f["delivered"] == f["loaded"] == rows


def test_parquet_doubles_are_judged_in_cents_not_by_their_binary_noise(tmp_path, capsys):
    landing = tmp_path / "landing"
    write(landing, "customers", "2024-01", CUSTOMERS)
    amounts = [0.1 + 0.2, 1234.56 * 100, 12.345, 999999999.99]
    table = pa.table(
        {
            "transaction_id": [f"T{i}" for i in range(len(amounts))],
            "customer_id": ["C1"] * len(amounts),
            "booked_at": pa.array([1704880800_000_000] * len(amounts), pa.timestamp("us")),
            "amount": pa.array(amounts, pa.float64()),
            "currency": ["CNY"] * len(amounts),
            "txn_type": ["purchase"] * len(amounts),
        }
    )
    (landing / "transactions").mkdir()
    pq.write_table(table, landing / "transactions" / "2024-01.parquet")
    _, report = check(landing, capsys=capsys)
    [f] = [f for f in report["files"] if f["source"] == "transactions"]
    assert f["reasons"] == {"invalid_amount": 1} and f["first_rows"][0]["row"] == 3
