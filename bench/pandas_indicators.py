"""The pandas baseline: one month's customer indicators recomputed from the raw landing files, the
columns of marts.customer_indicators_monthly under the same point-in-time rules (no file delivered
after the month is read; anomalous transactions judged against each customer's 12 earlier months and
left out; trailing windows over the customer's processed months; live customers only).

It is what a bank without ValueTier would run each month: read the history's raw files again, one
month at a time so memory stays bounded, carry per-customer running totals in arrays, and group the
last twelve months. It assumes the data contract's own names and Parquet files (the generated bank),
no accounts delivered before customers, and contiguous processed months. tests/test_pipeline.py
checks that it agrees with the mart on the demo bank, so its seconds are those of the same work.

    .venv/bin/python bench/pandas_indicators.py <landing> 2026-01 [--out indicators.parquet]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from valuetier.core.parameters import business_parameters  # noqa: E402  (the one home of the business parameters)

PRODUCTS = ("savings", "term_deposit", "fund", "insurance", "credit_card", "loan", "wealth")
NANOS_PER_DAY = 86_400 * 10**9


def _month_index(month: str) -> int:
    year, mon = month.split("-")
    return int(year) * 12 + int(mon) - 1


def _month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _month_end(month: str) -> pd.Timestamp:
    return pd.Timestamp(f"{month}-01") + pd.offsets.MonthEnd(0)


def _months_of(landing: Path, source: str, last: str) -> list[str]:
    folder = landing / source
    if not folder.exists():
        return []
    return sorted(p.stem for p in folder.glob("*.parquet") if p.stem <= last)


def _read(landing: Path, source: str, month: str, columns: list[str]) -> pd.DataFrame:
    return pd.read_parquet(landing / source / f"{month}.parquet", columns=columns)


def _cents(values: pd.Series) -> np.ndarray:
    return np.round(values.to_numpy(dtype="float64") * 100).astype("int64")


def _month_number(timestamps: pd.Series) -> np.ndarray:
    """year * 12 + month of each timestamp (-1 where missing)."""
    t = pd.to_datetime(timestamps)
    return np.where(t.isna(), -1, t.dt.year.fillna(0).astype("int64") * 12 + t.dt.month.fillna(1).astype("int64") - 1)


def _score(order_key: np.ndarray) -> np.ndarray:
    """1-5 from the percent rank within the month (ties share the lowest rank), as the mart scores."""
    n = len(order_key)
    if n <= 1:
        return np.ones(n, dtype="int64")
    rank = pd.Series(order_key).rank(method="min").to_numpy()
    return np.minimum(5, 1 + np.floor(5 * (rank - 1) / (n - 1))).astype("int64")


def _segment(r: np.ndarray, f: np.ndarray) -> np.ndarray:
    conditions = [
        (r == 5) & (f >= 4),
        (r >= 3) & (r <= 4) & (f >= 4),
        (r >= 4) & (f >= 2) & (f <= 3),
        (r == 5) & (f == 1),
        (r == 4) & (f == 1),
        (r == 3) & (f == 3),
        (r == 3) & (f <= 2),
        (r <= 2) & (f == 5),
        (r <= 2) & (f >= 3) & (f <= 4),
    ]
    names = [
        "Champions",
        "Loyal",
        "Potential Loyalist",
        "New",
        "Promising",
        "Need Attention",
        "About to Sleep",
        "Can't Lose",
        "At Risk",
    ]
    return np.select(conditions, names, default="Hibernating")


def _ratio(numerator: np.ndarray, denominator: np.ndarray, decimals: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            denominator > 0, np.round(numerator / np.where(denominator > 0, denominator, 1), decimals), np.nan
        )


def indicators_for_month(landing: Path, month: str, progress=lambda _message: None) -> pd.DataFrame:
    params = business_parameters()
    z_threshold, min_history = params.anomaly_z_threshold, params.anomaly_min_history
    burst, inactivity = params.burst_transactions_per_day, params.inactivity_months
    exclude_anomalous, features = params.exclude_anomalous_transactions, float(params.digital_features_available)

    processed = _months_of(landing, "transactions", month)
    if not processed or processed[-1] != month:
        raise ValueError(f"{landing / 'transactions'}: no file for {month}")
    m = _month_index(month)
    month_end = _month_end(month)

    # Customers as last delivered on or before the month; the month each was first delivered.
    versions = []
    for delivered in _months_of(landing, "customers", month):
        frame = pd.read_parquet(landing / "customers" / f"{delivered}.parquet")
        keep = ["customer_id", "opened_at"] + (["closed_at"] if "closed_at" in frame.columns else [])
        versions.append(frame[keep].assign(delivered=_month_index(delivered)))
    customers = pd.concat(versions, ignore_index=True)
    first_delivery = customers.groupby("customer_id", sort=True)["delivered"].min()
    customers = customers.sort_values("delivered").drop_duplicates("customer_id", keep="last")
    customers = customers.set_index("customer_id").loc[first_delivery.index]
    ids = first_delivery.index
    n = len(ids)
    first = first_delivery.to_numpy()

    def codes(frame: pd.DataFrame) -> np.ndarray:
        return ids.get_indexer(frame["customer_id"])

    def known_customers(frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of delivered customers, each with its customer's code (looked up once)."""
        frame = frame.assign(code=codes(frame))
        return frame[frame["code"] >= 0]

    # Per-customer state carried through the months: totals before the 12-month window, the
    # window's monthly values, the last inactive grid month, last transaction and login.
    window_first = m - 11
    slot = {k: i for i, k in enumerate(range(window_first, m + 1))}
    monthly = {
        name: np.zeros((n, 12), dtype="int64")
        for name in (
            "count",
            "purchases",
            "amount",
            "profit",
            "anomalous",
            "logins",
            "interactions",
            "complaints",
            "rated",
            "satisfaction",
        )
    }
    largest = np.full((n, 12), np.nan)
    features_used = np.full((n, 12), -1, dtype="int64")
    earlier = {name: np.zeros(n, dtype="int64") for name in ("count", "amount", "profit", "purchase_months")}
    last_booked = np.full(n, np.iinfo("int64").min)
    last_login = np.full(n, np.iinfo("int64").min)
    last_inactive = np.full(n, -1, dtype="int64")
    grid_months = np.zeros(n, dtype="int64")
    history: list[pd.DataFrame] = []  # each month's (code, log amount), for the next months' baselines

    for delivered in processed:
        progress(f"transactions {delivered}")
        k = _month_index(delivered)
        t = _read(
            landing,
            "transactions",
            delivered,
            ["customer_id", "booked_at", "amount", "txn_type", "fee_income", "net_interest_margin"],
        )
        t["code"] = codes(t)
        t["cents"] = _cents(t["amount"])
        t["log_amount"] = np.log(t["cents"] / 100)
        # Profit as the staging model has it: fee income plus margin, rounded to cents.
        t["profit"] = _cents(t["fee_income"].fillna(0) + t["net_interest_margin"].fillna(0))
        # The baseline: the customer's transactions of the 12 calendar months before this one.
        earlier_months = [h for h in history if k - 12 <= h.attrs["month"] < k]
        if earlier_months:
            pool = pd.concat(earlier_months, ignore_index=True).groupby("code")["log_amount"]
            baseline = pd.DataFrame(
                {"median": pool.median(), "iqr": pool.quantile(0.75) - pool.quantile(0.25), "n": pool.size()}
            )
            b = baseline.reindex(t["code"])
            iqr = b["iqr"].to_numpy()
            usable = (b["n"].fillna(0).to_numpy() >= min_history) & (iqr > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.round(1.349 * (t["log_amount"].to_numpy() - b["median"].to_numpy()) / iqr, 4)
            outlier = usable & (np.abs(z) > z_threshold)
        else:
            outlier = np.zeros(len(t), dtype=bool)
        day = t["booked_at"].to_numpy().astype("datetime64[D]")
        that_day = t.groupby([t["code"].to_numpy(), day])["code"].transform("size").to_numpy()
        anomalous = outlier | (that_day > burst)
        history.append(t[["code", "log_amount"]].copy())
        history[-1].attrs["month"] = k
        history = [h for h in history if h.attrs["month"] > k - 12]

        known = t["code"].to_numpy() >= 0
        kept = known & (~anomalous if exclude_anomalous else True)
        tk = t[kept]
        by = tk.groupby("code")
        count = by.size()
        purchases = tk[tk["txn_type"] == "purchase"].groupby("code").size()
        amount = by["cents"].sum()
        profit_sum = by["profit"].sum()
        booked = by["booked_at"].max()
        code = count.index.to_numpy()
        in_grid = np.zeros(n, dtype=bool)
        in_grid[first <= k] = True
        txn_count = np.zeros(n, dtype="int64")
        txn_count[code] = count.to_numpy()
        purchase_count = np.zeros(n, dtype="int64")
        purchase_count[purchases.index.to_numpy()] = purchases.to_numpy()
        np.maximum.at(last_booked, code, booked.to_numpy().astype("datetime64[ns]").astype("int64"))
        grid_months += in_grid
        last_inactive[in_grid & (txn_count == 0)] = k
        if k in slot:
            s = slot[k]
            monthly["count"][:, s] = np.where(in_grid, txn_count, 0)
            monthly["purchases"][:, s] = np.where(in_grid, purchase_count, 0)
            monthly["amount"][code, s] = amount.to_numpy()
            monthly["profit"][code, s] = profit_sum.to_numpy()
            largest[code, s] = by["cents"].max().to_numpy()
            anomalous_count = t[known & anomalous].groupby("code").size()
            monthly["anomalous"][anomalous_count.index.to_numpy(), s] = anomalous_count.to_numpy()
            for name in ("amount", "profit"):
                monthly[name][~in_grid, s] = 0
            largest[~in_grid, s] = np.nan
        else:
            earlier["count"][code] += count.to_numpy()
            earlier["amount"][code] += amount.to_numpy()
            earlier["profit"][code] += profit_sum.to_numpy()
            earlier["purchase_months"][purchase_count > 0] += 1

    # Digital sessions, service contacts, NPS and campaign responses of the files delivered so far.
    progress("digital sessions, service interactions, NPS responses, campaign contacts, accounts")
    nps = []
    for delivered in _months_of(landing, "digital_sessions", month):
        k = _month_index(delivered)
        d = _read(landing, "digital_sessions", delivered, ["customer_id", "started_at", "features_used"])
        d = known_customers(d)
        by = d.groupby("code")
        np.maximum.at(
            last_login,
            by.size().index.to_numpy(),
            by["started_at"].max().to_numpy().astype("datetime64[ns]").astype("int64"),
        )
        if k in slot:
            c = by.size()
            monthly["logins"][c.index.to_numpy(), slot[k]] = c.to_numpy()
            most = by["features_used"].max()
            features_used[most.index.to_numpy(), slot[k]] = most.fillna(-1).astype("int64").to_numpy()
    resolutions = []
    for delivered in _months_of(landing, "service_interactions", month):
        k = _month_index(delivered)
        s = _read(landing, "service_interactions", delivered, ["customer_id", "resolved_at", "kind", "satisfaction"])
        s = known_customers(s)
        if k in slot:
            c = s.groupby("code").size()
            monthly["interactions"][c.index.to_numpy(), slot[k]] = c.to_numpy()
            c = s[s["kind"] == "complaint"].groupby("code").size()
            monthly["complaints"][c.index.to_numpy(), slot[k]] = c.to_numpy()
        complaints = s[(s["kind"] == "complaint") & s["resolved_at"].notna()]
        resolutions.append(complaints.assign(resolved_month=_month_number(complaints["resolved_at"])))
    if resolutions:
        r = pd.concat(resolutions, ignore_index=True)
        r = r[(r["resolved_month"] >= window_first) & (r["resolved_month"] <= m)]
        for k, group in r.groupby("resolved_month"):
            by = group.groupby("code")["satisfaction"]
            monthly["rated"][by.count().index.to_numpy(), slot[int(k)]] = by.count().to_numpy()
            monthly["satisfaction"][by.sum().index.to_numpy(), slot[int(k)]] = (
                by.sum().fillna(0).astype("int64").to_numpy()
            )
    for delivered in _months_of(landing, "nps_responses", month):
        p = _read(landing, "nps_responses", delivered, ["customer_id", "answered_at", "score"])
        p = known_customers(p).assign(delivered=_month_index(delivered))
        # The month's answer is the one answered last; the customer's is the latest month's with a score.
        p = p.sort_values("answered_at").drop_duplicates("code", keep="last")
        nps.append(p[p["score"].notna() & (p["delivered"] >= first[p["code"].to_numpy()])])
    last_nps = np.full(n, np.nan)
    if nps:
        p = pd.concat(nps).sort_values(["delivered", "answered_at"]).drop_duplicates("code", keep="last")
        last_nps[p["code"].to_numpy()] = p["score"].to_numpy()
    response_hours = pd.Series(dtype="float64")
    for delivered in _months_of(landing, "campaign_contacts", month):
        c = _read(landing, "campaign_contacts", delivered, ["customer_id", "sent_at", "responded_at"])
        c = known_customers(c)
        c = c[c["responded_at"].notna() & (c["responded_at"] >= c["sent_at"])]
        c = c.assign(response_month=_month_number(c["responded_at"]))
        c = c[(c["response_month"] > m - 12) & (c["response_month"] <= m)]
        seconds = (c["responded_at"].dt.floor("s") - c["sent_at"].dt.floor("s")).dt.total_seconds()
        hours = pd.Series(np.round(seconds.to_numpy() / 3600.0, 2), index=c["code"].to_numpy())
        response_hours = pd.concat([response_hours, hours])
    median_response = response_hours.groupby(level=0).median() if len(response_hours) else pd.Series(dtype="float64")

    # Product holdings at month end: each account as last delivered, open at month end; AUM from
    # the month's balances.
    account_months = _months_of(landing, "accounts", month)
    holdings = None
    if account_months:
        a = pd.concat(
            [
                _read(
                    landing, "accounts", d, ["account_id", "customer_id", "product_type", "opened_at", "closed_at"]
                ).assign(delivered=_month_index(d))
                for d in account_months
            ],
            ignore_index=True,
        )
        a = a.sort_values("delivered", kind="stable").drop_duplicates("account_id", keep="last")
        opened = pd.to_datetime(a["opened_at"]) <= month_end
        closed = pd.to_datetime(a["closed_at"])
        a = a[opened & (closed.isna() | (closed > month_end))]
        if (landing / "balances" / f"{month}.parquet").exists():
            b = _read(landing, "balances", month, ["account_id", "balance"])
            b = b.assign(cents=_cents(b["balance"]))
            a = a.merge(b[["account_id", "cents"]], on="account_id", how="left")
        else:
            a = a.assign(cents=np.nan)
        a["positive"] = a["cents"].where(a["cents"] > 0, 0).fillna(0)
        by = a.groupby("customer_id")
        holdings = pd.DataFrame(
            {"product_count": by["product_type"].nunique(), "assets_under_management": by["positive"].sum() / 100}
        )
        for product in PRODUCTS:
            holdings[f"holds_{product}"] = (a["product_type"] == product).groupby(a["customer_id"]).any()
        holdings = holdings.reindex(ids)

    # The month's rows: live customers (begun, not closed, an open account or -- without accounts --
    # a transaction or the opening within inactivity_months).
    sum12 = {name: values.sum(axis=1) for name, values in monthly.items()}
    last_booked_at = pd.to_datetime(
        np.where(last_booked == np.iinfo("int64").min, np.datetime64("NaT"), last_booked.astype("datetime64[ns]"))
    )
    opened_at = pd.to_datetime(customers["opened_at"]).to_numpy().astype("datetime64[D]")
    closed_at = (
        pd.to_datetime(customers["closed_at"]).to_numpy().astype("datetime64[D]")
        if "closed_at" in customers
        else np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    )
    month_end_day = np.datetime64(month_end.date(), "D")
    live = (first <= m) & (opened_at <= month_end_day) & (np.isnat(closed_at) | (closed_at > month_end_day))
    if account_months and _month_index(account_months[0]) <= m:
        live &= holdings["product_count"].notna().to_numpy()
    else:
        last_date = np.where(
            np.isnat(last_booked_at.to_numpy()),
            opened_at,
            np.maximum(last_booked_at.to_numpy().astype("datetime64[D]"), opened_at),
        )
        live_month = last_date.astype("datetime64[M]").astype("int64") + 1970 * 12
        live &= (m - live_month) < inactivity

    rows = np.flatnonzero(live)
    grid = np.arange(window_first, m + 1)[None, :] >= first[:, None]  # the customer's grid months in the window
    # Columns counted back from the month: 0 = the month, 1 = the month before, ...
    amount_by_back = np.where(grid, monthly["amount"], 0)[:, ::-1]
    grid_back = grid[:, ::-1]

    def window_sum(name: str, months: int) -> np.ndarray:
        return monthly[name][:, 12 - months :].sum(axis=1)

    amount_previous = np.where(grid_back[:, 1], amount_by_back[:, 1], -1)
    amount_3m = amount_by_back[:, :3].sum(axis=1)
    prior_present = grid_back[:, 3:6].any(axis=1)
    amount_prior_3m = np.where(prior_present, amount_by_back[:, 3:6].sum(axis=1), -1)
    purchase_months_12m = ((monthly["purchases"] > 0) & grid).sum(axis=1)
    repeat_months_12m = ((monthly["purchases"] > 1) & grid).sum(axis=1)
    purchase_months_to_date = earlier["purchase_months"] + purchase_months_12m
    first_processed = _month_index(processed[0])
    opened_month = opened_at.astype("datetime64[M]").astype("int64") + 1970 * 12
    months_observed = m - np.maximum(opened_month, first_processed) + 1
    streak = np.where(last_inactive >= 0, m - last_inactive, grid_months)
    last_activity = np.maximum(last_booked, last_login)  # both start at int64's minimum: never seen
    last_activity_month = np.where(
        last_activity == np.iinfo("int64").min,
        -1,
        last_activity.astype("datetime64[ns]").astype("datetime64[M]").astype("int64") + 1970 * 12,
    )
    recency = (month_end_day - last_booked_at.to_numpy().astype("datetime64[D]")).astype("float64")
    recency[np.isnat(last_booked_at.to_numpy())] = np.nan
    most_features = features_used[:, 9:].max(axis=1)

    out = pd.DataFrame({"customer_id": ids[rows]})
    out["month_start"] = pd.Timestamp(f"{month}-01").date()
    out["month_end"] = month_end.date()
    out["cumulative_transactions"] = (earlier["count"] + sum12["count"])[rows]
    out["cumulative_amount"] = (earlier["amount"] + sum12["amount"])[rows] / 100
    out["cumulative_profit_contribution"] = (earlier["profit"] + sum12["profit"])[rows] / 100
    out["transactions_in_month"] = monthly["count"][rows, 11]
    out["amount_in_month"] = monthly["amount"][rows, 11] / 100
    out["monetary_12m"] = sum12["amount"][rows] / 100
    out["profit_contribution_12m"] = sum12["profit"][rows] / 100
    out["average_ticket_12m"] = _ratio(sum12["amount"][rows] / 100, sum12["count"][rows], 2)
    out["largest_transaction_12m"] = np.where(
        np.isnan(largest[rows]).all(axis=1), np.nan, np.nanmax(np.nan_to_num(largest[rows], nan=-np.inf), axis=1) / 100
    )
    out["repeat_purchase_month_share_12m"] = _ratio(repeat_months_12m[rows], purchase_months_12m[rows], 4)
    out["purchase_month_ratio"] = np.round(purchase_months_to_date[rows] / months_observed[rows], 4)
    if holdings is not None:
        h = holdings.iloc[rows]
        out["assets_under_management"] = h["assets_under_management"].to_numpy()
        out["product_count"] = h["product_count"].to_numpy()
        for product in PRODUCTS:
            out[f"holds_{product}"] = h[f"holds_{product}"].to_numpy()
    else:
        out["assets_under_management"] = np.nan
        out["product_count"] = np.nan
        for product in PRODUCTS:
            out[f"holds_{product}"] = None
    out["spend_change_mom"] = np.round(
        np.where(amount_previous[rows] > 0, amount_by_back[rows, 0] / np.maximum(amount_previous[rows], 1) - 1, np.nan),
        4,
    )
    out["spend_trend_3m"] = np.round(
        np.where(amount_prior_3m[rows] > 0, amount_3m[rows] / np.maximum(amount_prior_3m[rows], 1) - 1, np.nan), 4
    )
    out["anomalous_transactions_in_month"] = monthly["anomalous"][rows, 11]
    out["logins_in_month"] = monthly["logins"][rows, 11]
    out["logins_3m"] = window_sum("logins", 3)[rows]
    out["feature_usage_rate_3m"] = np.round(np.maximum(most_features[rows], 0) / features, 4)
    out["interactions_3m"] = (window_sum("logins", 3) + window_sum("interactions", 3))[rows]
    out["median_response_hours_12m"] = median_response.reindex(rows).to_numpy()
    out["complaints_12m"] = sum12["complaints"][rows]
    out["complaint_satisfaction_12m"] = _ratio(sum12["satisfaction"][rows], sum12["rated"][rows], 2)
    out["last_nps_score"] = last_nps[rows]
    out["nps_class"] = np.select(
        [last_nps[rows] >= 9, last_nps[rows] >= 7, ~np.isnan(last_nps[rows])],
        ["promoter", "passive", "detractor"],
        default=None,
    )
    opened_rows = opened_at[rows]
    out["tenure_months"] = m - (opened_rows.astype("datetime64[M]").astype("int64") + 1970 * 12)
    out["retention_streak_months"] = streak[rows]
    out["months_since_last_activity"] = np.where(last_activity_month[rows] >= 0, m - last_activity_month[rows], np.nan)
    out["recency_days"] = recency[rows]
    out["frequency_12m"] = sum12["count"][rows]
    out["recency_score"] = _score(np.where(np.isnan(recency[rows]), -np.inf, -recency[rows]))
    out["frequency_score"] = _score(sum12["count"][rows].astype("float64"))
    out["monetary_score"] = _score(sum12["amount"][rows].astype("float64"))
    out["rfm_cell"] = (
        out["recency_score"].astype(str) + out["frequency_score"].astype(str) + out["monetary_score"].astype(str)
    )
    out["rfm_segment"] = _segment(out["recency_score"].to_numpy(), out["frequency_score"].to_numpy())
    return out


# Columns the mart rounds from a ratio (DECIMAL casts round half away from zero, numpy half to even):
# they may differ by one unit of their last decimal.
ROUNDED_RATIOS = {
    "average_ticket_12m": 0.01,
    "repeat_purchase_month_share_12m": 0.0001,
    "purchase_month_ratio": 0.0001,
    "spend_change_mom": 0.0001,
    "spend_trend_3m": 0.0001,
    "feature_usage_rate_3m": 0.0001,
    "median_response_hours_12m": 0.01,
    "complaint_satisfaction_12m": 0.01,
}


def disagreements(baseline: pd.DataFrame, mart: pd.DataFrame) -> dict[str, int]:
    """Rows per column where the baseline and the mart's month differ (both ordered by customer)."""
    if list(baseline.columns) != list(mart.columns):
        return {"columns": abs(len(baseline.columns) - len(mart.columns)) or 1}
    if len(baseline) != len(mart) or not (baseline["customer_id"].to_numpy() == mart["customer_id"].to_numpy()).all():
        return {"customer_id": abs(len(baseline) - len(mart)) or 1}
    differing = {}
    for column in mart.columns:
        ours, theirs = baseline[column], mart[column]
        if column in ("month_start", "month_end"):
            wrong = pd.to_datetime(ours).to_numpy() != pd.to_datetime(theirs).to_numpy()
        elif column in ("customer_id", "nps_class", "rfm_cell", "rfm_segment"):
            a, b = ours.astype("object").where(ours.notna(), None), theirs.astype("object").where(theirs.notna(), None)
            wrong = np.array([x != y for x, y in zip(a.map(str), b.map(str), strict=True)])
        else:
            a = pd.to_numeric(ours.astype("object"), errors="raise").astype("float64").to_numpy()
            b = pd.to_numeric(theirs.astype("object"), errors="raise").astype("float64").to_numpy()
            tolerance = ROUNDED_RATIOS.get(column, 0.0) + 1e-9
            wrong = (np.isnan(a) != np.isnan(b)) | (np.abs(np.nan_to_num(a) - np.nan_to_num(b)) > tolerance)
        if wrong.any():
            differing[column] = int(wrong.sum())
    return differing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("landing", type=Path)
    parser.add_argument("month", help="YYYY-MM")
    parser.add_argument("--out", type=Path, help="write the indicators here (Parquet)")
    args = parser.parse_args()
    frame = indicators_for_month(args.landing, args.month, progress=lambda message: print(message, flush=True))
    print(f"{len(frame):,} live customers, {len(frame.columns)} columns for {args.month}", flush=True)
    if args.out:
        frame.to_parquet(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
