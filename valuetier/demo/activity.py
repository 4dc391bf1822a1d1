"""What the demo bank's customers do each month: transactions, digital sessions, service
interactions, NPS answers and campaign contacts with their A/B design, drawn from their traits; and
each customer's realised value, which goes to the ground truth."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from valuetier.core.contract import PRODUCT_TYPES
from valuetier.demo.config import US_PER_DAY, FileWriter, id_array, money_array, optional_ts_array, ts_array
from valuetier.demo.population import EXTRA_PRODUCT_P, EXTRA_PRODUCTS, MonthContext, next_seq

TXN_TYPES = ("purchase", "transfer", "payment", "withdrawal", "investment")
TXN_TYPE_P = (0.55, 0.2, 0.12, 0.08, 0.05)
FEE_RATE = {"purchase": 0.004, "transfer": 0.001, "payment": 0.002, "withdrawal": 0.003, "investment": 0.012}
TXN_CHANNELS = ("app", "web", "branch", "atm", "pos")
# The campaigns' A/B design: a share of the customers each campaign selects is held out as control
# (not contacted: delivered with test_group 'control', no cost, no response), drawn from a random
# stream of its own. Customers of both groups may open the offered product unprompted (organic
# uptake); a contact adds the conversions it causes on top.
CONTROL_SHARE = 0.2
CONVERSION_GIVEN_RESPONSE = 0.35


def response_probability(appetite: np.ndarray) -> np.ndarray:
    """Chance that a contacted customer responds."""
    return 0.05 + 0.5 * appetite


def organic_uptake(appetite: np.ndarray) -> np.ndarray:
    """Chance that a selected customer opens the offered product without being contacted."""
    return 0.01 + 0.05 * appetite


def true_conversion_uplift(appetite: np.ndarray) -> np.ndarray:
    """Ground truth of the A/B evaluation: how much a contact raises the chance of opening the offered
    product (the conversions it causes, less those who would have opened it anyway)."""
    return response_probability(appetite) * CONVERSION_GIVEN_RESPONSE * (1 - organic_uptake(appetite))


def activity_tables(ctx: MonthContext, idx: np.ndarray, new_products: list, value_writer: FileWriter) -> dict:
    """Events of one customer chunk for one month: transactions, sessions, service, campaigns, NPS."""
    rng, pop, m = ctx.rng, ctx.pop, ctx.m
    n = len(idx)
    month_us = ctx.month_days * US_PER_DAY
    start_us = ctx.start_days * US_PER_DAY
    churning = pop.churn_month[idx] == m
    tenure = m - pop.join_month[idx]
    season = 1.0 + 0.12 * np.sin(2 * np.pi * (m % 12) / 12) + 0.2 * ((m % 12) == 11)
    rate = 3.0 * pop.spend[idx] * np.exp(np.clip(pop.trend[idx] * tenure, -3, 2)) * season
    rate = np.where(churning, rate * 0.3, rate)

    # Transactions: Poisson counts, log-normal (heavy-tailed) amounts.
    counts = rng.poisson(np.minimum(rate, 60))
    who = np.repeat(idx, counts)
    k = len(who)
    amount = np.maximum(np.exp(pop.ticket_mu[who] + 0.9 * rng.standard_normal(k)) * (1 + ctx.cfg.growth) ** m, 1.0)
    txn_type = rng.choice(len(TXN_TYPES), size=k, p=TXN_TYPE_P)
    fee = amount * np.array([FEE_RATE[t] for t in TXN_TYPES])[txn_type]
    debt_products = np.isin(ctx.accounts.product, [PRODUCT_TYPES.index("credit_card"), PRODUCT_TYPES.index("loan")])
    has_credit = np.isin(who, ctx.accounts.customer[debt_products])
    nim = np.where((txn_type == 2) & has_credit, amount * 0.025, 0.0)
    booked = start_us + rng.integers(0, month_us, k)
    seq = next_seq(ctx, "transactions", k)
    transactions = pa.table(
        {
            "transaction_id": pa.array([f"T{ctx.key.replace('-', '')}{s:09d}" for s in seq.tolist()]),
            "customer_id": id_array("C", who, 8),
            "account_id": id_array("A", ctx.primary_account[who], 9),
            "booked_at": ts_array(booked),
            "amount": money_array(amount),
            "currency": pa.array(["CNY"] * k),
            "txn_type": pa.array([TXN_TYPES[t] for t in txn_type.tolist()]),
            "channel": pa.array([TXN_CHANNELS[c] for c in rng.integers(0, len(TXN_CHANNELS), k).tolist()]),
            "fee_income": money_array(fee),
            "net_interest_margin": money_array(nim),
        }
    )

    # Digital sessions: driven by digital affinity.
    s_counts = rng.poisson(12 * pop.digital[idx] ** 1.5 * np.where(churning, 0.3, 1.0))
    s_who = np.repeat(idx, s_counts)
    ks = len(s_who)
    session_seq = next_seq(ctx, "digital_sessions", ks)
    sessions = pa.table(
        {
            "session_id": pa.array([f"S{ctx.key.replace('-', '')}{s:09d}" for s in session_seq.tolist()]),
            "customer_id": id_array("C", s_who, 8),
            "started_at": ts_array(start_us + rng.integers(0, month_us, ks)),
            "channel": pa.array(["app" if r < 0.7 else "web" for r in rng.random(ks).tolist()]),
            "duration_s": pa.array(rng.integers(20, 1800, ks).astype("int32")),
            "features_used": pa.array((1 + rng.binomial(9, pop.digital[s_who])).astype("int32")),
        }
    )

    # Service: inquiries and complaints; complaints feed the grievance that raises churn.
    complaints = rng.poisson(0.04 * np.exp(-0.7 * pop.temper[idx]))
    inquiries = rng.poisson(0.15, n)
    kinds = np.concatenate([np.zeros(inquiries.sum(), dtype=int), np.ones(complaints.sum(), dtype=int)])
    i_who = np.concatenate([np.repeat(idx, inquiries), np.repeat(idx, complaints)])
    ki = len(i_who)
    i_seq = next_seq(ctx, "service_interactions", ki)
    opened = start_us + rng.integers(0, month_us - US_PER_DAY, ki)
    resolved_present = rng.random(ki) < 0.9
    satisfaction = np.clip(np.round(3.5 + 0.8 * pop.temper[i_who] - 1.2 * kinds + rng.normal(0, 0.8, ki)), 1, 5)
    pop.grievance[idx] += complaints
    interactions = pa.table(
        {
            "interaction_id": pa.array([f"I{ctx.key.replace('-', '')}{s:08d}" for s in i_seq.tolist()]),
            "customer_id": id_array("C", i_who, 8),
            "opened_at": ts_array(opened),
            "resolved_at": optional_ts_array(
                opened + rng.integers(600, 5 * US_PER_DAY // 1_000_000, ki) * 1_000_000, resolved_present
            ),
            "kind": pa.array(["inquiry" if x == 0 else "complaint" for x in kinds.tolist()]),
            "satisfaction": pa.array(satisfaction.astype("int32"), mask=~resolved_present),
        }
    )

    # Campaigns: one campaign a month selects ~15 % of customers; appetite drives responses. The
    # control group is drawn after the main stream's draws, from its own stream.
    contacted = idx[rng.random(n) < 0.15]
    kc = len(contacted)
    product = 1 + rng.choice(len(EXTRA_PRODUCTS), size=kc, p=EXTRA_PRODUCT_P)
    ab_rng = np.random.default_rng([ctx.cfg.seed, 5, m, int(idx[0]) if n else 0])
    control = ab_rng.random(kc) < CONTROL_SHARE
    organic = ab_rng.random(kc) < organic_uptake(pop.appetite[contacted])
    responded = (rng.random(kc) < response_probability(pop.appetite[contacted])) & ~control
    converted = responded & (rng.random(kc) < CONVERSION_GIVEN_RESPONSE)
    sent = start_us + rng.integers(0, month_us // 2, kc)
    responded_at = sent + (rng.exponential(36, kc) * 3_600_000_000).astype("int64")
    responded_at = np.minimum(responded_at, start_us + month_us - 2_000_000)
    converted_at = np.minimum(
        responded_at + rng.integers(1, 72 * 3600, kc) * 1_000_000, start_us + month_us - 1_000_000
    )
    channel = np.where(rng.random(kc) < 0.6, "sms", "email")
    c_seq = next_seq(ctx, "campaign_contacts", kc)
    contacts = pa.table(
        {
            "contact_id": pa.array([f"K{ctx.key.replace('-', '')}{s:08d}" for s in c_seq.tolist()]),
            "campaign_id": pa.array([f"CMP-{ctx.key}"] * kc),
            "customer_id": id_array("C", contacted, 8),
            "channel": pa.array(channel.tolist(), type=pa.string()),
            "product_offered": pa.array([PRODUCT_TYPES[p] for p in product.tolist()], type=pa.string()),
            "sent_at": ts_array(sent),
            "responded_at": optional_ts_array(responded_at, responded),
            "converted_at": optional_ts_array(converted_at, converted),
            "cost": money_array(np.where(control, 0.0, np.where(channel == "sms", 0.3, 0.05))),
            "test_group": pa.array(np.where(control, "control", "treatment").tolist(), type=pa.string()),
        }
    )
    opens = converted | organic
    new_products.append((contacted[opens], product[opens]))

    # NPS: a small survey sample; scores follow temper and recent complaints.
    surveyed = idx[rng.random(n) < 0.04]
    kn = len(surveyed)
    score = np.clip(
        np.round(7.5 + 1.5 * pop.temper[surveyed] - 2.0 * pop.grievance[surveyed] + rng.normal(0, 1.2, kn)), 0, 10
    )
    n_seq = next_seq(ctx, "nps_responses", kn)
    nps = pa.table(
        {
            "response_id": pa.array([f"N{ctx.key.replace('-', '')}{s:08d}" for s in n_seq.tolist()]),
            "customer_id": id_array("C", surveyed, 8),
            "answered_at": ts_array(start_us + rng.integers(0, month_us, kn)),
            "score": pa.array(score.astype("int32")),
        }
    )

    # Ground truth: what each customer was worth this month.
    profit = np.bincount(np.searchsorted(idx, who), weights=np.round(fee, 2) + np.round(nim, 2), minlength=n)
    spent = np.bincount(np.searchsorted(idx, who), weights=np.round(amount, 2), minlength=n)
    value_writer.write(
        pa.table(
            {
                "customer_id": id_array("C", idx, 8),
                "month": pa.array([ctx.key] * n),
                "transactions": pa.array(counts.astype("int32")),
                "amount": money_array(spent),
                "profit_contribution": money_array(profit),
                "churned_this_month": pa.array(churning),
            }
        )
    )
    return {
        "transactions": transactions,
        "digital_sessions": sessions,
        "service_interactions": interactions,
        "campaign_contacts": contacts,
        "nps_responses": nps,
    }
