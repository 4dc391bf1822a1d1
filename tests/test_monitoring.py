"""Monitoring: drift, alerts and the notifier.

The detectors on a stationary synthetic bank in a real DuckDB file (the generated bank's first
year is not stationary: its 12-month indicators fill up month by month). A clean month stays quiet,
and so do a steady trend and a seasonal month that came a year before too; an injected unit change
is a delivery error, a moderate shift a delivery warning; a population that moved away from the
training window is a warning that asks for a retraining; a missing file, a late file and a tier
shift fire. Then the pipeline's own run: the checks Dagster shows and what the notifier sent agree
with the alerts mart. tests/test_alert_precision.py measures all of it through the real pipeline."""

import http.server
import json
import os
import threading
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from valuetier.application.monitoring import (
    ALERTS_TABLE,
    DRIFT_TABLE,
    INDICATOR_WATCH,
    PSEUDO_COUNT,
    MonitoringRules,
    monitor_month,
    population_stability_index,
    sampling_noise,
)
from valuetier.application.notify import FileNotifier, NotifyError, WebhookNotifier, notifier
from valuetier.core.tables import REFERENCE_BINS_TABLE
from valuetier.ingest.loader import ensure_raw_tables
from valuetier.tiering.training import FEATURES

MONTHS = [f"{2024 + (m - 1) // 12}-{(m - 1) % 12 + 1:02d}" for m in range(6, 21)]  # 2024-06..2025-08
TRAINING = MONTHS[:3]
LAST = MONTHS[-1]
CUSTOMERS = 3000
INDICATORS = "monetary_12m, frequency_12m, recency_days, last_nps_score, amount_in_month"


def month_frame(month: str, seed: int, monetary_scale: float = 1.0, high_share: float = 0.1) -> pd.DataFrame:
    """One month of a bank whose customers' distributions do not change from month to month."""
    rng = np.random.default_rng([seed, MONTHS.index(month)])
    monetary = rng.lognormal(8, 1, CUSTOMERS) * monetary_scale
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(CUSTOMERS)],
            "month_start": pd.Timestamp(month + "-01"),
            "monetary_12m": monetary,
            "frequency_12m": rng.poisson(20, CUSTOMERS),
            "recency_days": rng.integers(0, 90, CUSTOMERS),
            "last_nps_score": np.where(rng.random(CUSTOMERS) < 0.7, np.nan, rng.integers(0, 11, CUSTOMERS)),
            "amount_in_month": rng.lognormal(6, 1, CUSTOMERS) * monetary_scale,
            "churn_probability": rng.beta(1, 9, CUSTOMERS),
        }
    )
    frame["predicted_value"] = monetary * 0.1 * rng.lognormal(0, 0.2, CUSTOMERS)
    rank = frame.predicted_value.rank(ascending=False, method="first")
    frame["value_tier"] = np.where(
        rank <= high_share * CUSTOMERS, "high", np.where(rank <= (high_share + 0.3) * CUSTOMERS, "mid", "low")
    )
    return frame


@pytest.fixture
def stationary_bank(tmp_path):
    """A warehouse of fifteen stationary months and their landing files, all delivered at one time."""
    warehouse, landing = tmp_path / "w.duckdb", tmp_path / "landing"
    con = duckdb.connect(str(warehouse))
    ensure_raw_tables(con)
    con.register("frames", pd.concat([month_frame(m, seed=1) for m in MONTHS]))
    con.execute("CREATE SCHEMA marts")
    con.execute(
        "CREATE TABLE marts.customer_indicators_monthly AS SELECT customer_id, CAST(month_start AS DATE) AS "
        f"month_start, {INDICATORS} FROM frames"
    )
    con.execute(
        "CREATE TABLE marts.customer_tiers AS SELECT customer_id, CAST(month_start AS DATE) AS month_start, "
        "value_tier, predicted_value, churn_probability FROM frames"
    )
    delivered = (1_767_225_600, 1_767_225_600)  # every file of every month at the same moment
    for month in MONTHS:
        for source in ("transactions", "digital_sessions"):
            con.execute(
                f"INSERT INTO raw.{source} (_delivery_month, _source_file, _source_row) VALUES (?, ?, 1)",
                [date.fromisoformat(month + "-01"), f"{source}/{month}.parquet"],
            )
            file = landing / source / f"{month}.parquet"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(b"")
            os.utime(file, delivered)
    yield con, landing
    con.close()


