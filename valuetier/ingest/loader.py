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

from valuetier.core.contract import (
    FILE_FORMATS,
    LOWEST_DATE,
    MONEY,
    OTHER_CODE,
    SOURCES,
    Column,
    Reason,
    Source,
    SourceKind,
)
from valuetier.core.months import is_month_key, month_end, parse_month
from valuetier.core.notices import warn_once
from valuetier.core.settings import Settings
from valuetier.core.tables import QUARANTINE_COLUMNS, QUARANTINE_TABLE, RAW_SCHEMA, create_table, raw_table_columns
from valuetier.core.warehouse import pin_time_zone
from valuetier.ingest.mapping import CodeMap, Mapping, SourceMapping
from valuetier.ingest.pii import install_keyed_hash

log = logging.getLogger(__name__)

KEYED_HASH = "valuetier_keyed_hash"  # the connection's HMAC macro (valuetier.ingest.pii.install_keyed_hash)
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
    # Codes the delivery mapping sends to 'other', per column and code, among the loaded rows.
    other_codes: dict[str, dict[str, int]] = field(default_factory=dict)

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
            if not is_month_key(path.stem):
                warn_once(log, f"ignoring {path}: the file name is not a month (YYYY-MM)")
                continue
            months.add(path.stem)
    return sorted(months)


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the raw and quarantine tables from the contract, so downstream reads never miss a table."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    con.execute("CREATE SCHEMA IF NOT EXISTS raw_quarantine")
    for source in SOURCES.values():
        con.execute(f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{source.name} ({raw_table_columns(source)})")
        # A warehouse from before an optional contract column was added gets it (null for earlier months).
        for column in source.columns:
            con.execute(
                f"ALTER TABLE {RAW_SCHEMA}.{source.name} ADD COLUMN IF NOT EXISTS {column.stored_name} {column.type}"
            )
        _refuse_personal_data_in_clear(con, source)
    create_table(con, QUARANTINE_TABLE, QUARANTINE_COLUMNS)


def _refuse_personal_data_in_clear(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """A warehouse loaded before personal data was hashed at ingestion holds it in clear: refused,
    never read or carried forward."""
    clear = [
        c.name
        for c in source.columns
        if c.pii
        and con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "AND column_name = ?",
            [RAW_SCHEMA, source.name, c.name],
        ).fetchone()[0]
    ]
    if clear:
        raise DeliveryError(
            f"{RAW_SCHEMA}.{source.name} holds personal data in clear ({', '.join(clear)}), loaded by an earlier "
            "ValueTier: drop the warehouse's raw schema and load the months again (their keyed hashes replace it)"
        )


def delivered_columns(path: Path) -> list[str]:
    """The column names of a delivery as written in the file (a CSV header or the Parquet schema)."""
    try:
        if path.suffix == ".parquet":
            return pq.read_schema(path).names
        if path.stat().st_size == 0:
            raise DeliveryError(f"{path}: the file is empty (not even a header row)")
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            header = next(csv.reader(f), None) or []
    except (pa.ArrowInvalid, OSError) as exc:
        raise DeliveryError(f"{path}: cannot be read: {exc}") from exc
    _check_delimiter(path, header)
    return header


def _read_batches(path: Path, header: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        if path.suffix == ".parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
            return
        if not header:
            return
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


def _typed_name(column: str) -> str:
    """The name a contract column's typed value has inside the validation SELECT."""
    return f"_typed_{column}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# An offset or zone is recognised only where it follows a time of day: in a date-only value
# ('2017-02-08') the '-08' is the day, not a UTC offset.
OFFSET_AFTER_TIME = r"[0-9]:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)? ?(Z|[+-][0-9]{2}(:?[0-9]{2})?|UTC)$"
# Numbers delivered as text are read only in plain decimal notation: DuckDB's casts also take
# exponents (1e3), hexadecimal (0x10), binary (0b101) and digit separators (1_000), and round a
# fraction to a whole number (6.5 -> 7). Surrounding spaces are not part of the number.
WHOLE_NUMBER = r"[+-]?[0-9]+(\.0*)?"  # 7, -7, 007 and 7.0 (a whole number written with a zero fraction)
DECIMAL_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
NUMBER_PATTERNS = {"INTEGER": WHOLE_NUMBER, MONEY: DECIMAL_NUMBER}
TYPE_NAMES = {
    "INTEGER": "whole number in decimal digits",
    MONEY: "decimal number",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}


def _typed(raw: str, type_: str, timezone: str = "UTC", floating: bool = False) -> str:
    """SQL for a delivered value cast to its contract type, NULL when it does not cast exactly.
    `floating`: the value is a binary floating-point number (a Parquet double), not text."""
    if type_ in NUMBER_PATTERNS:
        if floating:
            # A double is whole when it has no fraction; money's fraction is judged by _too_many_decimals.
            exact = "TRUE" if type_ == MONEY else f"{raw} = trunc({raw})"
            return f"CASE WHEN {exact} THEN TRY_CAST({raw} AS {type_}) END"
        text = f"trim(CAST({raw} AS VARCHAR))"
        return f"CASE WHEN regexp_full_match({text}, '{NUMBER_PATTERNS[type_]}') THEN TRY_CAST({text} AS {type_}) END"
    if type_ != "TIMESTAMP":
        return f"TRY_CAST({raw} AS {type_})"
    # Naive timestamps and dates are the delivery's wall clock (UTC unless the mapping names a zone):
    # a date alone is midnight there. A value carrying an offset is converted to that clock, where a
    # plain cast would drop the offset. The session's time zone is never read.
    text = f"trim(CAST({raw} AS VARCHAR))"
    return (
        f"CASE WHEN regexp_matches({text}, '{OFFSET_AFTER_TIME}') "
        f"THEN timezone({_literal(timezone)}, TRY_CAST({text} AS TIMESTAMPTZ)) "
        f"ELSE TRY_CAST({raw} AS TIMESTAMP) END"
    )


def _recoded(raw: str, column: Column, codes: CodeMap | None) -> str:
    """A coded value as a contract category: the mapping's codes translated, the contract's own
    categories kept, anything else kept as delivered (to fail the allowed check) or 'other'."""
    if codes is None:
        return raw
    text = f"CAST({raw} AS VARCHAR)"
    whens = "".join(f" WHEN {text} = {_literal(code)} THEN {_literal(to)}" for code, to in codes.codes.items())
    allowed = ", ".join(_literal(a) for a in column.allowed)
    fallback = _literal(OTHER_CODE) if codes.unmapped == "other" else text
    return f"(CASE WHEN {raw} IS NULL THEN NULL{whens} WHEN {text} IN ({allowed}) THEN {text} ELSE {fallback} END)"


def _unmapped_code(raw: str, column: Column, codes: CodeMap) -> str:
    """'column=code' for a value that the mapping sends to 'other', else NULL."""
    known = ", ".join(_literal(c) for c in (*codes.codes, *column.allowed))
    return f"CASE WHEN {raw} IS NOT NULL AND CAST({raw} AS VARCHAR) NOT IN ({known}) THEN '{column.name}=' || {raw} END"


def _too_many_decimals(raw: str, minor_units: int, floating: bool = False) -> str:
    """True for money written with more decimals than the currency has (12.345 for 2 minor units),
    judged on the value as delivered: a cast to DECIMAL(18,2) would round it silently. A binary
    floating-point value (a Parquet double) carries representation noise (1234.5 x 100 is
    123449.99999999999): it is judged in minor units, within a relative tolerance far below a cent."""
    if floating:
        scaled = f"(CAST({raw} AS DOUBLE) * {10**minor_units})"
        return f"abs({scaled} - round({scaled})) > 1e-6 * greatest(1, abs({scaled}))"
    # Text is plain decimal notation by then (an exponent is invalid_type, checked first).
    return f"regexp_matches(CAST({raw} AS VARCHAR), '\\.[0-9]{{{minor_units}}}[0-9]*[1-9]')"


def _validation_sql(
    source: Source, present: set[str], month: str, mapping: Mapping, floating: frozenset[str] = frozenset()
) -> str:
    """One SELECT over `_batch` that casts every contract column and names the first problem of a row.

    Three layers, so that each cast and each check is evaluated once per row (DuckDB does not share
    subexpressions between the branches of a CASE): the typed values; the number of the first
    check a row fails; the reason, column and detail of that check."""
    start, end = parse_month(month), month_end(month)
    codes = mapping.source(source.name).codes
    checks: list[_Check] = []

    def add(when: str, reason: Reason, column: str, detail: str) -> None:
        checks.append(_Check(when, reason, column, detail))

    typed, unmapped = [], []
    for col in source.columns:
        raw = col.name if col.name in present else "NULL"
        code_map = codes.get(col.name)
        value = _typed(_recoded(raw, col, code_map), col.type, mapping.timezone, col.name in floating)
        hashed = f"{KEYED_HASH}({raw})" if col.name in present else "CAST(NULL AS VARCHAR)"
        typed.append(f"{hashed if col.pii else value} AS {_typed_name(col.name)}")
        if col.name not in present:
            continue
        value = _typed_name(col.name)
        if col.required:
            add(f"{raw} IS NULL", Reason.MISSING_VALUE, col.name, "'required value is empty'")
        add(
            f"{raw} IS NOT NULL AND {value} IS NULL",
            Reason.INVALID_TYPE,
            col.name,
            f"'not a {TYPE_NAMES.get(col.type, col.type)}: ' || CAST({raw} AS VARCHAR)",
        )
        if col.type == MONEY:
            units = mapping.money_minor_units
            add(
                f"{raw} IS NOT NULL AND {_too_many_decimals(raw, units, col.name in floating)}",
                Reason.INVALID_AMOUNT,
                col.name,
                f"'more decimals than the currency''s {units} minor units: ' || CAST({raw} AS VARCHAR)",
            )
        if col.allowed:
            categories = (*col.allowed, OTHER_CODE) if code_map and code_map.unmapped == "other" else col.allowed
            allowed = ", ".join(f"'{a}'" for a in categories)
            add(
                f"{value} NOT IN ({allowed})",
                Reason.NOT_ALLOWED,
                col.name,
                f"'not one of {', '.join(categories)}' || "
                + (f"' (nor a code in {mapping.path.name})'" if code_map else "''")
                + f" || ': ' || CAST({raw} AS VARCHAR)",
            )
            if code_map and code_map.unmapped == "other":
                unmapped.append(_unmapped_code(raw, col, code_map))
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
        value = _typed_name(source.event_time)
        add(
            f"{value} < DATE '{start}' OR {value} >= DATE '{end}' + INTERVAL 1 DAY",
            Reason.DATE_OUTSIDE_MONTH,
            source.event_time,
            f"'not in the delivery month {month}: ' || {value}",
        )
    for start_column, end_column in source.intervals:
        if {start_column, end_column} <= present:
            start_value, end_value = _typed_name(start_column), _typed_name(end_column)
            add(
                f"{end_value} < {start_value}",
                Reason.ENDS_BEFORE_START,
                end_column,
                f"'{end_column} ' || {end_value} || ' is before {start_column} ' || {start_value}",
            )
    if source.month_end_column:
        value = _typed_name(source.month_end_column)
        add(
            f"{value} <> DATE '{end}'",
            Reason.DATE_OUTSIDE_MONTH,
            source.month_end_column,
            f"'not the month end {end}: ' || {value}",
        )
    first_failing = "CASE " + " ".join(f"WHEN {c.when} THEN {i}" for i, c in enumerate(checks, 1)) + " END"
    if not checks:
        first_failing = "CAST(NULL AS INTEGER)"
    reasons = "([" + ", ".join(f"'{c.reason.value}'" for c in checks) + "]::VARCHAR[])"
    check_columns = "([" + ", ".join(f"'{c.column}'" for c in checks) + "]::VARCHAR[])"
    detail = "CASE _check " + " ".join(f"WHEN {i} THEN {c.detail}" for i, c in enumerate(checks, 1)) + " END"
    if not checks:
        detail = "CAST(NULL AS VARCHAR)"
    # A quarantined row's values as delivered, personal data as its keyed hash.
    pii = {c.name for c in source.columns if c.pii}
    raw_json = (
        "to_json(struct_pack("
        + ", ".join(f'"{c}" := {f"{KEYED_HASH}({c})" if c in pii else c}' for c in sorted(present))
        + "))"
    )
    other = f"list_filter([{', '.join(unmapped)}], lambda x: x IS NOT NULL)" if unmapped else "[]::VARCHAR[]"
    contract = ", ".join(f"{_typed_name(c.name)} AS {c.stored_name}" for c in source.columns)
    return (
        f"SELECT {contract}, _source_row, {reasons}[_check] AS _reason, {check_columns}[_check] AS _column, "
        f"{detail} AS _detail, CASE WHEN _check IS NOT NULL THEN CAST({raw_json} AS VARCHAR) END AS _raw, "
        f"{other} AS _other "
        f"FROM (SELECT *, {first_failing} AS _check FROM (SELECT *, {', '.join(typed)} FROM _batch))"
    )


def missing_required_columns(
    path: Path, source: Source, header: list[str], names: list[str], mapping: SourceMapping
) -> None:
    """A delivery without a required column is refused as a file, naming the column (and the name the
    mapping expects it under). `names` are the header's contract names (contract_names)."""
    missing = [c.name for c in source.columns if c.required and c.name not in names]
    if missing:
        expected = ", ".join(
            c if mapping.delivered_name(c) == c else f"{c} (mapped from {mapping.delivered_name(c)})" for c in missing
        )
        raise DeliveryError(
            f"{path}: row 0 (header): no required column {expected}; the file has {', '.join(header) or 'no columns'}"
        )


def floating_columns(path: Path, names: list[str]) -> frozenset[str]:
    """The contract columns a Parquet delivery stores as binary floating point (CSV is text)."""
    if path.suffix != ".parquet":
        return frozenset()
    types = pq.read_schema(path).types
    return frozenset(n for n, t in zip(names, types, strict=True) if pa.types.is_floating(t))


def contract_names(header: list[str], mapping: SourceMapping) -> list[str]:
    """The delivered column names as contract names: normalised, then renamed by the mapping. A
    column that has a contract name the mapping takes from another column is kept apart (ignored)."""
    names = []
    for delivered in (_column_name(n) for n in header):
        name = mapping.contract_name(delivered)
        names.append(f"{delivered} (not mapped)" if name == delivered and delivered in mapping.columns else name)
    return names


def load_month(
    con: duckdb.DuckDBPyConnection,
    landing: Path,
    source_name: str,
    month: str,
    *,
    mapping: Mapping | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str], None] | None = None,
    pii_key: str | None = None,
    after_load: Callable[[duckdb.DuckDBPyConnection, str], None] | None = None,
) -> LoadResult:
    """Check and load one source's delivery for one month, replacing whatever that month held.
    Personal data is hashed with `pii_key` (default: the settings' VALUETIER_PII_KEY) as it loads.
    `after_load(con, month)` runs in the transaction that replaces the month, after its rows are
    written: what it records about them (the month's quality profile) commits with them or not at all."""
    source = SOURCES[source_name]
    mapping = mapping or Mapping()
    progress = progress or log.info
    pin_time_zone(con)
    ensure_raw_tables(con)
    path = find_delivery(landing, source.name, month)
    if path is None:
        return _load_nothing(con, landing, source, month, after_load)

    # File order is kept from the batches to the raw table without a sort of the month: DuckDB
    # keeps insertion order when asked, and the connections' default is not to.
    preserved = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = true")
    try:
        return _check_and_load(con, path, source, month, mapping, batch_rows, progress, pii_key, after_load)
    finally:
        con.execute(f"SET preserve_insertion_order = {str(preserved).lower()}")


