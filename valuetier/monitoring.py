"""Monitoring of a scored month: drift and alerts, from the warehouse and the landing folder.

Five kinds of alert, each a row of `monitoring.alerts` with a severity and a readable reason:

- feature_drift: an indicator the model reads has shifted against the champion's training window
  (population stability index over the window's deciles), or, for a month before the window,
  against the previous month;
- score_drift: the distribution of predicted value has shifted the same way;
- tier_share_shift: a tier's share of the month's customers moved against the previous month;
- missing_source_file / late_source_file: an event or snapshot source delivered in earlier months
  loaded nothing this month, or its file arrived long after the month's first file;
- high_value_at_risk: a high-tier customer whose churn probability is over the at-risk threshold
  (severity info: an action for the relationship manager, not an operational problem).

Every PSI measured, breach or not, goes to `monitoring.drift_monthly`, for the report's drift chart.
Re-running a month replaces its rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import duckdb

from valuetier.contract import SOURCES, SourceKind
from valuetier.ingest import RAW_SCHEMA, find_delivery
from valuetier.months import parse_month
from valuetier.scoring import TIERS_TABLE, ScoringRules
from valuetier.training import FEATURES
from valuetier.warehouse import optional_sources_without_rows, transaction

SCHEMA = "monitoring"
ALERTS_TABLE = f"{SCHEMA}.alerts"
DRIFT_TABLE = f"{SCHEMA}.drift_monthly"
INDICATORS_TABLE = "marts.customer_indicators_monthly"
SEVERITIES = ("info", "warning", "error")  # in rising order
ALERT_KINDS = (
    "feature_drift",
    "score_drift",
    "tier_share_shift",
    "missing_source_file",
    "late_source_file",
    "high_value_at_risk",
)
PSI_FLOOR = 1e-4  # a bin's share is floored here, so an empty bin gives a large finite PSI


@dataclass(frozen=True)
class MonitoringRules:
    # The conventional PSI bands: under 0.10 stable, 0.10-0.25 a moderate shift, over 0.25 a major one.
    psi_warning: float = 0.10
    psi_error: float = 0.25
    psi_bins: int = 10  # quantile bins of the reference distribution (null values are a bin of their own)
    tier_share_shift: float = 0.05  # absolute change of a tier's share of customers from the previous month
    late_file_hours: float = 24.0  # a file modified this long after the month's first file is late
    at_risk_churn_probability: float = ScoringRules.churn_risk

    def __post_init__(self) -> None:
        if not 0 < self.psi_warning <= self.psi_error:
            raise ValueError("monitoring rules: 0 < psi_warning <= psi_error is required")
        if self.psi_bins < 2:
            raise ValueError("monitoring rules: psi_bins must be at least 2")


@dataclass(frozen=True)
class Alert:
    month_start: date
    kind: str
    subject: str  # the feature, tier, source or customer the alert is about
    severity: str
    metric: float | None  # the measured value (PSI, share change, hours, churn probability)
    threshold: float | None  # the value it was judged against
    reason: str

    def as_dict(self) -> dict:
        return {**asdict(self), "month_start": self.month_start.isoformat()}


@dataclass(frozen=True)
class Drift:
    month_start: date
    measure: str  # 'feature' or 'score'
    subject: str
    psi: float
    reference: str  # the months the distribution is compared with, first..last


@dataclass(frozen=True)
class MonitoringResult:
    month: str
    alerts: list[Alert]
    drift: list[Drift]
    reference: str | None

    def count(self, severity: str) -> int:
        return sum(a.severity == severity for a in self.alerts)

    def at_least(self, severity: str) -> list[Alert]:
        rank = SEVERITIES.index(severity)
        return [a for a in self.alerts if SEVERITIES.index(a.severity) >= rank]


def population_stability_index(expected: list[float], actual: list[float]) -> float:
    """PSI of two binned distributions (counts or shares over the same bins)."""
    e_total, a_total = sum(expected), sum(actual)
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_share = max(e / e_total, PSI_FLOOR)
        a_share = max(a / a_total, PSI_FLOOR)
        psi += (a_share - e_share) * math.log(a_share / e_share)
    return psi


def ensure_monitoring_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {ALERTS_TABLE} (
            month_start DATE NOT NULL, kind VARCHAR NOT NULL, subject VARCHAR NOT NULL, severity VARCHAR NOT NULL,
            metric DOUBLE, threshold DOUBLE, reason VARCHAR NOT NULL)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {DRIFT_TABLE} (
            month_start DATE NOT NULL, measure VARCHAR NOT NULL, subject VARCHAR NOT NULL, psi DOUBLE NOT NULL,
            reference VARCHAR NOT NULL)"""
    )


