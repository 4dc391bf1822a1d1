"""The dbt project as Dagster assets: one definition, groups by dbt folder, month windows as --vars."""

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import settings
from valuetier.months import parse_month

dbt_project = DbtProject(
    project_dir=settings().dbt_project_dir,
    profiles_dir=settings().dbt_project_dir,
    target=settings().dbt_target,
)
# Under `dagster dev` the manifest is rebuilt on start; elsewhere `make` runs `dbt parse` first.
dbt_project.prepare_if_dev()


class ValueTierTranslator(DagsterDbtTranslator):
    """Models are grouped by their folder (staging, intermediate, marts, evaluation)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "model":
            return dbt_resource_props["fqn"][1]
        return super().get_group_name(dbt_resource_props)


def dbt_month_vars(first_month: str, last_month: str) -> dict[str, str]:
    """The --vars that make incremental models rebuild exactly the months first..last."""
    start, end = parse_month(first_month), parse_month(last_month)
    if start > end:
        raise ValueError(f"month window runs backwards: {first_month}..{last_month}")
    return {"start_month": start.isoformat(), "end_month": end.isoformat()}


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=ValueTierTranslator(),
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def valuetier_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    window = context.partition_key_range
    dbt_vars = dbt_month_vars(window.start, window.end)
    context.log.info(f"dbt build for months {window.start}..{window.end}")
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
