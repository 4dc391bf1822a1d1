"""Great Expectations suites as blocking asset checks: one check per suite, on the asset it checks.

A failed error-level expectation fails the check with ERROR severity, and Dagster does not run the
assets downstream of it in that run; failed warnings are recorded with WARN severity.
"""

import dagster as dg

from orchestration.partitions import WAREHOUSE_POOL, month_partitions
from orchestration.resources import DataDocsIndex, ValueTierSettings
from valuetier.quality.suites import ExpectationOutcome, Suite, SuiteResult, all_suites, validate

CHECK_NAME = "great_expectations"


def check_metadata(result: SuiteResult) -> dict:
    failed = [o.as_dict() for o in result.errors + result.warnings]
    quarantine = {"quarantined_by_month": dg.MetadataValue.json(result.quarantined)} if result.quarantined else {}
    accepted = {"accepted_by_operator": dg.MetadataValue.json(result.accepted)} if result.accepted else {}
    return (
        quarantine
        | accepted
        | {
            "months": f"{result.first_month}..{result.last_month}",
            "first_load": dg.MetadataValue.bool(result.first_load),
            "rows_checked": dg.MetadataValue.int(result.rows),
            "expectations": dg.MetadataValue.int(len(result.outcomes)),
            "failed_errors": dg.MetadataValue.int(len(result.errors)),
            "failed_warnings": dg.MetadataValue.int(len(result.warnings)),
            "failed_expectations": dg.MetadataValue.json(failed),
            "data_docs": dg.MetadataValue.path(str(result.docs_index)),  # built when the run ends
            "validation_page": dg.MetadataValue.path(str(result.docs_page)),
            "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
        }
    )


def failure_line(suite: Suite, outcome: ExpectationOutcome) -> str:
    """What failed, why its severity is what it is, and how to accept the month where that is allowed."""
    return (
        f"{suite.name} {outcome.severity}: {outcome.expectation} {outcome.column or ''} failed"
        + (f" ({outcome.note})" if outcome.note else "")
        + (f"; to accept a month: {'; '.join(outcome.to_accept)}" if outcome.to_accept else "")
    )


def build_expectation_check(suite: Suite) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(suite.asset_key_path),
        name=CHECK_NAME,
        description=f"Great Expectations suite {suite.path.name} ({len(suite.expectations)} expectations) on the "
        + ("month profiles ingestion wrote for the run's months" if suite.profiled else "run's months")
        + "; error-level failures block downstream assets.",
        blocking=True,
        partitions_def=month_partitions,
        pool=WAREHOUSE_POOL,
    )
    def _check(
        context: dg.AssetCheckExecutionContext, valuetier: ValueTierSettings, data_docs: DataDocsIndex
    ) -> dg.AssetCheckResult:
        months = context.partition_key_range
        current = valuetier.current
        result = validate(
            current.warehouse_path,
            current.quality_dir,
            suite,
            months.start,
            months.end,
            limits=current.duckdb,
            index=False,  # once, when the run ends
        )
        data_docs.page_rendered(current.quality_dir)
        lines = [failure_line(suite, outcome) for outcome in result.errors + result.warnings]
        for line in lines:
            context.log.warning(line)
        return dg.AssetCheckResult(
            passed=not result.errors and not result.warnings,
            severity=dg.AssetCheckSeverity.ERROR if result.errors else dg.AssetCheckSeverity.WARN,
            metadata=check_metadata(result),
            description="\n".join(lines) or None,
        )

    return _check


expectation_checks = [build_expectation_check(suite) for suite in all_suites()]