def monitor_month(
    con: duckdb.DuckDBPyConnection,
    month: str,
    training_months: list[str] | None,
    landing: Path,
    rules: MonitoringRules | None = None,
) -> MonitoringResult:
    """Measure a scored month and write its drift and alerts (replacing the month's earlier rows).
    `training_months` are the champion's; without a champion, drift is measured against the
    previous month."""
    rules = rules or MonitoringRules()
    start = parse_month(month)
    reference = _reference_months(con, start, training_months)
    alerts: list[Alert] = []
    drift: list[Drift] = []
    if reference:
        span = f"{reference[0].isoformat()[:7]}..{reference[-1].isoformat()[:7]}"
        for feature in _indicator_features(con):
            psi = _psi(con, INDICATORS_TABLE, feature, start, reference, rules.psi_bins)
            if psi is not None:
                drift.append(Drift(start, "feature", feature, psi, span))
        psi = _psi(con, TIERS_TABLE, "predicted_value", start, reference, rules.psi_bins)
        if psi is not None:
            drift.append(Drift(start, "score", "predicted_value", psi, span))
        alerts += [_drift_alert(d, rules) for d in drift if d.psi >= rules.psi_warning]
    alerts += _tier_share_shifts(con, start, rules)
    alerts += _source_file_alerts(con, month, landing, rules)
    alerts += _high_value_at_risk(con, start, rules)
    alerts.sort(key=lambda a: (-SEVERITIES.index(a.severity), ALERT_KINDS.index(a.kind), a.subject))
    _write(con, start, alerts, drift)
    return MonitoringResult(month, alerts, drift, f"{reference[0]}..{reference[-1]}" if reference else None)


def _reference_months(con, start: date, training_months: list[str] | None) -> list[date]:
    """The champion's training months up to the month (point in time: a month is never compared
    with later data), else the previous scored month."""
    scored = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT month_start FROM {TIERS_TABLE} WHERE month_start <= ? ORDER BY 1", [start]
        ).fetchall()
    ]
    if training_months:
        wanted = {parse_month(m) for m in training_months}
        held = [m for m in scored if m in wanted]
        if held:
            return held
    earlier = [m for m in scored if m < start]
    return earlier[-1:]


def _indicator_features(con) -> list[str]:
    columns = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
            "AND table_name = 'customer_indicators_monthly'"
        ).fetchall()
    }
    return [f for f in FEATURES if f in columns]


def _psi(con, table: str, column: str, start: date, reference: list[date], bins: int) -> float | None:
    """PSI of a column's month against its reference months, over the reference's quantile bins."""
    months = ", ".join(f"DATE '{m}'" for m in reference)
    value = f"CAST({column} AS DOUBLE)"  # booleans and decimals too
    quantiles = ", ".join(str(i / bins) for i in range(1, bins))
    edges = con.execute(
        f"SELECT quantile_cont({value}, [{quantiles}]) FROM {table} WHERE month_start IN ({months})"
    ).fetchone()[0]
    edges = sorted({float(e) for e in edges or []})
    # Each value's bin: how many edges it reaches; null values are bin -1.
    bin_of = "CASE WHEN {c} IS NULL THEN -1 ELSE {steps} END".format(
        c=column, steps=" + ".join([f"CAST({value} >= {e!r} AS INTEGER)" for e in edges] or ["0"])
    )
    counts = con.execute(
        f"""SELECT {bin_of} AS bin,
                   count(*) FILTER (WHERE month_start IN ({months})) AS expected,
                   count(*) FILTER (WHERE month_start = DATE '{start}') AS actual
            FROM {table} WHERE month_start IN ({months}) OR month_start = DATE '{start}'
            GROUP BY bin ORDER BY bin"""
    ).fetchall()
    expected, actual = [r[1] for r in counts], [r[2] for r in counts]
    if not sum(expected) or not sum(actual) or (len(counts) == 1 and counts[0][0] == -1):
        return None  # nothing to compare, or a column that is always null (a source not delivered)
    return round(population_stability_index(expected, actual), 6)


def _drift_alert(d: Drift, rules: MonitoringRules) -> Alert:
    major = d.psi >= rules.psi_error
    what = "indicator" if d.measure == "feature" else "score"
    return Alert(
        d.month_start,
        f"{d.measure}_drift",
        d.subject,
        "error" if major else "warning",
        d.psi,
        rules.psi_error if major else rules.psi_warning,
        f"{what} {d.subject} shifted against {d.reference}: PSI {d.psi:.3f} "
        f"(>= {rules.psi_error if major else rules.psi_warning} is a {'major' if major else 'moderate'} shift); "
        "check the delivery for a changed definition or unit before trusting this month's tiers",
    )


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
    ensure_monitoring_tables(con)
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
