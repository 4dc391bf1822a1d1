"""The faults a dirty demo delivery carries (--dirty-rate): each injected into a written file with
the quarantine reason ingestion must give it, and listed in the fault manifest the tests read."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from valuetier.core.contract import SOURCE_ORDER, Reason
from valuetier.core.months import month_end
from valuetier.demo.config import Fault, FileWriter, GenerationSummary, GeneratorConfig
from valuetier.demo.population import MonthContext

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


def inject_faults(
    table: pa.Table, writer: FileWriter, ctx: MonthContext, summary: GenerationSummary, source: str
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


def write_fault_manifest(cfg: GeneratorConfig, summary: GenerationSummary) -> None:
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
