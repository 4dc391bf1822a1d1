"""Ingestion: check one source-month delivery against the contract and load it into the warehouse.

Valid rows go to `raw.<source>`, invalid rows to `raw_quarantine.quarantined_rows` with a reason
code, the file, the 1-based data row number and the raw values. Loading a month replaces that
month in one transaction, so re-running never duplicates. Files are read in Arrow batches, so a
file larger than memory streams through.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from valuetier.contract import FILE_FORMATS, LOWEST_DATE, SOURCES, Reason, Source, SourceKind
from valuetier.months import month_end, parse_month

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
QUARANTINE_TABLE = "raw_quarantine.quarantined_rows"
BATCH_ROWS = 250_000


class DeliveryError(Exception):
    """A delivery that cannot be loaded at all; the message names the file (and row/column if known)."""


@dataclass(frozen=True)
class LoadResult:
    source: str
    month: str
    file: str | None
    delivered: int
    loaded: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # why nothing was read (an optional source not delivered)
    ignored_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.loaded + self.quarantined != self.delivered:
            raise AssertionError(
                f"row accounting broken for {self.source} {self.month}: loaded {self.loaded} + "
                f"quarantined {self.quarantined} != delivered {self.delivered}"
            )


def find_delivery(landing: Path, source: str, month: str) -> Path | None:
    """The one file delivered for a source and month, or None. Two files for one month is an error."""
    found = [landing / source / f"{month}.{ext}" for ext in FILE_FORMATS]
    found = [p for p in found if p.exists()]
    if len(found) > 1:
        raise DeliveryError(f"two deliveries for {source} {month}: {found[0]} and {found[1]}; remove one")
    return found[0] if found else None


def discover_months(landing: Path) -> list[str]:
    """The months to process: those with a transactions file."""
    folder = landing / "transactions"
    if not folder.is_dir():
        return []
    months = set()
    for path in folder.iterdir():
        if path.suffix.lstrip(".") in FILE_FORMATS:
            try:
                parse_month(path.stem)
            except ValueError:
                log.warning("ignoring %s: the file name is not a month (YYYY-MM)", path)
                continue
            months.add(path.stem)
    return sorted(months)


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw and quarantine tables from the contract, so downstream reads never miss a table."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    con.execute("CREATE SCHEMA IF NOT EXISTS raw_quarantine")
    for source in SOURCES.values():
        columns = ", ".join(f"{c.name} {c.type}" for c in source.columns)
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{source.name} ({columns}, "
            "_delivery_month DATE NOT NULL, _source_file VARCHAR NOT NULL, _source_row BIGINT NOT NULL)"
        )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (source VARCHAR NOT NULL, delivery_month DATE NOT NULL, "
        "source_file VARCHAR NOT NULL, source_row BIGINT, reason VARCHAR NOT NULL, column_name VARCHAR, "
        "detail VARCHAR, raw_record VARCHAR)"
    )


def _read_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        if path.suffix == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
            return
        if path.stat().st_size == 0:
            raise DeliveryError(f"{path}: the file is empty (not even a header row)")
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            header = next(csv.reader(f), None)
        if not header:
            return
        _check_delimiter(path, header)
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True,
                # Only an empty field is missing: 'NaN', 'NULL' or 'N/A' are values that fail their cast.
                null_values=[""],
            ),
        )
        yield from reader
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        if path.suffix == ".csv" and "UTF8" in str(exc):
            raise DeliveryError(_where_not_utf8(path)) from exc
        raise DeliveryError(f"{path}: cannot be read: {exc}") from exc


def _check_delimiter(path: Path, header: list[str]) -> None:
    """A header that is one field holding ';', tab or '|' is a file with another delimiter."""
    if len(header) == 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in header[0]:
                raise DeliveryError(
                    f"{path}: row 0 (header): one column {header[0][:60]!r}: the file looks {delimiter!r}-delimited; "
                    "deliveries are comma-separated"
                )


def _where_not_utf8(path: Path) -> str:
    """Name the first data row and column that is not UTF-8 text (say, GBK or Big5 names)."""
    with path.open("rb") as f:
        header = next(csv.reader([f.readline().decode("utf-8-sig", errors="replace")]))
        for row, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                fields = next(csv.reader([line.decode("utf-8", errors="replace")]))
                bad = next((i for i, v in enumerate(fields) if "\ufffd" in v), 0)
                column = header[bad] if bad < len(header) else f"#{bad + 1}"
                return (
                    f"{path}: row {row}, column {column}: not UTF-8 text (GBK or Big5?); "
                    "re-deliver the file encoded as UTF-8"
                )
    return f"{path}: not UTF-8 text; re-deliver the file encoded as UTF-8"


def _column_name(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


class _Check(NamedTuple):
    when: str  # SQL condition that is true for a bad row
    reason: Reason
    column: str
    detail: str  # SQL expression for the readable detail


def _first_failing(checks: list[_Check], field: str) -> str:
    """A CASE that yields the given field of the first check a row fails (NULL for a valid row)."""
    if not checks:
        return "NULL"

    def value(check: _Check) -> str:
        return {"reason": f"'{check.reason.value}'", "column": f"'{check.column}'", "detail": check.detail}[field]

    return "CASE " + " ".join(f"WHEN {c.when} THEN {value(c)}" for c in checks) + " END"


def _typed(raw: str, type_: str) -> str:
    """SQL for a delivered value cast to its contract type, NULL when it does not cast."""
    if type_ != "TIMESTAMP":
        return f"TRY_CAST({raw} AS {type_})"
    # Naive timestamps are UTC (the delivery convention); a value carrying an offset is converted
    # to UTC, where a plain cast would drop the offset and shift the instant.
    return (
        f"CASE WHEN regexp_matches(CAST({raw} AS VARCHAR), '(Z|[+-][0-9]{{2}}(:?[0-9]{{2}})?| UTC)$') "
        f"THEN timezone('UTC', TRY_CAST(CAST({raw} AS VARCHAR) AS TIMESTAMPTZ)) ELSE TRY_CAST({raw} AS TIMESTAMP) END"
    )


def _validation_sql(source: Source, present: set[str], month: str) -> str:
    """One SELECT over `_batch` that casts every contract column and names the first problem of a row."""
    start, end = parse_month(month), month_end(month)
    checks: list[_Check] = []

    def add(when: str, reason: Reason, column: str, detail: str) -> None:
        checks.append(_Check(when, reason, column, detail))

    typed = []
    for col in source.columns:
        raw = col.name if col.name in present else "NULL"
        value = _typed(raw, col.type)
        typed.append(f"{value} AS {col.name}")
        if col.name not in present:
            continue
        if col.required:
            add(f"{raw} IS NULL", Reason.MISSING_VALUE, col.name, "'required value is empty'")
        add(
            f"{raw} IS NOT NULL AND {value} IS NULL",
            Reason.INVALID_TYPE,
            col.name,
            f"'not a {col.type}: ' || CAST({raw} AS VARCHAR)",
        )
        if col.allowed:
            allowed = ", ".join(f"'{a}'" for a in col.allowed)
            add(
                f"{value} NOT IN ({allowed})",
                Reason.NOT_ALLOWED,
                col.name,
                f"'not one of {', '.join(col.allowed)}: ' || {value}",
            )
        if col.min is not None:
            add(f"{value} < {col.min}", Reason.OUT_OF_RANGE, col.name, f"'below {col.min}: ' || {value}")
        if col.max is not None:
            add(f"{value} > {col.max}", Reason.OUT_OF_RANGE, col.name, f"'above {col.max}: ' || {value}")
        if col.type in ("DATE", "TIMESTAMP"):
            add(
                f"{value} < DATE '{LOWEST_DATE}'",
                Reason.DATE_IMPLAUSIBLE,
                col.name,
                f"'before {LOWEST_DATE}: ' || {value}",
            )
            # An entity record cannot carry a date after the month it was delivered in.
            if source.kind is SourceKind.ENTITY:
                add(
                    f"{value} >= DATE '{end}' + INTERVAL 1 DAY",
                    Reason.DATE_IMPLAUSIBLE,
                    col.name,
                    f"'after the delivery month {month}: ' || {value}",
                )
    if source.event_time:
        value = _typed(source.event_time, "TIMESTAMP")
        add(
            f"{value} < DATE '{start}' OR {value} >= DATE '{end}' + INTERVAL 1 DAY",
            Reason.DATE_OUTSIDE_MONTH,
            source.event_time,
            f"'not in the delivery month {month}: ' || {value}",
        )
    if source.month_end_column:
        value = f"TRY_CAST({source.month_end_column} AS DATE)"
        add(
            f"{value} <> DATE '{end}'",
            Reason.DATE_OUTSIDE_MONTH,
            source.month_end_column,
            f"'not the month end {end}: ' || {value}",
        )
    missing_required = [c.name for c in source.columns if c.required and c.name not in present]
    if missing_required:
        checks = [
            _Check(
                "TRUE",
                Reason.MISSING_COLUMN,
                missing_required[0],
                f"'the file has no required column {', '.join(missing_required)}'",
            )
        ]
    reason = _first_failing(checks, "reason")
    raw_json = "to_json(struct_pack(" + ", ".join(f'"{c}" := {c}' for c in sorted(present)) + "))"
    return (
        f"SELECT {', '.join(typed)}, _source_row, {reason} AS _reason, {_first_failing(checks, 'column')} AS _column, "
        f"{_first_failing(checks, 'detail')} AS _detail, "
        f"CASE WHEN ({reason}) IS NOT NULL THEN CAST({raw_json} AS VARCHAR) END AS _raw FROM _batch"
    )


def load_month(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    source_name: str,
    month: str,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """Check and load one source's delivery for one month, replacing whatever that month held."""
    source = SOURCES[source_name]
    progress = progress or log.info
    ensure_raw_tables(con)
    path = find_delivery(landing, source.name, month)
    if path is None:
        return _load_nothing(con, landing, source, month)

    column_list = ", ".join(c.name for c in source.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _incoming AS SELECT {column_list}, _source_row, "
        "NULL::VARCHAR AS _reason, NULL::VARCHAR AS _column, NULL::VARCHAR AS _detail, NULL::VARCHAR AS _raw "
        f"FROM {RAW_SCHEMA}.{source.name} LIMIT 0"
    )
    delivered, ignored = 0, ()
    sql = None
    for batch in _read_batches(path, batch_rows):
        if sql is None:
            names = [_column_name(n) for n in batch.schema.names]
            present = set(names) & set(source.column_names)
            ignored = tuple(sorted(set(names) - set(source.column_names)))
            sql = _validation_sql(source, present, month)
        table = pa.Table.from_batches([batch]).rename_columns([_column_name(n) for n in batch.schema.names])
        table = table.append_column(
            "_source_row", pa.array(range(delivered + 1, delivered + table.num_rows + 1), type=pa.int64())
        )
        con.register("_batch", table)
        try:
            con.execute(f"INSERT INTO _incoming {sql}")
        except duckdb.Error as exc:
            raise DeliveryError(f"{path}: rows {delivered + 1}..{delivered + table.num_rows}: {exc}") from exc
        finally:
            con.unregister("_batch")
        delivered += table.num_rows
        if delivered > batch_rows:
            progress(f"{source.name} {month}: checked {delivered:,} rows of {path.name}")

    _mark_relational_problems(con, source, month)
    result = _replace_month(con, source, month, path, delivered, ignored)
    con.execute("DROP TABLE IF EXISTS _incoming")
    return result


