"""The raw data contract: which sources a bank delivers, their columns, types, keys and ranges.

This is the single description that the generator writes, ingestion checks and dbt sources mirror.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SourceKind(StrEnum):
    EVENT = "event"  # events dated in the delivery month
    ENTITY = "entity"  # records opened or changed in the delivery month; latest delivery wins
    SNAPSHOT = "snapshot"  # month-end state


MONEY = "DECIMAL(18,2)"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type the value must cast to
    required: bool = True  # the column must be present and the value not null
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    pii: bool = False  # personal data: stored only as its keyed hash (valuetier.ingest.pii), as <name>_hash
    # A closed set of categories whose meaning an evaluation splits on: a delivery mapping may not
    # load unknown codes as 'other' (they would silently join one side of the split).
    closed: bool = False

    @property
    def stored_name(self) -> str:
        """The raw table's column: the contract name, or <name>_hash for personal data."""
        return f"{self.name}_hash" if self.pii else self.name


@dataclass(frozen=True)
class Source:
    name: str
    kind: SourceKind
    key: str
    columns: tuple[Column, ...]
    required: bool = False  # a required source must be delivered for every processed month
    event_time: str | None = None  # column that must fall inside the delivery month
    customer_ref: str | None = "customer_id"  # must name a customer delivered on or before the month
    account_ref: str | None = None  # must name an account delivered on or before the month
    month_end_column: str | None = None  # snapshot column that must equal the delivery month's end
    depends_on: tuple[str, ...] = field(default_factory=tuple)
    # (start, end) column pairs of one interval: a row whose end comes before its start is quarantined.
    intervals: tuple[tuple[str, str], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


# The category a coded value is loaded as when the delivery mapping says unmapped codes are 'other'.
OTHER_CODE = "other"
PRODUCT_TYPES = ("savings", "term_deposit", "fund", "insurance", "credit_card", "loan", "wealth")
LOWEST_DATE = "1900-01-01"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "customers",
            SourceKind.ENTITY,
            key="customer_id",
            required=True,
            customer_ref=None,
            intervals=(("opened_at", "closed_at"),),
            columns=(
                Column("customer_id", "VARCHAR"),
                Column("opened_at", "DATE"),
                # Where delivered, the end of the relationship: the customer is live until then.
                Column("closed_at", "DATE", required=False),
                Column("birth_date", "DATE", required=False),
                Column("city", "VARCHAR", required=False),
                Column("income_band", "VARCHAR", required=False, allowed=("low", "middle", "upper_middle", "high")),
                Column(
                    "risk_profile",
                    "VARCHAR",
                    required=False,
                    allowed=("conservative", "balanced", "growth", "aggressive"),
                ),
                Column("full_name", "VARCHAR", required=False, pii=True),
                Column("national_id", "VARCHAR", required=False, pii=True),
                Column("phone", "VARCHAR", required=False, pii=True),
                Column("email", "VARCHAR", required=False, pii=True),
            ),
        ),
        Source(
            "accounts",
            SourceKind.ENTITY,
            key="account_id",
            depends_on=("customers",),
            intervals=(("opened_at", "closed_at"),),
            columns=(
                Column("account_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("product_type", "VARCHAR", allowed=PRODUCT_TYPES),
                Column("opened_at", "DATE"),
                Column("closed_at", "DATE", required=False),
            ),
        ),
        Source(
            "balances",
            SourceKind.SNAPSHOT,
            key="account_id",
            customer_ref=None,
            account_ref="account_id",
            month_end_column="month_end",
            depends_on=("accounts",),
            columns=(
                Column("account_id", "VARCHAR"),
                Column("month_end", "DATE"),
                Column("balance", MONEY, min=-1e9, max=1e11),
            ),
        ),
        Source(
            "transactions",
            SourceKind.EVENT,
            key="transaction_id",
            required=True,
            event_time="booked_at",
            depends_on=("customers",),
            columns=(
                Column("transaction_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("account_id", "VARCHAR", required=False),
                Column("booked_at", "TIMESTAMP"),
                Column("amount", MONEY, min=0.01, max=1e9),
                Column("currency", "VARCHAR"),
                Column("txn_type", "VARCHAR", allowed=("purchase", "transfer", "payment", "withdrawal", "investment")),
                Column("channel", "VARCHAR", required=False),
                Column("fee_income", MONEY, required=False, min=0, max=1e8),
                Column("net_interest_margin", MONEY, required=False, min=-1e8, max=1e8),
            ),
        ),
        Source(
            "digital_sessions",
            SourceKind.EVENT,
            key="session_id",
            event_time="started_at",
            depends_on=("customers",),
            columns=(
                Column("session_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("started_at", "TIMESTAMP"),
                Column("channel", "VARCHAR", allowed=("app", "web")),
                Column("duration_s", "INTEGER", required=False, min=0, max=86400),
                Column("features_used", "INTEGER", required=False, min=0, max=100),
            ),
        ),
        Source(
            "service_interactions",
            SourceKind.EVENT,
            key="interaction_id",
            event_time="opened_at",
            depends_on=("customers",),
            intervals=(("opened_at", "resolved_at"),),
            columns=(
                Column("interaction_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("opened_at", "TIMESTAMP"),
                Column("resolved_at", "TIMESTAMP", required=False),
                Column("kind", "VARCHAR", allowed=("inquiry", "complaint")),
                Column("satisfaction", "INTEGER", required=False, min=1, max=5),
            ),
        ),
        Source(
            "campaign_contacts",
            SourceKind.EVENT,
            key="contact_id",
            event_time="sent_at",
            depends_on=("customers",),
            intervals=(("sent_at", "responded_at"), ("sent_at", "converted_at")),
            columns=(
                Column("contact_id", "VARCHAR"),
                Column("campaign_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("channel", "VARCHAR", required=False),
                Column("product_offered", "VARCHAR", required=False, allowed=PRODUCT_TYPES),
                Column("sent_at", "TIMESTAMP"),
                Column("responded_at", "TIMESTAMP", required=False),
                Column("converted_at", "TIMESTAMP", required=False),
                Column("cost", MONEY, required=False, min=0, max=1e6),
                # A/B campaigns: 'control' rows are customers selected but held out (not contacted).
                Column("test_group", "VARCHAR", required=False, allowed=("treatment", "control"), closed=True),
            ),
        ),
        Source(
            "nps_responses",
            SourceKind.EVENT,
            key="response_id",
            event_time="answered_at",
            depends_on=("customers",),
            columns=(
                Column("response_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("answered_at", "TIMESTAMP"),
                Column("score", "INTEGER", min=0, max=10),
            ),
        ),
    )
}

SOURCE_ORDER: tuple[str, ...] = tuple(SOURCES)
FILE_FORMATS = ("parquet", "csv")


class Reason(StrEnum):
    """Why a delivered row went to quarantine. Stable codes: BI and tests key on them."""

    MISSING_VALUE = "missing_value"
    INVALID_TYPE = "invalid_type"
    INVALID_AMOUNT = "invalid_amount"  # more decimals than the currency's minor units: never rounded
    OUT_OF_RANGE = "out_of_range"
    NOT_ALLOWED = "value_not_allowed"
    DATE_OUTSIDE_MONTH = "date_outside_month"
    DATE_IMPLAUSIBLE = "date_implausible"
    ENDS_BEFORE_START = "ends_before_start"  # an interval's end before its start (resolved before opened)
    DUPLICATE_KEY = "duplicate_key"
    UNKNOWN_CUSTOMER = "unknown_customer"
    UNKNOWN_ACCOUNT = "unknown_account"
