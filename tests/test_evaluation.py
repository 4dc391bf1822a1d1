"""The evaluation marts on the small generated bank: every figure recomputed here from the landing
files (with the tiers the pipeline published, which nothing in the landing files holds), by calendar
dates rather than the marts' month indices; and the generator's ground truth confirming that the
high tier retains better and is worth more than the low tier."""

from decimal import Decimal
from statistics import NormalDist

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import TRUTH, WAREHOUSE, delivery_month_sql, landing_sql
from valuetier.core.contract import PRODUCT_TYPES
from valuetier.core.parameters import FAIRNESS_ATTRIBUTES, business_parameters
from valuetier.demo.activity import true_conversion_uplift
from valuetier.tiering.metrics import normalized_gini

pytestmark = pytest.mark.integration
K = business_parameters().outcome_months
WINDOWS = business_parameters().outcome_windows_months


@pytest.fixture(scope="module")
def con(pipeline_run):
    """The warehouse, with the landing files' transactions as the marts count them (anomalous ones
    left out) and each scored month's window ends, as views of an in-memory session."""
    with duckdb.connect(str(WAREHOUSE), read_only=True) as warehouse:
        last = warehouse.execute("SELECT max(month_start) FROM marts.customer_tiers").fetchone()[0]
    con = duckdb.connect()
    con.execute(f"ATTACH '{WAREHOUSE}' AS w (READ_ONLY)")
    con.execute("USE w")
    con.execute(f"""CREATE TEMP VIEW txn AS
        SELECT customer_id, booked_at, CAST(amount AS DECIMAL(18, 2)) AS amount,
               CAST(fee_income AS DECIMAL(18, 2)) + CAST(net_interest_margin AS DECIMAL(18, 2)) AS profit
        FROM {landing_sql("transactions")}
        WHERE transaction_id NOT IN (SELECT transaction_id FROM marts.fct_transactions WHERE is_anomalous)""")
    con.execute(f"CREATE TEMP VIEW last_month AS SELECT DATE '{last}' AS m")
    yield con
    con.close()


def rows(con, sql):
    return sorted(con.execute(sql).fetchall(), key=repr)


def within(at: str, months: int, scored: str = "t.month_start") -> str:
    """`at` falls in the `months` months after the scored month (calendar dates, times of day included)."""
    return f"{at} >= {scored} + INTERVAL 1 MONTH AND {at} < {scored} + INTERVAL {months + 1} MONTH"


def test_every_evaluation_mart_fills_every_month_with_outcomes(con, pipeline_run):
    months = pipeline_run["months"]
    filled = {
        "eval_retention_monthly": months[:-1],
        "eval_tier_outcomes_monthly": months[:-K],
        "eval_campaign_conversion_monthly": months[:-K],
        "eval_campaign_ab_monthly": months[:-K],
        "eval_satisfaction_monthly": months[:-K],
        "eval_tier_migration_monthly": months[1:],
        "eval_tier_stability_monthly": months,
        "eval_tier_fairness_monthly": months,
        "eval_model_backtest_monthly": months[: -business_parameters().label_horizon_months],
        "eval_backtest_tiers_monthly": months[: -business_parameters().label_horizon_months],
        "eval_calibration_deciles_monthly": months[: -business_parameters().label_horizon_months],
    }
    for table, expected in filled.items():
        found = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT strftime(month_start, '%Y-%m') FROM evaluation.{table} ORDER BY 1"
            ).fetchall()
        ]
        assert found == expected, table


def test_retention_and_churn_by_tier_and_segment(con):
    for k in WINDOWS:
        expected = rows(
            con,
            f"""
            WITH t AS (SELECT * FROM marts.customer_tiers WHERE month_start + INTERVAL {k} MONTH <= (FROM last_month)),
                 outcome AS (
                    SELECT t.month_start, t.value_tier, t.segment,
                           later.customer_id IS NOT NULL AS live,
                           EXISTS (SELECT 1 FROM txn x WHERE x.customer_id = t.customer_id
                                   AND {within("x.booked_at", k)})
                               AS transacted
                    FROM t LEFT JOIN marts.customer_tiers later
                      ON later.customer_id = t.customer_id AND later.month_start = t.month_start + INTERVAL {k} MONTH)
            SELECT month_start, value_tier, segment, count(*), count(*) FILTER (WHERE live AND transacted),
                   count(*) FILTER (WHERE NOT live)
            FROM outcome GROUP BY GROUPING SETS ((month_start, value_tier), (month_start, value_tier, segment))""",
        )
        actual = rows(
            con,
            f"""SELECT month_start, value_tier, segment, customers, retained_{k}m, churned_{k}m
                FROM evaluation.eval_retention_monthly WHERE retained_{k}m IS NOT NULL""",
        )
        assert actual == expected, f"{k}-month window"
        assert len(expected) > 20