def _mark_relational_problems(con: duckdb.DuckDBPyConnection, source: Source, month: str) -> None:
    """Problems that need more than one row: duplicate keys, unknown customers and accounts."""
    month_start = parse_month(month)
    con.execute(
        f"""UPDATE _incoming SET _reason = '{Reason.DUPLICATE_KEY.value}', _column = '{source.key}',
            _detail = 'repeats the key of row ' || first_row
        FROM (SELECT _source_row AS r, first_value(_source_row) OVER (PARTITION BY {source.key}
                     ORDER BY _source_row) AS first_row
              FROM _incoming WHERE _reason IS NULL) d
        WHERE _incoming._source_row = d.r AND d.r <> d.first_row"""
    )
    if source.kind is SourceKind.EVENT:
        con.execute(
            f"""UPDATE _incoming SET _reason = '{Reason.DUPLICATE_KEY.value}', _column = '{source.key}',
                _detail = 'already delivered in ' || strftime(r._delivery_month, '%Y-%m')
            FROM {RAW_SCHEMA}.{source.name} r
            WHERE _incoming._reason IS NULL AND r.{source.key} = _incoming.{source.key}
              AND r._delivery_month < DATE '{month_start}'"""
        )
    refs = [
        (source.customer_ref, "customers", "customer_id", Reason.UNKNOWN_CUSTOMER),
        (source.account_ref, "accounts", "account_id", Reason.UNKNOWN_ACCOUNT),
    ]
    for column, parent, parent_key, reason in refs:
        if column is None:
            continue
        con.execute(
            f"""UPDATE _incoming SET _reason = '{reason.value}', _column = '{column}',
                _detail = 'no {parent[:-1]} ' || {column} || ' delivered on or before {month}'
            WHERE _reason IS NULL AND {column} IS NOT NULL AND {column} NOT IN (
                SELECT {parent_key} FROM {RAW_SCHEMA}.{parent} WHERE _delivery_month <= DATE '{month_start}')"""
        )


