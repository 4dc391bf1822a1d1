"""The same dbt project on Apache Spark (dbt-spark, a local session) and on DuckDB, from the same
inputs: the session bank's Python-written tables (dbt's sources) exported as Parquet
(valuetier.exchange), both engines building the same month windows the way a first run and then a
monthly run do (every month but the last, then the last alone, incrementally), and every table dbt
builds compared row by row on its unique key.

Exact everywhere except where the engines' arithmetic differs by design: a DECIMAL may be one unit
of its last place apart (DuckDB divides decimals in double precision, Spark exactly, so a half-way
value rounds either way) and a DOUBLE a relative 1e-9 (sums in another order)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import DBT, REPO, WAREHOUSE
from valuetier.exchange import dbt_sources, export_tables, spark_table_folder, spark_table_sql
from valuetier.months import dbt_month_window

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def _dbt(args: list[str], env: dict[str, str], target_path: Path) -> None:
    result = subprocess.run(
        [DBT, *args, "--profiles-dir", ".", "--target-path", str(target_path)],
        cwd=REPO / "dbt_project",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def builds(pipeline_run, tmp_path_factory):
    """Both engines' builds of the session bank: a DuckDB copy of the warehouse and Spark's folder."""
    months = pipeline_run["months"]
    work = tmp_path_factory.mktemp("spark")
    duck = work / "duckdb" / "valuetier.duckdb"
    duck.parent.mkdir()
    shutil.copy(WAREHOUSE, duck)
    exchange = work / "exchange"
    manifest = REPO / "dbt_project" / "target" / "manifest.json"
    with duckdb.connect(str(duck), read_only=True) as con:
        exported = export_tables(con, dbt_sources(manifest), exchange)
    assert exported["raw.transactions"] > 0 and exported["marts.customer_tiers"] > 0
    first = {**dbt_month_window(months[0], months[-2])}
    last = {**dbt_month_window(months[-1], months[-1])}
    spark = {"VALUETIER_EXCHANGE_DIR": str(exchange), "SPARK_LOCAL_IP": "127.0.0.1"}
    duck_env = {"VALUETIER_WAREHOUSE": str(duck)}
    for window, command in ((first, ["run", "--full-refresh"]), (last, ["build"])):
        _dbt([*command, "--target", "duckdb"], {**duck_env, **window}, work / "duckdb_target")
        _dbt([*command, "--target", "spark"], {**spark, **window}, work / "spark_target")
    return {"duckdb": duck, "exchange": exchange, "manifest": work / "spark_target" / "manifest.json"}


def _tables_and_keys(manifest: Path) -> list[tuple[str, str, list[str]]]:
    """Every model dbt stores (not views: they are read through the tables under them), with the
    columns its tests say are unique."""
    nodes = json.loads(manifest.read_text())["nodes"].values()
    keys = {}
    for node in nodes:
        test = node.get("test_metadata") or {}
        if test.get("name") == "unique_combination_of_columns":
            keys[node["attached_node"]] = test["kwargs"]["combination_of_columns"]
        elif test.get("name") == "unique":
            keys.setdefault(node["attached_node"], [test["kwargs"]["column_name"]])
    return sorted(
        (node["schema"], node["alias"], keys.get(node["unique_id"]))
        for node in nodes
        if node["resource_type"] == "model" and node["config"]["materialized"] != "view"
    )


def _difference(con, schema: str, table: str, key: list[str]) -> list[str]:
    """What differs between the DuckDB table and Spark's, one line per column, beyond the tolerances."""
    columns = con.execute(
        "SELECT column_name, data_type, numeric_scale FROM duckdb_columns() "
        "WHERE database_name = 'duck' AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [schema, table],
    ).fetchall()
    spark_columns = {c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE spark_table)").fetchall()}
    problems = []
    if spark_columns != {c for c, _, _ in columns}:
        problems.append(f"columns differ: {sorted(spark_columns ^ {c for c, _, _ in columns})}")
        return problems
    rows = [con.execute(f"SELECT count(*) FROM {r}").fetchone()[0] for r in (f"duck.{schema}.{table}", "spark_table")]
    on = " AND ".join(f"d.{k} IS NOT DISTINCT FROM CAST(s.{k} AS {t})" for k, t, _ in columns if k in key)
    joined = f"duck.{schema}.{table} AS d JOIN spark_table AS s ON {on}"
    matched = con.execute(f"SELECT count(*) FROM {joined}").fetchone()[0]
    if not rows[0] == rows[1] == matched:
        problems.append(f"rows: DuckDB {rows[0]}, Spark {rows[1]}, matched on {key} {matched}")
        return problems
    for name, kind, scale in columns:
        if kind.startswith("DECIMAL"):
            same = f"abs(d.{name} - CAST(s.{name} AS {kind})) <= {10.0**-scale}"
        elif kind in ("DOUBLE", "FLOAT"):
            same = f"abs(d.{name} - s.{name}) <= 1e-9 * greatest(1, abs(d.{name}))"
        else:
            same = f"d.{name} = CAST(s.{name} AS {kind})"
        differs = f"NOT (d.{name} IS NOT DISTINCT FROM CAST(s.{name} AS {kind}) OR coalesce({same}, false))"
        found = con.execute(
            f"SELECT count(*), any_value(d.{name}::VARCHAR || ' vs ' || s.{name}::VARCHAR) "
            f"FROM {joined} WHERE {differs}"
        ).fetchone()
        if found[0]:
            problems.append(f"{name} ({kind}): {found[0]} rows differ, e.g. {found[1]}")
    return problems


def test_every_table_dbt_builds_is_the_same_on_spark_as_on_duckdb(builds):
    tables = _tables_and_keys(builds["manifest"])
    assert len(tables) >= 25, tables
    assert not [t for t in tables if not t[2]], "every stored model needs a unique-columns test to be compared"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # Spark writes timestamps as instants; the marts' are UTC wall time
    con.execute(f"ATTACH '{builds['duckdb']}' AS duck (READ_ONLY)")
    problems = {}
    for schema, table, key in tables:
        if not any(spark_table_folder(builds["exchange"], schema, table).rglob("*.parquet")):
            # Spark writes no file for an empty table.
            rows = con.execute(f"SELECT count(*) FROM duck.{schema}.{table}").fetchone()[0]
            if rows:
                problems[f"{schema}.{table}"] = [f"empty on Spark, {rows} rows on DuckDB"]
            continue
        spark_sql = spark_table_sql(builds["exchange"], schema, table)
        con.execute(f"CREATE OR REPLACE VIEW spark_table AS SELECT * FROM {spark_sql}")
        if found := _difference(con, schema, table, key):
            problems[f"{schema}.{table}"] = found
    assert not problems, json.dumps(problems, indent=1)
    # The same tiers: the rule tiers of every month, customer by customer (exact, inside the loop above).
    tiers = con.execute("SELECT count(DISTINCT value_tier) FROM duck.marts.customer_tiers_rfm").fetchone()[0]
    assert tiers == 3
