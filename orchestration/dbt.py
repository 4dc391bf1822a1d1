"""The dbt project as Dagster assets, groups by dbt folder, month windows as environment variables.

Two definitions over one manifest: the models up to the indicator marts, and the evaluation, which
reads the tiers the Python scoring asset writes (a dbt source mapped to marts/customer_tiers). Both
are built when the definitions load (dbt_asset_definitions), not at import: under `dagster dev` the
manifest is parsed first.
"""

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from orchestration.dbt_checks import (
    TableChecks,
    TestOutcomes,
    asset_events,
    refuse_a_check_apart_from_its_table,
    reported_checks,
    table_checks,
)
from orchestration.flow import flow_metadata
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import DBT_PROJECT_DIR, ValueTierSettings, WarehouseResource, dbt_cli
from valuetier.core.exchange import export_sources, mirror_spark_models
from valuetier.core.months import dbt_month_window
from valuetier.core.settings import Settings
from valuetier.core.warehouse import anomalous_transactions_by_month, optional_sources_without_rows

FCT_TRANSACTIONS = dg.AssetKey(["marts", "fct_transactions"])
INDICATORS = dg.AssetKey(["marts", "customer_indicators_monthly"])


@cache
def dbt_project() -> DbtProject:
    """The dbt project, built once when first needed. Under `dagster dev` its manifest is rebuilt
    first, as DbtProject.prepare_if_dev does, but through ValueTier's DbtCli: dagster-dbt's own
    resource first runs `dbt --version`, which asks PyPI for dbt's latest release (tests/test_ui.py's
    outbound guard caught it). Elsewhere `make` runs `dbt parse` first."""
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    if project.preparer.using_dagster_dev():
        dbt_cli().cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


class ValueTierTranslator(DagsterDbtTranslator):
    """Models are grouped by their folder (staging, intermediate, marts, evaluation), but for the
    evaluation's own intermediates (intermediate/evaluation), which are grouped with the evaluation
    that builds them after the tiers (a rescore rebuilds the group). A tested table's data tests are
    one asset check on it (orchestration/dbt_checks.py), the tests on dbt sources (the raw tables)
    too: otherwise dagster-dbt logs each as an observation with a warning of several lines, every
    run (dagster issue #33986)."""

    def __init__(self):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True))
        self._table_checks: dict[str, TableChecks] = {}  # by the manifest's dbt invocation

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        """A tested table's one `dbt_tests` check (orchestration/dbt_checks.py), for each of its tests."""
        checks = self.table_checks(manifest, project)
        key = checks.check_of_test.get(unique_id)
        return checks.specs[key.asset_key] if key is not None and key.asset_key == asset_spec.key else None

    def table_checks(self, manifest, project) -> TableChecks:
        parsed = manifest["metadata"]["invocation_id"]
        if parsed not in self._table_checks:
            self._table_checks[parsed] = table_checks(
                self, lambda key, test: self._spec_of_test(key, manifest, test, project), manifest, project
            )
        return self._table_checks[parsed]

    def _spec_of_test(self, key, manifest, unique_id, project):
        test = manifest["nodes"].get(unique_id, {})
        if test.get("depends_on", {}).get("nodes") == [TIERS_SOURCE_ID]:
            return None  # excluded from Dagster's builds (TIERS_SOURCE_TESTS)
        return super().get_asset_check_spec(dg.AssetSpec(key), manifest, unique_id, project)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "model":
            folders = dbt_resource_props["fqn"][1:-1]
            return "evaluation" if "evaluation" in folders else folders[0]
        return super().get_group_name(dbt_resource_props)


# The evaluation and its intermediates (dbt_project.yml tags both folders): the models built after the tiers.
EVALUATION = "tag:evaluation"
# The tiers' dbt source tests are not run by Dagster: the tiers' own blocking check (the
# customer_tiers Great Expectations suite, which covers them) runs where the scoring asset writes
# them; as checks of the evaluation's multi-asset they would split it into three dbt invocations a
# run, since the tiers sit between its models. `dbt build` on its own still runs them.
TIERS_SOURCE_TESTS = "source:marts.customer_tiers"
TIERS_SOURCE_ID = "source.valuetier.marts.customer_tiers"
# dbt's unit tests check the SQL, not the data: they run in `make test`, not in every month's run.
BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]


def invocations_dir() -> Path:
    """Where dagster-dbt puts each invocation's target folder and looks for the parse state to
    start from: DBT_TARGET_PATH as dagster-dbt reads it (relative to the dbt project), else the
    project's target folder."""
    project = dbt_project()
    return project.project_dir / os.getenv("DBT_TARGET_PATH", project.target_path)


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
    refuse_a_check_apart_from_its_table(context)
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


