"""Benchmark: `valuetier validate-landing` on a large delivery (time, rows per second, peak memory).

    .venv/bin/python bench/bench_validate_landing.py --gigabytes 1

Writes a landing folder with one month: a customers file and a transactions CSV of about the
requested size (DuckDB COPY from a generated series), then checks it with validate_landing -- the
ingestion's own checks into a throwaway database in a temporary folder -- in a fresh process, so
that the peak memory reported (VmHWM, DuckDB included) is the check's own. Results go to
bench/results.jsonl.
"""

import argparse
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_model import own_peak_mib  # noqa: E402
from results import record  # noqa: E402

from valuetier.ingest.landing_check import validate_landing  # noqa: E402
from valuetier.ingest.mapping import Mapping  # noqa: E402

BYTES_PER_ROW = 69  # of the transactions CSV written below (measured)


def write_landing(landing: Path, rows: int, customers: int) -> None:
    (landing / "customers").mkdir(parents=True)
    (landing / "transactions").mkdir()
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            f"""COPY (SELECT 'C' || lpad(CAST(i AS VARCHAR), 8, '0') AS customer_id, DATE '2020-01-01' AS opened_at
                      FROM range({customers}) t(i))
                TO '{landing}/customers/2025-03.csv' (HEADER)"""
        )
        con.execute(
            f"""COPY (SELECT 'T' || lpad(CAST(i AS VARCHAR), 12, '0') AS transaction_id,
                             'C' || lpad(CAST(i % {customers} AS VARCHAR), 8, '0') AS customer_id,
                             TIMESTAMP '2025-03-01' + to_seconds(i % 2678400) AS booked_at,
                             round(1 + (i * 7919 % 100000) / 100.0, 2) AS amount, 'CNY' AS currency,
                             ['purchase', 'transfer', 'payment', 'withdrawal', 'investment'][1 + i % 5] AS txn_type,
                             round((i % 1000) / 100.0, 2) AS fee_income
                      FROM range({rows}) t(i))
                TO '{landing}/transactions/2025-03.csv' (HEADER)"""
        )


def check(landing: Path, queue) -> None:
    started = time.perf_counter()
    report = validate_landing(landing, Mapping())
    queue.put((time.perf_counter() - started, report.as_dict(), own_peak_mib()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    work = HERE / "work" / "validate_landing"
    shutil.rmtree(work, ignore_errors=True)
    rows = int(args.gigabytes * 1e9 / BYTES_PER_ROW)
    started = time.perf_counter()
    write_landing(work / "landing", rows, args.customers)
    size = (work / "landing" / "transactions" / "2025-03.csv").stat().st_size
    print(f"wrote {rows:,} transactions ({size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f}s", flush=True)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=check, args=(work / "landing", queue))
    child.start()
    seconds, report, peak = queue.get()
    child.join()
    [transactions] = [f for f in report["files"] if f["source"] == "transactions"]
    assert report["ok"] and transactions["loaded"] == rows, report["errors"]
    record(
        {
            "benchmark": "validate_landing",
            "transactions_csv_mb": size / 1e6,
            "transactions": rows,
            "customers": args.customers,
            "seconds": seconds,
            "rows_per_s": (rows + args.customers) / seconds,
            "peak_mib": peak,
        }
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
