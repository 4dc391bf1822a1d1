"""Opening the DuckDB warehouse, and the numbers a person wants after a run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from valuetier.core.contract import SOURCE_ORDER, SOURCES
from valuetier.core.months import months_between, parse_month
from valuetier.core.settings import DuckDBLimits


def pin_time_zone(con: duckdb.DuckDBPyConnection) -> None:
    """UTC as the session's time zone, whatever the host's: DuckDB takes the host's by default, and
    any TIMESTAMPTZ cast or rendering would follow it. (A SET, not a connect option: it needs the ICU
    extension, which loads after the connection opens.)"""
    con.execute("SET TimeZone = 'UTC'")


@contextmanager
def connect(path: Path, read_only: bool = False, limits: DuckDBLimits | None = None):
    """A connection that is always closed: DuckDB allows one writing process, and dbt runs as another.
    Its memory, threads and spill folder are the settings' (VALUETIER_DUCKDB_*)."""
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    limits = limits or DuckDBLimits.for_warehouse(path)
    con = duckdb.connect(str(path), read_only=read_only, config=limits.config())
    pin_time_zone(con)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """The statements of the block as one transaction: committed together, or rolled back on any error
    (a month's rows are replaced whole or not at all)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


FETCH_VECTORS = 8  # DuckDB vectors (2,048 rows) fetched at a time while a query's batches are read


def query_batches(con: duckdb.DuckDBPyConnection, sql: str, params, size: int) -> Iterator[pd.DataFrame]:
    """A query's rows in its order, `size` at a time (the last batch may be smaller): one scan,
    fetched a few DuckDB vectors at a time on a cursor of its own (the connection may write
    meanwhile), so memory holds a batch, not the result.

    One query, not one per batch of customers: where a table's row groups mix months (a history
    built in one dbt run), a range of customers skips none of them, and every batch would read the
    whole table."""
    reader = con.cursor()
    try:
        reader.execute(sql, params)
        held, rows = [], 0
        while not (chunk := reader.fetch_df_chunk(FETCH_VECTORS)).empty:
            held.append(chunk)
            rows += len(chunk)
            while rows >= size:
                joined = pd.concat(held, ignore_index=True)
                yield joined.iloc[:size]
                held, rows = [joined.iloc[size:]], rows - size
        if rows:
            yield pd.concat(held, ignore_index=True)
    finally:
        reader.close()


def append_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Insert a frame's rows into `table`, its columns matched by name."""
    con.register("appended_frame", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM appended_frame")
    finally:
        con.unregister("appended_frame")


def relation_type(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str | None:
    """'BASE TABLE', 'VIEW' or None when there is no such relation."""
    found = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [schema, table]
    ).fetchone()
    return found[0] if found else None


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return relation_type(con, schema, table) is not None


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


def anomalous_transactions_by_month(con: duckdb.DuckDBPyConnection, first: str, last: str) -> dict[str, dict]:
    """Flagged transactions per month of the window, by reason (from marts.fct_transactions)."""
    rows = con.execute(
        """SELECT strftime(month_start, '%Y-%m'), count(*) FILTER (WHERE anomaly_reason = 'amount_outlier'),
                  count(*) FILTER (WHERE anomaly_reason = 'burst'), count(*)
           FROM marts.fct_transactions
           WHERE month_start BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)
           GROUP BY 1 ORDER BY 1""",
        [f"{first}-01", f"{last}-01"],
    ).fetchall()
    return {m: {"amount_outlier": o, "burst": b, "transactions": n} for m, o, b, n in rows}


def optional_sources_without_rows(con: duckdb.DuckDBPyConnection, first: str, last: str) -> dict[str, list[str]]:
    """For each optional source, the months of the window with no loaded row (indicators stay empty)."""
    months = months_between(first, last)
    missing = {}
    for source in (s for s in SOURCES.values() if not s.required):
        loaded = {
            m
            for (m,) in con.execute(
                f"SELECT DISTINCT strftime(_delivery_month, '%Y-%m') FROM raw.{source.name} "
                "WHERE _delivery_month BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)",
                [f"{first}-01", f"{last}-01"],
            ).fetchall()
        }
        absent = [m for m in months if m not in loaded]
        if absent:
            missing[source.name] = absent
    return missing


QUARANTINE_COLUMNS = "source, strftime(delivery_month, '%Y-%m') AS month, source_file, source_row, reason, " + (
    "column_name, detail, raw_record"
)


def quarantine_query(month: str, source: str | None = None) -> str:
    """The quarantined rows of one delivery month (optionally one source), in file-row order. The
    month and source are validated before they are written into the SQL."""
    where = f"delivery_month = DATE '{parse_month(month).isoformat()}'"
    if source:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCE_ORDER)}")
        where += f" AND source = '{source}'"
    return (
        f"SELECT {QUARANTINE_COLUMNS} FROM raw_quarantine.quarantined_rows WHERE {where} "
        "ORDER BY source, source_file, source_row"
    )


