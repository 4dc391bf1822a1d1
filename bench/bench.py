"""The scale benchmark: a generated bank through the real pipeline, stage by stage, then one new
month end to end; wall and CPU seconds and peak memory of each stage, rows per second, and the
model's holdout quality (so speed never silently costs quality).

    make bench BENCH="--customers 100000 --months 36"
    .venv/bin/python bench/bench.py --customers 1000000 --months 36
    .venv/bin/python bench/bench.py --customers 100000 --months 36 --stage scoring   # one stage again

The bank is generated with one month more than --months (or reused from bench/work/ when it is
there, or made of the last months of a longer bank of the same size and seed there, delivered from
the first of them: the same new month after a shorter history, like for like): the first
--months are the full history, built as a first installation builds them (each stage in its own
process, over every month). The last is the new month: the indicators alone (new_month_indicators),
the pandas baseline of the same indicators (bench/pandas_indicators.py), then the production
monthly_pipeline job. Results: bench/results/<date>-<customers>x<months>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("VALUETIER_PII_KEY", "valuetier-benchmark-key")  # generated people only
# The stages' environment is this one as started: importing the Dagster definitions (stages.py)
# exports the settings' defaults for dbt (a spill folder beside the default warehouse, say), which
# must not leak into a stage run against another warehouse.
STARTING_ENVIRONMENT = dict(os.environ)

import pandas as pd  # noqa: E402
from measure import python_heap, run_measured  # noqa: E402  (bench/measure.py, beside this script)
from pandas_indicators import disagreements  # noqa: E402
from stages import STAGES  # noqa: E402

from valuetier.core.contract import SOURCE_ORDER  # noqa: E402
from valuetier.core.months import months_between  # noqa: E402
from valuetier.core.warehouse import connect, table_exists  # noqa: E402
from valuetier.demo.onboarding import deliveries_from  # noqa: E402
from valuetier.ingest.loader import discover_months  # noqa: E402
from valuetier.tiering.registry import Registry  # noqa: E402

HISTORY_STAGES = ("ingest", "dbt", "clv", "uplift", "training", "scoring", "evaluation", "monitoring", "checks")
# The new month: our indicators, the pandas baseline of the same indicators, then the whole job.
NEW_MONTH_STAGES = ("new_month_indicators", "pandas_baseline", "new_month")


def bank_folder(customers: int, months: int, seed: int) -> Path:
    return HERE / "work" / f"bank-{customers}x{months}-seed{seed}"


def longer_bank(customers: int, months: int, seed: int) -> Path | None:
    """A complete generated bank of the same size and seed with more months, if there is one."""
    for folder in sorted((HERE / "work").glob(f"bank-{customers}x*-seed{seed}")):
        length = folder.name.removeprefix(f"bank-{customers}x").removesuffix(f"-seed{seed}")
        if length.isdigit() and int(length) > months and (folder / "complete").exists():
            return folder
    return None


def link_last_months(longer: Path, folder: Path, months: int) -> None:
    """A bank of a longer bank's last months, delivered from the first of them on
    (valuetier.demo.onboarding): its new month is the longer bank's, file for file, so a new month
    is timed after two history lengths like for like, without generating a million customers twice."""
    first = discover_months(longer / "landing")[-months]
    deliveries_from(longer / "landing", first, folder / "landing")


def generate_bank(folder: Path, customers: int, months: int, seed: int, log_dir: Path) -> dict | None:
    """Generate the bank unless a complete one is there; its measurement, or None when reused."""
    done = folder / "complete"
    if done.exists():
        print(f"reusing the bank in {folder}", flush=True)
        return None
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    longer = longer_bank(customers, months, seed)
    if longer is not None:
        print(f"linking the last {months} months of {longer}, delivered from the first of them", flush=True)
        link_last_months(longer, folder, months)
        done.write_text(json.dumps({"last_months_of": longer.name}))
        return None
    print(f"generating {customers:,} customers x {months} months in {folder}", flush=True)
    command = [str(BIN / "valuetier"), "generate", "--customers", str(customers), "--months", str(months)]
    command += ["--seed", str(seed), "--out", str(folder / "landing"), "--truth", str(folder / "ground_truth")]
    measured = run_measured(command, STARTING_ENVIRONMENT, log_dir / "generate.log")
    done.write_text(json.dumps(measured.as_dict()))
    return measured.as_dict()


def run_environment(run: Path, landing: Path) -> dict[str, str]:
    home = run / "dagster_home"
    if not home.exists():
        home.mkdir(parents=True)
        shutil.copy(REPO / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    return {
        **STARTING_ENVIRONMENT,
        "DAGSTER_HOME": str(home),
        "VALUETIER_LANDING": str(landing),
        "VALUETIER_WAREHOUSE": str(run / "warehouse" / "valuetier.duckdb"),
    }


def run_stage(stage: str, first: str, last: str, env: dict[str, str], log_dir: Path, heap: bool = False) -> dict:
    """A stage measured in its own process; with `heap`, every Python process it starts also traces
    its heap (bench/python_heap/), and the stage's peaks by step are added."""
    print(f"{stage} {first}..{last}", end=" ", flush=True)
    command = [str(BIN / "python"), str(HERE / "stages.py"), stage, first, last]
    traced = log_dir / "python_heap" / stage
    if heap:
        shutil.rmtree(traced, ignore_errors=True)
        path = os.pathsep.join([str(HERE / "python_heap"), *filter(None, [env.get("PYTHONPATH")])])
        env = env | {"PYTHONPATH": path, "VALUETIER_BENCH_PYTHON_HEAP": str(traced)}
    started = time.time()
    measured = run_measured(command, env, log_dir / f"{stage}.log").as_dict()
    print(f"{measured['wall_s']} s, {measured['cpu_s']} CPU s, peak {measured['peak_mib']} MiB", flush=True)
    slowest = slowest_dbt_nodes(started)
    windows = step_windows(Path(env["DAGSTER_HOME"]), started)
    steps = step_seconds(windows)
    measured |= {"slowest_dbt_nodes": slowest} if slowest else {}
    measured |= {"step_seconds": steps} if steps else {}
    return measured | ({"python_heap": python_heap(traced, windows)} if heap else {})