def build_holding_events(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, valuetier: ValueTierSettings, warehouse: WarehouseResource
):
    """The run's dbt build, its events held until dbt has let go of the warehouse, so metadata read
    from the warehouse can be added to them (Dagster wants a multi-asset's outputs in order, so
    none is yielded before). If the build fails, what it did build is yielded, then the error."""
    held: list = []
    current = valuetier.current
    exchanging = current.dbt_target != "duckdb"
    if exchanging:
        share_sources(context, current, warehouse)
    try:
        with dbt_build(context, dbt) as invocation:
            translator = invocation.dagster_dbt_translator
            outcomes = TestOutcomes(translator.table_checks(invocation.manifest, invocation.project))
            try:
                for event in asset_events(invocation, outcomes):
                    held.append(event)
                    if len(held) == 1:
                        valuetier.pause("dbt build")  # dbt's first model built, the rest still building
            except Exception:
                yield from held  # what dbt did build and test stays recorded
                yield from outcomes.check_results(reported_checks(context))
                raise
            held.extend(outcomes.check_results(reported_checks(context)))
    finally:
        if exchanging:
            read_back_models(context, current, warehouse)
    return held


def share_sources(context: dg.AssetExecutionContext, current: Settings, warehouse: WarehouseResource) -> None:
    """On an engine that cannot open the DuckDB file: what Python wrote for dbt (its sources), as
    Parquet in the exchange folder (valuetier.core.exchange)."""
    started = time.perf_counter()
    with warehouse.connect() as con:
        exported = export_sources(con, dbt_project().manifest_path, current.exchange_path)
    context.log.info(
        f"exported {len(exported)} dbt sources ({sum(exported.values())} rows) to {current.exchange_path} "
        f"for dbt on {current.dbt_target} in {time.perf_counter() - started:.1f} s"
    )


def read_back_models(context: dg.AssetExecutionContext, current: Settings, warehouse: WarehouseResource) -> None:
    """What dbt stored on that engine, as warehouse views over its Parquet files, for every Python
    step after (and the flow metadata of this one) to read as it reads a DuckDB build."""
    with warehouse.connect() as con:
        mirrored = mirror_spark_models(con, dbt_project().manifest_path, current.exchange_path)
    context.log.info(f"{len(mirrored)} models dbt stored on {current.dbt_target} are readable in the warehouse")


def model_flows(context: dg.AssetExecutionContext, con, held: list) -> dict[dg.AssetKey, dict]:
    """Rows in (the upstreams' rows of the run's months), rows out and dbt's seconds, per model built."""
    flows = {}
    for event in held:
        if isinstance(event, dg.Output):
            key = context.asset_key_for_output(event.output_name)
            duration = event.metadata.get("Execution Duration")
            seconds = float(duration.value) if duration is not None else 0.0
            flows[key] = flow_metadata(context, con, 0.0, key=key, seconds=seconds)
    return flows


def with_metadata(context: dg.AssetExecutionContext, held: list, metadata: dict[dg.AssetKey, dict]):
    for event in held:
        if isinstance(event, dg.Output):
            extra = metadata.get(context.asset_key_for_output(event.output_name), {})
            event = event.with_metadata({**event.metadata, **extra})
        yield event


def valuetier_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, valuetier: ValueTierSettings, warehouse: WarehouseResource
):
    window = context.partition_key_range
    held = yield from build_holding_events(context, dbt, valuetier, warehouse)
    with warehouse.connect() as con:
        metadata = model_flows(context, con, held)
        anomalies = anomalous_transactions_by_month(con, window.start, window.end)
        absent = optional_sources_without_rows(con, window.start, window.end)
    for source, months in absent.items():
        context.log.warning(f"optional source {source} has no rows for {', '.join(months)}: its indicators stay empty")
    # A step may build a subset of the models (a job interleaves them with Python assets).
    if FCT_TRANSACTIONS in metadata:
        metadata[FCT_TRANSACTIONS] |= {
            "anomalous_transactions": dg.MetadataValue.int(
                sum(m["amount_outlier"] + m["burst"] for m in anomalies.values())
            ),
            "anomalies_by_month": dg.MetadataValue.json(anomalies),
        }
    if INDICATORS in metadata:
        metadata[INDICATORS] |= {"optional_sources_without_rows": dg.MetadataValue.json(absent)}
    yield from with_metadata(context, held, metadata)


def valuetier_dbt_evaluation(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, valuetier: ValueTierSettings, warehouse: WarehouseResource
):
    held = yield from build_holding_events(context, dbt, valuetier, warehouse)
    with warehouse.connect() as con:
        metadata = model_flows(context, con, held)
    yield from with_metadata(context, held, metadata)


@cache
def dbt_asset_definitions() -> list[dg.AssetsDefinition]:
    """The dbt models up to the indicator marts, and the evaluation: two multi-assets over one manifest."""
    project = dbt_project()
    common = {
        "manifest": project.manifest_path,
        "project": project,
        "dagster_dbt_translator": ValueTierTranslator(),
        "partitions_def": month_partitions,
        "backfill_policy": single_run,
        "pool": WAREHOUSE_POOL,
    }
    return [
        dbt_assets(exclude=EVALUATION, **common)(valuetier_dbt_models),
        dbt_assets(select=EVALUATION, exclude=TIERS_SOURCE_TESTS, name="valuetier_dbt_evaluation", **common)(
            valuetier_dbt_evaluation
        ),
    ]