def _check_and_load(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source: Source,
    month: str,
    mapping: Mapping,
    batch_rows: int,
    progress: Callable[[str], None],
    pii_key: str | None,
    after_load: Callable[[duckdb.DuckDBPyConnection, str], None] | None,
) -> LoadResult:
    header = delivered_columns(path)
    names = contract_names(header, mapping.source(source.name))
    missing_required_columns(path, source, header, names, mapping.source(source.name))
    present = set(names) & set(source.column_names)
    # The key is resolved only for a delivery that carries personal data: a folder without any asks
    # for no key, and says nothing about one.
    if any(c.pii and c.name in present for c in source.columns):
        install_keyed_hash(con, KEYED_HASH, pii_key if pii_key is not None else Settings.from_env().pii_key)
    ignored = tuple(sorted(set(names) - set(source.column_names)))
    sql = _validation_sql(source, present, month, mapping, floating_columns(path, names))
    columns = ", ".join(f"{c.stored_name} {c.type}" for c in source.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _incoming ({columns}, _source_row BIGINT, _reason VARCHAR, _column VARCHAR, "
        "_detail VARCHAR, _raw VARCHAR, _other VARCHAR[])"
    )
    delivered = 0
    for batch in _read_batches(path, header, batch_rows):
        if batch.num_columns != len(names):
            raise DeliveryError(
                f"{path}: rows from {delivered + 1}: {batch.num_columns} columns, header has {len(names)}"
            )
        table = pa.Table.from_batches([batch]).rename_columns(names)
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
    result = _replace_month(con, source, month, path, delivered, ignored, after_load)
    con.execute("DROP TABLE IF EXISTS _incoming")
    return result


def _mark_relational_problems(con: duckdb.DuckDBPyConnection, source: Source, month: str) -> None:
    """Problems that need more than one row: duplicate keys, unknown customers and accounts."""
    month_start = parse_month(month)
    if source.kind is SourceKind.EVENT:
        _mark_repeated_events(con, source)
    else:
        _mark_superseded_records(con, source)
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


def _repeated_keys(source: Source) -> str:
    """The valid rows whose key occurs more than once in the delivery: the only rows the duplicate
    checks need to order (a hash aggregate finds them; the windows then sort only those)."""
    return (
        f"FROM _incoming WHERE _reason IS NULL AND {source.key} IN (SELECT {source.key} FROM _incoming "
        f"WHERE _reason IS NULL GROUP BY {source.key} HAVING count(*) > 1)"
    )


def _mark_repeated_events(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """An event is delivered once: a later row with the same key is a repeat, and the first row stays."""
    con.execute(
        f"""UPDATE _incoming SET _reason = '{Reason.DUPLICATE_KEY.value}', _column = '{source.key}',
            _detail = 'repeats the key of row ' || first_row
        FROM (SELECT _source_row AS r, first_value(_source_row) OVER (PARTITION BY {source.key}
                     ORDER BY _source_row) AS first_row
              {_repeated_keys(source)}) d
        WHERE _incoming._source_row = d.r AND d.r <> d.first_row"""
    )


def _mark_superseded_records(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    """Inside one entity file the last row of a key wins, as later deliveries win over earlier ones:
    the rows before it are quarantined as superseded. Exact copies of the winning version are
    re-sends: the first copy loads and the others are quarantined as repeats."""
    content = (
        "md5(CAST(to_json(struct_pack("
        + ", ".join(f'"{c.stored_name}" := {c.stored_name}' for c in source.columns)
        + ")) AS VARCHAR))"
    )
    con.execute(
        f"""UPDATE _incoming SET _reason = '{Reason.DUPLICATE_KEY.value}', _column = '{source.key}',
            _detail = CASE WHEN d.content = d.last_content THEN 'repeats row ' || d.kept
                           ELSE 'superseded by row ' || d.last_row || ' (the last row of a key wins)' END
        FROM (SELECT *, min(CASE WHEN content = last_content THEN r END) OVER (PARTITION BY key) AS kept
              FROM (SELECT _source_row AS r, {source.key} AS key, {content} AS content,
                           max(_source_row) OVER (PARTITION BY {source.key}) AS last_row,
                           arg_max({content}, _source_row) OVER (PARTITION BY {source.key}) AS last_content
                    {_repeated_keys(source)})) d
        WHERE _incoming._source_row = d.r AND d.r <> d.kept"""
    )


def _replace_month(con, source: Source, month: str, path: Path, delivered: int, ignored, after_load) -> LoadResult:
    month_start = parse_month(month)
    columns = ", ".join(c.stored_name for c in source.columns)
    pairs = ", ".join(f'"{c.stored_name}" := {c.stored_name}' for c in source.columns)
    typed_json = f"to_json(struct_pack({pairs}))"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {RAW_SCHEMA}.{source.name} WHERE _delivery_month = DATE '{month_start}'")
        con.execute(
            f"INSERT INTO {RAW_SCHEMA}.{source.name} BY NAME SELECT {columns}, "
            f"DATE '{month_start}' AS _delivery_month, ? AS _source_file, _source_row "
            "FROM _incoming WHERE _reason IS NULL",
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
        other_codes: dict[str, dict[str, int]] = {}
        for column_code, n in con.execute(
            "SELECT code, count(*) FROM (SELECT unnest(_other) AS code FROM _incoming WHERE _reason IS NULL) "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall():
            column, code = column_code.split("=", 1)
            other_codes.setdefault(column, {})[code] = n
        result = LoadResult(
            source.name,
            month,
            str(path),
            delivered,
            loaded,
            quarantined,
            reasons,
            ignored_columns=ignored,
            other_codes=other_codes,
        )
        if after_load:
            after_load(con, month)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def _load_nothing(con, landing: Path, source: Source, month: str, after_load) -> LoadResult:
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
    if after_load:
        after_load(con, month)
    con.execute("COMMIT")
    return LoadResult(source.name, month, None, 0, 0, 0, skipped=why)
