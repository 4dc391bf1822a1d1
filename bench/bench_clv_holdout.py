"""CLV check on a built warehouse: BG/NBD fitted on the 24 months ending at a month predicts the
repeat purchase days of the following 12 months; compared with what the customers then did.

    .venv/bin/python bench/bench_clv_holdout.py --months 2024-06 2024-12    # the demo warehouse

Reads VALUETIER_WAREHOUSE (default: the demo's). Results are appended to bench/results.jsonl.
"""

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from results import record  # bench/results.py, beside this script  # noqa: E402

from valuetier.clv.estimates import holdout_purchases  # noqa: E402
from valuetier.core.settings import Settings  # noqa: E402
from valuetier.core.warehouse import connect  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", nargs="+", required=True, help="calibration end months, YYYY-MM")
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--calibration", type=int, default=24)
    args = parser.parse_args()
    warehouse = Settings.from_env().warehouse_path
    with connect(warehouse, read_only=True) as con:
        for month in args.months:
            predicted, realised = holdout_purchases(con, month, args.horizon, args.calibration)
            result = {
                "benchmark": "clv_holdout",
                "warehouse": warehouse.name,
                "calibration_end": month,
                "calibration_months": args.calibration,
                "horizon_months": args.horizon,
                "predicted_repeat_purchase_days": round(predicted),
                "realised": round(realised),
                "relative_error": round(predicted / realised - 1, 4),
                "date": time.strftime("%Y-%m-%d"),
            }
            record(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