def test_value_shares_ticket_and_clv_by_tier(con):
    expected = rows(
        con,
        f"""
        WITH t AS (SELECT * FROM marts.customer_tiers WHERE month_start + INTERVAL {K} MONTH <= (FROM last_month)),
             by_tier AS (
                SELECT t.month_start, t.value_tier, count(DISTINCT t.customer_id) AS customers,
                       coalesce(sum(x.profit), 0) AS profit, coalesce(sum(x.amount), 0) AS amount,
                       count(x.customer_id) AS transactions
                FROM t LEFT JOIN txn x ON x.customer_id = t.customer_id
                 AND {within("x.booked_at", K)}
                GROUP BY ALL),
             clv AS (SELECT month_start, value_tier, round(avg(clv_12m), 2) AS clv FROM t GROUP BY ALL)
        SELECT month_start, value_tier, customers, profit,
               round(profit / sum(profit) OVER (PARTITION BY month_start), 4),
               transactions, round(amount / transactions, 2), clv
        FROM by_tier JOIN clv USING (month_start, value_tier)""",
    )
    actual = rows(
        con,
        """SELECT month_start, value_tier, customers, realised_value, value_share, realised_transactions,
                  average_ticket, mean_clv_12m
           FROM evaluation.eval_tier_outcomes_monthly""",
    )

    def numbers(r):
        month, tier, customers, value, share, transactions, ticket, clv = r
        return month, tier, customers, value, float(share), int(transactions), float(ticket), float(clv)

    assert [numbers(r) for r in actual] == [numbers(r) for r in expected]
    assert {r[-1] for r in actual} != {None}  # CLV was fitted: the means are numbers
    shares = con.execute(
        "SELECT month_start, sum(value_share) FROM evaluation.eval_tier_outcomes_monthly GROUP BY 1"
    ).fetchall()
    assert all(abs(float(s) - 1) <= 0.0002 for _, s in shares)


def test_campaign_conversion_cost_and_roi_by_tier_and_campaign(con):
    expected = rows(
        con,
        f"""
        WITH scored AS (SELECT DISTINCT month_start FROM marts.customer_tiers
                        WHERE month_start + INTERVAL {K} MONTH <= (FROM last_month)),
             c AS (
                SELECT s.month_start, coalesce(t.value_tier, 'untiered') AS value_tier, k.*,
                       k.responded_at IS NOT NULL AS responded, k.converted_at IS NOT NULL AS converted
                FROM scored s
                JOIN {landing_sql("campaign_contacts")} k
                  ON k.sent_at >= s.month_start + INTERVAL 1 MONTH AND k.sent_at < s.month_start + INTERVAL 2 MONTH
                 AND k.test_group = 'treatment'
                LEFT JOIN marts.customer_tiers t ON t.customer_id = k.customer_id AND t.month_start = s.month_start),
             per_converter AS (
                SELECT c.month_start, c.customer_id, count(*) AS conversions
                FROM c WHERE converted GROUP BY ALL),
             converter_value AS (
                SELECT p.month_start, p.customer_id,
                       coalesce(sum(x.profit), 0) / any_value(p.conversions) AS per_conversion
                FROM per_converter p LEFT JOIN txn x ON x.customer_id = p.customer_id
                 AND {within("x.booked_at", K, "p.month_start")}
                GROUP BY ALL)
        SELECT c.month_start, value_tier, campaign_id, product_offered, count(*),
               count(*) FILTER (WHERE responded), count(*) FILTER (WHERE converted),
               round(median(date_diff('minute', sent_at, responded_at) / 60.0), 2),
               sum(CAST(cost AS DECIMAL(18, 2))),
               round(sum(CASE WHEN converted THEN v.per_conversion ELSE 0 END), 2)
        FROM c LEFT JOIN converter_value v USING (month_start, customer_id)
        GROUP BY GROUPING SETS ((c.month_start, value_tier),
                                (c.month_start, value_tier, campaign_id, product_offered))""",
    )
    actual = rows(
        con,
        """SELECT month_start, value_tier, campaign_id, product_offered, contacts, responses, conversions,
                  median_response_hours, cost, attributed_value
           FROM evaluation.eval_campaign_conversion_monthly""",
    )

    def money(r):
        return (*r[:7], None if r[7] is None else round(float(r[7]), 2), Decimal(r[8]), round(float(r[9]), 2))

    assert [money(r) for r in actual] == [money(r) for r in expected]
    roi = con.execute(
        "SELECT bool_and(roi = round(attributed_value / cost, 2)), count(*) FILTER (WHERE value_tier = 'untiered') "
        "FROM evaluation.eval_campaign_conversion_monthly WHERE cost > 0"
    ).fetchone()
    assert roi[0] and roi[1] > 0  # customers who joined after the scored month are counted, not dropped


def ab_selected(con) -> pd.DataFrame:
    """Every customer an A/B campaign selected in the month after a scored month (both groups), with
    the scored month's tier, whether they opened the offered product by the end of the outcome
    window, and their profit over it: from the landing files, by calendar dates."""
    return con.execute(f"""
        WITH scored AS (SELECT DISTINCT month_start FROM marts.customer_tiers
                        WHERE month_start + INTERVAL {K} MONTH <= (FROM last_month)),
             sel AS (
                SELECT s.month_start, coalesce(t.value_tier, 'untiered') AS value_tier, k.*
                FROM scored s
                JOIN {landing_sql("campaign_contacts")} k
                  ON k.sent_at >= s.month_start + INTERVAL 1 MONTH AND k.sent_at < s.month_start + INTERVAL 2 MONTH
                LEFT JOIN marts.customer_tiers t ON t.customer_id = k.customer_id AND t.month_start = s.month_start)
        SELECT sel.month_start, sel.campaign_id, sel.value_tier, sel.customer_id,
               sel.test_group = 'treatment' AS treated,
               CAST(sel.cost AS DECIMAL(18, 2)) AS cost,
               EXISTS (SELECT 1 FROM {landing_sql("accounts")} a
                       WHERE a.customer_id = sel.customer_id AND a.product_type = sel.product_offered
                         AND CAST(a.opened_at AS DATE) >= CAST(sel.sent_at AS DATE)
                         AND CAST(a.opened_at AS DATE) < sel.month_start + INTERVAL {K + 1} MONTH) AS converted,
               CAST(coalesce((SELECT sum(x.profit) FROM txn x WHERE x.customer_id = sel.customer_id
                               AND {within("x.booked_at", K, "sel.month_start")}), 0) AS DOUBLE) AS value
        FROM sel
        WHERE sel.campaign_id IN (SELECT campaign_id FROM {landing_sql("campaign_contacts")}
                                  WHERE test_group = 'control')""").df()


