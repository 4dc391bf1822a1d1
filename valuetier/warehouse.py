"""Opening the DuckDB warehouse, and the numbers a person wants after a run."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import duckdb

from valuetier.contract import SOURCE_ORDER


@contextmanager
def connect(path: Path, read_only: bool = False):
    """A connection that is always closed: DuckDB allows one writing process, and dbt runs as another."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def tiers_of_latest_month(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, float]]:
    """(month, tier, customers, share) for the latest scored month, high tier first."""
    if not table_exists(con, "marts", "customer_tiers"):
        return []
    return con.execute(
        """SELECT strftime(month_start, '%Y-%m'), value_tier, count(*),
                  round(count(*) / sum(count(*)) OVER (), 4)
           FROM marts.customer_tiers
           WHERE month_start = (SELECT max(month_start) FROM marts.customer_tiers)
           GROUP BY 1, 2 ORDER BY array_position(['high', 'mid', 'low'], value_tier)"""
    ).fetchall()


def row_accounting(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int]]:
    """(source, loaded rows, quarantined rows) over all months."""
    if not table_exists(con, "raw_quarantine", "quarantined_rows"):
        return []
    quarantined = dict(
        con.execute("SELECT source, count(*) FROM raw_quarantine.quarantined_rows GROUP BY 1").fetchall()
    )
    return [
        (s, con.execute(f"SELECT count(*) FROM raw.{s}").fetchone()[0], quarantined.get(s, 0)) for s in SOURCE_ORDER
    ]
