"""dbt's data tests as one Dagster asset check per tested table (`dbt_tests`), whose result counts
the tests that ran and lists each failed one with its status and failing rows.

Why not one check per test, dagster-dbt's default: a month's run has about 300 data tests, and a
check costs three events in Dagster's SQLite event log (planned when the run is created, evaluated,
and a step output), each its own connection and commit: 951 of a small bank's 1,237 events a month
(bench/RESULTS.md, issue 32). dbt still runs and reports every test (`dbt build`, its logs, its docs).

dagster-dbt chooses the dbt tests of a run that builds some of a multi-asset's tables from each
selected check's dbt `unique_id`; this check names its table's, so dbt's indirect selection runs
the table's tests. A check cannot run without its table, nor a table without its check
(refuse_a_check_apart_from_its_table): dbt cannot select one table's tests alone from a check.
"""

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtProject

# The metadata key dagster-dbt reads a check's dbt node from, when it selects a partial run's tests.
from dagster_dbt.asset_utils import DAGSTER_DBT_UNIQUE_ID_METADATA_KEY as DBT_UNIQUE_ID

CHECK_NAME = "dbt_tests"
FAILED = ("fail", "error")


@dataclass(frozen=True)
class TableChecks:
    """The check of every tested table, and which check each data test reports to."""

    specs: dict[dg.AssetKey, dg.AssetCheckSpec]
    check_of_test: dict[str, dg.AssetCheckKey]


def table_checks(
    translator: DagsterDbtTranslator,
    spec_of_test: Callable[[dg.AssetKey, str], dg.AssetCheckSpec | None],
    manifest: Mapping[str, Any],
    project: DbtProject | None,
) -> TableChecks:
    """Group the manifest's data tests by the table each is a check of: `spec_of_test(key, test)`
    is dagster-dbt's own spec of that test on that table's asset (None when it is not one)."""
    tests: dict[dg.AssetKey, list[tuple[str, dg.AssetCheckSpec]]] = defaultdict(list)
    table_of: dict[dg.AssetKey, str] = {}
    for unique_id, node in sorted(manifest["nodes"].items()):
        if node["resource_type"] != "test":
            continue
        for parent in node["depends_on"]["nodes"]:
            key = translator.get_asset_spec(manifest, parent, project).key
            spec = spec_of_test(key, unique_id)
            if spec is not None:
                tests[key].append((unique_id, spec))
                table_of[key] = parent
                break
    specs, check_of_test = {}, {}
    for key, of_table in tests.items():
        names = sorted(manifest["nodes"][unique_id]["name"] for unique_id, _ in of_table)
        specs[key] = dg.AssetCheckSpec(
            name=CHECK_NAME,
            asset=key,
            description=(
                f"The {len(names)} dbt data tests on this table (its YAML in dbt_project/models), one "
                "result for all that lists each failed test; dbt's own log reports every test."
            ),
            additional_deps=sorted(
                {dep.asset_key for _, spec in of_table for dep in spec.additional_deps} - {key},
                key=lambda k: k.to_user_string(),
            ),
            blocking=any(spec.blocking for _, spec in of_table),
            metadata={DBT_UNIQUE_ID: table_of[key], "dbt_tests": dg.MetadataValue.json(names)},
        )
        check_of_test.update((unique_id, specs[key].key) for unique_id, _ in of_table)
    return TableChecks(specs=specs, check_of_test=check_of_test)


@dataclass
class TestOutcomes:
    """The data tests' results of one dbt invocation, gathered per check as dbt reports them."""

    checks: TableChecks
    results: dict[dg.AssetCheckKey, list[dict]] = field(default_factory=lambda: defaultdict(list))

    def add(self, result: Mapping[str, Any]) -> None:
        """A test's result event (dbt's LogTestResult: its node, status and failing rows)."""
        node_info = result.get("node_info", {})
        key = self.checks.check_of_test.get(node_info.get("unique_id", ""))
        if key is not None:
            self.results[key].append(
                {
                    "test": node_info.get("node_name"),
                    "status": result.get("status") or node_info.get("node_status"),
                    "failing_rows": result.get("num_failures"),
                }
            )

    def check_results(self, selected: set[dg.AssetCheckKey]) -> Iterator[dg.AssetCheckResult]:
        """One result per selected check whose tests ran, in the order dbt tested the tables."""
        for key, results in self.results.items():
            if key not in selected:
                continue
            failed = [r for r in results if r["status"] in FAILED]
            warned = [r for r in results if r["status"] == "warn"]
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=not failed and not warned,
                severity=dg.AssetCheckSeverity.ERROR if failed else dg.AssetCheckSeverity.WARN,
                description=(
                    f"{len(failed) + len(warned)} of {len(results)} dbt tests failed: "
                    + ", ".join(r["test"] for r in failed + warned)
                )
                if failed or warned
                else f"{len(results)} dbt tests passed",
                metadata={
                    "tests_run": dg.MetadataValue.int(len(results)),
                    "tests_failed": dg.MetadataValue.int(len(failed)),
                    "tests_warned": dg.MetadataValue.int(len(warned)),
                    "failed_tests": dg.MetadataValue.json(failed + warned),
                },
            )


def asset_events(invocation: DbtCliInvocation, outcomes: TestOutcomes) -> Iterator:
    """dagster-dbt's events of an invocation (what DbtCliInvocation.stream yields), but for its
    data tests, whose results go to `outcomes` instead of becoming an event each."""
    for event in invocation.stream_raw_events():
        data = event.raw_event["data"]
        node_info = data.get("node_info", {})
        if node_info.get("resource_type") == "test":
            if event.is_result_event:
                outcomes.add(data)
            continue
        yield from event.to_default_asset_events(
            manifest=invocation.manifest,
            dagster_dbt_translator=invocation.dagster_dbt_translator,
            context=invocation.context,
            target_path=invocation.target_path,
            project=invocation.project,
        )


def reported_checks(context: dg.AssetExecutionContext) -> set[dg.AssetCheckKey]:
    """The checks a step reports: those selected, and those on the dbt sources upstream of its
    selected tables, whose tests dbt runs with them (as dagster-dbt reports a test's check)."""
    assets_def = context.assets_def
    upstream = assets_def.get_upstream_input_keys(frozenset(context.selected_asset_keys))
    return {*context.selected_asset_check_keys, *assets_def.get_checks_targeting_keys(frozenset(upstream))}


def refuse_a_check_apart_from_its_table(context: dg.AssetExecutionContext) -> None:
    """A dbt table's check selected without the table, or the table without its check: dbt cannot
    run one table's tests apart from the table, so such a run would test the wrong tables."""
    tables = set(context.assets_def.keys)
    selected_tables = context.selected_asset_keys
    selected_checks = context.selected_asset_check_keys
    declared = {spec.key for spec in context.assets_def.node_check_specs_by_output_name.values()}
    apart = sorted(
        key.asset_key.to_user_string()
        for key in declared
        if key.name == CHECK_NAME
        and key.asset_key in tables
        and (key in selected_checks) != (key.asset_key in selected_tables)
    )
    if apart:
        raise dg.Failure(
            f"dbt's tests run with the table they test: select each of {', '.join(apart)} together "
            f"with its {CHECK_NAME} check, or neither"
        )