def test_ab_uplift_in_conversion_and_value_by_tier_with_confidence_intervals(con):
    selected = ab_selected(con)
    z = 1.96
    expected = {}
    for tier_column in ("value_tier", None):
        frame = selected if tier_column else selected.assign(value_tier="all")
        for (month, campaign, tier), g in frame.groupby(["month_start", "campaign_id", "value_tier"]):
            t, c = g[g.treated], g[~g.treated]
            if len(t) == 0 or len(c) == 0:
                continue
            pt, pc = t.converted.mean(), c.converted.mean()
            se = np.sqrt(pt * (1 - pt) / len(t) + pc * (1 - pc) / len(c))
            vu = t.value.mean() - c.value.mean()
            vse = np.sqrt(t.value.var(ddof=1) / len(t) + c.value.var(ddof=1) / len(c))
            expected[(month.date(), campaign, tier)] = (
                len(t), len(c), pt, pc, pt - pc, pt - pc - z * se, pt - pc + z * se,
                t.value.mean(), c.value.mean(), vu, vu - z * vse, vu + z * vse, float(g.cost.sum()),
            )  # fmt: skip
    actual = {
        (r[0], r[1], r[2]): tuple(float(v) if v is not None else np.nan for v in r[3:])
        for r in con.execute("""
            SELECT month_start, campaign_id, value_tier, treated, controls, treated_conversion_rate,
                   control_conversion_rate, conversion_uplift, conversion_uplift_low, conversion_uplift_high,
                   treated_mean_value, control_mean_value, value_uplift, value_uplift_low, value_uplift_high, cost
            FROM evaluation.eval_campaign_ab_monthly""").fetchall()
    }
    assert actual.keys() == expected.keys()
    assert {k[2] for k in actual} >= {"high", "mid", "low", "all"}
    tolerance = (0, 0, *[1e-4 + 1e-9] * 5, *[0.01 + 1e-9] * 5, 1e-6)  # rounded to 4 places, money to 2
    for key, want in expected.items():
        assert np.allclose(actual[key], want, atol=tolerance, rtol=0, equal_nan=True), (key, actual[key], want)
    # Control rows are selected customers, not contacts: they cost nothing and never respond.
    control = con.execute(f"""SELECT count(*), sum(CAST(cost AS DOUBLE)), count(responded_at)
                             FROM {landing_sql("campaign_contacts")} WHERE test_group = 'control'""").fetchone()
    assert control[0] > 0 and control[1:] == (0, 0)


def test_ab_confidence_intervals_cover_the_true_uplift(con):
    """The generator's ground truth: each selected customer's true uplift in the chance of opening
    the offered product (valuetier.demo.generator.true_conversion_uplift of their appetite)."""
    traits = pd.read_parquet(TRUTH / "customer_traits.parquet", columns=["customer_id", "product_appetite"])
    selected = ab_selected(con).merge(traits, on="customer_id")
    truth = (
        selected.assign(uplift=true_conversion_uplift(selected.product_appetite.to_numpy()))
        .groupby("month_start")
        .uplift.mean()
    )
    marts = con.execute("""SELECT month_start, conversion_uplift_low, conversion_uplift_high, treated, controls,
                                  treated_conversion_rate, control_conversion_rate
                           FROM evaluation.eval_campaign_ab_monthly WHERE value_tier = 'all'""").df()
    covered = [
        float(r.conversion_uplift_low) <= truth[pd.Timestamp(r.month_start)] <= float(r.conversion_uplift_high)
        for r in marts.itertuples()
    ]
    assert len(covered) == len(truth) and sum(covered) >= 0.8 * len(covered), (covered, truth)
    # Pooled over the months, the uplift is clearly positive and close to the truth.
    nt, nc = marts.treated.sum(), marts.controls.sum()
    pt = (marts.treated * marts.treated_conversion_rate.astype(float)).sum() / nt
    pc = (marts.controls * marts.control_conversion_rate.astype(float)).sum() / nc
    se = np.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
    pooled_truth = selected.assign(u=true_conversion_uplift(selected.product_appetite.to_numpy())).u.mean()
    assert pt - pc - 1.96 * se > 0 and abs(pt - pc - pooled_truth) < 1.96 * se


