"""The demo bank's customers and their products: latent traits (spending propensity, product
appetite, digital affinity, churn hazard, value trend), the accounts they open and close, and the
customers, accounts and balances deliveries drawn from them, and the month being generated (the
context every delivery of a month is drawn in). The traits go to the ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from valuetier.core.contract import PRODUCT_TYPES
from valuetier.demo.config import COHORT_MONTHS, GeneratorConfig, date_array, id_array, money_array

CITIES = ("Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu", "Wuhan", "Nanjing", "Xian", "Suzhou")
INCOME_BANDS = ("low", "middle", "upper_middle", "high")
RISK_PROFILES = ("conservative", "balanced", "growth", "aggressive")
SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun")
GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Hui", "Ping", "Tao", "Xin", "Yu")
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


class Population:
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


class Accounts:
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


@dataclass
class MonthContext:
    cfg: GeneratorConfig
    key: str
    m: int
    rng: np.random.Generator
    start_days: int
    end_days: int
    month_days: int
    pop: Population
    accounts: Accounts
    primary_account: np.ndarray
    counters: dict[str, int] = field(default_factory=dict)


def next_seq(ctx: MonthContext, source: str, count: int) -> np.ndarray:
    """The next `count` sequence numbers of a source's ids in this month's file."""
    first = ctx.counters.get(source, 0)
    ctx.counters[source] = first + count
    return np.arange(first + 1, first + count + 1)


def open_accounts(rng, pop, accounts, joiners, cfg, start_days, month_days) -> np.ndarray:
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


def customers_table(ctx: MonthContext, idx: np.ndarray) -> pa.Table:
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
            "customer_id": id_array("C", idx, 8),
            "opened_at": date_array(opened),
            "birth_date": date_array(birth),
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


def accounts_table(ctx: MonthContext, idx: np.ndarray) -> pa.Table:
    acc = ctx.accounts
    closed = acc.closed[idx]
    return pa.table(
        {
            "account_id": id_array("A", idx, 9),
            "customer_id": id_array("C", acc.customer[idx], 8),
            "product_type": pa.array([PRODUCT_TYPES[p] for p in acc.product[idx].tolist()]),
            "opened_at": date_array(acc.opened[idx]),
            "closed_at": pa.array(closed, type=pa.int32(), mask=closed == 0).cast(pa.date32()),
        }
    )


def balances_table(ctx: MonthContext, idx: np.ndarray) -> pa.Table:
    acc, pop, rng = ctx.accounts, ctx.pop, ctx.rng
    customer = acc.customer[idx]
    factor = np.array([BALANCE_FACTOR[PRODUCT_TYPES[p]] for p in acc.product[idx].tolist()])
    months_in = ctx.m - pop.join_month[customer]
    level = pop.wealth[customer] * np.exp(pop.trend[customer] * months_in)
    balance = level * factor * rng.lognormal(0.0, 0.15, len(idx))
    return pa.table(
        {
            "account_id": id_array("A", idx, 9),
            "month_end": date_array(np.full(len(idx), ctx.end_days)),
            "balance": money_array(balance),
        }
    )


def write_traits(pop: Population, path: Path) -> None:
    n = len(pop.spend)
    pq.write_table(
        pa.table(
            {
                "customer_id": id_array("C", np.arange(n), 8),
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