def run_pandas_baseline(landing: Path, month: str, env: dict[str, str], run: Path, warehouse: Path) -> dict:
    """The pandas recompute of the month's indicators from the raw files (bench/pandas_indicators.py),
    measured like a stage, and how many of its values differ from the mart's month."""
    print(f"pandas_baseline {month}", end=" ", flush=True)
    out = run / "pandas_indicators.parquet"
    command = [str(BIN / "python"), str(HERE / "pandas_indicators.py"), str(landing), month, "--out", str(out)]
    measured = run_measured(command, env, run / "logs" / "pandas_baseline.log").as_dict()
    print(f"{measured['wall_s']} s, {measured['cpu_s']} CPU s, peak {measured['peak_mib']} MiB", flush=True)
    with connect(warehouse, read_only=True) as con:
        month_rows = "SELECT * FROM marts.customer_indicators_monthly WHERE month_start = CAST(? AS DATE)"
        mart = con.execute(f"{month_rows} ORDER BY customer_id", [f"{month}-01"]).df()
    baseline = pd.read_parquet(out)
    return measured | {"rows": len(baseline), "disagreements_with_mart": disagreements(baseline, mart)}


def slowest_dbt_nodes(since: float, count: int = 8) -> dict[str, float]:
    """The dbt models and tests that took longest in the dbt invocations of a stage (dagster-dbt
    leaves each invocation's run_results.json in a folder of its own under the project's target/)."""
    seconds: dict[str, float] = {}
    for results in (REPO / "dbt_project" / "target").glob("*/run_results.json"):
        if results.stat().st_mtime >= since:
            for node in json.loads(results.read_text())["results"]:
                name = node["unique_id"].split(".", 2)[-1]
                seconds[name] = seconds.get(name, 0) + node["execution_time"]
    return {name: round(s, 1) for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])[:count]}