def replace_month(con, frame: pd.DataFrame) -> None:
    month = frame.month_start.iloc[0].date()
    for table, columns in (
        ("customer_indicators_monthly", INDICATORS),
        ("customer_tiers", "value_tier, predicted_value, churn_probability"),
    ):
        con.execute(f"DELETE FROM marts.{table} WHERE month_start = ?", [month])
        con.register("frame", frame)
        con.execute(f"INSERT INTO marts.{table} SELECT customer_id, CAST(month_start AS DATE), {columns} FROM frame")


def warnings_and_errors(result):
    return {(a.kind, a.subject): a for a in result.at_least("warning")}


def test_population_stability_index_by_hand():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert population_stability_index([50, 50], [25, 75]) == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5))
    assert population_stability_index([10, 20, 30], [1, 2, 3]) == pytest.approx(0)
    assert population_stability_index([10, 0], [5, 5]) > 1  # an empty reference bin: large, not infinite


def test_sampling_noise_bounds_what_chance_shows():
    """Two samples of one distribution: their PSI stays under the noise bound (999 draws of 70
    scores against 210), while the bound vanishes for large months."""
    rng = np.random.default_rng(3)
    shares = np.full(11, 1 / 11)
    bound = sampling_noise(11, 210, 70)
    psis = [
        population_stability_index(list(rng.multinomial(210, shares)), list(rng.multinomial(70, shares)), PSEUDO_COUNT)
        for _ in range(999)
    ]
    assert np.mean(psis) < bound / 2 and np.quantile(psis, 0.99) < bound
    assert sampling_noise(10, 300_000, 100_000) < 0.001


def test_every_indicator_the_model_reads_is_placed_with_a_reason():
    assert set(INDICATOR_WATCH) == set(FEATURES)
    assert all(why for _, why in INDICATOR_WATCH.values())
    watched = {name for name, (delivery, _) in INDICATOR_WATCH.items() if delivery}
    # What grows with the history or the tenure is never asked whether the delivery broke.
    assert not watched & {"tenure_months", "retention_streak_months", "cumulative_amount", "purchase_month_ratio"}
    assert watched == {"transactions_in_month", "amount_in_month", "logins_in_month"}


def test_a_clean_month_stays_quiet(stationary_bank):
    con, landing = stationary_bank
    result = monitor_month(con, LAST, TRAINING, landing)
    assert warnings_and_errors(result) == {}
    drift = con.execute(f"SELECT measure, subject, psi, reference FROM {DRIFT_TABLE} ORDER BY 1, 2").fetchall()
    assert [(m, s) for m, s, _, _ in drift] == [
        ("delivery", "amount_in_month"),
        ("population", "amount_in_month"),
        ("population", "frequency_12m"),
        ("population", "last_nps_score"),
        ("population", "monetary_12m"),
        ("population", "predicted_value"),
        ("population", "recency_days"),
    ]
    assert all(psi < 0.05 for _, _, psi, _ in drift)
    # The delivery against the three months before, and the same months a year earlier.
    assert drift[0][3] == "2025-05..2025-07; 2024-08..2024-08"
    assert {ref for m, _, _, ref in drift if m == "population"} == {"2024-06..2024-08"}
    # High-tier customers at risk are listed for the relationship managers, as information.
    at_risk = con.execute(f"""SELECT subject FROM {ALERTS_TABLE} WHERE kind = 'high_value_at_risk'
                              AND severity = 'info' ORDER BY 1""").fetchall()
    expected = con.execute(f"""SELECT customer_id FROM marts.customer_tiers WHERE month_start = DATE '{LAST}-01'
                               AND value_tier = 'high' AND churn_probability >= 0.3 ORDER BY 1""").fetchall()
    assert at_risk == expected and len(expected) > 0
    assert con.execute(f"SELECT count(*) FROM {ALERTS_TABLE}").fetchone()[0] == len(result.alerts) == len(expected)


