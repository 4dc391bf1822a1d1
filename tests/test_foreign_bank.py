"""A bank unlike the demo, end to end through Dagster: its own column names and codes through a
mapping file, CSV, only the two required sources, no margin columns, 12 months, every customer
joining in the first 3 months. The run succeeds, tiers every live customer of every month on
revenue, and trains a model on a plan adapted to the short history that ranks better than chance
and than the weighted RFM score, but not better than the CLV ranking: the promotion gate keeps the
CLV ranking, and the tiers say so."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import FOREIGN_DELIVERY, REPO
from valuetier.demo.foreign import FOREIGN_COLUMNS
from valuetier.demo.generator import GeneratorConfig, generate

pytestmark = pytest.mark.integration
MONTHS = 12


@pytest.fixture(scope="module")
def foreign_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    landing = root / "landing"
    generate(
        GeneratorConfig(customers=2000, months=MONTHS, seed=21, out=landing, **FOREIGN_DELIVERY),
        progress=lambda _: None,
    )
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VALUETIER_LANDING": str(landing),
        "VALUETIER_WAREHOUSE": str(root / "warehouse" / "valuetier.duckdb"),
        "VALUETIER_PII_KEY": "foreign-test-key",
    }
    env.pop("VALUETIER_MAPPING", None)  # the mapping is found in the landing folder
    command = [sys.executable, "-m", "orchestration.run"]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # A second run started while the first holds the warehouse (its lock is taken before the
    # first progress line), as a cron job and a person at the console might.
    lines = []
    while not any(line.startswith("running ") for line in lines):
        line = first.stdout.readline()
        assert line, first.stderr.read()[-3000:]
        lines.append(line)
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    stdout, stderr = first.communicate(timeout=1500)
    run = subprocess.CompletedProcess(command, first.returncode, "".join(lines) + stdout, stderr)
    return {
        "root": root,
        "landing": landing,
        "run": run,
        "second": second,
        "warehouse": root / "warehouse" / "valuetier.duckdb",
    }


def test_the_run_succeeds_and_says_what_it_did(foreign_run):
    run = foreign_run["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"delivery mapping: {foreign_run['landing'] / 'mapping.yml'}" in run.stdout
    assert "value measure:    revenue (transaction amount): auto: no fee income or net interest margin" in run.stdout
    assert "training plan: adapted to the history" in run.stdout
    assert "no champion model: v0001 not promoted: the model" in run.stdout


def test_a_second_run_started_meanwhile_stops_clearly_and_changes_nothing(foreign_run):
    second = foreign_run["second"]
    assert second.returncode == 3, second.stdout[-2000:] + second.stderr[-2000:]
    assert "is held by another ValueTier run (pid " in second.stderr and "nothing was read or written" in second.stderr
    assert foreign_run["run"].returncode == 0  # the first ran to its end undisturbed


def test_the_console_is_short_and_names_the_full_log(foreign_run):
    """Progress lines and a summary on the console; dbt's output and every Dagster record in the log
    file the console names, with the records also as JSON lines carrying run id, job and partition."""
    run = foreign_run["run"]
    console = run.stdout.splitlines()
    assert len(console) < 120, run.stdout
    assert not any(" of " in line and ("START" in line or "PASS" in line) for line in console)  # no dbt lines
    assert any(line.startswith("[") and "build_months 2023-01..2023-12 started" in line for line in console)
    [text_log] = {line.split()[-1] for line in console if line.startswith("full log:")}
    text = Path(text_log).read_text(encoding="utf-8")
    assert "Finished running" in text and "PASS=" in text  # dbt's own output is in the log
    assert "AssetObservation" not in text  # every dbt test, sources' included, is an asset check
    assert "ValueTier run finished" in text  # the summary too
    [json_log] = {line.split()[2] for line in console if line.startswith("log records:")}
    records = [json.loads(line) for line in Path(json_log).read_text(encoding="utf-8").splitlines()]
    steps = [r for r in records if r["event"] == "STEP_SUCCESS"]
    assert {r["job"] for r in steps} == {"build_months", "train_tiering_model", "rescore_tiers"}
    assert all(r["run_id"] and r["step"] for r in steps)
    assert {r["partition"] for r in steps if r["job"] != "train_tiering_model"} == {"2023-01..2023-12"}


def test_every_row_is_accounted_for(foreign_run):
    landing = foreign_run["landing"]
    with duckdb.connect(str(foreign_run["warehouse"]), read_only=True) as con:
        for source in ("customers", "transactions"):
            delivered = con.execute(
                f"SELECT regexp_extract(filename, '(\\d{{4}}-\\d{{2}})\\.csv$', 1), count(*) "
                f"FROM read_csv('{landing}/{source}/*.csv', filename = true, all_varchar = true) GROUP BY 1"
            ).fetchall()
            stored = dict(
                con.execute(
                    f"SELECT strftime(_delivery_month, '%Y-%m'), count(*) FROM raw.{source} GROUP BY 1"
                ).fetchall()
            )
            quarantined = dict(
                con.execute(
                    "SELECT strftime(delivery_month, '%Y-%m'), count(*) FROM raw_quarantine.quarantined_rows "
                    "WHERE source = ? GROUP BY 1",
                    [source],
                ).fetchall()
            )
            for month, rows in delivered:
                assert stored.get(month, 0) + quarantined.get(month, 0) == rows, (source, month)
            assert sum(quarantined.values()) == 0, source  # every code is mapped or loaded as 'other'
        other = con.execute("SELECT count(*) FROM raw.transactions WHERE txn_type = 'other'").fetchone()[0]
        assert other > 0  # the bank's unmapped fx_conversion code


def test_every_live_customer_of_every_month_has_a_tier(foreign_run):
    """Live, from the bank's files alone: delivered by the month with its opening on or before the
    month's end (no accounts source; nobody can be inactive for 12 months in a 12-month history)."""
    landing = foreign_run["landing"]
    names = FOREIGN_COLUMNS["customers"]
    with duckdb.connect(str(foreign_run["warehouse"]), read_only=True) as con:
        expected = con.execute(f"""
            WITH customers AS (
                SELECT {names["customer_id"]} AS customer_id, CAST({names["opened_at"]} AS DATE) AS opened_at,
                       CAST(regexp_extract(filename, '(\\d{{4}}-\\d{{2}})\\.csv$', 1) || '-01' AS DATE) AS delivered
                FROM read_csv('{landing}/customers/*.csv', filename = true, all_varchar = true)),
            months AS (
                SELECT DISTINCT CAST(regexp_extract(filename, '(\\d{{4}}-\\d{{2}})\\.csv$', 1) || '-01' AS DATE) AS m
                FROM read_csv('{landing}/transactions/*.csv', filename = true, all_varchar = true))
            SELECT m, count(DISTINCT customer_id) FROM months
            JOIN customers ON delivered <= m AND opened_at <= last_day(m)
            GROUP BY m ORDER BY m""").fetchall()
        tiers = con.execute(
            "SELECT month_start, count(*), count(DISTINCT customer_id) FROM marts.customer_tiers GROUP BY 1 ORDER BY 1"
        ).fetchall()
        indicators = con.execute(
            "SELECT month_start, count(*) FROM marts.customer_indicators_monthly GROUP BY 1 ORDER BY 1"
        ).fetchall()
        measures = con.execute("SELECT DISTINCT value_measure FROM evaluation.eval_tier_outcomes_monthly").fetchall()
        clv = con.execute("SELECT count(clv_12m), count(*) FROM marts.customer_clv_monthly").fetchone()
    assert len(expected) == MONTHS
    assert indicators == expected
    assert [(m, n) for m, n, _ in tiers] == expected and all(n == d for _, n, d in tiers)
    assert measures == [("revenue",)]
    assert clv[0] > 0.9 * clv[1]  # CLV fitted on revenue, not left null for lack of margins


