"""Demo bank generator: a believable bank's monthly extracts in the raw data contract.

Every customer has latent traits (spending propensity, product appetite, digital affinity, churn
hazard, value trend) that drive what the bank sees. The traits and each customer's realised value
go to a separate ground-truth folder that the pipeline never reads.

Memory stays bounded: per-customer state is a handful of numpy arrays, and events are generated
and written one customer chunk at a time (one Parquet row group or CSV block per chunk).
The same configuration and seed give byte-identical files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from valuetier.core.contract import FILE_FORMATS, PRODUCT_TYPES, SOURCE_ORDER, Reason
from valuetier.core.months import month_end, month_range, parse_month

log = logging.getLogger(__name__)

EPOCH = date(1970, 1, 1)
US_PER_DAY = 86_400_000_000
CITIES = ("Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Xian", "Suzhou")
INCOME_BANDS = ("low", "middle", "upper_middle", "high")
RISK_PROFILES = ("conservative", "balanced", "growth", "aggressive")
SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun")
GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Hui", "Ping", "Tao", "Xin", "Yu")
TXN_TYPES = ("purchase", "transfer", "payment", "withdrawal", "investment")
TXN_TYPE_P = (0.55, 0.2, 0.12, 0.08, 0.05)
FEE_RATE = {"purchase": 0.004, "transfer": 0.001, "payment": 0.002, "withdrawal": 0.003, "investment": 0.012}
TXN_CHANNELS = ("app", "web", "branch", "atm", "pos")
# Product mix of extra holdings beyond the primary savings account.
EXTRA_PRODUCTS = PRODUCT_TYPES[1:]
EXTRA_PRODUCT_P = (0.18, 0.16, 0.14, 0.24, 0.12, 0.16)
# Balance as a multiple of the customer's wealth, by product; debt products carry negative balances.
BALANCE_FACTOR = {
    "savings": 0.25,
    "term_deposit": 0.6,
    "fund": 0.5,
    "insurance": 0.2,
    "credit_card": -0.02,
    "loan": -0.8,
    "wealth": 1.5,
}

# Which reason code ingestion must give each injected fault.
FAULT_REASONS = {
    "duplicate_row": Reason.DUPLICATE_KEY,
    "negative_amount": Reason.OUT_OF_RANGE,
    "absurd_amount": Reason.OUT_OF_RANGE,
    "unparseable_date": Reason.INVALID_TYPE,
    "wrong_type": Reason.INVALID_TYPE,
    "unknown_customer": Reason.UNKNOWN_CUSTOMER,
    "future_date": Reason.DATE_OUTSIDE_MONTH,
    "sub_cent_amount": Reason.INVALID_AMOUNT,
}
# Columns that a dirty extract delivers as text, so that text faults can appear in them.
TEXT_IN_DIRTY_FILES = {"transactions": ("amount", "booked_at"), "customers": ()}
ROW_FAULTS = tuple(f for f in FAULT_REASONS if f != "duplicate_row")
ACQUISITIONS = ("steady", "cohorts")
PROFILES = ("contract", "foreign")
COHORT_MONTHS = 3  # with cohort acquisition every customer joins in the first months

# The "foreign" delivery profile: a bank with its own column names and codes, and the mapping file
# that maps them onto the contract (written beside the sources as landing/mapping.yml).
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
MARGIN_COLUMNS = ("fee_income", "net_interest_margin")
# The campaigns' A/B design: a share of the customers each campaign selects is held out as control
# (not contacted: delivered with test_group 'control', no cost, no response), drawn from a random
# stream of its own. Customers of both groups may open the offered product unprompted (organic
# uptake); a contact adds the conversions it causes on top.
CONTROL_SHARE = 0.2
CONVERSION_GIVEN_RESPONSE = 0.35


def response_probability(appetite: np.ndarray) -> np.ndarray:
    """Chance that a contacted customer responds."""
    return 0.05 + 0.5 * appetite


def organic_uptake(appetite: np.ndarray) -> np.ndarray:
    """Chance that a selected customer opens the offered product without being contacted."""
    return 0.01 + 0.05 * appetite


def true_conversion_uplift(appetite: np.ndarray) -> np.ndarray:
    """Ground truth of the A/B evaluation: how much a contact raises the chance of opening the offered
    product (the conversions it causes, less those who would have opened it anyway)."""
    return response_probability(appetite) * CONVERSION_GIVEN_RESPONSE * (1 - organic_uptake(appetite))


@dataclass(frozen=True)
class GeneratorConfig:
    customers: int
    months: int
    seed: int
    out: Path
    truth: Path | None = None
    start: str = "2023-01"
    file_format: str = "parquet"
    dirty_rate: float = 0.0
    chunk_size: int = 50_000
    initial_share: float = 0.55  # share of customers who already bank with us in the first month
    # A delivery unlike the demo's: which sources are delivered, with or without margin columns,
    # the contract's names and codes or a foreign bank's (with its mapping file), and customers
    # joining steadily or in cohorts in the first COHORT_MONTHS months.
    sources: tuple[str, ...] = SOURCE_ORDER
    margins: bool = True
    profile: str = "contract"
    acquisition: str = "steady"
    # Monthly growth of every customer's ticket size (inflation, or a bank winning wallet share):
    # a steady trend in the amounts, which monitoring must tell from a broken delivery.
    growth: float = 0.0

    def __post_init__(self) -> None:
        if self.customers < 1 or self.months < 1:
            raise ValueError("--customers and --months must be at least 1")
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"--format must be one of {FILE_FORMATS}, not {self.file_format!r}")
        if not 0 <= self.dirty_rate < 0.5:
            raise ValueError("--dirty-rate must be in [0, 0.5)")
        if self.chunk_size < 1:
            raise ValueError("chunk size must be at least 1")
        unknown = sorted(set(self.sources) - set(SOURCE_ORDER))
        if unknown or not {"customers", "transactions"} <= set(self.sources):
            raise ValueError(f"--sources must include customers and transactions, from {', '.join(SOURCE_ORDER)}")
        if self.profile not in PROFILES:
            raise ValueError(f"--profile must be one of {PROFILES}, not {self.profile!r}")
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"--acquisition must be one of {ACQUISITIONS}, not {self.acquisition!r}")
        if not -0.5 < self.growth < 1:
            raise ValueError("--growth must be in (-0.5, 1): a share of the ticket size per month")
        parse_month(self.start)

    @property
    def truth_dir(self) -> Path:
        return self.truth if self.truth is not None else self.out.parent / "ground_truth"


@dataclass(frozen=True)
class Fault:
    """One injected fault: where it is and the quarantine reason ingestion must give it."""

    source: str
    month: str
    file: str
    row: int | None  # 1-based data row in the written file; None for a whole-file fault
    fault: str
    column: str | None
    expected_reason: str
    rows: int = 1


@dataclass
class GenerationSummary:
    rows: dict[str, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    max_chunk_rows: int = 0


def _days(d: date) -> int:
    return (d - EPOCH).days


def _ts(values_us: np.ndarray) -> pa.Array:
    return pa.array(values_us.astype("int64"), type=pa.int64()).cast(pa.timestamp("us"))


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype("int32"), type=pa.int32()).cast(pa.date32())


def _optional_ts(values_us: np.ndarray, present: np.ndarray) -> pa.Array:
    return pa.array(values_us.astype("int64"), type=pa.int64(), mask=~present).cast(pa.timestamp("us"))


def _money(values: np.ndarray) -> pa.Array:
    return pa.array(np.round(values.astype("float64"), 2), type=pa.float64())


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pa.array([f"{prefix}{n:0{width}d}" for n in numbers.tolist()], type=pa.string())


class _FileWriter:
    """Streams one source-month file chunk by chunk; schema fixed by the first chunk."""

    def __init__(self, path: Path, file_format: str):
        self.path = path
        self.file_format = file_format
        self.rows = 0
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.file_format == "parquet":
                self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.path, table.schema)
        if self.file_format == "parquet":
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        else:
            self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class _Population:
    """Latent traits and running state of every customer (O(customers) memory, a few arrays)."""

    def __init__(self, cfg: GeneratorConfig):
        rng = np.random.default_rng([cfg.seed, 0])
        n = cfg.customers
        joins_later = rng.random(n) >= cfg.initial_share
        join_month = np.where(joins_later, rng.integers(0, cfg.months, n), 0)
        if cfg.acquisition == "cohorts":  # acquired in a few campaigns, then no new customers
            join_month = rng.integers(0, min(COHORT_MONTHS, cfg.months), n)
        self.join_month = np.sort(join_month)  # ids grow with joining date
        self.pre_existing = np.zeros(n, dtype=bool)
        if cfg.acquisition == "steady":
            first_joiners = np.flatnonzero(self.join_month == 0)
            self.pre_existing[first_joiners[: int(round(cfg.initial_share * n))]] = True
        self.spend = rng.lognormal(0.0, 0.75, n)
        self.ticket_mu = np.log(250.0) + 0.8 * rng.standard_normal(n)
        self.appetite = rng.beta(2.0, 5.0, n)
        self.digital = rng.beta(2.0, 2.0, n)
        self.hazard = 0.006 * rng.lognormal(0.0, 0.8, n)
        self.trend = rng.normal(0.0, 0.035, n)
        self.wealth = rng.lognormal(9.5, 1.3, n)
        self.temper = rng.normal(0.0, 1.0, n)  # low temper: more complaints, lower NPS
        self.churn_month = np.full(n, -1, dtype=np.int32)
        self.grievance = np.zeros(n)  # decaying count of recent complaints
        self.pending_products: list[tuple[np.ndarray, np.ndarray]] = []  # campaign conversions to open


class _Accounts:
    """Product holdings, grown as customers open products and closed when they churn."""

    def __init__(self) -> None:
        self.customer = np.zeros(0, dtype=np.int64)
        self.product = np.zeros(0, dtype=np.int8)
        self.opened = np.zeros(0, dtype=np.int32)  # days since epoch
        self.closed = np.zeros(0, dtype=np.int32)  # days since epoch, 0 = open

    def add(self, customer: np.ndarray, product: np.ndarray, opened_days: np.ndarray) -> np.ndarray:
        first_new = len(self.customer)
        self.customer = np.concatenate([self.customer, customer.astype(np.int64)])
        self.product = np.concatenate([self.product, product.astype(np.int8)])
        self.opened = np.concatenate([self.opened, opened_days.astype(np.int32)])
        self.closed = np.concatenate([self.closed, np.zeros(len(customer), dtype=np.int32)])
        return np.arange(first_new, len(self.customer))


def generate(cfg: GeneratorConfig, progress: Callable[[str], None] | None = None) -> GenerationSummary:
    """Write the landing files, ground truth and (with a dirty rate) the fault manifest."""
    progress = progress or log.info
    pop = _Population(cfg)
    accounts = _Accounts()
    primary_account = np.full(cfg.customers, -1, dtype=np.int64)
    summary = GenerationSummary()
    truth = cfg.truth_dir
    truth.mkdir(parents=True, exist_ok=True)
    _write_traits(pop, truth / "customer_traits.parquet")
    value_writer = _FileWriter(truth / "monthly_value.parquet", "parquet")
    months = month_range(cfg.start, cfg.months)
    for m, key in enumerate(months):
        rng = np.random.default_rng([cfg.seed, 1, m])
        writers = {s: _FileWriter(cfg.out / s / f"{key}.{cfg.file_format}", cfg.file_format) for s in SOURCE_ORDER}
        start_days = _days(parse_month(key))
        end_days = _days(month_end(key))
        month_days = end_days - start_days + 1
        alive_before = (pop.join_month < m) & (pop.churn_month < 0)

        # Who churns this month: base hazard, raised by recent complaints and a declining trend.
        p_churn = pop.hazard * (1 + 1.5 * pop.grievance) * np.exp(-12 * np.minimum(pop.trend, 0))
        churns = alive_before & (rng.random(cfg.customers) < np.clip(p_churn, 0, 0.5))
        pop.churn_month[churns] = m
        joiners = np.flatnonzero(pop.join_month == m)

        # Accounts: joiners open a primary savings account and maybe more; churners close all.
        new_acc = _open_accounts(rng, pop, accounts, joiners, cfg, start_days, month_days)
        primary_account[joiners] = new_acc[: len(joiners)]
        churn_idx = np.flatnonzero(churns)
        closing = np.isin(accounts.customer, churn_idx) & (accounts.closed == 0)
        accounts.closed[closing] = start_days + rng.integers(0, month_days, int(closing.sum()))
        changed_accounts = np.concatenate([new_acc, np.flatnonzero(closing)])

        active = np.flatnonzero((pop.join_month <= m) & ((pop.churn_month < 0) | (pop.churn_month == m)))
        changed = rng.random(cfg.customers) < 0.003
        customer_rows = np.flatnonzero((pop.join_month == m) | (changed & alive_before & ~churns))

        ctx = _MonthContext(cfg, key, m, rng, start_days, end_days, month_days, pop, accounts, primary_account)
        _write_chunked(writers["customers"], customer_rows, cfg.chunk_size, _customers_table, ctx, summary, "customers")
        _write_chunked(
            writers["accounts"], np.unique(changed_accounts), cfg.chunk_size, _accounts_table, ctx, summary, "accounts"
        )
        open_at_end = np.flatnonzero((accounts.opened <= end_days) & (accounts.closed == 0))
        _write_chunked(writers["balances"], open_at_end, cfg.chunk_size, _balances_table, ctx, summary, "balances")
        new_products: list[tuple[np.ndarray, np.ndarray]] = []
        for chunk in _chunks(active, cfg.chunk_size):
            tables = _activity_tables(ctx, chunk, new_products, value_writer)
            for source, table in tables.items():
                _write(writers[source], table, ctx, summary, source)
        # Campaign conversions open the offered product next month (delivered in that month's file).
        pop.pending_products.extend(new_products)
        for w in writers.values():
            w.close()
        pop.grievance *= 0.6
        progress(f"generated {key}: " + ", ".join(f"{s}={w.rows}" for s, w in writers.items()))

    value_writer.close()
    _write_manifest(cfg, summary)
    if cfg.profile == "foreign":
        write_foreign_mapping(cfg.out / "mapping.yml", cfg.sources)
    return summary


@dataclass
class _MonthContext:
    cfg: GeneratorConfig
    key: str
    m: int
    rng: np.random.Generator
    start_days: int
    end_days: int
    month_days: int
    pop: _Population
    accounts: _Accounts
    primary_account: np.ndarray
    counters: dict[str, int] = field(default_factory=dict)


def _chunks(idx: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(idx), size):
        yield idx[i : i + size]


def _write_chunked(writer, idx, size, build, ctx, summary, source) -> None:
    for chunk in _chunks(idx, size):
        _write(writer, build(ctx, chunk), ctx, summary, source)


def _write(writer: _FileWriter, table: pa.Table, ctx: _MonthContext, summary: GenerationSummary, source: str) -> None:
    cfg = ctx.cfg
    if source not in cfg.sources:
        return  # generated all the same, so the delivered sources do not depend on which others are
    if not cfg.margins and source == "transactions":
        table = table.drop_columns(list(MARGIN_COLUMNS))
    if cfg.dirty_rate > 0 and source in ("transactions", "customers"):
        table = _inject_faults(table, writer, ctx, summary, source)
    if cfg.profile == "foreign":
        table = _as_foreign(table, source, writer.rows)
    summary.max_chunk_rows = max(summary.max_chunk_rows, table.num_rows)
    summary.rows[source] = summary.rows.get(source, 0) + table.num_rows
    if table.num_rows:
        writer.write(table)


def _as_foreign(table: pa.Table, source: str, first_row: int) -> pa.Table:
    """The table in the foreign bank's codes and column names."""
    for column, codes in FOREIGN_CODES.get(source, {}).items():
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