def targeting_contacts(con) -> pd.DataFrame:
    """Every tiered customer an A/B campaign selected in the month after a scored month whose window
    has passed, from the landing files: group, offered product, whether they opened it by the window's
    end, the scored month's tier, and their predicted uplift for the product (the model's output, as
    the tiers are the scoring's); ordered by contact."""
    uplift = " ".join(f"WHEN '{p}' THEN u.uplift_{p}" for p in PRODUCT_TYPES)
    return con.execute(f"""
        WITH scored AS (SELECT DISTINCT month_start FROM marts.customer_tiers
                        WHERE month_start + INTERVAL {K} MONTH <= (FROM last_month)),
             contacts AS (SELECT * FROM {landing_sql("campaign_contacts")}
                          WHERE test_group IN ('treatment', 'control')
                            AND campaign_id IN (SELECT campaign_id FROM {landing_sql("campaign_contacts")}
                                                WHERE test_group = 'control'))
        SELECT s.month_start, k.campaign_id, k.contact_id, k.customer_id, t.value_tier,
               k.test_group = 'treatment' AS treated, md5(k.campaign_id || '/' || k.customer_id) AS draw,
               CASE k.product_offered {uplift} END AS predicted_uplift,
               EXISTS (SELECT 1 FROM {landing_sql("accounts")} a
                       WHERE a.customer_id = k.customer_id AND a.product_type = k.product_offered
                         AND CAST(a.opened_at AS DATE) >= CAST(k.sent_at AS DATE)
                         AND CAST(a.opened_at AS DATE) < s.month_start + INTERVAL {K + 1} MONTH) AS converted
        FROM scored s
        JOIN contacts k
          ON k.sent_at >= s.month_start + INTERVAL 1 MONTH AND k.sent_at < s.month_start + INTERVAL 2 MONTH
        JOIN marts.customer_tiers t ON t.customer_id = k.customer_id AND t.month_start = s.month_start
        LEFT JOIN marts.customer_uplift_monthly u ON u.customer_id = k.customer_id AND u.month_start = s.month_start
        ORDER BY k.contact_id""").df()


def incremental(chosen: pd.DataFrame) -> float:
    treated, control = chosen[chosen.treated], chosen[~chosen.treated]
    return treated.converted.mean() - control.converted.mean()


def test_campaign_targeting_three_ways_of_choosing_contacts_on_the_control_design(con):
    share = business_parameters().targeting_contact_share
    expected = {}
    for (month, campaign), selected in targeting_contacts(con).groupby(["month_start", "campaign_id"]):
        picks = {tier: int(np.floor(len(g) * share + 0.5)) for tier, g in selected.groupby("value_tier")}
        n = sum(picks.values())
        by_draw = selected.sort_values(["draw", "contact_id"])
        random = pd.concat([by_draw[by_draw.value_tier == tier].head(k) for tier, k in picks.items()])
        tier = by_draw.assign(o=by_draw.value_tier.map({"high": 0, "mid": 1, "low": 2})).sort_values(
            "o", kind="stable").head(n)  # fmt: skip
        row = {"selected": len(selected), "chosen": n, "random": incremental(random), "tier": incremental(tier)}
        row |= {"random_n": len(random), "uplift": np.nan, "qini": np.nan, "basis": "tier rule"}
        if selected.predicted_uplift.notna().any():
            ranked = selected.sort_values(["predicted_uplift", "contact_id"], ascending=[False, True])
            t, c = ranked.treated.cumsum(), (~ranked.treated).cumsum()
            tc, cc = (ranked.converted & ranked.treated).cumsum(), (ranked.converted & ~ranked.treated).cumsum()
            curve = np.where(c > 0, tc - cc * t / c.where(c > 0, 1), 0.0)
            qini = (curve.mean() - curve[-1] / 2) / len(ranked)
            row |= {"uplift": incremental(ranked.head(n)), "qini": qini, "basis": "uplift"}
        expected[(month.date(), campaign)] = row
    actual = {
        (r.month_start, r.campaign_id): r
        for r in con.execute("""SELECT month_start, campaign_id, targeting_basis, selected_contacts, chosen_contacts,
                                       random_treated + random_controls AS random_n, uplift_incremental_per_contact,
                                       random_incremental_per_contact, tier_incremental_per_contact, qini_coefficient
                                FROM evaluation.eval_campaign_targeting_monthly""")
        .df()
        .itertuples()
    }
    actual = {(k[0].date(), k[1]): v for k, v in actual.items()}
    assert actual.keys() == expected.keys() and len(expected) > 0
    assert {row["basis"] for row in expected.values()} == {"uplift", "tier rule"}  # the first months have no model
    for key, want in expected.items():
        got = actual[key]
        assert (got.targeting_basis, got.selected_contacts, got.chosen_contacts, got.random_n) == (
            want["basis"], want["selected"], want["chosen"], want["chosen"]
        ), key  # fmt: skip
        got_figures = [got.uplift_incremental_per_contact, got.random_incremental_per_contact,
                       got.tier_incremental_per_contact, got.qini_coefficient]  # fmt: skip
        want_figures = [want["uplift"], want["random"], want["tier"], want["qini"]]
        assert np.allclose(got_figures, want_figures, atol=1e-12, equal_nan=True), (key, got_figures, want_figures)


def test_contacts_aimed_by_uplift_reach_more_of_the_generators_true_uplift(con):
    """The generator's truth (each customer's true uplift, from their appetite): over the campaigns with
    a model, the contacts chosen by predicted uplift have a higher true uplift than those chosen at
    random within tier. (The Qini coefficient measured on the control design is too noisy on a bank
    this small to judge; bench/bench_uplift_targeting.py reads it on the demo.)"""
    share = business_parameters().targeting_contact_share
    traits = pd.read_parquet(TRUTH / "customer_traits.parquet", columns=["customer_id", "product_appetite"])
    contacts = targeting_contacts(con).merge(traits, on="customer_id")
    contacts["true_uplift"] = true_conversion_uplift(contacts.product_appetite.to_numpy())
    aimed, randoms = [], []
    for _, selected in contacts[contacts.predicted_uplift.notna()].groupby(["month_start", "campaign_id"]):
        n = round(share * len(selected))
        aimed.append(selected.sort_values("predicted_uplift", ascending=False).head(n))
        randoms.append(selected)  # random within tier, in expectation: the selected customers' mean
    assert len(aimed) >= 3
    assert pd.concat(aimed).true_uplift.mean() > 1.2 * pd.concat(randoms).true_uplift.mean()


