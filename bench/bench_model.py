"""Benchmark: tiering-model training time and scoring throughput (customers per second, peak memory).

    .venv/bin/python bench/bench_model.py --customers 100000 --months 24

Builds the bank's warehouse (generate, ingest, dbt indicators, CLV for the months used), trains
once with the default search space, then scores the last month's live customers in batches of
50,000 with the trained models (tiers, churn, drivers). Results go to bench/results.jsonl.
"""

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

from valuetier.clv_scoring import score_month  # noqa: E402
from valuetier.lifecycle import TrainingPlan, plan_months  # noqa: E402
from valuetier.scoring import ScoringRules, score_customers  # noqa: E402
from valuetier.training import FEATURES, SearchSpace, build_training_set, labelled_months, train_models  # noqa: E402

BATCH = 50_000


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    work, warehouse, months, result = prepare_bank("tiering_model", __doc__.splitlines()[0], 100_000, 24)
    dbt_run(warehouse, months[0], months[-1], full_refresh=True)
    plan = TrainingPlan()
    with duckdb.connect(str(warehouse)) as con:
        training_months, holdout = plan_months(labelled_months(con, plan.horizon_months), plan)
        for month in [*training_months, holdout, months[-1]]:
            score_month(con, month)
        started = time.perf_counter()
        train = build_training_set(con, training_months, plan.horizon_months)
        result["training_rows"] = len(train.frame)
        models = train_models(train, SearchSpace(), seed=plan.seed)
        result["train_s"] = time.perf_counter() - started
        result["train_peak_mib"] = peak_mib()
        frame = con.execute(
            """SELECT i.*, c.clv_12m::DOUBLE AS clv_12m, c.expected_purchases_12m, c.probability_alive
               FROM marts.customer_indicators_monthly i LEFT JOIN marts.customer_clv_monthly c
               USING (customer_id, month_start)
               WHERE i.month_start = (SELECT max(month_start) FROM intermediate.int_months)"""
        ).df()
    reference = train.features().median()
    started, scored = time.perf_counter(), 0
    for first in range(0, len(frame), BATCH):
        batch = frame.iloc[first : first + BATCH]
        batch = batch.astype({name: float for name in FEATURES})
        scored += len(score_customers(batch, models, reference, "bench", ScoringRules()))
    seconds = time.perf_counter() - started
    result |= {
        "scored_customers": scored,
        "score_s": seconds,
        "customers_per_s": scored / seconds,
        "peak_mib": peak_mib(),
    }
    record(result)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
