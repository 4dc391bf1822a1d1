"""DuckDB's memory, threads and spill folder come from the settings, for Python's connections and
dbt's profile alike."""

import json
import os
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import DBT, REPO
from valuetier.core.settings import DEV_PII_KEY, REPO_ROOT, Settings, SettingsError
from valuetier.core.warehouse import connect

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


def test_the_profile_s_defaults_are_the_settings_defaults():
    """A bare `dbt` call (no VALUETIER_DUCKDB_* exported) gets the limits a ValueTier run would give it."""
    import re

    from valuetier.core.settings import DuckDBLimits

    profile = (REPO / "dbt_project" / "profiles.yml").read_text(encoding="utf-8")
    defaults = dict(re.findall(r"env_var\('(VALUETIER_DUCKDB_\w+)', '([^']*)'\)", profile))
    settings = Settings.from_env({})
    assert defaults["VALUETIER_DUCKDB_MEMORY_LIMIT"] == DuckDBLimits.memory_limit == settings.duckdb.memory_limit
    assert int(defaults["VALUETIER_DUCKDB_THREADS"]) == DuckDBLimits.threads == settings.duckdb.threads
    # The spill folder, relative to the dbt project: beside the default warehouse.
    spill = (REPO / "dbt_project" / defaults["VALUETIER_DUCKDB_TEMP_DIRECTORY"]).resolve()
    assert str(spill) == settings.duckdb.temp_directory


def test_the_landing_check_takes_the_settings_limits(tmp_path, monkeypatch):
    """validate-landing's throwaway database: the settings' memory and threads, its own spill folder."""
    from valuetier.core.settings import DuckDBLimits
    from valuetier.ingest import landing_check
    from valuetier.ingest.mapping import Mapping

    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(
        landing_check.duckdb, "connect", lambda path, config: opened.append(config) or real_connect(path, config=config)
    )
    (tmp_path / "landing" / "transactions").mkdir(parents=True)
    landing_check.validate_landing(tmp_path / "landing", Mapping(), limits=DuckDBLimits("1536MB", 1, "/elsewhere"))
    [config] = opened
    assert config["memory_limit"] == "1536MB" and config["threads"] == "1"
    assert config["temp_directory"] not in ("", "/elsewhere")


STRONG_KEY = "0123456789abcdef0123456789abcdef"


def test_the_pii_key_comes_from_the_environment_or_a_secret_file_outside_the_repository(tmp_path):
    assert Settings.from_env({"VALUETIER_PII_KEY": "k1"}).pii_key == "k1"
    secret = tmp_path / "pii.key"
    secret.write_text(STRONG_KEY + "\n")
    assert Settings.from_env({"VALUETIER_PII_KEY_FILE": str(secret)}).pii_key == STRONG_KEY
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env({"VALUETIER_PII_KEY": "k1", "VALUETIER_PII_KEY_FILE": str(secret)})
    with pytest.raises(SettingsError, match="inside the repository"):
        Settings.from_env({"VALUETIER_PII_KEY_FILE": str(REPO_ROOT / "README.md")})
    with pytest.raises(SettingsError, match="cannot be read"):
        Settings.from_env({"VALUETIER_PII_KEY_FILE": str(tmp_path / "missing.key")})
    (tmp_path / "empty.key").write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings.from_env({"VALUETIER_PII_KEY_FILE": str(tmp_path / "empty.key")})
    # The public development key only by name (the demo's); the key is never in a repr.
    assert Settings.from_env({"VALUETIER_PII_KEY": "development"}).pii_key == DEV_PII_KEY
    assert not Settings.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).uses_development_pii_key
    assert STRONG_KEY not in repr(Settings.from_env({"VALUETIER_PII_KEY": STRONG_KEY}))


