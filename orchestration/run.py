"""Run the monthly pipeline for all landed months (or a range) through Dagster, and print a summary.

    python -m orchestration.run                  # every month with a transactions file
    python -m orchestration.run --months 2025-11:2025-12
    python -m orchestration.run --train          # also train a new model version first
    python -m orchestration.run --config run.yml # with asset config (ops: ...), e.g. tier cut points

When no model has been trained yet (a new installation), the months are built up to their
indicators and CLV (build_months), the first model is trained where the history allows it, and
then every month is scored once (rescore_tiers): the first run ends with model tiers when the model
beat the weighted-RFM and CLV rankings on its holdout, else with tiers ranked by the better of them,
and no month is scored twice. Runs are recorded in DAGSTER_HOME and show in the Dagster UI.

The console shows progress lines and a summary; everything else (dbt's output, every Dagster
record, library warnings) goes to a log file beside the warehouse, with the same records as JSON
lines (run id, job, partition, step) beside it. The summary names both.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import sys
import time
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.partitions import month_partitions
from valuetier.application.monitoring import monitoring_summary
from valuetier.core.leftovers import process_alive
from valuetier.core.notices import new_command
from valuetier.core.settings import Settings, SettingsError
from valuetier.core.value_measure import resolve_value_measure
from valuetier.core.warehouse import (
    WarehouseBusy,
    connect,
    exclusive_run,
    row_accounting,
    table_exists,
    tiers_of_latest_month,
    unwritable,
)
from valuetier.ingest.loader import discover_months
from valuetier.ingest.mapping import mapping_in_force
from valuetier.quality.acceptance import load_acceptances
from valuetier.quality.suites import docs_index
from valuetier.tiering.registry import Registry
from valuetier.tiering.training import TrainingDataError
from valuetier.tiering.training_cycle import TrainingPlan, adapt_plan


def register_months(instance: dg.DagsterInstance, months: list[str]) -> None:
    known = set(instance.get_dynamic_partitions(month_partitions.name))
    new = [m for m in months if m not in known]
    if new:
        instance.add_dynamic_partitions(month_partitions.name, new)


@dataclass(frozen=True)
class RunLog:
    """Where a console run writes: the full text log and the structured JSON lines beside it."""

    text: Path
    json_lines: Path

    @classmethod
    def new(cls, logs_dir: Path) -> RunLog:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        logs_dir.mkdir(parents=True, exist_ok=True)
        return cls(logs_dir / f"run-{stamp}.log", logs_dir / f"run-{stamp}.jsonl")

    def loggers(self) -> dict:
        return {
            "console": {"config": {"log_level": "INFO"}},  # into the text log: stdout is redirected there
            "progress": {},
            "json_file": {"config": {"path": str(self.json_lines)}},
        }


# Without a RunLog (tests, benchmarks): Dagster's console logger, as a run from the UI has it.
CONSOLE_ONLY = {"console": {"config": {"log_level": "INFO"}}}


def run_months(
    instance: dg.DagsterInstance,
    first: str,
    last: str,
    job_name: str = "monthly_pipeline",
    log: RunLog | None = None,
    ops: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """One run over the month range: every asset processes the months in order."""
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
    return run_job(instance, job_name, tags, log, ops)


# Which process runs a console run: a run whose process was killed stays STARTED in the run history.
PROCESS_TAGS = ("valuetier/host", "valuetier/pid")


def run_job(
    instance: dg.DagsterInstance,
    job_name: str,
    tags: dict | None = None,
    log: RunLog | None = None,
    ops: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """`ops`: asset config by node name (--config); each job takes the entries of its own assets."""
    from orchestration.definitions import defs  # here: loading it reads the settings, which main checks first

    process = dict(zip(PROCESS_TAGS, (socket.gethostname(), str(os.getpid())), strict=True))
    job = defs().resolve_job_def(job_name)
    own = {node: config for node, config in (ops or {}).items() if node in job.graph.node_dict}
    return job.execute_in_process(
        instance=instance,
        run_config={"loggers": log.loggers() if log else CONSOLE_ONLY, **({"ops": own} if own else {})},
        tags={**(tags or {}), **process},
        raise_on_error=False,
    )


def release_killed_runs(instance: dg.DagsterInstance) -> list[str]:
    """Console runs of this machine whose process is gone (killed, or the machine went down) are
    still STARTED in the run history and hold the duckdb pool's slot, which would block every later
    run's warehouse steps: each is marked failed and its slot freed. Runs launched from the UI are
    not touched (Dagster's own run monitoring is theirs)."""
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        host, pid = (run.tags.get(t) for t in PROCESS_TAGS)
        if host == socket.gethostname() and pid and pid.isdigit() and not process_alive(int(pid)):
            instance.report_run_failed(run, f"its process {pid} ended without finishing the run (killed?)")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            released.append(run.run_id)
    return released


def say(text: str, error: bool = False) -> None:
    """A line for the person at the console (the real stdout or stderr, whatever is redirected)."""
    print(text, file=sys.__stderr__ if error else sys.__stdout__, flush=True)
    if sys.stdout is not sys.__stdout__:
        with contextlib.suppress(OSError):  # a full disk must not hide the message from the console
            print(text, flush=True)  # and into the log


def training_is_possible(current: Settings) -> str | None:
    """None when the warehouse holds enough labelled months for a training plan (adapted to a short
    history where needed); else why not."""
    with connect(current.warehouse_path, read_only=True, limits=current.duckdb) as con:
        try:
            adapt_plan(con, TrainingPlan())
        except TrainingDataError as exc:
            return str(exc)
    return None


def train(
    instance: dg.DagsterInstance, current: Settings, log: RunLog | None = None, ops: dict | None = None
) -> bool | None:
    """Train a model version: whether it was promoted champion (None: the training run failed)."""
    registry = Registry(current.models_dir)
    before = registry.champion_version()
    say("training the tiering model (train_tiering_model)")
    if not run_job(instance, "train_tiering_model", log=log, ops=ops).success:
        return None
    say(f"model {registry.versions()[-1]}: {registry.card(registry.versions()[-1]).decision}")
    return registry.champion_version() != before


def score_months(
    instance: dg.DagsterInstance,
    current: Settings,
    first: str,
    last: str,
    log: RunLog | None = None,
    ops: dict | None = None,
) -> bool:
    champion = Registry(current.models_dir).champion_version() or "rule tiers: no champion model"
    say(f"scoring {first}..{last} ({champion}) and their tier evaluation (rescore_tiers)")
    return run_months(instance, first, last, "rescore_tiers", log, ops).success


def print_summary(current: Settings, seconds: float) -> None:
    with connect(current.warehouse_path, read_only=True, limits=current.duckdb) as con:
        accounting = row_accounting(con)
        tiers = tiers_of_latest_month(con)
        measure = (
            resolve_value_measure(con)
            if table_exists(con, "intermediate", "int_transactions_by_customer_month")
            else None
        )
    print(f"\nValueTier run finished in {seconds:.0f}s")
    mapping = mapping_in_force(current.mapping_file, current.landing_dir)
    print(f"delivery mapping: {mapping or 'none (the contract own names and codes)'}")
    print(f"PII key:          {current.pii_key_source}")
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
    elif registry.versions():
        latest = registry.card(registry.versions()[-1])
        print(f"\nno champion model: {latest.version} {latest.decision}")
        print(
            f"training plan: {latest.parameters.get('plan', {}).get('note', f'{latest.horizon_months}-month horizon')}"
        )
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
    with connect(current.warehouse_path, read_only=True, limits=current.duckdb) as con:
        alerts = monitoring_summary(con) if table_exists(con, "monitoring", "alerts") else None
    if alerts:
        print(f"\n{alerts}\n(monitoring.alerts; warnings and errors sent to "
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
    parser.add_argument(
        "--wait", type=float, default=0, metavar="SECONDS", help="wait this long for another run to finish (default 0)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a Dagster run config YAML whose 'ops' (asset config, e.g. marts__customer_tiers: {config: "
        "{high_value_threshold: ...}}) every run of this invocation takes, each job the entries of its assets",
    )
    args = parser.parse_args(argv)
    new_command()
    try:
        current = Settings.from_env()
    except SettingsError as exc:
        print(f"refusing to run: {exc}", file=sys.stderr)
        return 2
    problem = unwritable(current.warehouse_dir)
    if problem:
        print(f"refusing to run: {problem}", file=sys.stderr)
        return 2
    landed = discover_months(current.landing_dir)
    if not landed:
        print(f"no transactions files in {current.landing_dir}/transactions: nothing to run", file=sys.stderr)
        return 2
    first, last = args.months.split(":") if args.months else (landed[0], landed[-1])
    missing = [m for m in (first, last) if m not in landed]
    if missing:
        print(f"no transactions file for {', '.join(missing)} in {current.landing_dir}", file=sys.stderr)
        return 2
    try:
        args.ops = run_config_ops(Path(args.config)) if args.config else None
    except ValueError as exc:
        print(f"refusing to run: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    log = RunLog.new(current.logs_dir)
    say(f"full log: {log.text}")
    failed = None
    try:
        with ExitStack() as stack:
            try:  # one run at a time on a warehouse; runs from the UI share the duckdb pool instead
                stack.enter_context(exclusive_run(current.warehouse_path, wait_seconds=args.wait))
            except WarehouseBusy as exc:
                say(f"refusing to run: {exc}", error=True)
                return 3
            text = stack.enter_context(log.text.open("a", encoding="utf-8"))
            stack.enter_context(redirect_stdout(text))
            stack.enter_context(redirect_stderr(text))
            failed = run_all(args, current, landed, first, last, log)
    except OSError as exc:  # the log itself could not be written: a disk that filled up during the run
        failed = f"{failed or 'the run failed'} ({exc.strerror}: {exc.filename or log.text})"
    if failed:
        say(f"{failed}; the full log: {log.text} (or the run in the Dagster UI: make ui)", error=True)
        return 1
    summary = io.StringIO()
    with redirect_stdout(summary):
        print_summary(current, time.perf_counter() - started)
        print(f"full log:    {log.text}\nlog records: {log.json_lines}  (JSON lines: run id, job, partition, step)")
    print(summary.getvalue(), end="")
    with log.text.open("a", encoding="utf-8") as text:
        text.write(summary.getvalue())
    return 0


def run_config_ops(path: Path) -> dict:
    """The 'ops' of a run config file, refused with the file named when it is not one."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--config {path}: {exc}") from exc
    if not isinstance(document, dict) or set(document) - {"ops"} or not isinstance(document.get("ops", {}), dict):
        raise ValueError(f"--config {path}: a run config with one key, ops (asset config by name), is expected")
    return document.get("ops", {})


def run_all(
    args: argparse.Namespace, current: Settings, landed: list[str], first: str, last: str, log: RunLog
) -> str | None:
    """Build, train where needed and score: None when everything succeeded, else what failed."""
    with dg.DagsterInstance.get() as instance:
        for run_id in release_killed_runs(instance):
            say(f"run {run_id} was killed before it finished: marked failed; this run does its months again")
        register_months(instance, landed)
        # A new installation has never trained a model: a trained model that did not beat the
        # baselines leaves no champion, and the months are tiered by the better baseline until the
        # next training (quarterly, or --train), not retrained on every run.
        new_installation = not Registry(current.models_dir).versions()
        job = "build_months" if new_installation else "monthly_pipeline"
        say(f"running {job} for {first}..{last} ({len(landed)} months landed)")
        result = run_months(instance, first, last, job, log, args.ops)
        if not result.success:
            return f"run {result.run_id} failed"
        promoted = False
        if args.train or new_installation:
            why_not = training_is_possible(current)
            if why_not:
                say(f"no model trained yet ({why_not}): tiers are by rule")
            else:
                promoted = train(instance, current, log, args.ops)
                if promoted is None:
                    return "training failed"
        if (new_installation or promoted) and not score_months(instance, current, first, last, log, args.ops):
            return "scoring failed"
    return None


if __name__ == "__main__":
    sys.exit(main())
