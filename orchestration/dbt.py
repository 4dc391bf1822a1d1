"""The dbt project as Dagster assets, groups by dbt folder, month windows as environment variables.

Two definitions over one manifest: the models up to the indicator marts, and the evaluation, which
reads the tiers the Python scoring asset writes (a dbt source mapped to marts/customer_tiers).
"""

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, DbtProject, dbt_assets

from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import WarehouseResource, settings
from valuetier.months import dbt_month_window
from valuetier.warehouse import anomalous_transactions_by_month, optional_sources_without_rows

FCT_TRANSACTIONS = dg.AssetKey(["marts", "fct_transactions"])
INDICATORS = dg.AssetKey(["marts", "customer_indicators_monthly"])

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


EVALUATION = "path:models/evaluation"
# dbt's unit tests check the SQL, not the data: they run in `make test`, not in every month's run.
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]


def invocations_dir() -> Path:
    """Where dagster-dbt puts each invocation's target folder and looks for the parse state to
    start from: DBT_TARGET_PATH as dagster-dbt reads it (relative to the dbt project), else the
    project's target folder."""
    return dbt_project.project_dir / os.getenv("DBT_TARGET_PATH", dbt_project.target_path)


def keep_partial_parse(target_path: Path) -> None:
    """Make an invocation's parse state the project's, which dagster-dbt copies into the next
    invocation's target folder: dbt then re-parses only what changed since, where the state `make`
    left (parsed with other profile settings) makes every command parse the whole project again.
    Replaced atomically: a reader sees the old state or the new one, and either is only a cache
    that dbt checks before using."""
    parsed = target_path / "partial_parse.msgpack"
    if parsed.exists():
        kept = invocations_dir() / "partial_parse.msgpack"
        kept.parent.mkdir(parents=True, exist_ok=True)
        staged = kept.with_name(f".partial_parse.{os.getpid()}.msgpack")
        shutil.copyfile(parsed, staged)
        os.replace(staged, kept)


@contextmanager
def dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[DbtCliInvocation]:
    """`dbt build` of the run's months, for its events to be streamed inside the block. The window
    is in the environment only while dagster-dbt starts dbt (it hands dbt a copy of os.environ);
    afterwards the invocation's parse state is kept for the next (keep_partial_parse)."""
    window = context.partition_key_range
    context.log.info(f"dbt build for months {window.start}..{window.end}")
    names = dbt_month_window(window.start, window.end)
    before = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        invocation = dbt.cli(BUILD_ARGS, context=context)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        yield invocation
    finally:
        keep_partial_parse(invocation.target_path)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=EVALUATION,
    dagster_dbt_translator=ValueTierTranslator(),
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def valuetier_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
    window = context.partition_key_range
    # Events from the first asset that needs warehouse metadata on are held (in order: Dagster
    # wants a multi-asset's outputs in topological order) until dbt has let go of the warehouse.
    held: list = []
    with dbt_build(context, dbt) as invocation:
        try:
            for event in invocation.stream():
                key = context.asset_key_for_output(event.output_name) if isinstance(event, dg.Output) else None
                if held or key in (FCT_TRANSACTIONS, INDICATORS):
                    held.append((key, event))
                else:
                    yield event
        except Exception:
            yield from (event for _, event in held)  # what dbt did build stays recorded
            raise
    with warehouse.connect() as con:
        anomalies = anomalous_transactions_by_month(con, window.start, window.end)
        absent = optional_sources_without_rows(con, window.start, window.end)
    for source, months in absent.items():
        context.log.warning(f"optional source {source} has no rows for {', '.join(months)}: its indicators stay empty")
    extra = {
        FCT_TRANSACTIONS: {
            "anomalous_transactions": dg.MetadataValue.int(
                sum(m["amount_outlier"] + m["burst"] for m in anomalies.values())
            ),
            "anomalies_by_month": dg.MetadataValue.json(anomalies),
        },
        INDICATORS: {"optional_sources_without_rows": dg.MetadataValue.json(absent)},
    }
    for key, event in held:
        yield event.with_metadata({**event.metadata, **extra[key]}) if key in extra else event


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=EVALUATION,
    name="valuetier_dbt_evaluation",
    dagster_dbt_translator=ValueTierTranslator(),
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def valuetier_dbt_evaluation(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    with dbt_build(context, dbt) as invocation:
        yield from invocation.stream()