def test_a_unit_change_is_a_delivery_error_and_a_moved_population_a_warning(stationary_bank):
    con, landing = stationary_bank
    # The month's amounts delivered in cents instead of yuan.
    replace_month(con, month_frame(LAST, seed=1, monetary_scale=100))
    fired = warnings_and_errors(monitor_month(con, LAST, TRAINING, landing))
    assert set(fired) == {
        ("delivery_shift", "amount_in_month"),
        ("population_drift", "amount_in_month"),  # one alert, named for the indicator that moved most
        ("score_drift", "predicted_value"),
    }
    unit = fired[("delivery_shift", "amount_in_month")]
    assert unit.severity == "error" and unit.metric >= 0.25 and "Check the delivery" in unit.reason
    assert "2025-05..2025-07" in unit.reason
    moved = fired[("population_drift", "amount_in_month")]
    assert moved.severity == "warning" and "train_tiering_model" in moved.reason
    assert "2 indicators" in moved.reason and "monetary_12m" in moved.reason and "2024-06..2024-08" in moved.reason
    # A moderate shift of a delivered measure (amounts up by half) is a delivery warning.
    replace_month(con, month_frame(LAST, seed=1, monetary_scale=1.5))
    fired = warnings_and_errors(monitor_month(con, LAST, TRAINING, landing))
    assert fired[("delivery_shift", "amount_in_month")].severity == "warning"
    assert {a.severity for (kind, _), a in fired.items() if kind != "delivery_shift"} <= {"warning"}


def test_the_training_months_bins_are_kept_until_their_rows_change(stationary_bank):
    con, landing = stationary_bank

    def population(result):
        return {d.subject: d.psi for d in result.drift if d.measure == "population"}

    first = population(monitor_month(con, LAST, TRAINING, landing))
    kept = con.execute(f"SELECT column_name, reference_months FROM {REFERENCE_BINS_TABLE} ORDER BY 1").fetchall()
    assert kept == [(column, "2024-06,2024-07,2024-08") for column in sorted(first)]
    # Kept in bin order, so that the same months store the same bytes on every run.
    stored = [bins for (bins,) in con.execute(f"SELECT bins FROM {REFERENCE_BINS_TABLE}").fetchall()]
    assert all(bins == sorted(bins) for bins in stored), stored
    # A later run reads the kept bins, not the training months' rows: altered, they alter its PSI.
    con.execute(
        f"UPDATE {REFERENCE_BINS_TABLE} SET counts = list_concat([counts[1] * 5], counts[2:]) "
        "WHERE column_name = 'monetary_12m'"
    )
    altered = population(monitor_month(con, LAST, TRAINING, landing))
    assert altered["monetary_12m"] != first["monetary_12m"]
    assert {k: v for k, v in altered.items() if k != "monetary_12m"} == {
        k: v for k, v in first.items() if k != "monetary_12m"
    }
    # A training month delivered again is binned again from its rows: the same PSI as with no bins kept.
    replace_month(con, month_frame(TRAINING[0], seed=2))
    again = population(monitor_month(con, LAST, TRAINING, landing))
    con.execute(f"DELETE FROM {REFERENCE_BINS_TABLE}")
    assert again == population(monitor_month(con, LAST, TRAINING, landing))
    assert again["monetary_12m"] != first["monetary_12m"]
    assert con.execute(f"SELECT count(*) FROM {REFERENCE_BINS_TABLE}").fetchone()[0] == len(first)