def test_the_bank_s_tiers_are_published_for_bi(foreign_run):
    """Published from a delivery with only the two required sources and no margins: every month's
    tiers and indicators, the same rows as the warehouse."""
    from valuetier.application.publish import PUBLISHED_MARTS, read_published

    query = "SELECT month_start, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    with (
        read_published(foreign_run["warehouse"].parent / "published") as bi,
        duckdb.connect(str(foreign_run["warehouse"]), read_only=True) as warehouse,
    ):
        for mart in PUBLISHED_MARTS:
            published = bi.execute(query.format(mart.name)).fetchall()
            assert published == warehouse.execute(query.format(mart.name)).fetchall(), mart.name
            # The evaluation has only the months whose outcomes are in; a quiet month has no alert rows,
            # and the first month no drift (nothing delivered before it, no champion's window).
            if not mart.revises_earlier_months and not mart.may_lack_months:
                assert len(published) == MONTHS, mart.name


def test_the_evaluation_is_filled_on_revenue_without_the_optional_sources(foreign_run):
    """No campaigns, surveys or service data, revenue as value, a horizon shortened to the history:
    every evaluation still covers every month with outcomes, and says where its sources are absent."""
    with duckdb.connect(str(foreign_run["warehouse"]), read_only=True) as con:
        [(horizon,)] = con.execute("SELECT DISTINCT value_horizon_months FROM marts.customer_tiers").fetchall()

        def months(table, where="true"):
            return con.execute(f"SELECT count(DISTINCT month_start) FROM evaluation.{table} WHERE {where}").fetchone()[
                0
            ]

        assert months("eval_retention_monthly", "retained_1m IS NOT NULL") == MONTHS - 1
        assert months("eval_tier_migration_monthly") == MONTHS - 1
        assert months("eval_tier_outcomes_monthly", "value_measure = 'revenue' AND realised_value > 0") == MONTHS - 3
        assert months("eval_satisfaction_monthly", "nps_answers = 0 AND nps IS NULL AND complaints = 0") == MONTHS - 3
        for campaigns in ("eval_campaign_conversion_monthly", "eval_campaign_ab_monthly"):
            assert con.execute(f"SELECT count(*) FROM evaluation.{campaigns}").fetchone()[0] == 0
        backtest = con.execute("""
            SELECT count(DISTINCT month_start), list(DISTINCT value_horizon_months), list(DISTINCT value_measure),
                   min(normalized_gini) FILTER (WHERE ranking = 'tiers')
            FROM evaluation.eval_model_backtest_monthly""").fetchone()
        assert backtest[:3] == (MONTHS - horizon, [horizon], ["revenue"])
        assert backtest[3] > 0.3
        assert months("eval_calibration_deciles_monthly") == MONTHS - horizon