def test_the_uplift_model_of_a_month_learns_only_from_contacts_finished_by_then(con):
    """The last month's uplift, trained again here from a training set built from the landing files:
    contacts of A/B campaigns whose window had closed by the month's end, their conversion by then,
    the features of the month before the send (the marts' indicators and CLV) and the risk profile as
    last delivered by then."""
    from valuetier.tiering.training import feature_columns_sql
    from valuetier.tiering.uplift import RISK_LEVELS, fit_uplift, month_customers

    month = con.execute("SELECT max(month_start) FROM marts.customer_uplift_monthly").fetchone()[0]
    risk = "CASE d.risk_profile " + " ".join(f"WHEN '{r}' THEN {i}" for i, r in enumerate(RISK_LEVELS)) + " END"
    contacts = con.execute(f"""
        WITH ab AS (SELECT * FROM {landing_sql("campaign_contacts")}
                    WHERE test_group IN ('treatment', 'control')
                      AND campaign_id IN (SELECT campaign_id FROM {landing_sql("campaign_contacts")}
                                          WHERE test_group = 'control')),
             finished AS (SELECT *, CAST(date_trunc('month', sent_at) - INTERVAL 1 MONTH AS DATE) AS month_start,
                                 date_trunc('month', sent_at) + INTERVAL {K} MONTH AS window_end
                          FROM ab
                          WHERE date_trunc('month', sent_at) + INTERVAL {K} MONTH <= DATE '{month}' + INTERVAL 1 MONTH),
             delivered AS (SELECT customer_id, risk_profile, {delivery_month_sql()} AS delivered
                           FROM {landing_sql("customers")})
        SELECT f.contact_id, f.product_offered, f.test_group = 'treatment' AS treated,
               EXISTS (SELECT 1 FROM {landing_sql("accounts")} a
                       WHERE a.customer_id = f.customer_id AND a.product_type = f.product_offered
                         AND CAST(a.opened_at AS DATE) >= CAST(f.sent_at AS DATE)
                         AND CAST(a.opened_at AS DATE) < f.window_end) AS converted,
               {feature_columns_sql()},
               CAST((SELECT arg_max({risk}, d.delivered) FROM delivered d
                     WHERE d.customer_id = f.customer_id AND d.delivered <= f.month_start) AS DOUBLE) AS risk_level
        FROM finished f
        JOIN marts.customer_indicators_monthly i ON i.customer_id = f.customer_id AND i.month_start = f.month_start
        LEFT JOIN marts.customer_clv_monthly c ON c.customer_id = f.customer_id AND c.month_start = f.month_start
        ORDER BY f.contact_id""").df()
    published = con.execute(
        "SELECT * FROM marts.customer_uplift_monthly WHERE month_start = ? ORDER BY customer_id", [month]
    ).df()
    assert (published.training_contacts == len(contacts)).all()
    # On a connection of its own: the batches are read on a cursor, which starts from the
    # connection's default database, not this session's USE.
    with duckdb.connect(str(WAREHOUSE), read_only=True) as warehouse:
        customers = pd.concat(month_customers(warehouse, month.strftime("%Y-%m"), 50_000), ignore_index=True)
    model = fit_uplift(contacts)
    assert list(customers.customer_id) == list(published.customer_id)
    for product in PRODUCT_TYPES:
        assert np.allclose(model.uplift(customers, product), published[f"uplift_{product}"], atol=1e-12), product


def test_tier_migration_matrix_and_two_tier_jumps(con):
    pairs = """
        WITH months AS (SELECT DISTINCT month_start AS m FROM marts.customer_tiers),
             moved AS (SELECT m, m - INTERVAL 1 MONTH AS before FROM months WHERE m > (SELECT min(m) FROM months)),
             now AS (SELECT t.* FROM marts.customer_tiers t JOIN moved ON t.month_start = moved.m),
             prev AS (SELECT t.*, moved.m FROM marts.customer_tiers t JOIN moved ON t.month_start = moved.before)
        SELECT coalesce(now.customer_id, prev.customer_id) AS customer_id, coalesce(now.month_start, prev.m) AS m,
               coalesce(prev.value_tier, 'new') AS f, coalesce(now.value_tier, 'churned') AS t
        FROM now FULL JOIN prev ON prev.customer_id = now.customer_id AND prev.m = now.month_start"""
    expected = rows(con, f"SELECT m, f, t, count(*) FROM ({pairs}) GROUP BY ALL")
    actual = rows(con, "SELECT month_start, from_tier, to_tier, customers FROM evaluation.eval_tier_migration_monthly")
    assert actual == expected
    jumps = rows(con, f"SELECT customer_id, m, f, t FROM ({pairs}) WHERE (f, t) IN (('high', 'low'), ('low', 'high'))")
    assert rows(con, "SELECT customer_id, month_start, from_tier, to_tier FROM evaluation.eval_tier_jumps") == jumps
    totals = con.execute("""
        SELECT bool_and(moved = tiered) FROM (
            SELECT month_start, sum(customers) FILTER (WHERE to_tier <> 'churned') AS moved
            FROM evaluation.eval_tier_migration_monthly GROUP BY 1)
        JOIN (SELECT month_start, count(*) AS tiered FROM marts.customer_tiers GROUP BY 1) USING (month_start)
        """).fetchone()[0]
    assert totals


