"""How often published tiers flip, and what a stickier cut would change (issue 31's measurement).

Reads a built warehouse: the published tiers (marts.customer_tiers: value_tier, and the plain cut
of the same ranking, plain_tier) and what each tiered customer brought over the 3 months after
(intermediate.int_tier_outcomes). For the published tiers, the plain cut and a replay of the
incumbent's margin at each margin given, it prints tier changes a month, A->B->A flips within two
months, and the high tier's capture of the 3-month value.

The sticky cut keeps the tier shares exact: the high tier is the top share by the percentile from
the top minus the margin for last month's high customers, the mid tier the next share by the
percentile minus the margin for last month's high and mid customers; months in order, each from
the previous month's sticky tiers. The replay ranks by the published 0-100 percentile (value_score,
one decimal), so it approximates the pipeline's rule (valuetier/tiering/scoring.py), which ranks
customers exactly: compare margins here, read the pipeline's own figures in
evaluation.eval_tier_stability_monthly.

    .venv/bin/python bench/bench_stable_tiers.py [--warehouse W] [--margins 0.02,0.04]
"""

import argparse
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from valuetier.core.parameters import business_parameters  # noqa: E402
from valuetier.core.settings import Settings  # noqa: E402

QUERY = """
    SELECT t.customer_id, t.month_start, t.value_tier, t.plain_tier, t.value_score, o.value_3m, o.months_observed
    FROM marts.customer_tiers AS t
    JOIN intermediate.int_tier_outcomes AS o USING (customer_id, month_start)
    ORDER BY t.month_start, t.customer_id
"""


def sticky_tiers(tiers: pd.DataFrame, margin: float, high_share: float, mid_share: float) -> pd.Series:
    """Each customer-month's tier under the incumbent's bonus, in the frame's row order."""
    previous: dict[str, str] = {}
    result = pd.Series(index=tiers.index, dtype=object)
    for _, month in tiers.groupby("month_start", sort=True):
        n = len(month)
        from_top = 1 - month.value_score.to_numpy() / 100
        ids = month.customer_id.to_numpy()
        last = np.array([previous.get(c, "none") for c in ids], dtype=object)
        high_key = from_top - margin * (last == "high")
        mid_key = from_top - margin * np.isin(last, ["high", "mid"])
        tier = np.full(n, "low", dtype=object)
        tier[np.lexsort((ids, high_key))[: round(high_share * n)]] = "high"
        mid_places = round((high_share + mid_share) * n) - round(high_share * n)
        by_mid = [i for i in np.lexsort((ids, mid_key)) if tier[i] != "high"]
        tier[by_mid[:mid_places]] = "mid"
        result[month.index] = tier
        previous = dict(zip(ids, tier, strict=True))
    return result


def stability(tiers: pd.DataFrame, column: str) -> dict[str, float]:
    ordered = tiers.sort_values(["customer_id", "month_start"])
    position = ordered.month_start.map({m: i for i, m in enumerate(sorted(ordered.month_start.unique()))})
    same = ordered.customer_id.eq(ordered.customer_id.shift(1)) & (position - position.shift(1) == 1)
    same2 = ordered.customer_id.eq(ordered.customer_id.shift(2)) & (position - position.shift(2) == 2)
    tier, before, before2 = ordered[column], ordered[column].shift(1), ordered[column].shift(2)
    observed = ordered[ordered.months_observed >= 3]
    return {
        "tier_changes_pct": 100 * ((tier != before) & same).sum() / same.sum(),
        "flips_pct": 100 * ((tier == before2) & (tier != before) & same & same2).sum() / same2.sum(),
        "high_capture_pct": 100 * observed.loc[observed[column] == "high", "value_3m"].sum() / observed.value_3m.sum(),
        "high_share_pct": 100 * (ordered[column] == "high").mean(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=None, help="default: the settings' warehouse")
    parser.add_argument("--margins", default="0.02,0.04,0.06")
    args = parser.parse_args()
    warehouse = args.warehouse or str(Settings.from_env().warehouse_path)
    with duckdb.connect(warehouse, read_only=True) as con:
        tiers = con.execute(QUERY).df()
    shares = business_parameters().tier_high_share, business_parameters().tier_mid_share
    rows = {"published": stability(tiers, "value_tier"), "plain cut": stability(tiers, "plain_tier")}
    for margin in (float(m) for m in args.margins.split(",")):
        tiers[f"sticky_{margin}"] = sticky_tiers(tiers, margin, *shares)
        rows[f"sticky, margin {margin}"] = stability(tiers, f"sticky_{margin}")
    print(f"{'cut':<22}{'changes %':>11}{'flips %':>10}{'capture %':>11}{'high %':>9}")
    for name, s in rows.items():
        print(
            f"{name:<22}{s['tier_changes_pct']:>11.2f}{s['flips_pct']:>10.2f}"
            f"{s['high_capture_pct']:>11.2f}{s['high_share_pct']:>9.2f}"
        )


if __name__ == "__main__":
    main()
