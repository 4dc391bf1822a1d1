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
from valuetier.core.contract import Reason
from valuetier.demo.generator import GeneratorConfig, generate
from valuetier.ingest.mapping import MappingError, parse_mapping

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


# --- a mapping file a person can get wrong safely: each slip refused, naming the file and the line ---

ACCOUNTS = "account_id,customer_id,product_type,opened_at\nA1,C1,03,2020-01-01\nA2,C2,01,2021-05-05\n"


def refused(landing: Path, mapping: Path, capsys) -> str:
    """validate-landing's error for a mapping file it refuses (exit 2)."""
    assert cli(["validate-landing", str(landing), "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mapping error: {mapping}: "), err
    return err


def test_a_column_mapped_twice_names_both_lines(landing, tmp_path, capsys):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(
        "sources:\n  balances:\n    columns:\n      balance: bal_ledger\n"
        "      month_end: as_of\n      balance: bal_available   # pasted from another template\n"
    )
    err = refused(landing, mapping, capsys)
    assert "line 6: sources.balances.columns.balance is written twice (lines 4 and 6)" in err


@pytest.mark.parametrize(
    "code, read_as", [("01", "YAML reads it as 1 (int)"), ("no", "YAML reads it as False (bool)"),
                      ("on", "YAML reads it as True (bool)"),
                      ("2024-01", "a YAML reader may take it for a number, boolean or date"),
                      ("2024-01-05", "YAML reads it as datetime.date(2024, 1, 5) (date)")],
)  # fmt: skip
def test_an_unquoted_code_yaml_reads_as_another_type_is_refused(landing, tmp_path, capsys, code, read_as):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(
        f"sources:\n  accounts:\n    codes:\n      product_type:\n        map: {{{code}: savings, '02': fund}}\n"
    )
    err = refused(landing, mapping, capsys)
    assert f"line 5: sources.accounts.codes.product_type.map.{code}: the code '{code}' is not quoted" in err
    assert f"is not quoted, and {read_as}: write it in quotes, '{code}'" in err


def test_quoted_codes_with_a_leading_zero_load(landing, tmp_path, capsys):
    write(landing, "accounts", "2024-01", ACCOUNTS)
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(
        "sources:\n  accounts:\n    codes:\n      product_type:\n        map: {'01': savings, '03': fund}\n"
    )
    code, report = check(landing, "--mapping", str(mapping), capsys=capsys)
    assert code == 0
    [accounts] = [f for f in report["files"] if f["source"] == "accounts"]
    assert accounts["loaded"] == 2 and accounts["quarantined"] == 0


def test_a_mapping_with_a_big5_comment_names_the_line(landing, tmp_path, capsys):
    mapping = tmp_path / "mapping.yml"
    mapping.write_bytes("timezone: Asia/Taipei\n# 帳戶類型對照\nsources: {}\n".encode("big5"))
    err = refused(landing, mapping, capsys)
    assert "line 2: not UTF-8 text (Big5 or GBK?)" in err


def test_an_empty_mapping_file_is_refused(landing, tmp_path, capsys):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text("# to do: map the codes\n")
    assert "the mapping file is empty" in refused(landing, mapping, capsys)


def test_mapping_yaml_is_found_and_a_near_miss_is_named(landing, capsys):
    (landing / "mapping.yaml").write_text("timezone: Asia/Shanghai\n")
    code, report = check(landing, capsys=capsys)
    assert code == 0 and report["mapping"] == str(landing / "mapping.yaml")
    (landing / "mapping.yaml").rename(landing / "Mapping.yml")
    assert cli(["validate-landing", str(landing)]) == 2
    err = capsys.readouterr().err
    assert f"{landing / 'Mapping.yml'}: looks like the delivery mapping but is not named mapping.yml" in err


def test_unmapped_other_is_refused_for_the_group_an_evaluation_splits_on(landing, tmp_path, capsys):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(
        "sources:\n  campaign_contacts:\n    codes:\n      test_group:\n"
        "        map: {T: treatment, C: control}\n        unmapped: other\n"
    )
    err = refused(landing, mapping, capsys)
    assert "sources.campaign_contacts.codes.test_group.unmapped: must be quarantine: test_group is a closed set" in err


def test_a_source_entirely_quarantined_fails_and_names_the_mapping_entry(landing, tmp_path, capsys):
    """Codes the mapping does not cover quarantine every account, and every balance then names an
    unknown account: the folder cannot be loaded as delivered."""
    write(landing, "accounts", "2024-01", ACCOUNTS)
    write(landing, "balances", "2024-01", "account_id,month_end,balance\nA1,2024-01-31,100.00\n")
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(
        "sources:\n  accounts:\n    codes:\n      product_type:\n        map: {'1': savings, '3': fund}\n"
    )
    code, report = check(landing, "--mapping", str(mapping), capsys=capsys)
    assert code == 1 and not report["ok"]
    accounts, balances = report["errors"]
    assert accounts.startswith(f"{landing / 'accounts' / '2024-01.csv'}: all 2 rows would be quarantined")
    assert f"likely cause: {mapping} line 4, sources.accounts.codes.product_type" in accounts
    assert "likely cause: every accounts row of 2024-01 is quarantined too" in balances


def test_each_warning_is_said_once_and_no_key_is_asked_for_without_personal_data(tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("VALUETIER_PII_KEY", raising=False)
    landing = tmp_path / "landing"
    for month in ("2024-01", "2024-02", "2024-03"):
        write(landing, "customers", month, CUSTOMERS)
        write(landing, "transactions", month, TRANSACTIONS.replace("2024-01", month).replace("\nT", f"\n{month}-T"))
    code, _ = check(landing, capsys=capsys)
    assert code == 0 and not (tmp_path / "config" / "valuetier" / "pii.key").exists()
    assert not [r for r in caplog.records if "PII" in r.getMessage()]

    personal = "customer_id,opened_at,full_name\nC1,2020-01-01,Wang Xiaoming\nC2,2021-05-05,Li Hua\n"
    for month in ("2024-01", "2024-02", "2024-03"):
        write(landing, "customers", month, personal)
    monkeypatch.setenv("VALUETIER_PII_KEY", "development")
    (landing / "transactions" / "notes.txt").write_text("a stray file")
    caplog.clear()
    code, _ = check(landing, capsys=capsys)
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([m for m in said if "VALUETIER_PII_KEY=development" in m]) == 1, said
    assert len(said) == len(set(said)), said