TIER_ORDER = {"low": 1, "mid": 2, "high": 3}


def test_tier_stability_of_the_published_tiers_and_the_plain_cut(con):
    """Changes, A->B->A flips and high-tier capture, from the published tiers and the landing
    files' value; and the stable rule's mark on the tiers: sizes of the plain cut, and a customer
    above their plain tier only by holding last month's tier."""
    tiers = con.execute("SELECT customer_id, month_start, value_tier, plain_tier FROM marts.customer_tiers").df()
    value = con.execute(f"""
        SELECT t.customer_id, t.month_start, coalesce(sum(x.profit), 0) AS value
        FROM marts.customer_tiers t LEFT JOIN txn x ON x.customer_id = t.customer_id AND {within("x.booked_at", K)}
        WHERE t.month_start + INTERVAL {K} MONTH <= (FROM last_month) GROUP BY ALL""").df()

    def months_before(k: int) -> pd.DataFrame:
        shifted = tiers.assign(month_start=tiers.month_start + pd.DateOffset(months=k))
        return shifted.rename(columns={"value_tier": f"value_tier_{k}", "plain_tier": f"plain_tier_{k}"})

    keys = ["customer_id", "month_start"]
    history = tiers.merge(months_before(1), on=keys, how="left").merge(months_before(2), on=keys, how="left")
    history = history.merge(value, on=keys, how="left")
    expected = []
    for month, m in history.groupby("month_start", sort=True):
        row = {
            "month_start": month,
            "customers_tiered": len(m),
            "customers_tiered_1m_before": int(m.value_tier_1.notna().sum()),
            "customers_tiered_2m_before": int((m.value_tier_1.notna() & m.value_tier_2.notna()).sum()),
        }
        window_passed = m.value.notna().all()
        row["realised_value"] = round(float(m.value.sum()), 2) if window_passed else None
        for cut, name in (("value_tier", "published"), ("plain_tier", "plain")):
            changed = m[cut_1 := f"{cut}_1"].notna() & (m[cut] != m[cut_1])
            row[f"{name}_tier_changes"] = int(changed.sum())
            row[f"{name}_flips"] = int((changed & (m[cut] == m[f"{cut}_2"])).sum())
            captured = m.value[m[cut] == "high"].sum() / m.value.sum() if window_passed else None
            row[f"{name}_high_capture"] = None if captured is None else round(float(captured), 4)
        expected.append(row)
        # The stable rule: the plain cut's sizes; above the plain tier only by holding last month's.
        assert m.value_tier.value_counts().to_dict() == m.plain_tier.value_counts().to_dict()
        raised = m.value_tier.map(TIER_ORDER) > m.plain_tier.map(TIER_ORDER)
        assert (m.value_tier_1[raised].map(TIER_ORDER) >= m.value_tier[raised].map(TIER_ORDER)).all()
    expected = pd.DataFrame(expected)
    actual = con.execute(
        f"SELECT {', '.join(expected.columns)} FROM evaluation.eval_tier_stability_monthly ORDER BY month_start"
    ).df()
    for column in ("published_high_capture", "plain_high_capture", "realised_value"):
        actual[column] = actual[column].astype(float)

    def records(frame: pd.DataFrame) -> list[dict]:
        return frame.astype(object).where(frame.notna(), None).to_dict("records")

    assert records(actual) == records(expected)
    assert expected.realised_value.notna().sum() == len(expected) - K
    # The incumbent's margin is at work on this bank: fewer flips than the plain cut.
    assert expected.published_flips.sum() < expected.plain_flips.sum()