def foreign_mapping(sources: tuple[str, ...] = SOURCE_ORDER) -> dict:
    """The mapping document of the foreign profile (what the bank's data engineer writes)."""
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
        }
        document["sources"][source] = {"columns": dict(FOREIGN_COLUMNS[source]), "codes": codes}
    return document


def write_foreign_mapping(path: Path, sources: tuple[str, ...] = SOURCE_ORDER) -> None:
    header = (
        "# Delivery mapping of the generated foreign bank: its column names and codes onto the ValueTier\n"
        "# raw data contract. Columns: contract column -> the bank's column. Codes: the bank's code -> the\n"
        "# contract's category; unmapped codes are quarantined, or loaded as 'other' and counted.\n"
    )
    path.write_text(header + yaml.safe_dump(foreign_mapping(sources), sort_keys=False))


def _open_accounts(rng, pop, accounts, joiners, cfg, start_days, month_days) -> np.ndarray:
    opened_customer = np.array([], dtype=np.int64)
    opened_day = np.array([], dtype=np.int32)
    if len(joiners):
        join_day = np.where(
            pop.pre_existing[joiners],
            start_days - rng.integers(30, 3650, len(joiners)),
            start_days + rng.integers(0, month_days, len(joiners)),
        )
        extra = rng.binomial(3, pop.appetite[joiners])
        extra_customer = np.repeat(joiners, extra)
        extra_product = 1 + rng.choice(len(EXTRA_PRODUCTS), size=len(extra_customer), p=EXTRA_PRODUCT_P)
        extra_day = np.repeat(join_day, extra)
        opened_customer = np.concatenate([joiners, extra_customer])
        product = np.concatenate([np.zeros(len(joiners), dtype=np.int8), extra_product])
        opened_day = np.concatenate([join_day, extra_day])
    else:
        product = np.array([], dtype=np.int8)
    pending, pop.pending_products = pop.pending_products, []
    for customer, prod in pending:
        still = pop.churn_month[customer] < 0
        customer, prod = customer[still], prod[still]
        opened_customer = np.concatenate([opened_customer, customer])
        product = np.concatenate([product, prod.astype(np.int8)])
        opened_day = np.concatenate([opened_day, start_days + rng.integers(0, month_days, len(customer))])
    return accounts.add(opened_customer, product, opened_day)


