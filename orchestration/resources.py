"""Resources shared by every asset: the settings, the DuckDB warehouse, the dbt CLI and the Data
Docs index of the run's checks.

Settings reach assets only as resources. `build_resources` is called when the definitions load
(orchestration/definitions.py), not at import: each settings field is bound to the environment
variable of its name (dg.EnvVar, resolved when a run starts) where one is set then, so the
launchpad shows where a setting comes from. A field left unset is read from the environment when
the run starts, like the bound ones: a variable set after the definitions loaded still counts.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging.version import Version
from pydantic import Field, PrivateAttr

from valuetier.core.leftovers import pause_point
from valuetier.core.settings import DBT_PROJECT_DIR, Settings
from valuetier.core.warehouse import connect
from valuetier.quality.suites import build_docs_index


def _variable(name: str, meaning: str) -> Field:
    return Field(default=None, description=f"{name}: {meaning} (docs/settings.md).")


class ValueTierSettings(dg.ConfigurableResource):
    """ValueTier's settings: one field per VALUETIER_* variable, unset for the default. The one
    Settings object (valuetier.core.settings) is built from them, once per run."""

    landing: str | None = _variable("VALUETIER_LANDING", "the landing folder of the bank's deliveries")
    warehouse: str | None = _variable("VALUETIER_WAREHOUSE", "the DuckDB warehouse file")
    mapping: str | None = _variable("VALUETIER_MAPPING", "the delivery mapping; default mapping.yml in the landing")
    pii_key: str | None = _variable("VALUETIER_PII_KEY", "the secret personal data is hashed with")
    pii_key_file: str | None = _variable("VALUETIER_PII_KEY_FILE", "a file holding that secret")
    mode: str | None = _variable("VALUETIER_MODE", "development or production")
    dbt_target: str | None = _variable("VALUETIER_DBT_TARGET", "duckdb or spark")
    alert_webhook: str | None = _variable("VALUETIER_ALERT_WEBHOOK", "where alerts are posted")
    playbook: str | None = _variable("VALUETIER_PLAYBOOK", "the actions per segment and tier")
    duckdb_memory_limit: str | None = _variable("VALUETIER_DUCKDB_MEMORY_LIMIT", "DuckDB's memory limit")
    duckdb_threads: str | None = _variable("VALUETIER_DUCKDB_THREADS", "DuckDB's threads")
    duckdb_temp_directory: str | None = _variable("VALUETIER_DUCKDB_TEMP_DIRECTORY", "DuckDB's spill folder")
    exchange_dir: str | None = _variable("VALUETIER_EXCHANGE_DIR", "Parquet exchanged with dbt on Spark")
    pause_at: str | None = _variable("VALUETIER_PAUSE_AT", "a pause point a test holds a run at")

    _settings: Settings | None = PrivateAttr(default=None)

    @classmethod
    def variable_names(cls) -> dict[str, str]:
        return {name: f"VALUETIER_{name.upper()}" for name in cls.model_fields}

    @classmethod
    def from_environment(cls) -> ValueTierSettings:
        """Each field bound to its variable where it is set (the launchpad shows the variable's
        name, never a secret's value)."""
        return cls(**{name: dg.EnvVar(var) for name, var in cls.variable_names().items() if var in os.environ})

    @property
    def current(self) -> Settings:
        """The settings of the fields given, and of the environment for the others, checked
        (SettingsError names the variable to fix). Built once per run: Dagster makes the resource
        anew for each run."""
        if self._settings is None:
            given = {var: getattr(self, name) for name, var in self.variable_names().items()}
            self._settings = Settings.from_env({**os.environ, **{k: v for k, v in given.items() if v is not None}})
        return self._settings

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # dagster-dbt starts dbt as a child of this process: it must see the same target, warehouse
        # and limits.
        os.environ.update(self.current.dbt_environment())

    def pause(self, point: str) -> None:
        """A named pause point (valuetier.core.leftovers): off unless a test sets VALUETIER_PAUSE_AT."""
        current = self.current
        pause_point(point, current.pause_at, current.warehouse_dir)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (VALUETIER_WAREHOUSE), opened with the settings' limits: the same
    file and limits dbt's profile is given."""

    settings: ValueTierSettings

    @contextmanager
    def connect(self, read_only: bool = False):
        current = self.settings.current
        with connect(current.warehouse_path, read_only=read_only, limits=current.duckdb) as con:
            yield con


class DbtCli(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two costs it pays before every dbt command, about
    6 s a step (measured): `dbt --version` in a subprocess, which also asks PyPI for the latest
    release (slower still, or a timeout, on a bank's offline network), and a dbt adapter built in
    this process, which dagster-dbt uses only for `fetch_row_counts`/`fetch_column_metadata`, which
    ValueTier does not call. Both override dagster-dbt internals; tests/test_definitions.py fails
    if an upgrade renames them."""

    @cached_property
    def _cli_version(self) -> Version:
        # dbt_executable is this interpreter's dbt: the installed dbt-core is its version.
        return Version(installed_version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args):
        return None


class DataDocsIndex(dg.ConfigurableResource):
    """The Great Expectations Data Docs index, built once when the run ends (after a failed run too).

    Each check renders its own validation's page. The index lists every stored validation result, so
    building it after each check cost more with every run kept: 13 builds a month, 0.2 s each at 143
    stored results (measured). Dagster tears a resource down once per run with the in-process
    executor, and once per step process with the multiprocess one."""

    _due: set[Path] = PrivateAttr(default_factory=set)

    def page_rendered(self, quality_dir: Path) -> None:
        self._due.add(quality_dir)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for quality_dir in sorted(self._due):
            try:
                build_docs_index(quality_dir)
            except Exception:  # the checks' results and pages are stored: the run's outcome stands
                context.log.exception(f"the Data Docs index of {quality_dir} was not rebuilt")
        self._due.clear()


def dbt_cli() -> DbtCli:
    """dbt on the project. No target: the profile picks VALUETIER_DBT_TARGET, which the settings
    resource exports when a run starts (Settings.dbt_environment), as it does the warehouse."""
    return DbtCli(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        # The venv's dbt, found without an activated venv on PATH.
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )


def build_resources() -> dict:
    """The resources of the definitions, bound to the environment variables that are set."""
    settings = ValueTierSettings.from_environment()
    return {
        "valuetier": settings,
        "warehouse": WarehouseResource(settings=settings),
        "dbt": dbt_cli(),
        "data_docs": DataDocsIndex(),
    }