def fairness_expected(con) -> pd.DataFrame:
    """The fairness review read plainly: each tiered customer's attributes from the landing files'
    latest record delivered by the month, the month's tier and CRM actions; group shares of every
    outcome given that month, the most favoured judged group, the ratio and its Katz bounds,
    Bonferroni over the ordered pairs of judged groups and the reviewed actions."""
    p = business_parameters()
    customers = con.execute(f"""
        WITH delivered AS (
            SELECT customer_id, birth_date, city, income_band, risk_profile, {delivery_month_sql()} AS delivered
            FROM {landing_sql("customers")})
        SELECT t.month_start, t.customer_id, t.value_tier, t.predicted_value, a.pricing_treatment, a.service_level,
               arg_max(year(d.birth_date), d.delivered) AS birth_year, arg_max(d.city, d.delivered) AS city,
               arg_max(d.income_band, d.delivered) AS income_band,
               arg_max(d.risk_profile, d.delivered) AS risk_profile
        FROM marts.customer_tiers t JOIN marts.crm_actions a USING (customer_id, month_start)
        JOIN delivered d ON d.customer_id = t.customer_id AND d.delivered <= t.month_start
        GROUP BY ALL""").df()
    age = customers.month_start.dt.year - customers.birth_year
    names = [f"under {p.fairness_age_bands[0]}"]
    names += [f"{a}-{b - 1}" for a, b in zip(p.fairness_age_bands, p.fairness_age_bands[1:], strict=False)]
    names += [f"{p.fairness_age_bands[-1]} and over"]
    customers["age_band"] = pd.cut(age, [-np.inf, *p.fairness_age_bands, np.inf], right=False, labels=names)
    customers = customers.astype({"age_band": object})
    outcomes = {"tier": "value_tier", "pricing": "pricing_treatment", "service_level": "service_level"}
    rows = []
    pairs = [(month, a) for month in sorted(customers.month_start.unique()) for a in FAIRNESS_ATTRIBUTES]
    for month, attribute in pairs:
        m = customers[(customers.month_start == month) & customers[attribute].notna()]
        groups = m.groupby(attribute)
        judged = [g for g, members in groups if len(members) >= p.fairness_min_group_customers]
        comparisons = max(len(judged) * (len(judged) - 1), 1) * len(p.fairness_reviewed_actions)
        z = NormalDist().inv_cdf(1 - p.fairness_false_alarm_rate / comparisons)
        for kind, column in outcomes.items():
            for outcome in sorted(customers.loc[customers.month_start == month, column].unique()):
                given = {g: int((members[column] == outcome).sum()) for g, members in groups}
                size = {g: len(members) for g, members in groups}
                favoured = min(judged, key=lambda g: (-given[g] / size[g], g)) if judged else None
                for g in size:
                    row = {"month_start": month, "attribute": attribute, "attribute_group": g, "outcome_kind": kind,
                           "outcome": outcome, "customers": size[g], "customers_given": given[g],
                           "outcome_share": given[g] / size[g], "favoured_group": favoured, "disparity_ratio": None,
                           "upper": None}  # fmt: skip
                    if favoured and g in judged and given[favoured]:
                        row["disparity_ratio"] = row["outcome_share"] / (given[favoured] / size[favoured])
                        log_ratio = np.log((given[g] + 0.5) / (size[g] + 0.5)) - np.log(
                            (given[favoured] + 0.5) / (size[favoured] + 0.5)
                        )
                        se = np.sqrt(
                            1 / (given[g] + 0.5) - 1 / (size[g] + 0.5)
                            + 1 / (given[favoured] + 0.5) - 1 / (size[favoured] + 0.5)
                        )  # fmt: skip
                        row["upper"] = float(np.exp(log_ratio + z * se))
                    row["flagged"] = bool(
                        attribute in p.fairness_protected_attributes
                        and f"{kind}:{outcome}" in p.fairness_reviewed_actions
                        and row["upper"] is not None
                        and row["upper"] < p.fairness_min_ratio
                    )
                    rows.append(row)
    return pd.DataFrame(rows)


def test_fairness_review_by_attribute_group_and_outcome(con):
    expected = fairness_expected(con)
    actual = con.execute("SELECT * FROM evaluation.eval_tier_fairness_monthly").df()
    keys = ["month_start", "attribute", "attribute_group", "outcome_kind", "outcome"]
    both = expected.merge(actual, on=keys, how="outer", suffixes=("", "_mart"), indicator=True)
    assert (both._merge == "both").all(), both[both._merge != "both"][keys].head()
    assert (both.customers == both.customers_mart).all() and (both.customers_given == both.customers_given_mart).all()
    assert np.allclose(both.outcome_share.astype(float), both.outcome_share_mart.astype(float), atol=5e-5)
    assert (both.favoured_group.fillna("") == both.favoured_group_mart.fillna("")).all()
    ratio, mart_ratio = both.disparity_ratio.astype(float), both.disparity_ratio_mart.astype(float)
    assert (ratio.isna() == mart_ratio.isna()).all() and np.allclose(ratio.dropna(), mart_ratio.dropna(), atol=5e-5)
    # The bounds' normal quantile is an approximation in SQL (to 4.5e-4): flags agree away from the edge.
    upper, mart_upper = both.upper.astype(float), both.disparity_ratio_upper.astype(float)
    assert np.allclose(upper.dropna(), mart_upper.dropna(), rtol=2e-3)
    clear = (upper - business_parameters().fairness_min_ratio).abs() > 0.01
    assert (both.flagged[clear] == both.below_min_ratio[clear]).all()
    # Every attribute the test bank delivers is reviewed, in every month, and the alert follows the flags.
    assert set(actual.attribute) == set(FAIRNESS_ATTRIBUTES)
    alerts = con.execute(
        "SELECT month_start, subject FROM monitoring.alerts WHERE kind = 'tier_fairness' ORDER BY ALL"
    ).fetchall()
    flagged = actual[actual.below_min_ratio]
    groups = {(r.month_start.date(), f"{r.attribute}={r.attribute_group}") for r in flagged.itertuples()}
    assert alerts == sorted(groups)


def test_nps_and_satisfaction_by_tier(con):
    expected = rows(
        con,
        f"""
        WITH t AS (SELECT * FROM marts.customer_tiers WHERE month_start + INTERVAL {K} MONTH <= (FROM last_month)),
             n AS (SELECT t.month_start, t.value_tier, count(*) AS answers,
                          count(*) FILTER (WHERE score >= 9) AS promoters,
                          count(*) FILTER (WHERE score <= 6) AS detractors
                   FROM t JOIN {landing_sql("nps_responses")} r ON r.customer_id = t.customer_id
                    AND {within("r.answered_at", K)} GROUP BY ALL),
             s AS (SELECT t.month_start, t.value_tier, count(*) AS interactions,
                          count(*) FILTER (WHERE kind = 'complaint') AS complaints, round(avg(satisfaction), 2) AS sat
                   FROM t JOIN {landing_sql("service_interactions")} i ON i.customer_id = t.customer_id
                    AND {within("i.opened_at", K)} GROUP BY ALL)
        SELECT month_start, value_tier, answers, promoters, detractors,
               round(100.0 * (promoters - detractors) / answers, 1), interactions, complaints, sat
        FROM n JOIN s USING (month_start, value_tier)""",
    )
    actual = rows(
        con,
        """SELECT month_start, value_tier, nps_answers, promoters, detractors, nps, service_interactions, complaints,
                  mean_satisfaction FROM evaluation.eval_satisfaction_monthly""",
    )
    assert [(*r[:5], float(r[5]), *r[6:8], float(r[8])) for r in actual] == [
        (*r[:5], float(r[5]), *r[6:8], float(r[8])) for r in expected
    ]


