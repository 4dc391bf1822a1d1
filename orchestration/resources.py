"""Resources shared by every asset: the settings, the DuckDB warehouse and the dbt CLI."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from functools import cache, cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging.version import Version

from valuetier.core.leftovers import pause_point
from valuetier.core.settings import Settings
from valuetier.core.warehouse import connect


@cache
def settings() -> Settings:
    current = Settings.from_env()
    current.export_for_dbt()
    return current


def pause(point: str) -> None:
    """A named pause point (valuetier.core.leftovers): off unless a test sets VALUETIER_PAUSE_AT."""
    current = settings()
    pause_point(point, current.pause_at, current.warehouse_dir)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file; the same path dbt's profile reads (VALUETIER_WAREHOUSE)."""

    path: str

    @contextmanager
    def connect(self):
        with connect(Path(self.path), limits=settings().duckdb) as con:
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


def build_resources() -> dict:
    current = settings()
    return {
        "warehouse": WarehouseResource(path=str(current.warehouse_path)),
        "dbt": DbtCli(
            project_dir=str(current.dbt_project_dir),
            profiles_dir=str(current.dbt_project_dir),
            target=current.dbt_target,
            # The venv's dbt, found without an activated venv on PATH.
            dbt_executable=str(Path(sys.executable).parent / "dbt"),
        ),
    }