def test_without_a_key_a_run_generates_one_for_the_account_and_reuses_it(tmp_path, caplog):
    """`make run` on a bank's own landing never hashes with the public key: the first run creates a
    random key outside the repository (mode 0600) and says where; later runs read the same key."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    first = Settings.from_env(env)
    path = tmp_path / "config" / "valuetier" / "pii.key"
    assert first.generated_pii_key_file == path and str(path) in first.pii_key_source
    assert not path.exists()  # created when first needed, not when settings are read
    with caplog.at_level("WARNING"):
        key = first.pii_key
    assert len(key) == 64 and key != DEV_PII_KEY and (path.stat().st_mode & 0o777) == 0o600
    assert str(path) in caplog.text and key not in caplog.text and key not in repr(first)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert Settings.from_env(env).pii_key == key  # reused, without a new warning
    assert "created a secret key" not in caplog.text
    other = Settings.from_env({"XDG_CONFIG_HOME": str(tmp_path / "elsewhere")}).pii_key
    assert other != key  # random, not derived from anything
    path.write_text("\n")
    with pytest.raises(SettingsError, match="is empty: restore it"):
        assert Settings.from_env(env).pii_key
    with pytest.raises(SettingsError, match="inside the repository"):
        assert Settings.from_env({"XDG_CONFIG_HOME": str(REPO_ROOT / "data")}).pii_key
    # Production still wants a key given on purpose.
    with pytest.raises(SettingsError, match="refuses to start without a PII key"):
        Settings.from_env({**env, "VALUETIER_MODE": "production"})


def test_production_mode_refuses_to_start_without_a_strong_key(tmp_path):
    production = {"VALUETIER_MODE": "production"}
    for env in ({}, {"VALUETIER_PII_KEY": DEV_PII_KEY}, {"VALUETIER_PII_KEY": "development"}):
        with pytest.raises(SettingsError, match="refuses to start without a PII key"):
            Settings.from_env({**production, **env})
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({**production, "VALUETIER_PII_KEY": "short"})
    assert Settings.from_env({**production, "VALUETIER_PII_KEY": STRONG_KEY}).mode == "production"
    with pytest.raises(SettingsError, match="VALUETIER_MODE must be one of"):
        Settings.from_env({"VALUETIER_MODE": "prod"})
    # The run itself: a clear refusal, before anything is read or written.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUETIER_PII_KEY")}
    run = subprocess.run(
        [sys.executable, "-m", "orchestration.run"],
        cwd=REPO,
        env={**env, **production, "VALUETIER_WAREHOUSE": str(tmp_path / "w.duckdb")},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "refusing to run: production mode" in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "w.duckdb").exists()


def test_the_dbt_target_is_one_of_the_profiles_and_spark_exchanges_beside_the_warehouse(tmp_path, monkeypatch):
    with pytest.raises(SettingsError, match="VALUETIER_DBT_TARGET must be one of duckdb, spark"):
        Settings.from_env({"VALUETIER_DBT_TARGET": "postgres"})
    warehouse = tmp_path / "w" / "valuetier.duckdb"
    spark = Settings.from_env({"VALUETIER_DBT_TARGET": "spark", "VALUETIER_WAREHOUSE": str(warehouse)})
    assert spark.exchange_path == warehouse.parent / "exchange"
    assert spark.dbt_environment()["VALUETIER_EXCHANGE_DIR"] == str(warehouse.parent / "exchange")
    # dbt's profile picks its target from the settings a run starts with, as it does the warehouse.
    assert spark.dbt_environment()["VALUETIER_DBT_TARGET"] == "spark"
    elsewhere = {"VALUETIER_DBT_TARGET": "spark", "VALUETIER_EXCHANGE_DIR": str(tmp_path / "lake")}
    assert Settings.from_env(elsewhere).exchange_path == tmp_path / "lake"
    # Without `make spark`: said before any step starts, not as dbt's missing adapter midway.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if "spark" in name else real(name))
    with pytest.raises(SettingsError, match="make spark"):
        Settings.from_env({"VALUETIER_DBT_TARGET": "spark"})
    assert Settings.from_env({}).dbt_target == "duckdb"
