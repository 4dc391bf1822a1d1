"""Month profiles: what a raw suite checks, computed once per source-month where its rows are loaded.

A raw suite used to read every row of the months it checked, once per expectation, and its learned
bands read the trailing months' rows again: at 1,000,000 customers x 36 months that was 118 M
transactions, many times over. Each of its expectations is now one statistic of a month's profile:
- a count of the rows that break a row rule (a null, a code outside its set, a value out of range, a
  repeated key, a stale date, an orphan reference, a hash that is not a hash, a column too many);
- the month's row count, and the geometric mean and quantiles its learned bands compare.
Ingestion writes a month's profile in the transaction that loads the month (`write_profiles`), so
the profile always describes the rows in the table. The suite's Great Expectations then validate the
profile rows of the checked months, and read a failing month's rows only to show a few of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from valuetier.core.months import parse_month
from valuetier.core.tables import PROFILES_COLUMNS, PROFILES_TABLE, create_table

ROWS = "rows"  # the statistic every profile has: the month's loaded rows


@dataclass(frozen=True)
class Measure:
    """One statistic of a month's profile. `aggregate` is computed with the others in one scan of the
    month; a measure without one counts the rows of `rows_query` ({batch}: the month's rows)."""

    name: str
    aggregate: str | None = None
    rows_query: str | None = None


def _literal(value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def row_rule(expectation: dict, key: tuple[str, ...]) -> tuple[str, str] | None:
    """A row-level GX expectation as (the aggregate counting the rows that break it, the SELECT of
    such rows from {batch}); None for a type that is not a row rule."""
    kwargs, kind = expectation["kwargs"], expectation["type"]
    column = kwargs.get("column")
    shown = ", ".join(dict.fromkeys([*key, column] if column else key))
    if kind == "expect_column_values_to_not_be_null":
        predicate = f"{column} IS NULL"
    elif kind == "expect_column_values_to_be_in_set":
        predicate = f"{column} IS NOT NULL AND {column} NOT IN ({', '.join(map(_literal, kwargs['value_set']))})"
    elif kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        sides = ([f"{column} {'<=' if kwargs.get('strict_min') else '<'} {low!r}"] if low is not None else []) + (
            [f"{column} {'>=' if kwargs.get('strict_max') else '>'} {high!r}"] if high is not None else []
        )
        predicate = f"({' OR '.join(sides)})"
    elif kind in ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"):
        # Counted as the rows beyond the first of each repeated key (one hash aggregate, no sort).
        columns = kwargs.get("column_list") or [column]
        listed = ", ".join(columns)
        present = " OR ".join(f"{c} IS NOT NULL" for c in columns)
        distinct = f"({listed})" if len(columns) > 1 else listed
        return (
            f"count_if({present}) - count(DISTINCT {distinct}) FILTER (WHERE {present})",
            f"SELECT {', '.join(dict.fromkeys([*key, *columns]))} FROM {{batch}} WHERE {present} "
            f"QUALIFY count(*) OVER (PARTITION BY {listed}) > 1",
        )
    else:
        return None
    return f"count_if({predicate})", f"SELECT {shown} FROM {{batch}} WHERE {predicate}"


def columns_rule(table: str, kwargs: dict) -> str:
    """expect_table_columns_to_match_set as the columns that break it (read from the catalogue)."""
    schema, name = table.split(".")
    actual = (
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
        f"AND table_schema = '{schema}' AND table_name = '{name}'"
    )
    expected = f"SELECT unnest([{', '.join(map(_literal, kwargs['column_set']))}]) AS column_name"
    extra = (
        f"SELECT column_name, 'not in the suite' AS problem FROM ({actual}) "
        f"WHERE column_name NOT IN ({expected}) UNION ALL "
        if kwargs.get("exact_match", True)
        else ""
    )
    return f"{extra}SELECT column_name, 'missing' AS problem FROM ({expected}) WHERE column_name NOT IN ({actual})"


def month_rows(table: str, month_column: str, month: str) -> str:
    return f"SELECT * FROM {table} WHERE {month_column} = DATE '{parse_month(month).isoformat()}'"


def write_profiles(
    con: duckdb.DuckDBPyConnection, suite: str, table: str, month_column: str, measures: list[Measure], months
) -> None:
    """Replace the profiles of `months`. Called by ingestion inside the transaction that loads a
    month, and by a validation for a month loaded without one."""
    create_table(con, PROFILES_TABLE, PROFILES_COLUMNS)
    aggregated = [m for m in measures if m.aggregate]
    counted = [m for m in measures if not m.aggregate]
    for month in months:
        rows = month_rows(table, month_column, month)
        values = con.execute(
            f"SELECT count(*), {', '.join(m.aggregate for m in aggregated) or 'NULL'} FROM ({rows}) AS b"
        ).fetchone()
        profile = [(ROWS, values[0])] + [(m.name, v) for m, v in zip(aggregated, values[1:], strict=False)]
        for m in counted:
            query = m.rows_query.replace("{batch}", f"({rows})")
            profile.append((m.name, con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]))
        start = parse_month(month).isoformat()
        con.execute(f"DELETE FROM {PROFILES_TABLE} WHERE suite = ? AND month = DATE '{start}'", [suite])
        con.executemany(
            f"INSERT INTO {PROFILES_TABLE} VALUES (?, DATE '{start}', ?, ?)",
            [(suite, name, None if value is None else float(value)) for name, value in profile],
        )


def unprofiled_months(con: duckdb.DuckDBPyConnection, suite: str, table: str, month_column: str, last: str) -> list:
    """The months up to `last` whose rows no profile describes: loaded without one (by an earlier
    version, or straight through the library), or changed since (their row count differs)."""
    create_table(con, PROFILES_TABLE, PROFILES_COLUMNS)
    end = parse_month(last).isoformat()
    found = con.execute(
        f"""WITH loaded AS (
            SELECT {month_column} AS month, count(*) AS n FROM {table} WHERE {month_column} <= DATE '{end}' GROUP BY 1
        ), profiled AS (
            SELECT month, value AS n FROM {PROFILES_TABLE}
            WHERE suite = ? AND statistic = '{ROWS}' AND month <= DATE '{end}' AND value > 0
        )
        SELECT strftime(month, '%Y-%m') FROM loaded FULL JOIN profiled USING (month)
        WHERE loaded.n IS DISTINCT FROM profiled.n ORDER BY 1""",
        [suite],
    ).fetchall()
    return [month for (month,) in found]
