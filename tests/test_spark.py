"""The whole pipeline with dbt on Apache Spark (VALUETIER_DBT_TARGET=spark, dbt-spark's local
session) against the same pipeline on DuckDB, on a bank unlike the demo (its own names and codes
through a mapping, CSV, no margin columns, cohorts, a few faulty rows): each a first run through
Dagster (`python -m orchestration.run`: every month built, the first model trained, every month
scored and evaluated), then the last month run again on Spark, as the monthly schedule would.

The Python steps exchange tables with Spark as Parquet (valuetier.core.exchange): they write dbt's
sources there before each dbt step and read what Spark stored through warehouse views after it.
Every table either warehouse holds is compared row by row, on its unique key where dbt tests one:
exact everywhere except where the engines' arithmetic differs by design, a DECIMAL one unit of its
last place (DuckDB divides decimals in double precision, Spark exactly, so a half-way value rounds
either way) and a DOUBLE a relative 1e-9 (sums in another order). The tiers and every Python
output built on them are exact."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO
from valuetier.demo.generator import GeneratorConfig, generate
from valuetier.ingest.loader import discover_months

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def _pipeline(root: Path, landing: Path, engine: str, *args: str) -> subprocess.CompletedProcess:
    home = root / "dagster_home"
    if not home.exists():
        home.mkdir(parents=True)
        shutil.copy(REPO / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VALUETIER_LANDING": str(landing),
        "VALUETIER_WAREHOUSE": str(root / "warehouse" / "valuetier.duckdb"),
        "VALUETIER_DBT_TARGET": engine,
        "VALUETIER_PII_KEY": "spark-test-key",
        "SPARK_LOCAL_IP": "127.0.0.1",  # a container's hostname may not resolve
    }
    for name in ("VALUETIER_MAPPING", "VALUETIER_EXCHANGE_DIR"):
        env.pop(name, None)  # the mapping is in the landing folder; the exchange beside the warehouse
    run = subprocess.run(
        [sys.executable, "-m", "orchestration.run", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, f"{engine} {args}: {run.stdout[-5000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark")
    landing = root / "landing"
    generate(
        GeneratorConfig(
            customers=800,
            months=15,
            seed=11,
            out=landing,
            file_format="csv",
            margins=False,
            profile="foreign",
            acquisition="cohorts",
            dirty_rate=0.01,
        ),
        progress=lambda _: None,
    )
    last = discover_months(landing)[-1]
    duck = _pipeline(root / "duckdb", landing, "duckdb")
    spark = _pipeline(root / "spark", landing, "spark")
    again = _pipeline(root / "spark", landing, "spark", "--months", f"{last}:{last}")
    return {
        "duckdb": root / "duckdb" / "warehouse" / "valuetier.duckdb",
        "spark": root / "spark" / "warehouse" / "valuetier.duckdb",
        "exchange": root / "spark" / "warehouse" / "exchange",
        "logs": {"duckdb": duck.stdout, "spark": spark.stdout, "spark again": again.stdout},
    }


def _unique_keys() -> dict[tuple[str, str], list[str]]:
    """(schema, table) of each dbt model and source with the columns its tests say are unique."""
    manifest = json.loads((REPO / "dbt_project" / "target" / "manifest.json").read_text())
    nodes = {**manifest["nodes"], **manifest["sources"]}
    keys = {}
    for node in manifest["nodes"].values():
        test = node.get("test_metadata") or {}
        # A test on a source has no attached node: it depends on the source alone.
        tested = node.get("attached_node") or next(iter(node.get("depends_on", {}).get("nodes", [])), None)
        if test.get("name") == "unique_combination_of_columns":
            keys[tested] = test["kwargs"]["combination_of_columns"]
        elif test.get("name") == "unique":
            keys.setdefault(tested, [test["kwargs"]["column_name"]])
    named = {}
    for unique_id, key in keys.items():
        node = nodes[unique_id]
        named[(node["schema"], node.get("alias") or node["identifier"])] = key
    return named


def _columns(con, database: str, schema: str, table: str) -> list[tuple[str, str, int | None]]:
    return con.execute(
        "SELECT column_name, data_type, numeric_scale FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index",
        [database, schema, table],
    ).fetchall()


def _difference(con, schema: str, table: str, key: list[str] | None) -> list[str]:
    """What differs between the DuckDB run's table and the Spark run's, beyond the tolerances."""
    columns = _columns(con, "duck", schema, table)
    names = {c for c, _, _ in columns}
    spark_names = {c for c, _, _ in _columns(con, "spark", schema, table)}
    if spark_names != names:
        return [f"columns differ: {sorted(spark_names ^ names)}"]
    d, s = f"duck.{schema}.{table}", f"spark.{schema}.{table}"
    rows = [con.execute(f"SELECT count(*) FROM {r}").fetchone()[0] for r in (d, s)]
    if not key:  # no tested key: the same rows, exactly
        listed = ", ".join(sorted(names))
        only = "SELECT count(*) FROM (SELECT {0} FROM {1} EXCEPT ALL SELECT {0} FROM {2})"
        extra = [con.execute(only.format(listed, a, b)).fetchone()[0] for a, b in ((d, s), (s, d))]
        if any(extra):
            return [f"rows: DuckDB {rows[0]}, Spark {rows[1]}; {extra[0]} only on DuckDB, {extra[1]} only on Spark"]
        return []
    joined = f"{d} AS d JOIN {s} AS s ON " + " AND ".join(f"d.{k} IS NOT DISTINCT FROM s.{k}" for k in key)
    matched = con.execute(f"SELECT count(*) FROM {joined}").fetchone()[0]
    if not rows[0] == rows[1] == matched:
        return [f"rows: DuckDB {rows[0]}, Spark {rows[1]}, matched on {key} {matched}"]
    problems = []
    for name, kind, scale in columns:
        if kind.startswith("DECIMAL"):
            same = f"abs(d.{name} - s.{name}) <= {10.0**-scale}"
        elif kind in ("DOUBLE", "FLOAT"):
            same = f"abs(d.{name} - s.{name}) <= 1e-9 * greatest(1, abs(d.{name}))"
        else:
            same = "false"
        differs = f"NOT (d.{name} IS NOT DISTINCT FROM s.{name} OR coalesce({same}, false))"
        found = con.execute(
            f"SELECT count(*), any_value(d.{name}::VARCHAR || ' vs ' || s.{name}::VARCHAR) "
            f"FROM {joined} WHERE {differs}"
        ).fetchone()
        if found[0]:
            problems.append(f"{name} ({kind}): {found[0]} rows differ, e.g. {found[1]}")
    return problems


def test_the_pipeline_on_spark_builds_the_same_warehouse_as_on_duckdb(runs):
    for engine, log in runs["logs"].items():
        assert "ValueTier run finished" in log, f"{engine}: {log[-3000:]}"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{runs['duckdb']}' AS duck (READ_ONLY)")
    con.execute(f"ATTACH '{runs['spark']}' AS spark (READ_ONLY)")
    relations = lambda db: set(  # noqa: E731
        con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? "
            "UNION SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ? AND NOT internal",
            [db, db],
        ).fetchall()
    )
    on_duckdb, on_spark = relations("duck"), relations("spark")
    assert on_spark <= on_duckdb, f"only in the Spark run's warehouse: {sorted(on_spark - on_duckdb)}"
    # What dbt keeps as a view on Spark lives in Spark alone; it is compared through the tables on it.
    keys = _unique_keys()
    compared = sorted(on_spark)
    assert len(compared) >= 45 and ("marts", "customer_tiers") in compared, compared
    problems = {f"{s}.{t}": found for s, t in compared if (found := _difference(con, s, t, keys.get((s, t))))}
    assert not problems, json.dumps(problems, indent=1)
    # Not vacuous: the tiers were built from Spark's indicators, and the run quarantined the faults.
    assert con.execute("SELECT count(DISTINCT value_tier) FROM spark.marts.customer_tiers").fetchone()[0] == 3
    assert con.execute("SELECT count(*) FROM spark.raw_quarantine.quarantined_rows").fetchone()[0] > 0
    view = con.execute(
        "SELECT sql FROM duckdb_views() WHERE database_name = 'spark' AND view_name = 'customer_indicators_monthly'"
    ).fetchone()[0]
    assert "read_parquet" in view and "spark-warehouse" in view


def test_spark_reruns_replace_a_month_and_never_duplicate_it(runs):
    """The second run rewrote the last month's partitions: still one row per key (checked above on
    every keyed table), and one partition folder per month, none left from the first run."""
    folder = runs["exchange"] / "spark-warehouse" / "marts.db" / "customer_indicators_monthly"
    months = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert len(months) == 15 and len(set(months)) == 15, months
    files = list((folder / months[-1]).glob("*.parquet"))
    assert files, months[-1]


def test_great_expectations_imports_beside_pyspark_in_a_process_without_a_main_file():
    """pyspark's Connect module ends the process (sys.exit(0)) when imported from a `python -c`
    process (a pytest-xdist worker) without its own dependencies, which requirements-spark.lock
    pins; Great Expectations imports it whenever pyspark is installed."""
    found = subprocess.run(
        [sys.executable, "-c", "import great_expectations.compatibility.pyspark as p; print(p.ConnectDataFrame)"],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0 and "pyspark.sql.connect.dataframe" in found.stdout, found.stderr[-2000:]
