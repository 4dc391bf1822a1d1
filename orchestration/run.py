"""Run the monthly pipeline for all landed months (or a range) through Dagster, and print a summary.

    python -m orchestration.run                  # every month with a transactions file
    python -m orchestration.run --months 2025-11:2025-12
    python -m orchestration.run --train          # also train a new model version first

When there is no champion model yet (a new installation), the months are built up to their
indicators and CLV (build_months), the first model is trained where the history allows it, and
then every month is scored once (rescore_tiers): the first run ends with model tiers, and no month
is scored twice. Runs are recorded in DAGSTER_HOME and show in the Dagster UI.
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
from valuetier.acceptance import load_acceptances
from valuetier.ingest import discover_months
from valuetier.lifecycle import TrainingPlan, adapt_plan
from valuetier.quality import docs_index
from valuetier.registry import Registry
from valuetier.training import TrainingDataError
from valuetier.value_measure import resolve_value_measure
from valuetier.warehouse import connect, row_accounting, table_exists, tiers_of_latest_month


def register_months(instance: dg.DagsterInstance, months: list[str]) -> None:
    known = set(instance.get_dynamic_partitions(month_partitions.name))
    new = [m for m in months if m not in known]
    if new:
        instance.add_dynamic_partitions(month_partitions.name, new)


def run_months(
    instance: dg.DagsterInstance, first: str, last: str, job_name: str = "monthly_pipeline"
) -> dg.ExecuteInProcessResult:
    """One run over the month range: every asset processes the months in order."""
    return run_job(instance, job_name, {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last})


def run_job(instance: dg.DagsterInstance, job_name: str, tags: dict | None = None) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        tags=tags or {},
        raise_on_error=False,
    )


def training_is_possible() -> str | None:
    """None when the warehouse holds enough labelled months for a training plan (adapted to a short
    history where needed); else why not."""
    with connect(settings().warehouse_path, read_only=True) as con:
        try:
            adapt_plan(con, TrainingPlan())
        except TrainingDataError as exc:
            return str(exc)
    return None


def train(instance: dg.DagsterInstance) -> bool | None:
    """Train a model version: whether it was promoted champion (None: the training run failed)."""
    registry = Registry(settings().models_dir)
    before = registry.champion_version()
    print("training the tiering model (train_tiering_model)", flush=True)
    if not run_job(instance, "train_tiering_model").success:
        return None
    print(f"model {registry.versions()[-1]}: {registry.card(registry.versions()[-1]).decision}", flush=True)
    return registry.champion_version() != before


def score_months(instance: dg.DagsterInstance, first: str, last: str) -> bool:
    champion = Registry(settings().models_dir).champion_version() or "rule tiers: no champion model"
    print(f"scoring {first}..{last} ({champion}) and their tier evaluation (rescore_tiers)", flush=True)
    return run_months(instance, first, last, "rescore_tiers").success


def print_summary(seconds: float) -> None:
    current = settings()
    with connect(current.warehouse_path, read_only=True) as con:
        accounting = row_accounting(con)
        tiers = tiers_of_latest_month(con)
        measure = (
            resolve_value_measure(con)
            if table_exists(con, "intermediate", "int_transactions_by_customer_month")
            else None
        )
    print(f"\nValueTier run finished in {seconds:.0f}s")
    print(f"delivery mapping: {current.mapping_path or 'none (the contract own names and codes)'}")
    if measure:
        print(f"value measure:    {measure.described} (value_measure in dbt_project/dbt_project.yml)")
    print("\nrows per source (loaded / quarantined):")
    for source, loaded, quarantined in accounting:
        print(f"  {source:<22}{loaded:>12,}{quarantined:>10,}")
    if tiers:
        print(f"\ncustomers per tier, {tiers[0][0]}:")
        for _, tier, customers, share in tiers:
            print(f"  {tier:<6}{customers:>10,}  ({share:.0%})")
    registry = Registry(current.models_dir)
    champion = registry.champion_version()
    if champion:
        card = registry.card(champion)
        capture = {name: card.metrics[name]["high_tier_value_capture"] for name in ("model", "rfm_weighted", "clv_12m")}
        print(
            f"\nchampion model {champion}: holdout {card.holdout_month}, value captured by the high tier "
            f"{capture['model']:.1%} (weighted RFM {capture['rfm_weighted']:.1%}, CLV ranking {capture['clv_12m']:.1%})"
        )
        plan = card.parameters.get("plan", {})
        print(f"training plan: {plan.get('note', f'{card.horizon_months}-month horizon')}")
    else:
        print("\nno champion model: tiers rank 12-month CLV where fitted, else the weighted RFM score")
    acceptances = load_acceptances(current.quality_dir)
    if acceptances:
        print("\naccepted check failures (valuetier quality acceptances):")
        for a in acceptances:
            print(f"  {a.month} {a.name}: {a.reason} ({a.accepted_by}, {a.accepted_at})")
    docs = docs_index(current.quality_dir)
    if docs.exists():
        print(f"data docs:   {docs}")
    with connect(current.warehouse_path, read_only=True) as con:
        alerts = (
            con.execute(
                "SELECT strftime(max(month_start), '%Y-%m'), count(*) FILTER (WHERE severity = 'error'), "
                "count(*) FILTER (WHERE severity = 'warning') FROM monitoring.alerts "
                "WHERE month_start = (SELECT max(month_start) FROM monitoring.alerts)"
            ).fetchone()
            if table_exists(con, "monitoring", "alerts")
            else None
        )
    if alerts and alerts[0]:
        print(f"\nalerts {alerts[0]}: {alerts[1]} errors, {alerts[2]} warnings (monitoring.alerts; sent to "
              f"{current.alert_webhook_url or current.alerts_file})")  # fmt: skip
    print(
        f"\nwarehouse:   {current.warehouse_path}  "
        "(schemas raw, raw_quarantine, staging, marts, evaluation, monitoring)"
    )
    print(f"published:   {current.published_dir / 'valuetier.duckdb'}  (read-only, for BI)")
    print(f"run history: {dg.DagsterInstance.get().root_directory}")
    print("open the UI: make ui   (then http://127.0.0.1:3000)")
    reports = sorted(current.reports_dir.glob("valuetier-report-*.html"))
    if reports:
        print(f"report:      {reports[-1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.run", description=__doc__.splitlines()[0])
    parser.add_argument("--months", help="FIRST:LAST (YYYY-MM:YYYY-MM); default: all landed months")
    parser.add_argument("--train", action="store_true", help="train a new model version after the pipeline")
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
        new_installation = Registry(settings().models_dir).champion_version() is None
        job = "build_months" if new_installation else "monthly_pipeline"
        print(f"running {job} for {first}..{last} ({len(landed)} months landed)", flush=True)
        result = run_months(instance, first, last, job)
        if not result.success:
            print(f"run {result.run_id} failed; see the Dagster UI (make ui) or the log above", file=sys.stderr)
            return 1
        promoted = False
        if args.train or new_installation:
            why_not = training_is_possible()
            if why_not:
                print(f"no model trained yet ({why_not}): tiers are by rule", flush=True)
            else:
                promoted = train(instance)
                if promoted is None:
                    print("training failed; see the Dagster UI (make ui) or the log above", file=sys.stderr)
                    return 1
        if (new_installation or promoted) and not score_months(instance, first, last):
            print("scoring failed; see the Dagster UI (make ui) or the log above", file=sys.stderr)
            return 1
    print_summary(time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