def _customers_table(ctx: _MonthContext, idx: np.ndarray) -> pa.Table:
    rng, pop, n = ctx.rng, ctx.pop, len(idx)
    opened = ctx.accounts.opened[ctx.primary_account[idx]]
    age_years = 22 + (pop.wealth[idx] > 20000) * 8 + rng.integers(0, 45, n)
    birth = opened - (age_years * 365.25).astype(np.int32) - rng.integers(0, 365, n)
    income = np.clip(np.digitize(np.log(pop.wealth[idx]), [8.8, 9.8, 10.8]), 0, 3)
    risk = np.clip((pop.appetite[idx] * 4 + rng.random(n) * 0.8).astype(int), 0, 3)
    surname = rng.integers(0, len(SURNAMES), n)
    given = rng.integers(0, len(GIVEN), n)
    return pa.table(
        {
            "customer_id": _ids("C", idx, 8),
            "opened_at": _dates(opened),
            "birth_date": _dates(birth),
            "city": pa.array([CITIES[i] for i in rng.integers(0, len(CITIES), n).tolist()]),
            "income_band": pa.array([INCOME_BANDS[i] for i in income.tolist()]),
            "risk_profile": pa.array([RISK_PROFILES[i] for i in risk.tolist()]),
            "full_name": pa.array(
                [f"{SURNAMES[s]} {GIVEN[g]}" for s, g in zip(surname.tolist(), given.tolist(), strict=True)]
            ),
            "national_id": pa.array(
                [
                    f"{110000 + int(c) % 890000:06d}{int(b) % 100000000:08d}{int(c) % 10000:04d}"
                    for c, b in zip(idx.tolist(), (birth * 7919).tolist(), strict=True)
                ]
            ),
            "phone": pa.array(
                [f"+86 1{30 + int(c) % 60:02d} {int(c) * 7 % 10000:04d} {int(c) % 10000:04d}" for c in idx.tolist()]
            ),
            "email": pa.array(
                [
                    f"{SURNAMES[s].lower()}.{GIVEN[g].lower()}.{c}@example.cn"
                    for s, g, c in zip(surname.tolist(), given.tolist(), idx.tolist(), strict=True)
                ]
            ),
        }
    )


