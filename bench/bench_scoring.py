"""Benchmark: scoring alone at scale (customers per second, the scoring process's peak memory).

    .venv/bin/python bench/bench_scoring.py --customers 1000000 --months 3

Builds a bank just deep enough for one month's indicators and CLV, then scores its last month with
the champion of an existing registry (default: the demo's, `make demo`), as the scoring asset
does, in a fresh process. Scoring memory depends on the batch size and the bank's size, not on
what the model was trained on. Results go to bench/results.jsonl.
"""

import shutil
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_indicators import dbt_run, prepare_bank  # noqa: E402
from bench_model import score_in_fresh_process  # noqa: E402
from results import record  # noqa: E402

from valuetier.clv.estimates import estimate_month  # noqa: E402
from valuetier.core.settings import Settings  # noqa: E402


def main() -> int:
    registry = Settings.from_env().models_dir
    work, warehouse, months, result = prepare_bank("scoring", __doc__.splitlines()[0], 1_000_000, 3)
    started = time.perf_counter()
    dbt_run(warehouse, months[0], months[-1], full_refresh=True)
    result["dbt_build_s"] = time.perf_counter() - started
    with duckdb.connect(str(warehouse)) as con:
        estimate_month(con, months[-1])
    result["registry"] = str(registry)
    result |= score_in_fresh_process(warehouse, registry, months[-1])
    record(result)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