def _replace_month(con, source: Source, month: str, path: Path, delivered: int, ignored) -> LoadResult:
    month_start = parse_month(month)
    columns = ", ".join(c.name for c in source.columns)
    typed_json = "to_json(struct_pack(" + ", ".join(f'"{c.name}" := {c.name}' for c in source.columns) + "))"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {RAW_SCHEMA}.{source.name} WHERE _delivery_month = DATE '{month_start}'")
        con.execute(
            f"INSERT INTO {RAW_SCHEMA}.{source.name} SELECT {columns}, DATE '{month_start}', ?, _source_row "
            "FROM _incoming WHERE _reason IS NULL ORDER BY _source_row",
            [path.name],
        )
        con.execute(
            f"DELETE FROM {QUARANTINE_TABLE} WHERE source = ? AND delivery_month = DATE '{month_start}'", [source.name]
        )
        con.execute(
            f"INSERT INTO {QUARANTINE_TABLE} SELECT ?, DATE '{month_start}', ?, _source_row, _reason, _column, "
            f"_detail, coalesce(_raw, CAST({typed_json} AS VARCHAR)) FROM _incoming WHERE _reason IS NOT NULL "
            "ORDER BY _source_row",
            [source.name, path.name],
        )
        loaded, quarantined = con.execute(
            "SELECT count(*) FILTER (WHERE _reason IS NULL), count(*) FILTER (WHERE _reason IS NOT NULL) FROM _incoming"
        ).fetchone()
        reasons = dict(
            con.execute(
                "SELECT _reason, count(*) FROM _incoming WHERE _reason IS NOT NULL GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        result = LoadResult(
            source.name, month, str(path), delivered, loaded, quarantined, reasons, ignored_columns=ignored
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def _load_nothing(con, landing: Path, source: Source, month: str) -> LoadResult:
    """No file this month: a required event source fails; otherwise the month is emptied and skipped."""
    month_start = parse_month(month)
    expected = f"{landing / source.name / month}.parquet (or .csv)"
    if source.required and source.kind is SourceKind.EVENT:
        raise DeliveryError(f"required file missing: {expected}")
    if source.required:
        delivered_before = con.execute(
            f"SELECT count(*) FROM {RAW_SCHEMA}.{source.name} WHERE _delivery_month < DATE '{month_start}'"
        ).fetchone()[0]
        if not delivered_before:
            raise DeliveryError(f"required file missing: {expected} (no earlier {source.name} delivery either)")
        why = f"no {source.name} file for {month}: no records changed this month"
    else:
        why = f"optional source {source.name} not delivered for {month} ({expected}); its indicators stay null"
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DELETE FROM {RAW_SCHEMA}.{source.name} WHERE _delivery_month = DATE '{month_start}'")
    con.execute(
        f"DELETE FROM {QUARANTINE_TABLE} WHERE source = ? AND delivery_month = DATE '{month_start}'", [source.name]
    )
    con.execute("COMMIT")
    return LoadResult(source.name, month, None, 0, 0, 0, skipped=why)
