"""Rows in, rows out and seconds: the three numbers every asset reports in its metadata, so a slow
or empty step shows in the UI without reading its logs."""

from __future__ import annotations

import time
from collections.abc import Iterable

import dagster as dg
import duckdb

from valuetier.core.warehouse import rows_in_months

WAREHOUSE_SCHEMAS = {"raw", "raw_quarantine", "staging", "intermediate", "marts", "evaluation", "monitoring"}


def relation(key: dg.AssetKey) -> str | None:
    """The warehouse table an asset key names (marts/customer_tiers: marts.customer_tiers), if any."""
    return ".".join(key.path) if len(key.path) == 2 and key.path[0] in WAREHOUSE_SCHEMAS else None


def rows_of(con: duckdb.DuckDBPyConnection, keys: Iterable[dg.AssetKey], window: dg.PartitionKeyRange | None) -> int:
    """Rows of the assets' warehouse tables in the window's months (every row without a window)."""
    tables = {r for r in map(relation, keys) if r}
    return sum(rows_in_months(con, t, *((window.start, window.end) if window else (None, None))) for t in tables)


def flow_metadata(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    started: float,
    key: dg.AssetKey | None = None,
    rows_in: int | None = None,
    rows_out: int | None = None,
    seconds: float | None = None,
) -> dict[str, dg.MetadataValue]:
    """The asset's flow over the run's months: rows in its warehouse upstreams (unless given) and
    in its own table (unless given), and the seconds since `started` (unless given)."""
    key = key or context.asset_key
    window = context.partition_key_range if context.has_partition_key_range else None
    if rows_in is None:
        rows_in = rows_of(con, context.assets_def.asset_deps.get(key, ()), window)
    if rows_out is None:
        rows_out = rows_of(con, [key], window)
    return {
        "rows_in": dg.MetadataValue.int(rows_in),
        "rows_out": dg.MetadataValue.int(rows_out),
        "seconds": dg.MetadataValue.float(round(time.perf_counter() - started if seconds is None else seconds, 3)),
    }
