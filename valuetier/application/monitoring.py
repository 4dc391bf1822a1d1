"""Monitoring of a scored month: drift and alerts, from the warehouse and the landing folder.

Two questions, each with its own reference, severity and advice:

- **Is this delivery broken?** (`delivery_shift`, `missing_source_file`, `late_source_file`) A
  sudden shift of a delivered column (RAW_COLUMNS) or of an indicator that is steady by construction
  (INDICATOR_WATCH) against the recent months (the three delivered before, by default). A steady
  trend moves little in three months; a seasonal month is judged against the same month a year
  earlier too, and only a shift against both counts; the PSI is judged beyond the sampling noise
  of the month's size (sampling_noise). A major shift is an error, a moderate one a warning;
  advice: check the delivery, naming the source and column.
- **Has the population moved away from what the champion learned?** (`population_drift`,
  `score_drift`) Every indicator the model reads, and predicted value, against the champion's
  training months up to the month. A warning at most, never an error; advice: retrain.
- Beside them: `tier_share_shift` (a tier's share against the previous month: warning),
  `tier_fairness` (a protected group given a pricing or service action at under the four-fifths
  of the most favoured group's rate, beyond chance: warning, from
  evaluation.eval_tier_fairness_monthly) and `high_value_at_risk` (info: an action for the
  relationship manager).

Every PSI measured, breach or not, goes to `monitoring.drift_monthly` (measure `delivery` or
`population`), for the report's drift charts. Re-running a month replaces its rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from valuetier.core.contract import SOURCES, SourceKind
from valuetier.core.months import add_months, parse_month
from valuetier.core.parameters import business_parameters
from valuetier.core.tables import (
    ALERTS_TABLE,
    DRIFT_TABLE,
    FAIRNESS_TABLE,
    INDICATORS_TABLE,
    RAW_SCHEMA,
    REFERENCE_BINS_TABLE,
    TIERS_TABLE,
    ensure_monitoring_tables,
)
from valuetier.core.warehouse import column_names, optional_sources_without_rows, table_exists, transaction
from valuetier.ingest.loader import find_delivery
from valuetier.tiering.training import FEATURES

SEVERITIES = ("info", "warning", "error")  # in rising order
ALERT_KINDS = (
    "delivery_shift",
    "missing_source_file",
    "late_source_file",
    "population_drift",
    "score_drift",
    "tier_share_shift",
    "tier_fairness",
    "high_value_at_risk",
)
# The question each kind answers: a delivery alert sends someone to the data supplier and its
# warnings fail a check; a population alert asks for a retraining and is surfaced, not failed.
DELIVERY_KINDS = ("delivery_shift", "missing_source_file", "late_source_file")
POPULATION_KINDS = ("population_drift", "score_drift", "tier_share_shift")
FAIRNESS_KINDS = ("tier_fairness",)
RETRAIN_JOB = "train_tiering_model"
PSI_FLOOR = 1e-4  # a bin's share is floored here, so an empty bin gives a large finite PSI
PSEUDO_COUNT = 0.5  # added to every bin's count when a month is measured (Jeffreys' smoothing)

# The delivered columns whose distribution must not jump from one month to the next: amounts,
# durations, scores, costs and balances (a unit change, a shifted scale, a changed code list).
RAW_COLUMNS: dict[str, tuple[str, ...]] = {
    "transactions": ("amount", "fee_income", "net_interest_margin", "txn_type", "channel"),
    "digital_sessions": ("duration_s", "features_used", "channel"),
    "service_interactions": ("satisfaction", "kind"),
    "campaign_contacts": ("cost", "channel"),
    "nps_responses": ("score",),
    "balances": ("balance",),
}
CATEGORICAL_COLUMNS = {"txn_type", "channel", "kind"}  # compared by their codes' shares, not by quantile bins

# Which indicators the delivery question watches, and why the others are left to the population
# question: an indicator that grows with the length of the history or the customer's tenure drifts
# on every healthy bank (a cohort ageing, a history filling its 12-month windows), so a sudden
# shift of it says nothing about the delivery. One entry per indicator the model reads.
INDICATOR_WATCH: dict[str, tuple[bool, str]] = {
    "transactions_in_month": (True, "the month's own count: nothing accumulates in it"),
    "amount_in_month": (True, "the month's own amount: a unit change shows at once"),
    "logins_in_month": (True, "the month's own logins: nothing accumulates in it"),
    "tenure_months": (False, "grows by one every month for every customer"),
    "retention_streak_months": (False, "grows by one every month a customer stays active"),
    "months_since_last_activity": (False, "grows every month a customer stays away"),
    "recency_days": (False, "grows every month a customer stays away"),
    "cumulative_amount": (False, "a sum since the first month: grows with the history"),
    "cumulative_profit_contribution": (False, "a sum since the first month: grows with the history"),
    "purchase_month_ratio": (False, "a share of the months since the first activity: its base grows with tenure"),
    "frequency_12m": (False, "a 12-month sum: fills up over the history's first year"),
    "monetary_12m": (False, "a 12-month sum: fills up over the history's first year"),
    "profit_contribution_12m": (False, "a 12-month sum: fills up over the history's first year"),
    "average_ticket_12m": (False, "a 12-month window: moves with the whole window, watched in amount_in_month"),
    "largest_transaction_12m": (False, "a 12-month maximum: grows while the window fills"),
    "repeat_purchase_month_share_12m": (False, "a share of a 12-month window: moves as the window fills"),
    "spend_change_mom": (False, "a change between months: follows the population's own trends"),
    "spend_trend_3m": (False, "a change between months: follows the population's own trends"),
    "assets_under_management": (False, "balances accumulate with tenure; the delivered balances are watched"),
    "product_count": (False, "holdings accumulate with tenure"),
    "holds_savings": (False, "holdings accumulate with tenure"),
    "holds_term_deposit": (False, "holdings accumulate with tenure"),
    "holds_fund": (False, "holdings accumulate with tenure"),
    "holds_insurance": (False, "holdings accumulate with tenure"),
    "holds_credit_card": (False, "holdings accumulate with tenure"),
    "holds_loan": (False, "holdings accumulate with tenure"),
    "holds_wealth": (False, "holdings accumulate with tenure"),
    "logins_3m": (False, "a 3-month window over the population's own trends; watched in logins_in_month"),
    "feature_usage_rate_3m": (False, "a 3-month window; the delivered features_used are watched"),
    "interactions_3m": (False, "a 3-month window of rare events; the delivered interactions are watched"),
    "median_response_hours_12m": (False, "a 12-month window of rare events: fills up over the first year"),
    "complaints_12m": (False, "a 12-month count: fills up over the history's first year"),
    "complaint_satisfaction_12m": (False, "a 12-month window of rare events; delivered satisfaction is watched"),
    "last_nps_score": (False, "the latest answer ever given: more customers have one as the history grows"),
    "recency_score": (False, "a score of recency, which grows while a customer stays away"),
    "frequency_score": (False, "a score of the 12-month frequency, which fills up over the first year"),
    "monetary_score": (False, "a score of the 12-month amount, which fills up over the first year"),
    "clv_12m": (False, "fitted on the history so far: moves as the history grows"),
    "expected_purchases_12m": (False, "fitted on the history so far: moves as the history grows"),
    "probability_alive": (False, "falls with the time since a customer's last purchase"),
}
DELIVERY_INDICATORS = tuple(name for name, (watched, _) in INDICATOR_WATCH.items() if watched)


@dataclass(frozen=True)
class MonitoringRules:
    # The conventional PSI bands: under 0.10 stable, 0.10-0.25 a moderate shift, over 0.25 a major one.
    psi_warning: float = 0.10
    psi_error: float = 0.25
    psi_bins: int = 10  # quantile bins of the reference distribution (null values are a bin of their own)
    recent_months: int = 3  # the delivery question's reference: the months delivered just before
    # A month is compared with the population of the champion's training window from this PSI on
    # (a warning: retrain); under it the population is where the model learned it.
    population_psi: float = 0.25
    tier_share_shift: float = 0.05  # absolute change of a tier's share of customers from the previous month
    late_file_hours: float = 24.0  # a file modified this long after the month's first file is late
    at_risk_churn_probability: float = field(default_factory=lambda: business_parameters().at_risk_churn_probability)

    def __post_init__(self) -> None:
        if not 0 < self.psi_warning <= self.psi_error:
            raise ValueError("monitoring rules: 0 < psi_warning <= psi_error is required")
        if self.psi_bins < 2:
            raise ValueError("monitoring rules: psi_bins must be at least 2")
        if self.recent_months < 1:
            raise ValueError("monitoring rules: recent_months must be at least 1")


@dataclass(frozen=True)
class Alert:
    month_start: date
    kind: str
    subject: str  # the column, feature, tier, source or customer the alert is about
    severity: str
    metric: float | None  # the measured value (PSI, share change, hours, churn probability)
    threshold: float | None  # the value it was judged against
    reason: str

    def as_dict(self) -> dict:
        return {**asdict(self), "month_start": self.month_start.isoformat()}

    @property
    def question(self) -> str:
        if self.kind in DELIVERY_KINDS:
            return "delivery"
        return "population" if self.kind in POPULATION_KINDS else "fairness" if self.kind in FAIRNESS_KINDS else "info"


@dataclass(frozen=True)
class Drift:
    month_start: date
    measure: str  # 'delivery' (against the recent months) or 'population' (against the training window)
    subject: str  # source.column, or the indicator
    psi: float
    reference: str  # the months the distribution is compared with, first..last
    noise: float = 0.0  # the PSI two samples of these sizes can show with no shift at all (sampling_noise)

    @property
    def excess(self) -> float:
        """The PSI beyond sampling noise: what the bands judge."""
        return self.psi - self.noise


@dataclass(frozen=True)
class MonitoringResult:
    month: str
    alerts: list[Alert]
    drift: list[Drift]
    reference: str | None  # the champion's training months the population is compared with

    def count(self, severity: str, question: str | None = None) -> int:
        return sum(a.severity == severity and question in (None, a.question) for a in self.alerts)

    def at_least(self, severity: str) -> list[Alert]:
        rank = SEVERITIES.index(severity)
        return [a for a in self.alerts if SEVERITIES.index(a.severity) >= rank]


def population_stability_index(expected: list[float], actual: list[float], pseudo_count: float = 0.0) -> float:
    """PSI of two binned distributions (counts or shares over the same bins); `pseudo_count` is
    added to every bin's count (monitoring adds PSEUDO_COUNT, so a bin that a small month leaves
    empty by chance weighs as a small share, not as an alarm)."""
    expected = [e + pseudo_count for e in expected]
    actual = [a + pseudo_count for a in actual]
    e_total, a_total = sum(expected), sum(actual)
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_share = max(e / e_total, PSI_FLOOR)
        a_share = max(a / a_total, PSI_FLOOR)
        psi += (a_share - e_share) * math.log(a_share / e_share)
    return psi


def sampling_noise(bins: int, expected_rows: int, actual_rows: int) -> float:
    """The PSI two samples of one distribution can show by chance: PSI is close to a chi-square
    statistic with bins - 1 degrees of freedom times (1/n_expected + 1/n_actual); its mean plus
    four standard deviations (small months have a longer tail than the chi-square's). A month of 70
    NPS answers over 11 scores can show 0.5 with nothing changed; a month of 100,000 amounts 0.0005."""
    freedom = bins - 1
    return (freedom + 4 * math.sqrt(2 * freedom)) * (1 / expected_rows + 1 / actual_rows)


def monitor_month(
    con: duckdb.DuckDBPyConnection,
    month: str,
    training_months: list[str] | None,
    landing: Path,
    rules: MonitoringRules | None = None,
) -> MonitoringResult:
    """Measure a scored month and write its drift and alerts (replacing the month's earlier rows).
    `training_months` are the champion's; without a champion the population is not judged."""
    rules = rules or MonitoringRules()
    start = parse_month(month)
    ensure_monitoring_tables(con)
    delivery = _delivery_drift(con, start, rules)
    reference = _training_reference(con, start, training_months)
    population = _population_drift(con, start, reference, rules) if reference else []
    alerts = [a for a in (_delivery_alert(d, rules) for d in delivery) if a]
    alerts += _population_alerts(population, rules)
    alerts += _tier_share_shifts(con, start, rules)
    alerts += _unfair_actions(con, start)
    alerts += _source_file_alerts(con, month, landing, rules)
    alerts += _high_value_at_risk(con, start, rules)
    alerts.sort(key=lambda a: (-SEVERITIES.index(a.severity), ALERT_KINDS.index(a.kind), a.subject))
    _write(con, start, alerts, delivery + population)
    return MonitoringResult(month, alerts, delivery + population, _span(reference) if reference else None)


def _span(months: list[date]) -> str:
    return f"{months[0].isoformat()[:7]}..{months[-1].isoformat()[:7]}"


def _months_with_rows(con, table: str, month_column: str, before: date) -> list[date]:
    return [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT {month_column} FROM {table} WHERE {month_column} < ? ORDER BY 1", [before]
        ).fetchall()
    ]


def _references(earlier: list[date], start: date, recent: int) -> list[list[date]]:
    """The `recent` months delivered before `start` (none before there are as many), and where the
    history has it the same month a year earlier: a seasonal month must have shifted against both
    to count."""
    if len(earlier) < recent:
        return []  # a month or two is too thin a reference to call a delivery broken
    references = [earlier[-recent:]]
    a_year_before = parse_month(add_months(start.isoformat()[:7], -12))
    if a_year_before in earlier:
        references.append([a_year_before])
    return references


def _delivery_drift(con, start: date, rules: MonitoringRules) -> list[Drift]:
    """Every watched delivered column and steady indicator against its recent months (and a year
    before): the smaller PSI, the one a shift must exceed against both references."""
    measured: list[Drift] = []
    watched = [(f"{RAW_SCHEMA}.{s}", "_delivery_month", s, c) for s, cs in RAW_COLUMNS.items() for c in cs]
    present = column_names(con, "marts", "customer_indicators_monthly")
    watched += [(INDICATORS_TABLE, "month_start", None, c) for c in DELIVERY_INDICATORS if c in present]
    earlier_by_table: dict[str, list[date]] = {}
    for table, month_column, source, column in watched:
        if source is not None and column not in column_names(con, RAW_SCHEMA, source):
            continue  # a source without the column (a delivery without margins, say)
        if table not in earlier_by_table:
            earlier_by_table[table] = _months_with_rows(con, table, month_column, start)
        judged = []
        for reference in _references(earlier_by_table[table], start, rules.recent_months):
            measure = _psi(con, table, month_column, column, start, reference, rules.psi_bins)
            if measure is not None:
                judged.append((measure[0] - measure[1], *measure, _span(reference)))
        if judged:
            _, psi, noise, _ = min(judged)
            subject = f"{source}.{column}" if source else column
            spans = "; ".join(j[3] for j in judged)
            measured.append(Drift(start, "delivery", subject, psi, spans, noise))
    return measured


def _training_reference(con, start: date, training_months: list[str] | None) -> list[date]:
    """The champion's training months up to the month (point in time: a month is never compared
    with later data)."""
    if not training_months:
        return []
    wanted = {parse_month(m) for m in training_months}
    scored = con.execute(f"SELECT DISTINCT month_start FROM {TIERS_TABLE} WHERE month_start <= ? ORDER BY 1", [start])
    return [r[0] for r in scored.fetchall() if r[0] in wanted]


def _population_drift(con, start: date, reference: list[date], rules: MonitoringRules) -> list[Drift]:
    """Every feature of the champion and predicted value against the champion's training months:
    the months' bins come from REFERENCE_BINS_TABLE while those months' rows are unchanged, so a
    month reads its own rows only (at 1,000,000 customers the 6 training months' quantiles and
    counts were 10 s of every month's monitoring)."""
    span = _span(reference)
    present = column_names(con, "marts", "customer_indicators_monthly")
    watched = {INDICATORS_TABLE: [f for f in FEATURES if f in present], TIERS_TABLE: ["predicted_value"]}
    measured = []
    for table, columns in watched.items():
        fingerprints = _fingerprints(con, table, columns, reference, rules.psi_bins)
        for column in columns:
            edges, expected = _reference_bins(con, table, column, reference, fingerprints[column], rules.psi_bins)
            actual = _counts(con, table, "month_start", [start], _bin_sql(column, edges))
            measure = _compare(expected, actual)
            if measure is not None:
                measured.append(Drift(start, "population", column, measure[0], span, measure[1]))
    return measured


def _fingerprints(con, table: str, columns: list[str], months: list[date], bins: int) -> dict[str, str]:
    """Each column's rows of `months`, summed up (row count and the sum of the values' hashes) in
    one scan: kept reference bins are used while it holds."""
    sums = ", ".join(f"sum(hash({c}))" for c in columns)
    row = con.execute(f"SELECT count(*), {sums} FROM {table} WHERE month_start IN ({_months_sql(months)})").fetchone()
    return {c: f"{bins} bins, {row[0]} rows, hash sum {row[i + 1]}" for i, c in enumerate(columns)}


def _reference_bins(
    con, table: str, column: str, months: list[date], fingerprint: str, bins: int
) -> tuple[list[float], dict]:
    """(edges, rows by bin) of a numeric column over `months`: kept from an earlier month with the
    same fingerprint, else computed and kept."""
    key = [table, column, ",".join(m.isoformat()[:7] for m in months)]
    kept = con.execute(
        f"""SELECT edges, bins, counts FROM {REFERENCE_BINS_TABLE}
            WHERE table_name = ? AND column_name = ? AND reference_months = ? AND fingerprint = ?""",
        [*key, fingerprint],
    ).fetchone()
    if kept is not None:
        return list(kept[0]), dict(zip(kept[1], kept[2], strict=True))
    edges = _edges(con, table, "month_start", column, months, bins)
    counts = _counts(con, table, "month_start", months, _bin_sql(column, edges))
    with transaction(con):
        con.execute(
            f"DELETE FROM {REFERENCE_BINS_TABLE} WHERE table_name = ? AND column_name = ? AND reference_months = ?",
            key,
        )
        con.execute(
            f"INSERT INTO {REFERENCE_BINS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
            [*key, fingerprint, edges, list(counts), list(counts.values())],
        )
    return edges, counts


def _psi(
    con, table: str, month_column: str, column: str, start: date, reference: list[date], bins: int
) -> tuple[float, float] | None:
    """(PSI, its sampling noise) of a column's month against its reference months: over the
    reference's quantile bins, or over the codes of a categorical column."""
    edges = None if column in CATEGORICAL_COLUMNS else _edges(con, table, month_column, column, reference, bins)
    bin_of = _bin_sql(column, edges)
    return _compare(
        _counts(con, table, month_column, reference, bin_of), _counts(con, table, month_column, [start], bin_of)
    )


def _months_sql(months: list[date]) -> str:
    return ", ".join(f"DATE '{m}'" for m in months)


def _edges(con, table: str, month_column: str, column: str, months: list[date], bins: int) -> list[float]:
    """The inner quantiles of a numeric column over `months`: the edges of its `bins` bins."""
    quantiles = ", ".join(str(i / bins) for i in range(1, bins))
    edges = con.execute(
        f"""SELECT quantile_cont(CAST({column} AS DOUBLE), [{quantiles}]) FROM {table}
            WHERE {month_column} IN ({_months_sql(months)})"""
    ).fetchone()[0]
    return sorted({float(e) for e in edges or []})


def _bin_sql(column: str, edges: list[float] | None) -> str:
    """Each value's bin: how many edges it reaches, null values -1 (booleans and decimals as
    doubles); without edges, a categorical column's code, null values '(null)'."""
    if edges is None:
        return f"coalesce(CAST({column} AS VARCHAR), '(null)')"
    value = f"CAST({column} AS DOUBLE)"
    steps = " + ".join([f"CAST({value} >= {e!r} AS INTEGER)" for e in edges] or ["0"])
    return f"CASE WHEN {column} IS NULL THEN -1 ELSE {steps} END"


def _counts(con, table: str, month_column: str, months: list[date], bin_of: str) -> dict:
    """Rows by bin, in bin order: a GROUP BY alone comes out in the threads' order, which would make
    the kept reference bins differ from run to run."""
    rows = con.execute(
        f"""SELECT {bin_of} AS bin, count(*) FROM {table} WHERE {month_column} IN ({_months_sql(months)})
            GROUP BY bin ORDER BY bin"""
    ).fetchall()
    return dict(rows)


def _compare(expected: dict, actual: dict) -> tuple[float, float] | None:
    """(PSI, its sampling noise) of the rows by bin of a month against its reference, over the bins
    either has, in bin order."""
    bins = sorted(set(expected) | set(actual))
    expected_counts, actual_counts = [expected.get(b, 0) for b in bins], [actual.get(b, 0) for b in bins]
    if not sum(expected_counts) or not sum(actual_counts) or (len(bins) == 1 and bins[0] in (-1, "(null)")):
        return None  # nothing to compare, or a column that is always null (a source not delivered)
    psi = population_stability_index(expected_counts, actual_counts, PSEUDO_COUNT)
    return round(psi, 6), round(sampling_noise(len(bins), sum(expected_counts), sum(actual_counts)), 6)


def _delivery_alert(d: Drift, rules: MonitoringRules) -> Alert | None:
    if d.excess < rules.psi_warning:
        return None
    major = d.excess >= rules.psi_error
    where = (
        f"the {d.subject.split('.')[0]} delivery's column {d.subject.split('.')[1]}"
        if "." in d.subject
        else f"indicator {d.subject}"
    )
    return Alert(
        d.month_start,
        "delivery_shift",
        d.subject,
        "error" if major else "warning",
        d.psi,
        rules.psi_error if major else rules.psi_warning,
        f"{where} shifted suddenly against {d.reference}: PSI {d.psi:.3f}, {d.excess:.3f} over its sampling "
        f"noise (from {rules.psi_error if major else rules.psi_warning} a {'major' if major else 'moderate'} shift). "
        "Check the delivery for a changed unit, scale or code list before trusting this month's tiers",
    )


def _population_alerts(drift: list[Drift], rules: MonitoringRules) -> list[Alert]:
    """One warning for the indicators that moved away from the training window (the most moved
    named), one for predicted value: the advice is the same for all of them, retrain."""
    moved = sorted((d for d in drift if d.excess >= rules.population_psi), key=lambda d: (-d.excess, d.subject))
    alerts = []
    for kind, group in (
        ("population_drift", [d for d in moved if d.subject != "predicted_value"]),
        ("score_drift", [d for d in moved if d.subject == "predicted_value"]),
    ):
        if not group:
            continue
        top = group[0]
        named = ", ".join(f"{d.subject} (PSI {d.psi:.2f})" for d in group[:5])
        what = (
            "predicted value has"
            if kind == "score_drift"
            else f"{len(group)} indicators the model reads have"
            if len(group) > 1
            else "1 indicator the model reads has"
        )
        alerts.append(
            Alert(
                top.month_start,
                kind,
                top.subject,
                "warning",
                top.psi,
                rules.population_psi,
                f"{what} moved away from the champion's training months {top.reference}: {named}"
                f"{', ...' if len(group) > 5 else ''}. The population changed, not the delivery: retrain the model "
                f"(the {RETRAIN_JOB} job) so the tiers rank today's customers",
            )
        )
    return alerts


def _tier_share_shifts(con, start: date, rules: MonitoringRules) -> list[Alert]:
    rows = con.execute(
        f"""WITH shares AS (
                SELECT month_start, value_tier, count(*) / sum(count(*)) OVER (PARTITION BY month_start) AS share
                FROM {TIERS_TABLE}
                WHERE month_start = DATE '{start}'
                   OR month_start = (SELECT max(month_start) FROM {TIERS_TABLE} WHERE month_start < DATE '{start}')
                GROUP BY month_start, value_tier)
            SELECT coalesce(now.value_tier, before.value_tier), coalesce(now.share, 0), coalesce(before.share, 0)
            FROM (SELECT * FROM shares WHERE month_start = DATE '{start}') AS now
            FULL JOIN (SELECT * FROM shares WHERE month_start < DATE '{start}') AS before USING (value_tier)
            WHERE EXISTS (SELECT 1 FROM shares WHERE month_start < DATE '{start}')
            ORDER BY 1"""
    ).fetchall()
    return [
        Alert(
            start,
            "tier_share_shift",
            tier,
            "warning",
            round(now - before, 6),
            rules.tier_share_shift,
            f"the {tier} tier holds {now:.1%} of the month's customers against {before:.1%} the month before "
            f"(a move of {abs(now - before):.1%}, over {rules.tier_share_shift:.0%})",
        )
        for tier, now, before in rows
        if abs(now - before) >= rules.tier_share_shift
    ]


def _source_file_alerts(con, month: str, landing: Path, rules: MonitoringRules) -> list[Alert]:
    start = parse_month(month)
    alerts = []
    # A required source cannot be missing here: ingestion refused the month.
    for name in optional_sources_without_rows(con, month, month):
        if SOURCES[name].kind is SourceKind.ENTITY:
            continue  # accounts deliver only what changed: no file can mean no change
        before = con.execute(
            f"SELECT EXISTS (SELECT 1 FROM {RAW_SCHEMA}.{name} WHERE _delivery_month < DATE '{start}')"
        ).fetchone()[0]
        if before:
            file = find_delivery(landing, name, month)
            found = f"{file} loaded no valid row" if file else f"no file {landing / name / month}.parquet (or .csv)"
            alerts.append(
                Alert(
                    start,
                    "missing_source_file",
                    name,
                    "error",
                    None,
                    None,
                    f"{name} was delivered in earlier months but {found}; its indicators are null this "
                    "month. Deliver the file and run the month again",
                )
            )
    modified = {}
    for source in SOURCES:
        file = find_delivery(landing, source, month)
        if file is not None:
            modified[source] = file.stat().st_mtime
    if modified:
        first = min(modified.values())
        for source, at in sorted(modified.items()):
            hours = (at - first) / 3600
            if hours >= rules.late_file_hours:
                alerts.append(
                    Alert(
                        start,
                        "late_source_file",
                        source,
                        "warning",
                        round(hours, 2),
                        rules.late_file_hours,
                        f"{source}'s file for {month} arrived {hours:.1f} hours after the month's first file "
                        f"(late from {rules.late_file_hours:g} hours): a run before it came used none of it",
                    )
                )
    return alerts


def _unfair_actions(con, start: date) -> list[Alert]:
    """One warning per protected group whose share of a reviewed pricing or service action is under
    the four-fifths of the most favoured group's, even at the ratio's upper bound (the evaluation's
    below_min_ratio): naming the attribute, the group and each action, worst first."""
    if not table_exists(con, *FAIRNESS_TABLE.split(".")):
        return []
    rows = con.execute(
        f"""SELECT attribute, attribute_group, outcome_kind || ':' || outcome, outcome_share, favoured_group,
                   favoured_share, disparity_ratio, disparity_ratio_upper, customers
            FROM {FAIRNESS_TABLE} WHERE month_start = ? AND below_min_ratio
            ORDER BY attribute, attribute_group, disparity_ratio, outcome_kind, outcome""",
        [start],
    ).fetchall()
    by_group: dict[tuple[str, str], list] = {}
    for row in rows:
        by_group.setdefault((row[0], row[1]), []).append(row)
    threshold = business_parameters().fairness_min_ratio
    return [
        Alert(
            start,
            "tier_fairness",
            f"{attribute}={group}",
            "warning",
            float(min(r[6] for r in actions)),
            threshold,
            f"{attribute} {group!r} ({actions[0][8]:,} customers) is given "
            + "; ".join(
                f"{action} at {ratio:.2f} of the rate of {favoured!r} ({share:.1%} against {favoured_share:.1%}, "
                f"at most {upper:.2f} beyond chance)"
                for _, _, action, share, favoured, favoured_share, ratio, upper, _ in actions
            )
            + f": under the four-fifths rule ({threshold}); review the playbook's rules for these actions",
        )
        for (attribute, group), actions in by_group.items()
    ]


def _high_value_at_risk(con, start: date, rules: MonitoringRules) -> list[Alert]:
    rows = con.execute(
        f"""SELECT customer_id, churn_probability, predicted_value FROM {TIERS_TABLE}
            WHERE month_start = DATE '{start}' AND value_tier = 'high' AND churn_probability >= ?
            ORDER BY customer_id""",
        [rules.at_risk_churn_probability],
    ).fetchall()
    return [
        Alert(
            start,
            "high_value_at_risk",
            customer,
            "info",
            round(churn, 4),
            rules.at_risk_churn_probability,
            f"high-tier customer (predicted value {value:,.2f}) with churn probability {churn:.0%}: "
            "a retention contact is due",
        )
        for customer, churn, value in rows
    ]


def _write(con, start: date, alerts: list[Alert], drift: list[Drift]) -> None:
    with transaction(con):
        for table in (ALERTS_TABLE, DRIFT_TABLE):
            con.execute(f"DELETE FROM {table} WHERE month_start = ?", [start])
        if alerts:
            con.executemany(
                f"INSERT INTO {ALERTS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(a.month_start, a.kind, a.subject, a.severity, a.metric, a.threshold, a.reason) for a in alerts],
            )
        if drift:
            con.executemany(
                f"INSERT INTO {DRIFT_TABLE} VALUES (?, ?, ?, ?, ?)",
                [(d.month_start, d.measure, d.subject, d.psi, d.reference) for d in drift],
            )


def monitoring_summary(con: duckdb.DuckDBPyConnection) -> str | None:
    """The run summary's lines: delivery errors and warnings over every monitored month (a healthy
    history has none), and the latest month's population warnings with their advice."""
    months = [r[0] for r in con.execute(f"SELECT DISTINCT month_start FROM {TIERS_TABLE} ORDER BY 1").fetchall()]
    if not months:
        return None
    first, last = months[0].isoformat()[:7], months[-1].isoformat()[:7]
    errors, warnings, months_flagged = con.execute(
        f"""SELECT count(*) FILTER (WHERE severity = 'error'),
                   count(*) FILTER (WHERE severity = 'warning' AND list_contains(?, kind)),
                   count(DISTINCT month_start) FILTER (WHERE severity = 'error' OR
                       (severity = 'warning' AND list_contains(?, kind)))
            FROM {ALERTS_TABLE}""",
        [list(DELIVERY_KINDS), list(DELIVERY_KINDS)],
    ).fetchone()
    lines = [
        f"deliveries {first}..{last}: {errors} errors, {warnings} warnings "
        + (
            "(every month's delivery looks whole)"
            if not months_flagged
            else f"in {months_flagged} of {len(months)} months"
        )
    ]
    latest = con.execute(
        f"""SELECT kind, reason FROM {ALERTS_TABLE} WHERE month_start = ?
            AND list_contains(?, kind) AND severity = 'warning' ORDER BY kind""",
        [months[-1], list(POPULATION_KINDS)],
    ).fetchall()
    lines.append(f"population {last}: " + ("; ".join(reason for _, reason in latest) if latest else "no warning"))
    lines.append(f"fairness {last}: {fairness_summary(con, months[-1])}")
    return "\n".join(lines)


def fairness_summary(con: duckdb.DuckDBPyConnection, start: date) -> str:
    """The month's fairness review in a line: the protected groups warned of, or that none is, or
    which protected attributes the delivery does not carry."""
    flagged = con.execute(
        f"SELECT subject FROM {ALERTS_TABLE} WHERE month_start = ? AND kind = 'tier_fairness' ORDER BY subject",
        [start],
    ).fetchall()
    missing = missing_fairness_attributes(con, start)
    text = (
        f"{len(flagged)} protected groups under the four-fifths rule ({', '.join(f for (f,) in flagged)})"
        if flagged
        else "no protected group under the four-fifths rule"
    )
    return text + (f"; not reviewable, the delivery does not carry it: {', '.join(missing)}" if missing else "")


def missing_fairness_attributes(con: duckdb.DuckDBPyConnection, start: date) -> list[str]:
    """The protected attributes (var fairness_protected_attributes) the month's fairness review has
    no group for: the delivery does not carry them (no birth date for the age band, no city)."""
    protected = business_parameters().fairness_protected_attributes
    if not table_exists(con, *FAIRNESS_TABLE.split(".")):
        return list(protected)
    rows = con.execute(f"SELECT DISTINCT attribute FROM {FAIRNESS_TABLE} WHERE month_start = ?", [start]).fetchall()
    present = {attribute for (attribute,) in rows}
    return [a for a in protected if a not in present]
