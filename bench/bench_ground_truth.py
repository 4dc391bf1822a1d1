"""Tiers against the generator's ground truth: how many of the truly most valuable customers (top
10 % by the profit the generator made them bring over the next 6 months) each ranking puts in its
high tier, on a month none of the champion's training labels reached.

    .venv/bin/python bench/bench_ground_truth.py                 # the demo: champion's holdout month
    .venv/bin/python bench/bench_ground_truth.py --month 2025-03

Reads VALUETIER_WAREHOUSE (default: the demo's) and the ground truth beside the demo landing
folder. Rankings: the published tiers (champion model), the weighted-RFM baseline
(customer_tiers_rfm) and the top 10 % by clv_12m. Results are appended to bench/results.jsonl.
"""

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from results import record  # noqa: E402

from valuetier.core.months import add_months  # noqa: E402
from valuetier.core.parameters import business_parameters  # noqa: E402
from valuetier.core.settings import Settings  # noqa: E402
from valuetier.core.warehouse import connect  # noqa: E402
from valuetier.tiering.registry import Registry  # noqa: E402


def main() -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--month", help="YYYY-MM (default: the champion's holdout month)")
    parser.add_argument("--horizon", type=int, default=6)
    parser.add_argument("--truth", default=str(settings.landing_dir.parent / "ground_truth"))
    args = parser.parse_args()
    registry = Registry(settings.models_dir)
    champion = registry.champion_version()
    month = args.month or registry.card(champion).holdout_month
    truth = pd.read_parquet(
        Path(args.truth) / "monthly_value.parquet", columns=["customer_id", "month", "profit_contribution"]
    )
    later = truth[(truth.month > month) & (truth.month <= add_months(month, args.horizon))]
    future = later.groupby("customer_id").profit_contribution.sum()

    with connect(settings.warehouse_path, read_only=True) as con:
        scored = con.execute(
            """SELECT t.customer_id, t.value_tier = 'high' AS model_high, r.value_tier = 'high' AS rfm_high,
                      t.clv_12m, t.model_version
               FROM marts.customer_tiers t JOIN marts.customer_tiers_rfm r USING (customer_id, month_start)
               WHERE t.month_start = CAST(? AS DATE)""",
            [f"{month}-01"],
        ).df()
    scored["future_profit"] = scored.customer_id.map(future).fillna(0.0)
    top = max(1, round(business_parameters().tier_high_share * len(scored)))  # the high tier's size
    truly_high = set(scored.nlargest(top, "future_profit").customer_id)
    clv_high = set(scored.nlargest(top, "clv_12m").customer_id)

    def overlap(chosen: set) -> float:
        return 100 * len(chosen & truly_high) / len(truly_high)

    result = {
        "benchmark": "ground_truth_overlap",
        "month": month,
        "horizon_months": args.horizon,
        "customers": len(scored),
        "model_version": scored.model_version.iloc[0],
        "model_high_tier_overlap_pct": overlap(set(scored[scored.model_high].customer_id)),
        "rfm_high_tier_overlap_pct": overlap(set(scored[scored.rfm_high].customer_id)),
        "clv_top_decile_overlap_pct": overlap(clv_high),
        "date": time.strftime("%Y-%m-%d"),
    }
    record(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