def step_windows(dagster_home: Path, since: float) -> list[tuple[str, float, float]]:
    """(step, started, ended) of each step of the Dagster runs a stage started, from their event logs."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    started: dict[str, float] = {}
    windows = []
    ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        runs = instance.get_run_records(dg.RunsFilter(created_after=datetime.fromtimestamp(since, tz=UTC)))
        for record in runs:
            for entry in instance.all_logs(record.dagster_run.run_id, of_type={dg.DagsterEventType.STEP_START, *ends}):
                if entry.dagster_event.event_type in ends and entry.step_key in started:
                    windows.append((entry.step_key, started[entry.step_key], entry.timestamp))
                else:
                    started[entry.step_key] = entry.timestamp
    return windows


def step_seconds(windows: list[tuple[str, float, float]]) -> dict[str, float]:
    """Seconds per step: where a stage's time goes (a dbt step includes starting and parsing dbt; a
    check step, Great Expectations)."""
    seconds: dict[str, float] = {}
    for step, start, end in windows:
        seconds[step] = seconds.get(step, 0) + end - start
    return {step: round(s, 1) for step, s in seconds.items()}


def rows_by_stage(warehouse: Path, history: list[str], new_month: str) -> dict[str, int]:
    """The rows each stage works through, to turn its time into rows per second (stages whose
    tables do not exist yet are left out)."""
    months = f"BETWEEN DATE '{history[0]}-01' AND DATE '{history[-1]}-01'"
    with connect(warehouse, read_only=True) as con:

        def count(schema: str, table: str, where: str) -> int | None:
            if not table_exists(con, schema, table):
                return None
            return con.execute(f"SELECT count(*) FROM {schema}.{table} WHERE {where}").fetchall()[0][0]

        delivered = sum(count("raw", s, f"_delivery_month {months}") or 0 for s in SOURCE_ORDER)
        indicators = count("marts", "customer_indicators_monthly", f"month_start {months}")
        rows = {
            "ingest": delivered,
            "dbt": count("raw", "transactions", f"_delivery_month {months}"),
            "clv": indicators,
            "uplift": count("marts", "customer_uplift_monthly", f"month_start {months}"),
            "scoring": count("marts", "customer_tiers", f"month_start {months}"),
            "evaluation": indicators,
            "monitoring": indicators,
            "checks": delivered + (indicators or 0),
            "new_month": count("raw", "transactions", f"_delivery_month = DATE '{new_month}-01'"),
            "new_month_indicators": count("raw", "transactions", f"_delivery_month = DATE '{new_month}-01'"),
        }
        return {stage: n for stage, n in rows.items() if n is not None}


def model_quality(models_dir: Path) -> dict:
    registry = Registry(models_dir)
    version = registry.champion_version()
    if version is None:
        return {}
    card = registry.card(version)
    model = card.metrics["model"]
    return {
        "version": version,
        "holdout_month": card.holdout_month,
        "training_months": card.training_months,
        "training_rows": card.parameters.get("training_rows", {}).get("fitted"),
        "training_rows_available": card.parameters.get("training_rows", {}).get("available"),
        "high_tier_value_capture": model["high_tier_value_capture"],
        "f1": {tier: scores["f1"] for tier, scores in model["per_tier"].items()},
        "spearman": model["spearman"],
        "churn_auc": model["churn"]["auc"],
        "churn_brier": model["churn"]["brier"],
        "rfm_value_capture": card.metrics["rfm_weighted"]["high_tier_value_capture"],
        "clv_value_capture": card.metrics["clv_12m"]["high_tier_value_capture"],
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Benchmark {result['date']}: {result['customers']:,} customers x {result['months']} months",
        "",
        f"Machine: {result['machine']}. Bank: {result['bank']} (seed {result['seed']}).",
        "",
        "| stage | months | wall s | CPU s | peak MiB (process tree) | rows | rows / wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, stage in result["stages"].items():
        rows = stage.get("rows")
        rate = f"{rows / stage['wall_s']:,.0f}" if rows and stage["wall_s"] else ""
        lines.append(
            f"| {name} | {stage['months']} | {stage['wall_s']:,} | {stage['cpu_s']:,} | {stage['peak_mib']:,} "
            f"| {f'{rows:,}' if rows else ''} | {rate} |"
        )
    history = result.get("full_history")
    if history:
        lines += [
            "",
            f"Full history ({', '.join(HISTORY_STAGES)}): {history['wall_s']:,} s wall, {history['cpu_s']:,} CPU s, "
            f"peak {history['peak_mib']:,} MiB (the largest stage's).",
        ]
    for name, stage in result["stages"].items():
        if stage.get("slowest_dbt_nodes"):
            nodes = ", ".join(f"{node} {seconds} s" for node, seconds in stage["slowest_dbt_nodes"].items())
            lines += ["", f"Slowest dbt nodes in {name}: {nodes}."]
    if steps := result["stages"].get("new_month", {}).get("step_seconds"):
        listed = ", ".join(f"{step} {seconds} s" for step, seconds in steps.items())
        lines += ["", f"Steps of new_month, in the order they finished (seconds, from Dagster's event log): {listed}."]
    for name, stage in result["stages"].items():
        if heap := stage.get("python_heap"):
            steps = ", ".join(f"{step} {m['heap_mib']:,} ({m['rss_mib']:,})" for step, m in heap["by_step"].items())
            processes = ", ".join(f"{command}: {mib:,}" for command, mib in heap["by_process"].items() if mib >= 10)
            lines += [
                "",
                f"Python heap of {name} by step, peak MiB (traced: Python objects, NumPy and pandas arrays, "
                f"Arrow's pool; in brackets the process's peak resident memory, DuckDB's included): {steps}. "
                f"Peak heap by process (those of 10 MiB or more): {processes}.",
            ]
    ours, pandas = result["stages"].get("new_month_indicators"), result["stages"].get("pandas_baseline")
    if ours and pandas:
        agreement = pandas.get("disagreements_with_mart")
        lines += [
            "",
            f"A new month's indicators from the raw files: ValueTier {ours['cpu_s']:,} CPU s and peak "
            f"{ours['peak_mib']:,} MiB, the pandas baseline {pandas['cpu_s']:,} CPU s and {pandas['peak_mib']:,} MiB "
            f"({pandas['cpu_s'] / ours['cpu_s']:.1f}x the CPU seconds, {ours['peak_mib'] / pandas['peak_mib']:.2f} "
            f"of the peak memory); the baseline's {pandas['rows']:,} rows "
            + ("agree with the mart on every column." if agreement == {} else f"differ from the mart: {agreement}."),
        ]
    # What a run could not measure with the harness (a stage that failed, say), said in words.
    for note in result.get("notes", []):
        lines += ["", note]
    quality = result.get("model")
    if quality:
        f1 = ", ".join(f"{tier} {value}" for tier, value in quality["f1"].items())
        lines += [
            "",
            f"Model {quality['version']} (holdout {quality['holdout_month']}, trained on "
            f"{len(quality['training_months'])} months): high-tier value capture "
            f"{quality['high_tier_value_capture']:.1%} (weighted RFM {quality['rfm_value_capture']:.1%}, "
            f"CLV {quality['clv_value_capture']:.1%}); F1 {f1}; Spearman {quality['spearman']}; "
            f"churn AUC {quality['churn_auc']}, Brier {quality['churn_brier']}.",
        ]
    return "\n".join(lines) + "\n"


def record(result: dict, path: Path, warehouse: Path, history: list[str], new_month: str) -> None:
    """Add the rows, the full-history sums and the model's quality to the result, and write it."""
    stages = result["stages"]
    for stage, rows in rows_by_stage(warehouse, history, new_month).items():
        if stage in stages:
            stages[stage]["rows"] = rows
    measured = [stages[s] for s in HISTORY_STAGES if s in stages]
    if len(measured) == len(HISTORY_STAGES):
        result["full_history"] = {
            "wall_s": round(sum(s["wall_s"] for s in measured), 1),
            "cpu_s": round(sum(s["cpu_s"] for s in measured), 1),
            "peak_mib": max(s["peak_mib"] for s in measured),
        }
    result["model"] = model_quality(warehouse.parent / "models")
    if "training" in stages and result["model"]:
        stages["training"]["rows"] = result["model"]["training_rows"]
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    path.with_suffix(".md").write_text(markdown(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36, help="months of history (the bank has one more)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--stage",
        action="append",
        choices=("generate", *STAGES, "pandas_baseline"),
        help="run only this stage (repeatable) on the run left by an earlier full benchmark",
    )
    parser.add_argument(
        "--python-heap",
        action="store_true",
        help="trace the Python heap of every step (bench/python_heap/); the stages' seconds are then not "
        "timings, so the results go to a file of their own (<date>-<customers>x<months>-python-heap)",
    )
    args = parser.parse_args()

    bank = bank_folder(args.customers, args.months + 1, args.seed)
    run = HERE / "work" / f"run-{args.customers}x{args.months}"
    if not args.stage:
        shutil.rmtree(run, ignore_errors=True)
    logs = run / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y-%m-%d')}-{args.customers}x{args.months}{'-python-heap' if args.python_heap else ''}"
    result_path = HERE / "results" / f"{name}.json"
    result = json.loads(result_path.read_text()) if args.stage and result_path.exists() else {}
    memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    result |= {
        "date": time.strftime("%Y-%m-%d"),
        "customers": args.customers,
        "months": args.months,
        "seed": args.seed,
        "bank": f"generated, {args.months} months of history and 1 new month",
        "machine": f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.machine()}",
    }
    stages = result.setdefault("stages", {})

    if not args.stage or "generate" in args.stage:
        generated = generate_bank(bank, args.customers, args.months + 1, args.seed, logs)
        if generated:
            stages["generate"] = {"months": args.months + 1, **generated}
    months = discover_months(bank / "landing")
    history, new_month = months[:-1], months[-1]
    env = run_environment(run, bank / "landing")
    warehouse = Path(env["VALUETIER_WAREHOUSE"])
    for stage in HISTORY_STAGES + NEW_MONTH_STAGES:
        if args.stage and stage not in args.stage:
            continue
        first, last = (new_month, new_month) if stage in NEW_MONTH_STAGES else (history[0], history[-1])
        if stage == "pandas_baseline":
            measured = run_pandas_baseline(bank / "landing", new_month, env, run, warehouse)
        else:
            measured = run_stage(stage, first, last, env, logs, heap=args.python_heap)
        stages[stage] = {"months": len(months_between(first, last)), **measured}
        # Written after every stage, so an hour-long run that stops keeps what it measured.
        record(result, result_path, warehouse, history, new_month)
    print(markdown(result))
    print(f"written: {result_path} and {result_path.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
