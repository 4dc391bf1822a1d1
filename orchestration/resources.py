"""Resources shared by every asset: the settings, the DuckDB warehouse and the dbt CLI."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from valuetier.settings import Settings
from valuetier.warehouse import connect


@cache
def settings() -> Settings:
    current = Settings.from_env()
    current.export_for_dbt()
    return current


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file; the same path dbt's profile reads (VALUETIER_WAREHOUSE)."""

    path: str

    @contextmanager
    def connect(self):
        with connect(Path(self.path), limits=settings().duckdb) as con:
            yield con


def build_resources() -> dict:
    current = settings()
    return {
        "warehouse": WarehouseResource(path=str(current.warehouse_path)),
        "dbt": DbtCliResource(
            project_dir=str(current.dbt_project_dir),
            profiles_dir=str(current.dbt_project_dir),
            target=current.dbt_target,
            # The venv's dbt, found without an activated venv on PATH.
            dbt_executable=str(Path(sys.executable).parent / "dbt"),
        ),
    }