def _accounts_table(ctx: _MonthContext, idx: np.ndarray) -> pa.Table:
    acc = ctx.accounts
    closed = acc.closed[idx]
    return pa.table(
        {
            "account_id": _ids("A", idx, 9),
            "customer_id": _ids("C", acc.customer[idx], 8),
            "product_type": pa.array([PRODUCT_TYPES[p] for p in acc.product[idx].tolist()]),
            "opened_at": _dates(acc.opened[idx]),
            "closed_at": pa.array(closed, type=pa.int32(), mask=closed == 0).cast(pa.date32()),
        }
    )


def _balances_table(ctx: _MonthContext, idx: np.ndarray) -> pa.Table:
    acc, pop, rng = ctx.accounts, ctx.pop, ctx.rng
    customer = acc.customer[idx]
    factor = np.array([BALANCE_FACTOR[PRODUCT_TYPES[p]] for p in acc.product[idx].tolist()])
    months_in = ctx.m - pop.join_month[customer]
    level = pop.wealth[customer] * np.exp(pop.trend[customer] * months_in)
    balance = level * factor * rng.lognormal(0.0, 0.15, len(idx))
    return pa.table(
        {
            "account_id": _ids("A", idx, 9),
            "month_end": _dates(np.full(len(idx), ctx.end_days)),
            "balance": _money(balance),
        }
    )