def test_a_model_trains_on_an_adapted_plan_and_the_gate_keeps_the_better_baseline(foreign_run):
    """The model beats chance and the weighted RFM score, but on this short cohort history it does not
    rank better than the CLV ranking (normalised Gini): it is registered, not promoted, and every
    month is tiered by the CLV ranking."""
    from valuetier.tiering.registry import Registry

    registry = Registry(foreign_run["warehouse"].parent / "models")
    assert registry.versions() == ["v0001"] and registry.champion_version() is None
    card = registry.card("v0001")
    plan = card.parameters["plan"]
    assert card.horizon_months < 6 and plan["horizon_months"] == card.horizon_months
    assert plan["note"].startswith("adapted to the history")
    assert card.value_measure.startswith("revenue")
    figures = card.promotion["rankings"]
    print(json.dumps({"horizon": card.horizon_months, "plan": plan, "promotion": card.promotion}))
    # A random 10 % holds about 10 % of the following months' revenue; measured here (seed 21): model
    # 45.1 %, weighted RFM 39.0 %, CLV ranking 44.5 % of the holdout's value; Gini 0.902 against the
    # CLV ranking's 0.907.
    model = figures["model"]["high_tier_value_capture"]
    assert model > 0.40 and model > figures["rfm_weighted"]["high_tier_value_capture"]
    assert card.status == "rejected" and not card.promotion["promoted"]
    assert card.promotion["better_baseline"] == "clv_12m" and card.decision.endswith(
        "tiers rank by clv_12m (no champion)"
    )
    with duckdb.connect(str(foreign_run["warehouse"]), read_only=True) as con:
        versions = con.execute("SELECT DISTINCT model_version, top_drivers FROM marts.customer_tiers").fetchall()
    assert versions == [("rule", "rule: 12-month CLV (BG/NBD + Gamma-Gamma), no champion model yet")]


def test_crm_actions_without_an_accounts_delivery(foreign_run):
    """No accounts, so no holdings: every tiered customer still gets its service level, channel,
    pricing and contact cap, and no next best product rather than a guessed one. No campaigns, so no
    uplift model: contacts are prioritised by the tier rule."""
    with duckdb.connect(str(foreign_run["warehouse"]), read_only=True) as con:
        tiers = con.execute("SELECT count(*) FROM marts.customer_tiers").fetchone()[0]
        actions = con.execute(
            "SELECT count(*), count(next_best_product), count(service_level), count(DISTINCT month_start) "
            "FROM marts.crm_actions"
        ).fetchone()
        priorities = con.execute(
            "SELECT DISTINCT priority_basis, count(predicted_uplift) OVER () > 0, "
            "count(contact_priority) OVER () = count(*) FILTER (WHERE max_contacts_per_month > 0) OVER () "
            "FROM marts.crm_actions"
        ).fetchall()
        uplift = con.execute("SELECT count(*) FROM marts.customer_uplift_monthly").fetchone()[0]
    assert actions == (tiers, 0, tiers, MONTHS)
    assert priorities == [("tier rule", False, True)] and uplift == 0


def test_the_report_says_what_this_bank_cannot_show(foreign_run):
    """No campaigns: the report of the last month is written all the same, with the campaign charts
    saying there is no data rather than drawing zeros; no birth dates: no age bands to review."""
    from valuetier.application.report import report_path
    from valuetier.ingest.loader import discover_months

    last = discover_months(foreign_run["landing"])[-1]
    html = report_path(foreign_run["warehouse"].parent / "reports", last).read_text()
    # No campaigns (conversion, ROI) and no champion whose training window the population is compared with.
    # No birth dates: the fairness review shows the cities' disparities, and says the age bands cannot be shown.
    assert html.count('<svg class="chart"') == 9 and html.count("No data for this chart yet.") == 3
    assert 'aria-label="disparity ratio of pricing and service actions (upper bound)"' in html
    assert 'aria-label="high-tier share by age band"' not in html
    assert "not reviewable, the delivery does not carry it: age_band" in html
    # No A/B campaigns: whom to contact is neither learnt nor measured, and the report says so.
    assert "The deliveries hold no A/B campaign with a control group" in html
    assert "prioritised by the tier rule" in html
