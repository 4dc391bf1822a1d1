"""How much better campaign contacts aimed by predicted uplift would be (issue 31's third part, measured
before it is built).

Reads a built demo warehouse and the generator's ground truth: every contact of the A/B campaigns
(intermediate.int_campaign_contacts_by_tier: the customers a campaign of month M+1 selected, as
month M tiered them, treatment and control), the selected customers' indicators of month M, and
whether they opened the offered product from the send to the outcome window's end. A two-model
(T-learner) uplift model, one classifier for the treated and one for the control, is trained on the
contacts whose outcome window had ended by each campaign's scored month (point in time) and scores
that campaign's selected customers. From them, the same number of contacts (--share of the
selected) is chosen three ways: by predicted uplift, at random within tier (the campaign's tier mix),
and by value tier alone (high first, random within a tier). For each it prints the true uplift per
contact (the generator's, by product appetite) and the incremental conversions per contact measured on
the control design (treated minus control conversion among the chosen), pooled over the campaigns.

A prototype: nothing in the pipeline uses it yet.

    .venv/bin/python bench/bench_uplift_targeting.py [--warehouse W] [--truth T] [--share 0.2]
"""

import argparse
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from valuetier.core.contract import PRODUCT_TYPES  # noqa: E402
from valuetier.core.parameters import business_parameters  # noqa: E402
from valuetier.demo.activity import true_conversion_uplift  # noqa: E402
from valuetier.tiering.training import FEATURES, feature_columns_sql  # noqa: E402

QUERY = f"""
    WITH selected AS (
        SELECT c.month_start, c.months_after, c.campaign_id, c.contact_id, c.customer_id, c.product_offered,
               c.ab_group = 'treatment' AS treated, c.value_tier, c.sent_at,
               c.month_start + INTERVAL ({{k}} + 1) MONTH AS window_end
        FROM intermediate.int_campaign_contacts_by_tier c
        WHERE c.ab_group IN ('treatment', 'control') AND c.value_tier <> 'untiered')
    SELECT s.*, EXISTS (
               SELECT 1 FROM staging.stg_accounts a
               WHERE a.customer_id = s.customer_id AND a.product_type = s.product_offered
                 AND a.opened_at >= CAST(s.sent_at AS DATE) AND a.opened_at < s.window_end) AS converted,
           {feature_columns_sql()},
           CASE d.risk_profile WHEN 'conservative' THEN 0 WHEN 'balanced' THEN 1 WHEN 'growth' THEN 2
                WHEN 'aggressive' THEN 3 END AS risk_level
    FROM selected s
    LEFT JOIN marts.dim_customer d ON d.customer_id = s.customer_id
    JOIN marts.customer_indicators_monthly i ON i.customer_id = s.customer_id AND i.month_start = s.month_start
    LEFT JOIN marts.customer_clv_monthly c ON c.customer_id = s.customer_id AND c.month_start = s.month_start
    ORDER BY s.month_start, s.contact_id
"""


EXTRA: list[str] = []  # --risk-profile adds risk_level (the latest delivered record: a prototype's shortcut)


def design(frame: pd.DataFrame) -> pd.DataFrame:
    x = frame.loc[:, [*FEATURES, *EXTRA]].astype(float)
    for product in PRODUCT_TYPES:
        x[f"offer_{product}"] = (frame.product_offered == product).astype(float)
    return x.fillna(-1.0)  # an indicator no selected customer has (no NPS answers) breaks the binning


def t_learner_uplift(train: pd.DataFrame, score: pd.DataFrame, seed: int) -> np.ndarray:
    predictions = []
    for group in (True, False):
        rows = train[train.treated == group]
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)
        model.fit(design(rows).to_numpy(dtype=float), rows.converted.to_numpy(dtype=int))
        predictions.append(model.predict_proba(design(score).to_numpy(dtype=float))[:, 1])
    return predictions[0] - predictions[1]


def measured(chosen: pd.DataFrame) -> tuple[float, int, int]:
    treated, control = chosen[chosen.treated], chosen[~chosen.treated]
    return treated.converted.mean() - control.converted.mean(), len(treated), len(control)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="data/warehouse/valuetier.duckdb")
    parser.add_argument("--truth", default="data/demo/ground_truth/customer_traits.parquet")
    parser.add_argument("--share", type=float, default=0.2, help="share of a campaign's selected customers contacted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--risk-profile", action="store_true", help="the delivered risk profile as a feature too")
    args = parser.parse_args()
    k = business_parameters().outcome_months
    if args.risk_profile:
        EXTRA.append("risk_level")
    with duckdb.connect(args.warehouse, read_only=True) as con:
        contacts = con.execute(QUERY.replace("{k}", str(k))).df()
    traits = pd.read_parquet(args.truth, columns=["customer_id", "product_appetite"])
    contacts = contacts.merge(traits, on="customer_id", how="left")
    contacts["true_uplift"] = true_conversion_uplift(contacts.product_appetite.to_numpy())
    months = sorted(contacts.month_start.unique())
    rng = np.random.default_rng(args.seed)
    chosen = {"uplift": [], "random within tier": [], "tier": []}
    for month in months:
        # Trained only on contacts whose outcome window had ended by the scored month.
        train = contacts[contacts.month_start + pd.DateOffset(months=k + 1) <= month]
        campaign = contacts[(contacts.month_start == month) & (contacts.months_after >= k)]
        if len(train) < 2000 or campaign.empty:
            continue
        uplift = t_learner_uplift(train, campaign, args.seed)
        n = round(args.share * len(campaign))
        chosen["uplift"].append(campaign.iloc[np.argsort(-uplift, kind="stable")[:n]])
        picks = []
        for _, tier in campaign.groupby("value_tier"):
            picks.append(tier.sample(n=round(n * len(tier) / len(campaign)), random_state=rng.integers(1 << 31)))
        chosen["random within tier"].append(pd.concat(picks))
        order = campaign.value_tier.map({"high": 0, "mid": 1, "low": 2}).to_numpy() + rng.random(len(campaign))
        chosen["tier"].append(campaign.iloc[np.argsort(order)[:n]])
    print(f"campaigns scored: {len(chosen['uplift'])}, contact share {args.share}")
    print(f"{'chosen by':<22}{'contacts':>10}{'true uplift':>13}{'measured':>10}{'treated':>9}{'control':>9}")
    for name, frames in chosen.items():
        picked = pd.concat(frames)
        truth = picked.true_uplift.mean()
        effect, treated, control = measured(picked)
        print(f"{name:<22}{len(picked):>10,}{truth:>13.4f}{effect:>10.4f}{treated:>9,}{control:>9,}")
    aimed, randoms = (pd.concat(chosen[name]).true_uplift.mean() for name in ("uplift", "random within tier"))
    print(f"uplift-aimed against random within tier (true uplift): {aimed / randoms:.2f}x")


if __name__ == "__main__":
    main()
