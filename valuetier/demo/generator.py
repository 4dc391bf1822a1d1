"""Demo bank generator: a believable bank's monthly extracts in the raw data contract.

Every customer has latent traits (spending propensity, product appetite, digital affinity, churn
hazard, value trend) that drive what the bank sees. The traits and each customer's realised value
go to a separate ground-truth folder that the pipeline never reads.

Memory stays bounded: per-customer state is a handful of numpy arrays, and events are generated
and written one customer chunk at a time (one Parquet row group or CSV block per chunk).
The same configuration and seed give byte-identical files.

This module runs the months; the customers and their products are in population, what they do
in activity, a dirty delivery's faults in faults, and the foreign bank's names and codes in foreign.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from valuetier.core.contract import SOURCE_ORDER
from valuetier.core.months import month_end, month_range, parse_month
from valuetier.demo.activity import activity_tables
from valuetier.demo.config import (
    DEMOGRAPHIC_COLUMNS,
    MARGIN_COLUMNS,
    FileWriter,
    GenerationSummary,
    GeneratorConfig,
    epoch_days,
)
from valuetier.demo.faults import inject_faults, write_fault_manifest
from valuetier.demo.foreign import as_foreign, write_foreign_mapping
from valuetier.demo.population import (
    Accounts,
    MonthContext,
    Population,
    accounts_table,
    balances_table,
    customers_table,
    open_accounts,
    write_traits,
)

log = logging.getLogger(__name__)


def generate(cfg: GeneratorConfig, progress: Callable[[str], None] | None = None) -> GenerationSummary:
    """Write the landing files, ground truth and (with a dirty rate) the fault manifest."""
    progress = progress or log.info
    pop = Population(cfg)
    accounts = Accounts()
    primary_account = np.full(cfg.customers, -1, dtype=np.int64)
    summary = GenerationSummary()
    truth = cfg.truth_dir
    truth.mkdir(parents=True, exist_ok=True)
    write_traits(pop, truth / "customer_traits.parquet")
    value_writer = FileWriter(truth / "monthly_value.parquet", "parquet")
    months = month_range(cfg.start, cfg.months)
    for m, key in enumerate(months):
        rng = np.random.default_rng([cfg.seed, 1, m])
        writers = {s: FileWriter(cfg.out / s / f"{key}.{cfg.file_format}", cfg.file_format) for s in SOURCE_ORDER}
        start_days = epoch_days(parse_month(key))
        end_days = epoch_days(month_end(key))
        month_days = end_days - start_days + 1
        alive_before = (pop.join_month < m) & (pop.churn_month < 0)

        # Who churns this month: base hazard, raised by recent complaints and a declining trend.
        p_churn = pop.hazard * (1 + 1.5 * pop.grievance) * np.exp(-12 * np.minimum(pop.trend, 0))
        churns = alive_before & (rng.random(cfg.customers) < np.clip(p_churn, 0, 0.5))
        pop.churn_month[churns] = m
        joiners = np.flatnonzero(pop.join_month == m)

        # Accounts: joiners open a primary savings account and maybe more; churners close all.
        new_acc = open_accounts(rng, pop, accounts, joiners, cfg, start_days, month_days)
        primary_account[joiners] = new_acc[: len(joiners)]
        churn_idx = np.flatnonzero(churns)
        closing = np.isin(accounts.customer, churn_idx) & (accounts.closed == 0)
        accounts.closed[closing] = start_days + rng.integers(0, month_days, int(closing.sum()))
        changed_accounts = np.concatenate([new_acc, np.flatnonzero(closing)])

        active = np.flatnonzero((pop.join_month <= m) & ((pop.churn_month < 0) | (pop.churn_month == m)))
        changed = rng.random(cfg.customers) < 0.003
        customer_rows = np.flatnonzero((pop.join_month == m) | (changed & alive_before & ~churns))

        ctx = MonthContext(cfg, key, m, rng, start_days, end_days, month_days, pop, accounts, primary_account)
        _write_chunked(writers["customers"], customer_rows, cfg.chunk_size, customers_table, ctx, summary, "customers")
        _write_chunked(
            writers["accounts"], np.unique(changed_accounts), cfg.chunk_size, accounts_table, ctx, summary, "accounts"
        )
        open_at_end = np.flatnonzero((accounts.opened <= end_days) & (accounts.closed == 0))
        _write_chunked(writers["balances"], open_at_end, cfg.chunk_size, balances_table, ctx, summary, "balances")
        new_products: list[tuple[np.ndarray, np.ndarray]] = []
        for chunk in _chunks(active, cfg.chunk_size):
            tables = activity_tables(ctx, chunk, new_products, value_writer)
            for source, table in tables.items():
                _write(writers[source], table, ctx, summary, source)
        # Campaign conversions open the offered product next month (delivered in that month's file).
        pop.pending_products.extend(new_products)
        for w in writers.values():
            w.close()
        pop.grievance *= 0.6
        progress(f"generated {key}: " + ", ".join(f"{s}={w.rows}" for s, w in writers.items()))

    value_writer.close()
    write_fault_manifest(cfg, summary)
    if cfg.profile == "foreign":
        write_foreign_mapping(cfg.out / "mapping.yml", cfg.sources, () if cfg.demographics else DEMOGRAPHIC_COLUMNS)
    return summary


def _chunks(idx: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(idx), size):
        yield idx[i : i + size]


def _write_chunked(writer, idx, size, build, ctx, summary, source) -> None:
    for chunk in _chunks(idx, size):
        _write(writer, build(ctx, chunk), ctx, summary, source)


def _write(writer: FileWriter, table: pa.Table, ctx: MonthContext, summary: GenerationSummary, source: str) -> None:
    cfg = ctx.cfg
    if source not in cfg.sources:
        return  # generated all the same, so the delivered sources do not depend on which others are
    if not cfg.margins and source == "transactions":
        table = table.drop_columns(list(MARGIN_COLUMNS))
    if not cfg.demographics and source == "customers":
        table = table.drop_columns(list(DEMOGRAPHIC_COLUMNS))
    if cfg.dirty_rate > 0 and source in ("transactions", "customers"):
        table = inject_faults(table, writer, ctx, summary, source)
    if cfg.profile == "foreign":
        table = as_foreign(table, source, writer.rows)
    summary.max_chunk_rows = max(summary.max_chunk_rows, table.num_rows)
    summary.rows[source] = summary.rows.get(source, 0) + table.num_rows
    if table.num_rows:
        writer.write(table)
