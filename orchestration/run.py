"""Run the monthly pipeline for all landed months (or a range) through Dagster, and print a summary.

    python -m orchestration.run                  # every month with a transactions file
    python -m orchestration.run --months 2025-11:2025-12

The run is recorded in DAGSTER_HOME, so it shows in the Dagster UI afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.definitions import defs
from orchestration.partitions import month_partitions
from orchestration.resources import settings
from valuetier.ingest import discover_months
from valuetier.warehouse import connect, row_accounting, tiers_of_latest_month


def register_months(instance: dg.DagsterInstance, months: list[str]) -> None:
    known = set(instance.get_dynamic_partitions(month_partitions.name))
    new = [m for m in months if m not in known]
    if new:
        instance.add_dynamic_partitions(month_partitions.name, new)


def run_months(instance: dg.DagsterInstance, first: str, last: str) -> dg.ExecuteInProcessResult:
    """One run over the month range: every asset processes the months in order."""
    job = defs.resolve_job_def("monthly_pipeline")
    return job.execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
    )


def print_summary(seconds: float) -> None:
    current = settings()
    with connect(current.warehouse_path, read_only=True) as con:
        accounting = row_accounting(con)
        tiers = tiers_of_latest_month(con)
    print(f"\nValueTier run finished in {seconds:.0f}s")
    print("\nrows per source (loaded / quarantined):")
    for source, loaded, quarantined in accounting:
        print(f"  {source:<22}{loaded:>12,}{quarantined:>10,}")
    if tiers:
        print(f"\ncustomers per tier, {tiers[0][0]}:")
        for _, tier, customers, share in tiers:
            print(f"  {tier:<6}{customers:>10,}  ({share:.0%})")
    print(f"\nwarehouse:   {current.warehouse_path}  (schemas raw, raw_quarantine, staging, marts, evaluation)")
    print(f"run history: {dg.DagsterInstance.get().root_directory}")
    print("open the UI: make ui   (then http://127.0.0.1:3000)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.run", description=__doc__.splitlines()[0])
    parser.add_argument("--months", help="FIRST:LAST (YYYY-MM:YYYY-MM); default: all landed months")
    args = parser.parse_args(argv)
    landed = discover_months(settings().landing_dir)
    if not landed:
        print(f"no transactions files in {settings().landing_dir}/transactions: nothing to run", file=sys.stderr)
        return 2
    first, last = args.months.split(":") if args.months else (landed[0], landed[-1])
    missing = [m for m in (first, last) if m not in landed]
    if missing:
        print(f"no transactions file for {', '.join(missing)} in {settings().landing_dir}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        register_months(instance, landed)
        print(f"running monthly_pipeline for {first}..{last} ({len(landed)} months landed)", flush=True)
        result = run_months(instance, first, last)
    if not result.success:
        print(f"run {result.run_id} failed; see the Dagster UI (make ui) or the log above", file=sys.stderr)
        return 1
    print_summary(time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
