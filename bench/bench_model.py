"""Benchmark: tiering-model training time and scoring throughput (customers per second, peak memory).

    .venv/bin/python bench/bench_model.py --customers 100000 --months 24
    .venv/bin/python bench/bench_model.py --customers 1000000 --months 14

Builds the bank's warehouse (generate, ingest, dbt indicators, CLV for the months used), trains
once with the default plan and search space (train_and_decide: training set, grid search,
holdout evaluation, registry), then scores the last month's live customers with the champion as
the scoring asset does (score_month_tiers: batches of 50,000 into marts.customer_tiers). Scoring
runs in a fresh process so its peak memory is its own. Results go to bench/results.jsonl.
"""

import multiprocessing
import resource
import shutil
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_indicators import dbt_run, prepare_bank  # noqa: E402
from results import record  # noqa: E402

from valuetier.clv.estimates import estimate_month  # noqa: E402
from valuetier.core.warehouse import connect  # noqa: E402
from valuetier.tiering.registry import Registry  # noqa: E402
from valuetier.tiering.scoring import ScoringRules, current_champion, score_month_tiers  # noqa: E402
from valuetier.tiering.training import SearchSpace, labelled_months  # noqa: E402
from valuetier.tiering.training_cycle import TrainingPlan, plan_months, train_and_decide  # noqa: E402


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_peak_mib() -> float:
    """This process's peak RSS since it started (VmHWM): unlike ru_maxrss, which Linux carries over
    from the parent across fork and exec, it is the scoring process's own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_mib()


def score(warehouse: Path, registry: Path, month: str, queue) -> None:
    """In a fresh process: load the champion, score the month, report the timing. DuckDB's limits
    are the settings' (VALUETIER_DUCKDB_*), as in production."""
    with connect(warehouse) as con:
        result = score_month_tiers(con, month, current_champion(Registry(registry)), ScoringRules())
    queue.put((result.customers, result.seconds, result.tiered_by_rule, own_peak_mib()))


def score_in_fresh_process(warehouse: Path, registry: Path, month: str) -> dict:
    """Score a month with the registry's champion in a new process; its timing and own peak memory."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=score, args=(warehouse, registry, month, queue))
    child.start()
    customers, seconds, by_rule, peak = queue.get()
    child.join()
    return {
        "scored_customers": customers,
        "tiered_by_rule": by_rule,
        "score_s": seconds,
        "customers_per_s": customers / seconds,
        "score_peak_mib": peak,
    }


def main() -> int:
    work, warehouse, months, result = prepare_bank("tiering_model", __doc__.splitlines()[0], 100_000, 24)
    started = time.perf_counter()
    dbt_run(warehouse, months[0], months[-1], full_refresh=True)
    result["dbt_build_s"] = time.perf_counter() - started
    plan = TrainingPlan()
    registry = Registry(work / "models")
    with duckdb.connect(str(warehouse)) as con:
        training_months, holdout = plan_months(labelled_months(con, plan.horizon_months), plan)
        started = time.perf_counter()
        for month in [*training_months, holdout, months[-1]]:
            estimate_month(con, month)
        result["clv_s"] = time.perf_counter() - started
        started = time.perf_counter()
        card = train_and_decide(con, registry, plan, SearchSpace())
        result["train_s"] = time.perf_counter() - started
    result |= {
        "training_months": len(training_months),
        "train_peak_mib": peak_mib(),
        "holdout_month": holdout,
        "model_high_tier_value_capture_pct": 100 * card.metrics["model"]["high_tier_value_capture"],
        "rfm_high_tier_value_capture_pct": 100 * card.metrics["rfm_weighted"]["high_tier_value_capture"],
    }
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result["training_rows"] = con.execute(
            "SELECT count(*) FROM marts.customer_indicators_monthly WHERE strftime(month_start, '%Y-%m') "
            "IN (SELECT unnest(?::VARCHAR[]))",
            [training_months],
        ).fetchone()[0]

    result |= score_in_fresh_process(warehouse, registry.root, months[-1])
    record(result)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
