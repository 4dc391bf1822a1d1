"""The "foreign" delivery profile: a bank with its own column names and codes, and the mapping
file that maps them onto the contract (written beside the sources as landing/mapping.yml)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import yaml

from valuetier.core.contract import SOURCE_ORDER

FOREIGN_COLUMNS = {
    "customers": {
        "customer_id": "cust_no",
        "opened_at": "open_date",
        "birth_date": "dob",
        "city": "branch_city",
        "income_band": "income_segment",
        "risk_profile": "risk_appetite",
        "full_name": "cust_name",
        "national_id": "id_number",
        "phone": "mobile",
        "email": "email_addr",
    },
    "transactions": {
        "transaction_id": "txn_ref",
        "customer_id": "cust_no",
        "account_id": "acct_no",
        "booked_at": "txn_time",
        "amount": "txn_amt",
        "currency": "ccy",
        "txn_type": "txn_code",
        "channel": "txn_channel",
        "fee_income": "fee_amt",
        "net_interest_margin": "nim_amt",
    },
}
# contract category -> the bank's codes (rows take them in turn, so every code appears)
FOREIGN_CODES = {
    "customers": {
        "income_band": {
            "low": ("under_500k",),
            "middle": ("500k_2m",),
            "upper_middle": ("2m_5m",),
            "high": ("over_5m",),
        },
        "risk_profile": {
            "conservative": ("cautious",),
            "balanced": ("moderate",),
            "growth": ("adventurous",),
            "aggressive": ("speculative",),
        },
    },
    "transactions": {
        "txn_type": {
            "purchase": ("card_purchase", "pos_purchase"),
            "transfer": ("transfer_in", "transfer_out"),
            "payment": ("bill_payment",),
            "withdrawal": ("atm_withdrawal",),
            "investment": ("fund_subscription",),
        },
    },
}
# A code the bank's mapping does not list: loaded as 'other' (unmapped: other), one row in this many.
FOREIGN_UNMAPPED_TXN_CODE, FOREIGN_UNMAPPED_EVERY = "fx_conversion", 97


def as_foreign(table: pa.Table, source: str, first_row: int) -> pa.Table:
    """The table in the foreign bank's codes and column names."""
    for column, codes in FOREIGN_CODES.get(source, {}).items():
        if column not in table.column_names:
            continue  # a column the bank does not deliver (demographics)
        values = table.column(column).to_pylist()
        recoded = [
            None if v is None else codes[v][(first_row + i) % len(codes[v])] if v in codes else v
            for i, v in enumerate(values)
        ]
        if column == "txn_type":
            recoded = [
                FOREIGN_UNMAPPED_TXN_CODE if (first_row + i) % FOREIGN_UNMAPPED_EVERY == 0 else v
                for i, v in enumerate(recoded)
            ]
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(recoded, pa.string()))
    names = FOREIGN_COLUMNS.get(source, {})
    return table.rename_columns([names.get(name, name) for name in table.column_names])


def foreign_mapping(sources: tuple[str, ...] = SOURCE_ORDER, undelivered: tuple[str, ...] = ()) -> dict:
    """The mapping document of the foreign profile (what the bank's data engineer writes), without
    the `undelivered` contract columns."""
    document: dict = {"timezone": "Asia/Shanghai", "money_minor_units": 2, "sources": {}}
    for source in ("customers", "transactions"):
        if source not in sources:
            continue
        codes = {
            column: {
                "map": {code: category for category, bank in codes.items() for code in bank},
                "unmapped": "other" if column == "txn_type" else "quarantine",
            }
            for column, codes in FOREIGN_CODES[source].items()
            if column not in undelivered
        }
        columns = {name: bank for name, bank in FOREIGN_COLUMNS[source].items() if name not in undelivered}
        document["sources"][source] = {"columns": columns, "codes": codes}
    return document


def write_foreign_mapping(
    path: Path, sources: tuple[str, ...] = SOURCE_ORDER, undelivered: tuple[str, ...] = ()
) -> None:
    header = (
        "# Delivery mapping of the generated foreign bank: its column names and codes onto the ValueTier\n"
        "# raw data contract. Columns: contract column -> the bank's column. Codes: the bank's code -> the\n"
        "# contract's category; unmapped codes are quarantined, or loaded as 'other' and counted.\n"
    )
    path.write_text(header + yaml.safe_dump(foreign_mapping(sources, undelivered), sort_keys=False))