def export_quarantine(con: duckdb.DuckDBPyConnection, month: str, out: Path, source: str | None = None) -> int:
    """Write a month's quarantine to CSV or Parquet (by the file's suffix); returns the row count."""
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{out}: export to a .csv or .parquet file")
    out.parent.mkdir(parents=True, exist_ok=True)
    sql = quarantine_query(month, source)
    options = "(FORMAT parquet)" if out.suffix == ".parquet" else "(FORMAT csv, HEADER)"
    target = str(out).replace("'", "''")
    con.execute(f"COPY ({sql}) TO '{target}' {options}")
    return con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]


def quarantine_by_month(con: duckdb.DuckDBPyConnection, source: str, first: str, last: str) -> dict[str, dict]:
    """{month: {reason: rows}} of a source's quarantine over the months first..last."""
    rows = con.execute(
        """SELECT strftime(delivery_month, '%Y-%m'), reason, count(*) FROM raw_quarantine.quarantined_rows
           WHERE source = ? AND delivery_month BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)
           GROUP BY 1, 2 ORDER BY 1, 2""",
        [source, parse_month(first).isoformat(), parse_month(last).isoformat()],
    ).fetchall()
    found: dict[str, dict] = {}
    for month, reason, count in rows:
        found.setdefault(month, {})[reason] = count
    return found


# The columns that place a row in a month, in the order they are looked for.
MONTH_COLUMNS = ("month_start", "delivery_month", "_delivery_month")


def column_names(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    """The columns of a table or view; empty for one that does not exist (yet)."""
    return {
        c
        for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
    }


def rows_in_months(con: duckdb.DuckDBPyConnection, relation: str, first: str | None, last: str | None) -> int:
    """Rows of a table or view in the months first..last, by its month column; every row of one
    without (dim_customer, int_months) or without months given; 0 for one that does not exist (yet)."""
    schema, name = relation.split(".")
    columns = column_names(con, schema, name)
    if not columns:
        return 0
    column = next((c for c in MONTH_COLUMNS if c in columns), None)
    if column is None or first is None:
        return con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
    return con.execute(
        f'SELECT count(*) FROM "{schema}"."{name}" WHERE CAST("{column}" AS DATE) BETWEEN ? AND ?',
        [parse_month(first), parse_month(last)],
    ).fetchone()[0]


class WarehouseBusy(RuntimeError):
    """Another run holds the warehouse: the message says which process, since when."""


@contextmanager
def exclusive_run(warehouse_path: Path, wait_seconds: float = 0.0, poll_seconds: float = 1.0):
    """Hold the warehouse for one run: a second run started meanwhile waits up to `wait_seconds`,
    then stops with WarehouseBusy naming the holder, before it reads or writes anything. An
    advisory lock (flock) on a file beside the warehouse: the kernel releases it when the holder
    exits, killed or not, so a crashed run never leaves the warehouse locked."""
    import fcntl
    import os
    import time

    lock_path = warehouse_path.parent / f".{warehouse_path.name}.run-lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = lock_path.open("a+", encoding="utf-8")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise WarehouseBusy(
                        f"{warehouse_path} is held by another ValueTier run ({holder}); nothing was read or "
                        "written. Wait for it to finish, or start this run with --wait SECONDS"
                    ) from None
                time.sleep(poll_seconds)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


MIN_FREE_BYTES = 64 << 20  # below this a run would stop partway, at whatever write the disk refused


def unwritable(folder: Path, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
    """Why a run cannot write in the warehouse folder (read-only, not permitted, nearly full), or
    None: asked before a run starts, so it stops before it reads or writes anything."""
    import os
    import shutil

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe.{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        return f"cannot write in the warehouse folder {folder}: {exc.strerror}"
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        return (
            f"the warehouse folder {folder} has {free / 2**20:.0f} MB free; a run needs at least "
            f"{min_free_bytes / 2**20:.0f} MB (and about twice the warehouse file's size to rebuild it)"
        )
    return None