def test_backtest_gini_tiers_and_calibration_against_realised_value(con):
    horizon = business_parameters().label_horizon_months
    realised = con.execute(f"""
        SELECT t.month_start, t.customer_id, t.plain_tier, t.predicted_value, r.rfm_weighted_score, r.value_tier,
               coalesce(sum(x.profit), 0) AS realised
        FROM marts.customer_tiers t JOIN marts.customer_tiers_rfm r USING (customer_id, month_start)
        LEFT JOIN txn x ON x.customer_id = t.customer_id
         AND {within("x.booked_at", horizon)}
        WHERE t.month_start + INTERVAL {horizon} MONTH <= (FROM last_month)
        GROUP BY ALL ORDER BY t.month_start, t.customer_id""").df()
    marts = {
        (m, r): (float(g), float(a))
        for m, r, g, a in con.execute(
            "SELECT month_start, ranking, normalized_gini, tier_accuracy FROM evaluation.eval_model_backtest_monthly "
            "WHERE ranking IN ('tiers', 'rfm')"  # a challenger is backtested when the registry has one
        ).fetchall()
    }
    deciles = con.execute(
        "SELECT month_start, decile, mean_predicted_value, mean_realised_value "
        "FROM evaluation.eval_calibration_deciles_monthly"
    ).df()
    assert len(marts) == 2 * realised.month_start.nunique()
    for month, frame in realised.groupby("month_start"):
        value = frame.realised.astype(float).to_numpy()
        order = np.lexsort((frame.customer_id.to_numpy(), -value))  # realised rank, ties by customer id
        rank = np.empty(len(frame), dtype=int)
        rank[order] = np.arange(1, len(frame) + 1)
        realised_tier = np.where(
            rank <= round(0.1 * len(frame)), "high", np.where(rank <= round(0.4 * len(frame)), "mid", "low")
        )
        for ranking, score, tier in (
            ("tiers", frame.predicted_value, frame.plain_tier),  # every ranking judged on the plain cut
            ("rfm", frame.rfm_weighted_score, frame.value_tier),
        ):
            gini, accuracy = marts[(month.date(), ranking)]
            assert gini == pytest.approx(normalized_gini(score.astype(float), value), abs=1e-4), (month, ranking)
            assert accuracy == pytest.approx(np.mean(tier.to_numpy() == realised_tier), abs=1e-4), (month, ranking)
        n = len(frame)
        decile = np.empty(n, dtype=int)  # ntile(10): ten groups in order, the first n % 10 one larger
        decile[np.lexsort((frame.customer_id.to_numpy(), -frame.predicted_value.to_numpy()))] = np.repeat(
            np.arange(1, 11), [n // 10 + (d < n % 10) for d in range(10)]
        )
        by_decile = frame.assign(decile=decile).groupby("decile")
        month_deciles = deciles[deciles.month_start == month].set_index("decile").sort_index()
        assert np.allclose(
            month_deciles.mean_realised_value.astype(float), by_decile.realised.mean().astype(float), atol=0.006
        )
        assert np.allclose(
            month_deciles.mean_predicted_value.astype(float), by_decile.predicted_value.mean(), atol=0.006
        )
        gini_tiers, gini_rfm = marts[(month.date(), "tiers")][0], marts[(month.date(), "rfm")][0]
        assert gini_tiers > gini_rfm  # the model orders value better than the RFM baseline


def test_ground_truth_confirms_the_high_tier_retains_better_and_is_worth_more(con):
    """The generator's ground truth, not the warehouse: true churn and true profit after each month."""
    truth = con.execute(f"""
        WITH truth AS (SELECT customer_id, CAST(month || '-01' AS DATE) AS m, profit_contribution, churned_this_month
                       FROM read_parquet('{TRUTH}/monthly_value.parquet')),
             after AS (
                SELECT t.value_tier, bool_or(x.churned_this_month) AS churned, sum(x.profit_contribution) AS profit
                FROM marts.customer_tiers t JOIN truth x ON x.customer_id = t.customer_id
                 AND x.m > t.month_start AND x.m <= t.month_start + INTERVAL {K} MONTH
                WHERE t.month_start + INTERVAL {K} MONTH <= (FROM last_month)
                GROUP BY t.value_tier, t.customer_id, t.month_start)
        SELECT value_tier, avg(CASE WHEN churned THEN 1.0 ELSE 0.0 END), avg(profit)
        FROM after GROUP BY 1""").fetchall()
    churn = {tier: c for tier, c, _ in truth}
    value = {tier: v for tier, _, v in truth}
    assert churn["high"] < churn["low"] and value["high"] > 3 * value["low"]
    measured = dict(
        con.execute(f"""SELECT value_tier, sum(retained_{K}m) / sum(customers)
                        FROM evaluation.eval_retention_monthly WHERE breakdown = 'tier' GROUP BY 1""").fetchall()
    )
    assert measured["high"] > measured["low"]
