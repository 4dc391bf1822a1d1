"""Benchmark: the indicator build (dbt on DuckDB), full and one incremental month, against a plain
pandas groupby of the same RFM indicators.

    .venv/bin/python bench/bench_indicators.py --customers 100000 --months 24

Steps, each timed: generate the bank; ingest all months; build the indicator models for the first
half of the months and add the next month incrementally; build all months but the last and add
the last incrementally (so one new month is timed at two history lengths); compute recency,
frequency, monetary and their 1-5 scores for the last month in pandas from the same warehouse.
Results are appended to bench/results.jsonl.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from results import record  # bench/results.py, beside this script  # noqa: E402

from valuetier.core.contract import SOURCE_ORDER  # noqa: E402
from valuetier.core.months import dbt_month_window, month_end  # noqa: E402
from valuetier.demo.generator import GeneratorConfig, generate  # noqa: E402
from valuetier.ingest.loader import discover_months, load_month  # noqa: E402

INDICATORS = "+customer_indicators_monthly"


def dbt_run(warehouse: Path, first: str, last: str, full_refresh: bool) -> float:
    args = [
        str(BIN / "dbt"),
        "run",
        "--profiles-dir",
        ".",
        "--select",
        INDICATORS,
        "--target-path",
        "target/bench",
    ]
    started = time.perf_counter()
    subprocess.run(
        args + (["--full-refresh"] if full_refresh else []),
        cwd=REPO / "dbt_project",
        check=True,
        env={**os.environ, "VALUETIER_WAREHOUSE": str(warehouse), **dbt_month_window(first, last)},
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def ingest(warehouse: Path, landing: Path, months: list[str]) -> float:
    started = time.perf_counter()
    with duckdb.connect(str(warehouse)) as con:
        for month in months:
            for source in SOURCE_ORDER:
                load_month(con, landing, source, month)
    return time.perf_counter() - started


def pandas_rfm(warehouse: Path, month: str) -> tuple[float, float, int]:
    """(load seconds, compute seconds, customers): the same RFM indicators with a pandas groupby."""
    last_day = pd.Timestamp(month_end(month))
    first = (last_day - pd.DateOffset(months=12)).normalize() + pd.Timedelta(days=1)
    started = time.perf_counter()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        txn = con.execute(
            "SELECT customer_id, booked_at, amount::DOUBLE AS amount FROM raw.transactions WHERE booked_at < ?",
            [last_day + pd.Timedelta(days=1)],
        ).df()
    loaded = time.perf_counter()
    by_customer = txn.groupby("customer_id")
    recency = (last_day - by_customer["booked_at"].max().dt.normalize()).dt.days
    window = txn[txn.booked_at >= first].groupby("customer_id")
    rfm = pd.DataFrame(
        {"recency_days": recency, "frequency_12m": window.size(), "monetary_12m": window["amount"].sum()}
    )
    rfm = rfm.fillna({"frequency_12m": 0, "monetary_12m": 0})
    for column, ascending in (("recency_days", False), ("frequency_12m", True), ("monetary_12m", True)):
        rank = rfm[column].rank(method="min", ascending=ascending)
        rfm[column.split("_")[0] + "_score"] = np.minimum(5, 1 + np.floor(5 * (rank - 1) / max(len(rfm) - 1, 1)))
    return loaded - started, time.perf_counter() - loaded, len(rfm)


def prepare_bank(benchmark: str, description: str, default_customers: int, default_months: int):
    """Parse --customers/--months, then generate and ingest a fresh bank in bench/work.

    Returns the bank's folder, warehouse, landed months and a result dict with the set-up timings."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--customers", type=int, default=default_customers)
    parser.add_argument("--months", type=int, default=default_months)
    args = parser.parse_args()
    work = HERE / "work" / f"{benchmark}-{args.customers}x{args.months}"
    shutil.rmtree(work, ignore_errors=True)
    landing, warehouse = work / "landing", work / "warehouse.duckdb"
    result: dict = {
        "benchmark": benchmark,
        "customers": args.customers,
        "months": args.months,
        "date": time.strftime("%Y-%m-%d"),
        "cores": os.cpu_count(),
    }
    started = time.perf_counter()
    generate(
        GeneratorConfig(customers=args.customers, months=args.months, seed=42, out=landing, truth=work / "truth"),
        progress=lambda _: None,
    )
    result["generate_s"] = time.perf_counter() - started
    months = discover_months(landing)
    result["ingest_s"] = ingest(warehouse, landing, months)
    return work, warehouse, months, result


def main() -> int:
    work, warehouse, months, result = prepare_bank("indicators", __doc__.splitlines()[0], 100_000, 24)
    half = len(months) // 2
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result["transactions"] = con.execute("SELECT count(*) FROM raw.transactions").fetchone()[0]

    # One new month after half the history, then after all but one month: the same work each time.
    result["build_first_half_s"] = dbt_run(warehouse, months[0], months[half - 1], full_refresh=True)
    result["incremental_month_after_half_s"] = dbt_run(warehouse, months[half], months[half], full_refresh=False)
    result[f"build_{len(months) - 1}_months_s"] = dbt_run(warehouse, months[0], months[-2], full_refresh=True)
    result["incremental_last_month_s"] = dbt_run(warehouse, months[-1], months[-1], full_refresh=False)
    # What one new month has to read: its own transactions and the 12 months of baseline before it.
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for name, index in (("after_half", half), ("last_month", len(months) - 1)):
            result[f"window_transactions_{name}"] = con.execute(
                "SELECT count(*) FROM raw.transactions WHERE _delivery_month BETWEEN ? AND ?",
                [f"{months[max(0, index - 12)]}-01", f"{months[index]}-01"],
            ).fetchone()[0]
    result[f"build_all_{len(months)}_months_s"] = dbt_run(warehouse, months[0], months[-1], full_refresh=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result["indicator_rows"] = con.execute("SELECT count(*) FROM marts.customer_indicators_monthly").fetchone()[0]

    load_s, compute_s, customers = pandas_rfm(warehouse, months[-1])
    result |= {"pandas_rfm_load_s": load_s, "pandas_rfm_compute_s": compute_s, "pandas_rfm_customers": customers}
    record(result)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
