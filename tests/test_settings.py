"""DuckDB's memory, threads and spill folder come from the settings, for Python's connections and
dbt's profile alike."""

import json
import os
import subprocess

import duckdb
import pytest

from tests.conftest import DBT, REPO
from valuetier.settings import Settings
from valuetier.warehouse import connect

SETTINGS_QUERY = (
    "SELECT current_setting('memory_limit') AS memory_limit, current_setting('threads') AS threads, "
    "current_setting('temp_directory') AS temp_directory, "
    "current_setting('preserve_insertion_order') AS preserve_insertion_order"
)


def limits_env(tmp_path) -> dict[str, str]:
    return {
        "VALUETIER_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
        "VALUETIER_DUCKDB_MEMORY_LIMIT": "1536MB",
        "VALUETIER_DUCKDB_THREADS": "1",
        "VALUETIER_DUCKDB_TEMP_DIRECTORY": str(tmp_path / "spill"),
    }


def expected_limits(tmp_path) -> dict:
    with duckdb.connect() as con:  # DuckDB's own way of showing 1536MB
        con.execute("SET memory_limit = '1536MB'")
        memory = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    return {"memory_limit": memory, "threads": 1, "temp_directory": str(tmp_path / "spill"), "order": False}


def test_python_connections_take_the_limits_from_the_settings(tmp_path):
    settings = Settings.from_env(limits_env(tmp_path))
    with connect(settings.warehouse_path, limits=settings.duckdb) as con:
        memory, threads, temp, order = con.execute(SETTINGS_QUERY).fetchall()[0]
    assert {"memory_limit": memory, "threads": threads, "temp_directory": temp, "order": order} == expected_limits(
        tmp_path
    )
    with pytest.raises(ValueError, match="VALUETIER_DUCKDB_THREADS"):
        Settings.from_env({**limits_env(tmp_path), "VALUETIER_DUCKDB_THREADS": "all"})
    # Without explicit limits a connection reads the same variables.
    assert Settings.from_env({}).duckdb.temp_directory.endswith("warehouse/duckdb_tmp")


def test_dbt_takes_the_same_limits_through_its_profile(tmp_path):
    settings = Settings.from_env(limits_env(tmp_path))
    shown = subprocess.run(
        [DBT, "show", "--profiles-dir", ".", "--inline", SETTINGS_QUERY, "--output", "json", "--quiet"],
        cwd=REPO / "dbt_project",
        env={**os.environ, **settings.dbt_environment()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    [row] = json.loads(shown[shown.index("{") :])["show"]
    assert {
        "memory_limit": row["memory_limit"],
        "threads": int(row["threads"]),
        "temp_directory": row["temp_directory"],
        "order": row["preserve_insertion_order"],
    } == expected_limits(tmp_path)
