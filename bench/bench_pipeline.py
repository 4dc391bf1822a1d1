"""Benchmark: demo bank generation and the whole monthly pipeline, wall time and peak memory.

    .venv/bin/python bench/bench_pipeline.py --customers 20000 --months 36
    .venv/bin/python bench/bench_pipeline.py --customers 1000000 --months 36 --generate-only

Each step runs as its own process (as `make demo` runs them), so peak RSS is that step's own.
Results are appended to bench/results.jsonl; bench/RESULTS.md keeps the curated table.
"""

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from results import record  # bench/results.py, beside this script  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the step's peak resident memory in MiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak_kib, before) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args()

    work = HERE / "work" / f"{args.customers}x{args.months}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "orchestration" / "dagster.yaml", work / "dagster_home" / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "VALUETIER_LANDING": str(work / "landing"),
        "VALUETIER_WAREHOUSE": str(work / "warehouse.duckdb"),
    }
    result = {
        "customers": args.customers,
        "months": args.months,
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    gen_cmd = [
        str(BIN / "valuetier"),
        "generate",
        "--customers",
        str(args.customers),
        "--months",
        str(args.months),
        "--seed",
        str(args.seed),
        "--out",
        str(work / "landing"),
    ]
    result["generate_s"], result["generate_peak_mib"] = timed(gen_cmd, env)
    result["landing_mib"] = sum(p.stat().st_size for p in (work / "landing").rglob("*") if p.is_file()) / 2**20
    if not args.generate_only:
        pipeline = [str(BIN / "python"), "-m", "orchestration.run"]
        result["pipeline_s"], result["pipeline_peak_mib"] = timed(pipeline, env)
        result["warehouse_mib"] = (work / "warehouse.duckdb").stat().st_size / 2**20
    record(result)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
