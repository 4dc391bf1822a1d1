"""How much better campaign contacts aimed by predicted uplift are, judged against the generator's
true uplift (issue 31's goal: at least 1.5x the true uplift per contact of random-within-tier
contacts on the demo).

Reads a warehouse the pipeline built (`make demo`) and the generator's ground truth. The pipeline's
own choices (intermediate.int_campaign_targeting_choices: for every A/B campaign whose window has
passed and whose month had an uplift model, the same number of contacts -- var
targeting_contact_share of the selected -- chosen by predicted uplift, at random within tier and by
tier alone) are joined to each customer's true uplift (valuetier.demo.activity.true_conversion_uplift
of their product appetite), and to what the control design measured
(evaluation.eval_campaign_targeting_monthly), pooled over the campaigns. A perfect ranking (by the
true uplift itself) is shown for scale.

    .venv/bin/python bench/bench_uplift_targeting.py [--warehouse W] [--truth T]
"""

import argparse
import sys
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from valuetier.core.parameters import business_parameters  # noqa: E402
from valuetier.demo.activity import true_conversion_uplift  # noqa: E402

WAYS = {
    "predicted uplift": "chosen_by_uplift",
    "random within tier": "chosen_at_random_within_tier",
    "tier alone": "chosen_by_tier",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="data/warehouse/valuetier.duckdb")
    parser.add_argument("--truth", default="data/demo/ground_truth/customer_traits.parquet")
    args = parser.parse_args()
    with duckdb.connect(args.warehouse, read_only=True) as con:
        choices = con.execute(
            """SELECT c.* FROM intermediate.int_campaign_targeting_choices c
               JOIN evaluation.eval_campaign_targeting_monthly e USING (month_start, campaign_id)
               WHERE e.targeting_basis = 'uplift'"""
        ).df()
        qini = con.execute(
            "SELECT avg(qini_coefficient), count(*) FROM evaluation.eval_campaign_targeting_monthly "
            "WHERE targeting_basis = 'uplift'"
        ).fetchone()
    traits = pd.read_parquet(args.truth, columns=["customer_id", "product_appetite"])
    choices = choices.merge(traits, on="customer_id", how="left")
    choices["true_uplift"] = true_conversion_uplift(choices.product_appetite.to_numpy())
    perfect = []
    for _, campaign in choices.groupby(["month_start", "campaign_id"]):
        n = int(campaign.chosen_at_random_within_tier.sum())
        perfect.append(campaign.nlargest(n, "true_uplift"))
    frames = {name: choices[choices[flag].fillna(False).astype(bool)] for name, flag in WAYS.items()}
    frames["perfect (true uplift)"] = pd.concat(perfect)
    baseline = frames["random within tier"].true_uplift.mean()
    share = business_parameters().targeting_contact_share
    print(f"campaigns with an uplift model: {qini[1]}, contact share {share}, mean Qini coefficient {qini[0]:.4f}")
    print("| chosen by | contacts | true uplift per contact | measured (control design) | against random within tier |")
    print("|---|---|---|---|---|")
    for name, chosen in frames.items():
        treated, control = chosen[chosen.treated], chosen[~chosen.treated]
        measured = treated.converted.mean() - control.converted.mean()
        truth = chosen.true_uplift.mean()
        print(f"| {name} | {len(chosen):,} | {truth:.4f} | {measured:.4f} | {truth / baseline:.2f}x |")


if __name__ == "__main__":
    main()