def test_a_steady_trend_and_a_seasonal_month_stay_quiet(stationary_bank):
    con, landing = stationary_bank
    # Amounts growing 3 % a month for the whole history: each month a little above the ones before.
    for i, month in enumerate(MONTHS):
        replace_month(con, month_frame(month, seed=1, monetary_scale=1.03**i))
    result = monitor_month(con, LAST, TRAINING, landing)
    assert [k for k in warnings_and_errors(result) if k[0] == "delivery_shift"] == []
    # A month whose amounts are half again as large, as they were the same month a year before:
    # seasonal, not a broken delivery. The same jump without the year before is a warning.
    seasonal, a_year_before = MONTHS[-1], MONTHS[-13]
    for month in MONTHS:
        replace_month(con, month_frame(month, seed=1, monetary_scale=1.5 if month in (seasonal, a_year_before) else 1))
    assert [
        k for k in warnings_and_errors(monitor_month(con, seasonal, TRAINING, landing)) if k[0] == "delivery_shift"
    ] == []
    replace_month(con, month_frame(a_year_before, seed=1))
    fired = warnings_and_errors(monitor_month(con, seasonal, TRAINING, landing))
    assert fired[("delivery_shift", "amount_in_month")].severity == "warning"


def test_an_injected_missing_file_and_a_late_one_fire(stationary_bank):
    con, landing = stationary_bank
    (landing / "digital_sessions" / f"{LAST}.parquet").unlink()
    con.execute(f"DELETE FROM raw.digital_sessions WHERE _delivery_month = DATE '{LAST}-01'")  # as ingestion does
    fired = warnings_and_errors(monitor_month(con, LAST, TRAINING, landing))
    assert set(fired) == {("missing_source_file", "digital_sessions")}
    missing = fired[("missing_source_file", "digital_sessions")]
    assert missing.severity == "error" and str(landing / "digital_sessions" / LAST) in missing.reason
    # The file comes, 30 hours after the month's transactions.
    late = landing / "digital_sessions" / f"{LAST}.parquet"
    late.write_bytes(b"")
    first = (landing / "transactions" / f"{LAST}.parquet").stat().st_mtime
    os.utime(late, (first + 30 * 3600, first + 30 * 3600))
    con.execute(
        "INSERT INTO raw.digital_sessions (_delivery_month, _source_file, _source_row) VALUES (?, 'x', 1)",
        [date.fromisoformat(f"{LAST}-01")],
    )
    fired = warnings_and_errors(monitor_month(con, LAST, TRAINING, landing))
    assert set(fired) == {("late_source_file", "digital_sessions")}
    assert fired[("late_source_file", "digital_sessions")].metric == pytest.approx(30)
    # A source never delivered is not missing: the bank does not have it.
    assert not con.execute("SELECT count(*) FROM raw.nps_responses").fetchone()[0]


def test_a_tier_share_shift_fires_and_a_rerun_replaces_the_month(stationary_bank):
    con, landing = stationary_bank
    replace_month(con, month_frame(LAST, seed=1, high_share=0.2))  # a value cut that lets in twice the customers
    result = monitor_month(con, LAST, TRAINING, landing)
    fired = warnings_and_errors(result)
    shifted = {k[1]: a.metric for k, a in fired.items() if k[0] == "tier_share_shift"}
    assert shifted == {"high": pytest.approx(0.1), "low": pytest.approx(-0.1)}  # mid keeps its 30 %
    again = monitor_month(con, LAST, TRAINING, landing)
    assert con.execute(f"SELECT count(*) FROM {ALERTS_TABLE}").fetchone()[0] == len(again.alerts) == len(result.alerts)
    assert con.execute(f"SELECT count(*) FROM {DRIFT_TABLE}").fetchone()[0] == len(again.drift)


def test_without_a_champion_only_the_delivery_is_judged(stationary_bank):
    con, landing = stationary_bank
    result = monitor_month(con, LAST, None, landing)
    assert result.reference is None
    assert {d.measure for d in result.drift} == {"delivery"}
    assert warnings_and_errors(result) == {}
    with pytest.raises(ValueError, match="psi_warning"):
        MonitoringRules(psi_warning=0.3, psi_error=0.2)


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received, _Hook.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Hook
    server.shutdown()
    server.server_close()


ALERTS = [{"kind": "feature_drift", "subject": "monetary_12m", "severity": "error", "reason": "PSI 4.2"}]


def test_the_webhook_receives_the_alerts_as_json(webhook, tmp_path):
    url, hook = webhook
    send = notifier(url, tmp_path / "alerts.jsonl")
    assert isinstance(send, WebhookNotifier)
    assert send.notify("2025-08", ALERTS) == url
    assert hook.received == [("application/json", {"source": "valuetier", "month": "2025-08", "alerts": ALERTS})]
    assert not (tmp_path / "alerts.jsonl").exists()


