"""Tables exchanged with a dbt engine that cannot open the DuckDB file (VALUETIER_DBT_TARGET=spark).

The Python steps keep doing their work in DuckDB; what dbt reads from them (its sources: the raw
deliveries, the quarantine, the published tiers) is written here as Parquet, one folder per table
under the exchange folder (`<root>/<schema>/<table>/`), which dbt registers as external tables
before every run (dbt_project/macros/exchange_tables.sql). What dbt builds on Spark is read back from
Spark's warehouse folder (`<root>/spark-warehouse/<schema>.db/<table>/`, Parquet, partitioned by
month for the monthly models) through a warehouse view of the model's own name, so every Python
reader works unchanged. One folder, two engines, no second copy of any logic. Dagster calls both
around each dbt step (orchestration/dbt.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from valuetier.core.warehouse import relation_type, table_exists

# The one file of a table's folder. Spark skips names that start with "." or "_", so the file
# being written is invisible to it until the rename that replaces the previous one.
DATA_FILE = "part-00000.parquet"
# DuckDB types Spark's Parquet reader does not take as they are.
_AS_TEXT = ("JSON", "UUID")


def dbt_sources(manifest: Path) -> list[tuple[str, str]]:
    """(schema, table) of every dbt source, from the project's manifest: the one list of what
    Python writes for dbt."""
    nodes = json.loads(manifest.read_text(encoding="utf-8"))["sources"].values()
    return sorted({(node["schema"], node["identifier"]) for node in nodes})


def dbt_models(manifest: Path) -> list[tuple[str, str]]:
    """(schema, table) of every dbt model, from the project's manifest."""
    nodes = json.loads(manifest.read_text(encoding="utf-8"))["nodes"].values()
    return sorted({(node["schema"], node["alias"]) for node in nodes if node["resource_type"] == "model"})


def table_folder(root: Path, schema: str, table: str) -> Path:
    return root / schema / table


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def export_table(con: duckdb.DuckDBPyConnection, schema: str, table: str, root: Path) -> int:
    """Write one warehouse table as its exchange folder's Parquet file, replacing the previous one
    whole (a reader sees the old file or the new one); returns the rows written."""
    folder = table_folder(root, schema, table)
    folder.mkdir(parents=True, exist_ok=True)
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table],
    ).fetchall()
    if not columns:
        raise LookupError(f"{schema}.{table}: no such table in the warehouse to export")
    select = ", ".join(f"CAST({name} AS VARCHAR) AS {name}" if kind in _AS_TEXT else name for name, kind in columns)
    partial = folder / f".{DATA_FILE}.partial"
    con.execute(f"COPY (SELECT {select} FROM {schema}.{table}) TO '{_quoted(partial)}' (FORMAT parquet)")
    os.replace(partial, folder / DATA_FILE)
    for stale in folder.iterdir():
        if stale.name != DATA_FILE:
            stale.unlink()
    return con.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()[0]


def export_tables(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]], root: Path) -> dict[str, int]:
    """export_table for each (schema, table); rows written by `schema.table`."""
    return {f"{schema}.{table}": export_table(con, schema, table, root) for schema, table in tables}


def export_sources(con: duckdb.DuckDBPyConnection, manifest: Path, root: Path) -> dict[str, int]:
    """Every dbt source the warehouse holds, exported for the dbt engine to read; rows by table. A
    source not written yet (the tiers, before the first scoring) is left out: dbt registers only
    the sources the run's models read (macros/exchange_tables.sql)."""
    present = [(s, t) for s, t in dbt_sources(manifest) if table_exists(con, s, t)]
    return export_tables(con, present, root)


def spark_table_folder(root: Path, schema: str, table: str) -> Path:
    """Where Spark keeps a table dbt built (its warehouse folder, VALUETIER_EXCHANGE_DIR/spark-warehouse)."""
    return root / "spark-warehouse" / f"{schema}.db" / table


def spark_table_sql(root: Path, schema: str, table: str) -> str:
    """A table dbt built on Spark as a DuckDB table expression over its Parquet files; the month a
    monthly model is partitioned by comes back from the folder names as a DATE."""
    folder = spark_table_folder(root, schema, table)
    if not folder.is_dir():
        raise LookupError(f"{schema}.{table}: Spark has not built it (no folder {folder})")
    return f"read_parquet('{_quoted(folder)}/**/*.parquet', hive_partitioning = true, hive_types_autocast = true)"


def _has_parquet(folder: Path) -> bool:
    return folder.is_dir() and any(p for p in folder.rglob("*.parquet") if not p.name.startswith((".", "_")))


def mirror_spark_models(con: duckdb.DuckDBPyConnection, manifest: Path, root: Path) -> list[str]:
    """Make every model Spark stores readable in the warehouse under its own name, as a view over
    its Parquet files, so the Python steps (quality suites, training, scoring, reports, publishing)
    read dbt's output the same way on either engine. Spark writes timestamps as UTC instants: the
    view gives them back as the UTC wall time the marts hold on DuckDB. A model Spark keeps as a
    view has no files and is left out; one with no rows has only its schema file (written by
    macros/exchange_tables.sql at the end of the run). Returns the `schema.table` names mirrored."""
    mirrored = []
    for schema, table in dbt_models(manifest):
        schema_file = schema_file_folder(root, schema, table)
        if _has_parquet(spark_table_folder(root, schema, table)):
            source = spark_table_sql(root, schema, table)
        elif _has_parquet(schema_file):
            source = f"read_parquet('{_quoted(schema_file)}/*.parquet')"
        else:
            continue
        columns = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        select = ", ".join(
            f"timezone('UTC', {name}) AS {name}" if kind == "TIMESTAMP WITH TIME ZONE" else name
            for name, kind, *_ in columns
        )
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if relation_type(con, schema, table) == "BASE TABLE":
            con.execute(f"DROP TABLE {schema}.{table}")  # a DuckDB build's copy, now Spark's
        con.execute(f"CREATE OR REPLACE VIEW {schema}.{table} AS SELECT {select} FROM {source}")
        mirrored.append(f"{schema}.{table}")
    return mirrored


def schema_file_folder(root: Path, schema: str, table: str) -> Path:
    """Where the end of a Spark run leaves an empty Parquet file with each stored model's columns:
    Spark writes no file for a partitioned table without rows, and a view needs the columns."""
    return root / "schemas" / schema / table