def _activity_tables(ctx: _MonthContext, idx: np.ndarray, new_products: list, value_writer: _FileWriter) -> dict:
    """Events of one customer chunk for one month: transactions, sessions, service, campaigns, NPS."""
    rng, pop, m = ctx.rng, ctx.pop, ctx.m
    n = len(idx)
    month_us = ctx.month_days * US_PER_DAY
    start_us = ctx.start_days * US_PER_DAY
    churning = pop.churn_month[idx] == m
    tenure = m - pop.join_month[idx]
    season = 1.0 + 0.12 * np.sin(2 * np.pi * (m % 12) / 12) + 0.2 * ((m % 12) == 11)
    rate = 3.0 * pop.spend[idx] * np.exp(np.clip(pop.trend[idx] * tenure, -3, 2)) * season
    rate = np.where(churning, rate * 0.3, rate)

    # Transactions: Poisson counts, log-normal (heavy-tailed) amounts.
    counts = rng.poisson(np.minimum(rate, 60))
    who = np.repeat(idx, counts)
    k = len(who)
    amount = np.maximum(np.exp(pop.ticket_mu[who] + 0.9 * rng.standard_normal(k)) * (1 + ctx.cfg.growth) ** m, 1.0)
    txn_type = rng.choice(len(TXN_TYPES), size=k, p=TXN_TYPE_P)
    fee = amount * np.array([FEE_RATE[t] for t in TXN_TYPES])[txn_type]
    debt_products = np.isin(ctx.accounts.product, [PRODUCT_TYPES.index("credit_card"), PRODUCT_TYPES.index("loan")])
    has_credit = np.isin(who, ctx.accounts.customer[debt_products])
    nim = np.where((txn_type == 2) & has_credit, amount * 0.025, 0.0)
    booked = start_us + rng.integers(0, month_us, k)
    seq = _next_seq(ctx, "transactions", k)
    transactions = pa.table(
        {
            "transaction_id": pa.array([f"T{ctx.key.replace('-', '')}{s:09d}" for s in seq.tolist()]),
            "customer_id": _ids("C", who, 8),
            "account_id": _ids("A", ctx.primary_account[who], 9),
            "booked_at": _ts(booked),
            "amount": _money(amount),
            "currency": pa.array(["CNY"] * k),
            "txn_type": pa.array([TXN_TYPES[t] for t in txn_type.tolist()]),
            "channel": pa.array([TXN_CHANNELS[c] for c in rng.integers(0, len(TXN_CHANNELS), k).tolist()]),
            "fee_income": _money(fee),
            "net_interest_margin": _money(nim),
        }
    )

    # Digital sessions: driven by digital affinity.
    s_counts = rng.poisson(12 * pop.digital[idx] ** 1.5 * np.where(churning, 0.3, 1.0))
    s_who = np.repeat(idx, s_counts)
    ks = len(s_who)
    session_seq = _next_seq(ctx, "digital_sessions", ks)
    sessions = pa.table(
        {
            "session_id": pa.array([f"S{ctx.key.replace('-', '')}{s:09d}" for s in session_seq.tolist()]),
            "customer_id": _ids("C", s_who, 8),
            "started_at": _ts(start_us + rng.integers(0, month_us, ks)),
            "channel": pa.array(["app" if r < 0.7 else "web" for r in rng.random(ks).tolist()]),
            "duration_s": pa.array(rng.integers(20, 1800, ks).astype("int32")),
            "features_used": pa.array((1 + rng.binomial(9, pop.digital[s_who])).astype("int32")),
        }
    )

    # Service: inquiries and complaints; complaints feed the grievance that raises churn.
    complaints = rng.poisson(0.04 * np.exp(-0.7 * pop.temper[idx]))
    inquiries = rng.poisson(0.15, n)
    kinds = np.concatenate([np.zeros(inquiries.sum(), dtype=int), np.ones(complaints.sum(), dtype=int)])
    i_who = np.concatenate([np.repeat(idx, inquiries), np.repeat(idx, complaints)])
    ki = len(i_who)
    i_seq = _next_seq(ctx, "service_interactions", ki)
    opened = start_us + rng.integers(0, month_us - US_PER_DAY, ki)
    resolved_present = rng.random(ki) < 0.9
    satisfaction = np.clip(np.round(3.5 + 0.8 * pop.temper[i_who] - 1.2 * kinds + rng.normal(0, 0.8, ki)), 1, 5)
    pop.grievance[idx] += complaints
    interactions = pa.table(
        {
            "interaction_id": pa.array([f"I{ctx.key.replace('-', '')}{s:08d}" for s in i_seq.tolist()]),
            "customer_id": _ids("C", i_who, 8),
            "opened_at": _ts(opened),
            "resolved_at": _optional_ts(
                opened + rng.integers(600, 5 * US_PER_DAY // 1_000_000, ki) * 1_000_000, resolved_present
            ),
            "kind": pa.array(["inquiry" if x == 0 else "complaint" for x in kinds.tolist()]),
            "satisfaction": pa.array(satisfaction.astype("int32"), mask=~resolved_present),
        }
    )

    # Campaigns: one campaign a month selects ~15 % of customers; appetite drives responses. The
    # control group is drawn after the main stream's draws, from its own stream.
    contacted = idx[rng.random(n) < 0.15]
    kc = len(contacted)
    product = 1 + rng.choice(len(EXTRA_PRODUCTS), size=kc, p=EXTRA_PRODUCT_P)
    ab_rng = np.random.default_rng([ctx.cfg.seed, 5, m, int(idx[0]) if n else 0])
    control = ab_rng.random(kc) < CONTROL_SHARE
    organic = ab_rng.random(kc) < organic_uptake(pop.appetite[contacted])
    responded = (rng.random(kc) < response_probability(pop.appetite[contacted])) & ~control
    converted = responded & (rng.random(kc) < CONVERSION_GIVEN_RESPONSE)
    sent = start_us + rng.integers(0, month_us // 2, kc)
    responded_at = sent + (rng.exponential(36, kc) * 3_600_000_000).astype("int64")
    responded_at = np.minimum(responded_at, start_us + month_us - 2_000_000)
    converted_at = np.minimum(
        responded_at + rng.integers(1, 72 * 3600, kc) * 1_000_000, start_us + month_us - 1_000_000
    )
    channel = np.where(rng.random(kc) < 0.6, "sms", "email")
    c_seq = _next_seq(ctx, "campaign_contacts", kc)
    contacts = pa.table(
        {
            "contact_id": pa.array([f"K{ctx.key.replace('-', '')}{s:08d}" for s in c_seq.tolist()]),
            "campaign_id": pa.array([f"CMP-{ctx.key}"] * kc),
            "customer_id": _ids("C", contacted, 8),
            "channel": pa.array(channel.tolist(), type=pa.string()),
            "product_offered": pa.array([PRODUCT_TYPES[p] for p in product.tolist()], type=pa.string()),
            "sent_at": _ts(sent),
            "responded_at": _optional_ts(responded_at, responded),
            "converted_at": _optional_ts(converted_at, converted),
            "cost": _money(np.where(control, 0.0, np.where(channel == "sms", 0.3, 0.05))),
            "test_group": pa.array(np.where(control, "control", "treatment").tolist(), type=pa.string()),
        }
    )
    opens = converted | organic
    new_products.append((contacted[opens], product[opens]))

    # NPS: a small survey sample; scores follow temper and recent complaints.
    surveyed = idx[rng.random(n) < 0.04]
    kn = len(surveyed)
    score = np.clip(
        np.round(7.5 + 1.5 * pop.temper[surveyed] - 2.0 * pop.grievance[surveyed] + rng.normal(0, 1.2, kn)), 0, 10
    )
    n_seq = _next_seq(ctx, "nps_responses", kn)
    nps = pa.table(
        {
            "response_id": pa.array([f"N{ctx.key.replace('-', '')}{s:08d}" for s in n_seq.tolist()]),
            "customer_id": _ids("C", surveyed, 8),
            "answered_at": _ts(start_us + rng.integers(0, month_us, kn)),
            "score": pa.array(score.astype("int32")),
        }
    )

    # Ground truth: what each customer was worth this month.
    profit = np.bincount(np.searchsorted(idx, who), weights=np.round(fee, 2) + np.round(nim, 2), minlength=n)
    spent = np.bincount(np.searchsorted(idx, who), weights=np.round(amount, 2), minlength=n)
    value_writer.write(
        pa.table(
            {
                "customer_id": _ids("C", idx, 8),
                "month": pa.array([ctx.key] * n),
                "transactions": pa.array(counts.astype("int32")),
                "amount": _money(spent),
                "profit_contribution": _money(profit),
                "churned_this_month": pa.array(churning),
            }
        )
    )
    return {
        "transactions": transactions,
        "digital_sessions": sessions,
        "service_interactions": interactions,
        "campaign_contacts": contacts,
        "nps_responses": nps,
    }


def _next_seq(ctx: _MonthContext, source: str, count: int) -> np.ndarray:
    """The next `count` sequence numbers of a source's ids in this month's file."""
    first = ctx.counters.get(source, 0)
    ctx.counters[source] = first + count
    return np.arange(first + 1, first + count + 1)


def _inject_faults(
    table: pa.Table, writer: _FileWriter, ctx: _MonthContext, summary: GenerationSummary, source: str
) -> pa.Table:
    """Corrupt a share of rows the way real extracts go wrong, and record each fault."""
    rng = np.random.default_rng([ctx.cfg.seed, 2, ctx.m, writer.rows, SOURCE_ORDER.index(source)])
    n = table.num_rows
    faulty = rng.random(n) < ctx.cfg.dirty_rate
    positions = np.flatnonzero(faulty)
    if source == "customers":
        # Only exact re-sends: a corrupt customer record would also orphan that customer's other rows.
        kinds = np.full(len(positions), "duplicate_row")
    else:
        kinds = rng.choice(np.array(ROW_FAULTS + ("duplicate_row",)), size=len(positions))
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for name in TEXT_IN_DIRTY_FILES[source]:
        columns[name] = [None if v is None else _as_text(v) for v in columns[name]]
    faults: list[Fault] = []
    duplicates: list[int] = []
    file_name = writer.path.name
    for pos, kind in zip(positions.tolist(), kinds.tolist(), strict=True):
        column = None
        if kind == "duplicate_row":
            duplicates.append(pos)
            continue
        if kind == "negative_amount":
            column, columns["amount"][pos] = "amount", f"{-float(columns['amount'][pos]):.2f}"
        elif kind == "absurd_amount":
            column, columns["amount"][pos] = "amount", "999999999999.00"
        elif kind == "sub_cent_amount":
            column, columns["amount"][pos] = "amount", f"{float(columns['amount'][pos]):.2f}7"
        elif kind == "wrong_type":
            column, columns["amount"][pos] = "amount", "12,50O"
        elif kind == "unparseable_date":
            column, columns["booked_at"][pos] = "booked_at", "2024-13-45 25:61:00"
        elif kind == "unknown_customer":
            column, columns["customer_id"][pos] = "customer_id", f"CX{rng.integers(0, 10**7):07d}"
        elif kind == "future_date":
            last_day = month_end(ctx.key)
            # A year after the month's last day (365 days: 29 February has no date a year on).
            future = datetime.combine(last_day + timedelta(days=365), datetime.min.time())
            column, columns["booked_at"][pos] = "booked_at", future.strftime("%Y-%m-%d %H:%M:%S.%f")
        faults.append(Fault(source, ctx.key, file_name, writer.rows + pos + 1, kind, column, FAULT_REASONS[kind].value))
    for j, pos in enumerate(duplicates):
        for name in columns:
            columns[name].append(columns[name][pos])
        faults.append(
            Fault(
                source,
                ctx.key,
                file_name,
                writer.rows + n + j + 1,
                "duplicate_row",
                table.schema.field(0).name,
                FAULT_REASONS["duplicate_row"].value,
            )
        )
    summary.faults.extend(faults)
    schema = pa.schema(
        [pa.field(f.name, pa.string() if f.name in TEXT_IN_DIRTY_FILES[source] else f.type) for f in table.schema]
    )
    return pa.table(
        {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()}, schema=schema
    )


def _as_text(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.isoformat()


def _write_traits(pop: _Population, path: Path) -> None:
    n = len(pop.spend)
    pq.write_table(
        pa.table(
            {
                "customer_id": _ids("C", np.arange(n), 8),
                "join_month_index": pa.array(pop.join_month.astype("int32")),
                "spend_propensity": pa.array(pop.spend),
                "ticket_log_mean": pa.array(pop.ticket_mu),
                "product_appetite": pa.array(pop.appetite),
                "digital_affinity": pa.array(pop.digital),
                "churn_hazard": pa.array(pop.hazard),
                "value_trend": pa.array(pop.trend),
                "wealth": pa.array(pop.wealth),
            }
        ),
        path,
        compression="zstd",
    )


def _write_manifest(cfg: GeneratorConfig, summary: GenerationSummary) -> None:
    truth = cfg.truth_dir
    manifest = {
        "customers": cfg.customers,
        "months": cfg.months,
        "start": cfg.start,
        "seed": cfg.seed,
        "dirty_rate": cfg.dirty_rate,
        "rows": dict(sorted(summary.rows.items())),
        "faults": [f.__dict__ for f in summary.faults],
    }
    (truth / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