def test_a_failing_webhook_loses_nothing(webhook, tmp_path):
    url, hook = webhook
    hook.status = 500
    with pytest.raises(NotifyError, match="HTTP Error 500|HTTP 500"):
        notifier(url, tmp_path / "alerts.jsonl").notify("2025-08", ALERTS)
    kept = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert kept == [{"month": "2025-08", **ALERTS[0]}]
    with pytest.raises(NotifyError, match="127.0.0.1:9"):
        WebhookNotifier("http://127.0.0.1:9/none", FileNotifier(tmp_path / "b.jsonl"), 2).notify("2025-08", ALERTS)
    assert (tmp_path / "b.jsonl").read_text().count("\n") == 1


def test_without_a_webhook_alerts_go_to_the_file(tmp_path):
    send = notifier(None, tmp_path / "alerts" / "alerts.jsonl")
    send.notify("2025-07", ALERTS)
    send.notify("2025-08", ALERTS)
    lines = Path(tmp_path / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["month"] for line in lines] == ["2025-07", "2025-08"]


@pytest.mark.integration
def test_the_pipeline_monitors_every_month_and_dagster_shows_its_alerts(pipeline_run):
    """The generated bank's run: every scored month's population measured against the champion's
    training months up to it and its delivery against the three months before; Dagster's two
    checks passing or failing exactly as the mart's alerts say (green on this healthy bank), and
    every warning and error in the notifier's file (no webhook configured)."""
    from orchestration.monitoring import ALERTS
    from tests.conftest import WAREHOUSE
    from valuetier.application.monitoring import DELIVERY_KINDS
    from valuetier.core.months import add_months
    from valuetier.core.settings import Settings
    from valuetier.tiering.registry import Registry

    months = pipeline_run["months"]
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        alerts = con.execute(
            f"SELECT strftime(month_start, '%Y-%m'), severity, kind, subject FROM {ALERTS_TABLE}"
        ).fetchall()
        references = {
            (m, measure): refs
            for m, measure, refs in con.execute(
                f"SELECT DISTINCT strftime(month_start, '%Y-%m'), measure, list(DISTINCT reference) "
                f"FROM {DRIFT_TABLE} GROUP BY ALL"
            ).fetchall()
        }
    registry = Registry(Settings.from_env().models_dir)
    training = registry.card(registry.champion_version()).training_months
    for month in months:  # the training months up to the month, never later ones
        held = [m for m in training if m <= month]
        assert references.get((month, "population")) == ([f"{held[0]}..{held[-1]}"] if held else None), month
        before = [m for m in months if m < month][-3:]
        if len(before) < 3:  # too thin a reference: the delivery is judged from the fourth month
            assert (month, "delivery") not in references, month
        elif month < add_months(months[0], 12):
            assert references[(month, "delivery")] == [f"{before[0]}..{before[-1]}"], month
    checks = {e.check_name: e for e in pipeline_run["scored"].get_asset_check_evaluations() if e.asset_key == ALERTS}
    assert set(checks) == {"no_error_alerts", "no_delivery_warnings"}
    for name, severity, kinds in (
        ("no_error_alerts", "error", None),
        ("no_delivery_warnings", "warning", DELIVERY_KINDS),
    ):
        found = [a for a in alerts if a[1] == severity and (kinds is None or a[2] in kinds)]
        assert checks[name].passed == (not found) and checks[name].metadata["alerts"].value == len(found)
        assert checks[name].severity.value == ("ERROR" if severity == "error" else "WARN")
        assert not found, found  # a healthy bank: nothing wrong with any delivery
    file = Settings.from_env().alerts_file
    sent = {
        (a["month"], a["severity"], a["kind"], a["subject"])
        for a in map(json.loads, file.read_text().splitlines() if file.exists() else [])
    }
    assert {a for a in alerts if a[1] != "info"} <= sent and {a[1] for a in sent} <= {"warning", "error"}
