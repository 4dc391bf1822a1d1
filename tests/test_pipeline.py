"""The whole graph on a small generated bank, through Dagster, dbt and DuckDB; marts checked
against numbers computed independently from the landing files."""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from tests.conftest import LANDING, WAREHOUSE, run_dbt
from tests.conftest import delivery_month_sql as _month
from tests.conftest import landing_sql as _landing
from valuetier.core.contract import SOURCE_ORDER, SOURCES

pytestmark = pytest.mark.integration
MARTS = (
    "marts.dim_customer",
    "marts.customer_indicators_monthly",
    "marts.customer_tiers_rfm",
    "marts.customer_tiers",
    "evaluation.eval_tier_outcomes_monthly",
)


def fingerprint(path, table):
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest(), len(rows)


def test_every_asset_materialised_for_every_month(pipeline_run):
    instance = dg.DagsterInstance.get()
    for key in (dg.AssetKey(["raw", "transactions"]), dg.AssetKey(["marts", "customer_tiers"])):
        assert instance.get_materialized_partitions(key) == set(pipeline_run["months"])
    raw_events = pipeline_run["result"].asset_materializations_for_node("raw__transactions")
    metadata = raw_events[0].metadata
    assert metadata["loaded"].value + metadata["quarantined"].value == metadata["delivered"].value
    assert metadata["loaded"].value == pq.ParquetDataset(LANDING / "transactions").read().num_rows
    dbt_events = pipeline_run["result"].asset_materializations_for_node("valuetier_dbt_models")
    by_key = {e.asset_key.to_user_string(): e.metadata for e in dbt_events}
    anomalies = by_key["marts/fct_transactions"]["anomalies_by_month"].value
    assert sorted(anomalies) == pipeline_run["months"]
    flagged = sum(m["amount_outlier"] + m["burst"] for m in anomalies.values())
    assert flagged == by_key["marts/fct_transactions"]["anomalous_transactions"].value
    assert 0 < flagged < 0.02 * sum(m["transactions"] for m in anomalies.values())
    assert by_key["marts/customer_indicators_monthly"]["optional_sources_without_rows"].value == {}


def test_every_asset_reports_rows_in_rows_out_and_seconds(pipeline_run):
    """What a newcomer reads off an asset page: how many rows it read and wrote, and how long it took."""
    events = [
        e
        for run in (pipeline_run["result"], pipeline_run["scored"])
        for e in run.get_asset_materialization_events()
    ]  # fmt: skip
    assert len({e.asset_key for e in events}) > 50
    by_key = {}
    for event in events:
        materialization = event.event_specific_data.materialization
        metadata = materialization.metadata
        name = materialization.asset_key.to_user_string()
        assert {"rows_in", "rows_out", "seconds"} <= set(metadata), name
        assert metadata["rows_in"].value >= 0 and metadata["rows_out"].value >= 0, name
        assert metadata["seconds"].value >= 0, name
        by_key[name] = metadata
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        indicators = con.execute("SELECT count(*) FROM marts.customer_indicators_monthly").fetchone()[0]
        transactions = con.execute("SELECT count(*) FROM raw.transactions").fetchone()[0]
    delivered = pq.ParquetDataset(LANDING / "transactions").read().num_rows
    assert by_key["raw/transactions"]["rows_in"].value == delivered  # in: the delivered rows
    assert by_key["raw/transactions"]["rows_out"].value == transactions  # out: the rows loaded
    assert by_key["marts/customer_indicators_monthly"]["rows_out"].value == indicators
    assert by_key["marts/customer_tiers"]["rows_out"].value == indicators  # one tier per indicator row
    assert by_key["staging/stg_transactions"]["rows_in"].value == transactions
    assert by_key["marts/customer_tiers"]["seconds"].value > 0


def test_indicator_rows_are_live_customers_times_months(pipeline_run):
    """Live = relationship begun and an account open at month end, from the landing files directly."""
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        expected = con.execute(f"""
            WITH months AS (SELECT DISTINCT {_month()} AS m, last_day({_month()}) AS e
                            FROM {_landing("transactions")}),
                 accounts AS (SELECT *, {_month()} AS delivered FROM {_landing("accounts")}),
                 latest AS (SELECT a.*, months.m, months.e FROM accounts a JOIN months ON a.delivered <= months.m
                            QUALIFY row_number() OVER (PARTITION BY account_id, months.m
                                                       ORDER BY a.delivered DESC) = 1)
            SELECT m, count(DISTINCT customer_id) FROM latest
            WHERE opened_at <= e AND (closed_at IS NULL OR closed_at > e) GROUP BY m ORDER BY m""").fetchall()
        actual = con.execute(
            "SELECT month_start, count(*) FROM marts.customer_indicators_monthly GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert len(actual) == len(pipeline_run["months"])
    assert actual == expected


def test_rfm_values_match_the_transactions(pipeline_run):
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        last = con.execute("SELECT max(month_start) FROM marts.customer_indicators_monthly").fetchone()[0]
        mismatches = con.execute(f"""
            WITH txn AS (SELECT customer_id, booked_at, CAST(amount AS DECIMAL(18, 2)) AS amount,
                                CAST(fee_income + net_interest_margin AS DECIMAL(18, 2)) AS profit
                         FROM {_landing("transactions")}
                         -- anomalous transactions are left out of indicators by default
                         WHERE transaction_id NOT IN (
                             SELECT transaction_id FROM marts.fct_transactions WHERE is_anomalous)),

                 expected AS (
                    SELECT customer_id,
                           count(*) FILTER (WHERE booked_at >= DATE '{last}' - INTERVAL 11 MONTH) AS frequency,
                           coalesce(sum(amount) FILTER (WHERE booked_at >= DATE '{last}' - INTERVAL 11 MONTH), 0)
                               AS monetary,
                           coalesce(sum(profit) FILTER (WHERE booked_at >= DATE '{last}' - INTERVAL 11 MONTH), 0)
                               AS profit,
                           last_day(DATE '{last}') - max(booked_at)::date AS recency
                    FROM txn GROUP BY 1)
            SELECT i.customer_id FROM marts.customer_indicators_monthly i
            LEFT JOIN expected e USING (customer_id)
            WHERE i.month_start = DATE '{last}'
              AND (i.frequency_12m <> coalesce(e.frequency, 0) OR i.monetary_12m <> coalesce(e.monetary, 0)
                   OR i.profit_contribution_12m <> coalesce(e.profit, 0)
                   OR i.recency_days IS DISTINCT FROM e.recency)""").fetchall()
        scores = con.execute(
            "SELECT min(recency_score), max(monetary_score), count(DISTINCT rfm_cell) "
            "FROM marts.customer_indicators_monthly"
        ).fetchone()
    assert mismatches == []
    assert scores[0] == 1 and scores[1] == 5 and scores[2] > 30


def test_tiers_cut_every_live_customer_into_shares(pipeline_run):
    from valuetier.core.settings import Settings
    from valuetier.tiering.registry import Registry

    champion = Registry(Settings.from_env().models_dir).champion_version()
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        per_month = con.execute("""
            SELECT i.month_start, count(*), count(t.customer_id), count(DISTINCT t.customer_id),
                   count(*) FILTER (WHERE value_tier = 'high'), count(*) FILTER (WHERE value_tier = 'mid'),
                   count(*) FILTER (WHERE tiered_by_rule <> (i.tenure_months < 3)),
                   list(DISTINCT model_version)
            FROM marts.customer_indicators_monthly i
            LEFT JOIN marts.customer_tiers t USING (customer_id, month_start)
            GROUP BY 1 ORDER BY 1""").fetchall()
        orphans = con.execute("""
            SELECT count(*) FROM marts.customer_tiers t ANTI JOIN marts.customer_indicators_monthly i
            USING (customer_id, month_start)""").fetchone()[0]
        high_beats_low = con.execute("""
            SELECT avg(i.monetary_12m) FILTER (WHERE value_tier = 'high') > 3 * avg(i.monetary_12m)
                   FILTER (WHERE value_tier = 'low')
            FROM marts.customer_tiers t JOIN marts.customer_indicators_monthly i USING (customer_id, month_start)
            """).fetchone()[0]
    assert champion is not None and orphans == 0
    for _, live, tiered, distinct, high, mid, wrong_rule_flag, versions in per_month:
        assert tiered == live == distinct
        assert high == round(0.1 * live)
        assert high + mid == round(0.4 * live)
        assert wrong_rule_flag == 0 and versions == [champion]
    assert high_beats_low


def test_evaluation_measures_every_month_with_a_full_outcome_window(pipeline_run):
    months = pipeline_run["months"]
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        evaluated = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT strftime(month_start, '%Y-%m') FROM evaluation.eval_tier_outcomes_monthly ORDER BY 1"
            ).fetchall()
        ]
        by_tier = dict(
            con.execute("""
            SELECT value_tier, sum(realised_profit_contribution) / sum(customers)
            FROM evaluation.eval_tier_outcomes_monthly GROUP BY 1""").fetchall()
        )
        retention = dict(
            con.execute("""
            SELECT value_tier, sum(retained_customers) / sum(customers)
            FROM evaluation.eval_tier_outcomes_monthly GROUP BY 1""").fetchall()
        )
        counts_match = con.execute("""
            SELECT bool_and(e.customers = t.n) FROM evaluation.eval_tier_outcomes_monthly e
            JOIN (SELECT month_start, value_tier, count(*) n FROM marts.customer_tiers GROUP BY 1, 2) t
            USING (month_start, value_tier)""").fetchone()[0]
    assert evaluated == months[:-3]
    assert by_tier["high"] > by_tier["mid"] > by_tier["low"]
    assert retention["high"] > retention["low"]
    assert counts_match


def test_no_personal_data_in_clear_outside_raw(pipeline_run):
    pii_columns = [c.name for c in SOURCES["customers"].columns if c.pii]
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        values = {
            v
            for (v,) in con.execute(
                " UNION ".join(
                    f"SELECT DISTINCT lower(trim({c})) FROM {_landing('customers')} WHERE {c} IS NOT NULL"
                    for c in pii_columns
                )
            ).fetchall()
        }
        assert len(values) > 1000
        con.execute("CREATE TEMP TABLE pii AS SELECT unnest(?::VARCHAR[]) AS v", [sorted(values)])
        columns = con.execute("""
            SELECT table_schema, table_name, column_name FROM information_schema.columns
            WHERE table_schema NOT IN ('raw', 'raw_quarantine', 'information_schema', 'pg_catalog')
              AND data_type = 'VARCHAR' AND table_catalog = current_database()""").fetchall()
        assert any(t == "dim_customer" for _, t, _ in columns)
        leaks = [
            f"{s}.{t}.{c}"
            for s, t, c in columns
            if con.execute(f"SELECT count(*) FROM {s}.{t} JOIN pii ON lower(trim({c})) = pii.v").fetchone()[0]
        ]
        hashes = con.execute(
            "SELECT count(DISTINCT email_hash), min(length(email_hash)) FROM marts.dim_customer"
        ).fetchone()
    assert leaks == []
    assert hashes[1] == 64 and hashes[0] > 1000


# The tables the Python assets write, not dbt, that a later month reads: the published tiers, the
# challenger's scores and the CRM actions (dbt's evaluation), CLV and the uplift model's scores.
PYTHON_MARTS = (
    "customer_tiers",
    "customer_tiers_challenger",
    "crm_actions",
    "customer_clv_monthly",
    "customer_uplift_monthly",
)


def test_earlier_months_do_not_change_when_a_later_month_arrives(pipeline_run, tmp_path):
    """Point in time and incremental: a warehouse rebuilt from scratch without the last month gives
    exactly the same rows for every earlier month; adding the last month incrementally (dbt reads
    only that month's window, scoring only that month's indicators) then gives exactly the rows of
    the original full run. The month's tiers and uplift are scored here in batches of 700
    customers, the pipeline's in one batch: batches change no number."""
    from valuetier.application.playbook import build_crm_actions, load_playbook
    from valuetier.clv.estimates import estimate_month as clv_month
    from valuetier.core.parameters import business_parameters
    from valuetier.core.settings import Settings
    from valuetier.ingest.loader import load_month
    from valuetier.tiering.registry import Registry
    from valuetier.tiering.scoring import ScoringRules, current_champion, score_month_tiers
    from valuetier.tiering.uplift import score_uplift_month

    last = pipeline_run["months"][-1]
    copy = tmp_path / "without_last_month.duckdb"
    shutil.copy(WAREHOUSE, copy)
    with duckdb.connect(str(copy)) as con:
        for source in SOURCE_ORDER:
            con.execute(f"DELETE FROM raw.{source} WHERE _delivery_month = DATE '{last}-01'")
        # Keep the earlier months of the tables the Python assets write.
        for table in PYTHON_MARTS:
            con.execute(f"CREATE TABLE main.{table} AS SELECT * FROM marts.{table} WHERE month_start < '{last}-01'")
        for schema in ("staging", "intermediate", "marts", "evaluation"):
            con.execute(f"DROP SCHEMA {schema} CASCADE")
        con.execute("CREATE SCHEMA marts")
        for table in PYTHON_MARTS:
            con.execute(f"CREATE TABLE marts.{table} AS SELECT * FROM main.{table}")
    run_dbt(["build", "--full-refresh"], copy, tmp_path / "target")
    tables = ("marts.customer_indicators_monthly", "marts.customer_tiers_rfm", "marts.fct_transactions")
    for table in tables:
        earlier = f"(SELECT * FROM {table} WHERE month_start < DATE '{last}-01')"
        assert fingerprint(copy, earlier) == fingerprint(WAREHOUSE, earlier), table
        with duckdb.connect(str(copy), read_only=True) as con:
            assert con.execute(f"SELECT count(*) FROM {table} WHERE month_start = DATE '{last}-01'").fetchone()[0] == 0

    with duckdb.connect(str(copy)) as con:
        for source in SOURCE_ORDER:
            load_month(con, LANDING, source, last)
    run_dbt(["build", "--exclude", "tag:evaluation"], copy, tmp_path / "target", month=last)
    with duckdb.connect(str(copy)) as con:
        clv_month(con, last)
        score_uplift_month(con, last, business_parameters().outcome_months, batch_size=700)
        champion = current_champion(Registry(Settings.from_env().models_dir))
        score_month_tiers(con, last, champion, ScoringRules(batch_size=700))
        build_crm_actions(con, last, load_playbook(Settings.from_env().playbook_file))
    run_dbt(["build", "--select", "tag:evaluation"], copy, tmp_path / "target", month=last)
    last_month = f"(SELECT * FROM marts.customer_clv_monthly WHERE month_start = DATE '{last}-01')"
    assert fingerprint(copy, last_month) == fingerprint(WAREHOUSE, last_month)
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        evaluation = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('evaluation', 'intermediate') AND table_type = 'BASE TABLE' ORDER BY 1"
        ).fetchall()
    stored = {name for (name,) in evaluation}
    assert len(stored) >= 15
    # The campaign contacts are stored by month: the last month's run rewrites only its window's months.
    assert {"intermediate.int_campaign_contacts_by_tier", "intermediate.int_ab_contact_outcomes"} <= stored
    for table in (*tables, "marts.customer_tiers", "marts.customer_uplift_monthly", *(name for (name,) in evaluation)):
        assert fingerprint(copy, table) == fingerprint(WAREHOUSE, table), table


def test_absent_optional_source_leaves_its_indicators_empty_and_says_so(pipeline_run, tmp_path):
    from valuetier.core.warehouse import optional_sources_without_rows

    months = pipeline_run["months"]
    copy = tmp_path / "without_nps.duckdb"
    shutil.copy(WAREHOUSE, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DELETE FROM raw.nps_responses")
    run_dbt(["build", "--full-refresh"], copy, tmp_path / "target")
    with duckdb.connect(str(copy), read_only=True) as con:
        nps, rows = con.execute(
            "SELECT count(last_nps_score) + count(nps_class), count(*) FROM marts.customer_indicators_monthly"
        ).fetchone()
        absent = optional_sources_without_rows(con, months[0], months[-1])
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        original_rows = con.execute("SELECT count(*) FROM marts.customer_indicators_monthly").fetchone()[0]
    assert (nps, rows) == (0, original_rows)
    assert absent == {"nps_responses": months}


def test_every_scored_month_is_published_for_bi_as_in_the_warehouse(pipeline_run):
    from valuetier.application.publish import PUBLISHED_MARTS, read_published
    from valuetier.core.settings import Settings

    published = Settings.from_env().published_dir
    with read_published(published) as bi, duckdb.connect(str(WAREHOUSE), read_only=True) as warehouse:
        for mart in PUBLISHED_MARTS:
            for (column,) in warehouse.execute(f"SELECT column_name FROM (DESCRIBE {mart.name})").fetchall():
                query = f"SELECT month_start, count(*), sum(hash({column})) FROM {mart.name} GROUP BY ALL ORDER BY ALL"
                assert bi.execute(query).fetchall() == warehouse.execute(query).fetchall(), f"{mart.name}.{column}"
        months = [
            r[0].strftime("%Y-%m")
            for r in bi.execute("SELECT DISTINCT month_start FROM marts.customer_tiers").fetchall()
        ]
    assert sorted(months) == pipeline_run["months"]
    assert sorted(p.name for p in (published / "current").iterdir()) == sorted(m.name for m in PUBLISHED_MARTS)


def test_dbt_docs_generate(pipeline_run, tmp_path):
    run_dbt(["docs", "generate"], WAREHOUSE, tmp_path / "target")
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    assert "model.valuetier.customer_indicators_monthly" in catalog["nodes"]
    assert (tmp_path / "target" / "index.html").exists()


def test_rerunning_a_partition_changes_nothing(pipeline_run):
    from orchestration.dbt import invocations_dir
    from orchestration.run import run_months

    month = pipeline_run["months"][-2]
    with dg.DagsterInstance.get() as instance:
        # Once to score the month with whatever model is champion now (other tests train versions).
        assert run_months(instance, month, month).success
        before = {t: fingerprint(WAREHOUSE, t) for t in (*MARTS, *(f"raw.{s}" for s in SOURCE_ORDER))}
        again = run_months(instance, month, month)
        assert again.success
    after = {t: fingerprint(WAREHOUSE, t) for t in before}
    assert after == before
    # The month's window is no --vars (orchestration/dbt.py): the same run again re-parses nothing.
    logs = sorted(invocations_dir().glob(f"valuetier_dbt_*-{again.run_id[:7]}-*/dbt.log"))
    assert len(logs) == 2
    for log in logs:
        assert "UnableToPartialParse" not in log.read_text(), log


BI_READER = """
import json, re, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from valuetier.application.publish import PUBLISHED_MARTS, read_published
published, stop, out = Path(sys.argv[1]), Path(sys.argv[3]), Path(sys.argv[4])
reads, errors = [], []
while True:
    last = stop.exists()  # one more read after the run ended, which must see its snapshot
    try:
        with read_published(published) as con:
            views = [r[0] for r in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall()]
            union = " UNION ALL ".join(f"SELECT {i} AS i, count(*) AS n FROM {m.name}"
                                       for i, m in enumerate(PUBLISHED_MARTS))
            counts = [n for _, n in sorted(con.execute(union).fetchall())]
        reads.append({"versions": sorted({v for sql in views for v in re.findall(r"versions/(\\d+)/", sql)}),
                      "counts": counts})
    except Exception as exc:
        errors.append(repr(exc))
    if last:
        break
    time.sleep(0.05)
out.write_text(json.dumps({"reads": reads, "errors": errors}))
"""


def test_bi_reads_the_published_marts_while_a_real_run_writes(pipeline_run, tmp_path):
    """A notebook in another process reads the published DuckDB file over and over while a real
    Dagster run of the latest month writes the warehouse and publishes: no read fails, and each
    read sees one snapshot, the previous one or the new one, never a mix."""
    import subprocess

    from orchestration.run import run_months
    from valuetier.application.publish import current_version
    from valuetier.core.settings import Settings

    published = Settings.from_env().published_dir
    before = current_version(published).name
    stop, out = tmp_path / "stop", tmp_path / "reads.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", BI_READER, str(published), str(Path(__file__).resolve().parent.parent), str(stop),
         str(out)]
    )  # fmt: skip
    try:
        with dg.DagsterInstance.get() as instance:
            assert run_months(instance, pipeline_run["months"][-1], pipeline_run["months"][-1]).success
    finally:
        stop.touch()
        assert reader.wait(timeout=120) == 0
    after = current_version(published).name
    result = json.loads(out.read_text())
    assert result["errors"] == []
    reads = result["reads"]
    assert len(reads) >= 10 and all(len(r["versions"]) == 1 for r in reads)  # one snapshot per read
    seen = [r["versions"][0] for r in reads]
    assert seen[0] == before and seen[-1] == after != before
    assert set(seen) <= {before, after} | {v for v in seen if before < v < after}  # only whole publishes
    for version in set(seen):  # every read of a snapshot saw the same rows
        assert len({json.dumps(r["counts"]) for r in reads if r["versions"] == [version]}) == 1, version


def test_clv_for_every_live_customer_and_holdout_purchases_within_15_percent(pipeline_run):
    from valuetier.clv.estimates import holdout_purchases

    months = pipeline_run["months"]
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        unmatched = con.execute("""
            SELECT count(*) FROM marts.customer_indicators_monthly i
            FULL JOIN marts.customer_clv_monthly c USING (customer_id, month_start)
            WHERE i.customer_id IS NULL OR c.customer_id IS NULL""").fetchone()[0]
        sane = con.execute("""
            SELECT bool_and(clv_12m >= 0 AND probability_alive BETWEEN 0 AND 1), count(*) FILTER (WHERE clv_12m IS NULL)
            FROM marts.customer_clv_monthly""").fetchone()
        predicted, realised = holdout_purchases(con, months[8], horizon_months=6, calibration_months=9)
    assert unmatched == 0
    assert sane == (True, 0)
    assert predicted == pytest.approx(realised, rel=0.15)


def test_a_monthly_runs_dbt_tests_read_only_its_months(pipeline_run, tmp_path):
    """A month's dbt tests cost the month, not the history (macros/tests_in_run_months.sql): a
    duplicate planted in an earlier month is outside a later month's tests, and a full build's
    tests find it."""
    months = pipeline_run["months"]
    copy = tmp_path / "duplicate.duckdb"
    shutil.copy(WAREHOUSE, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "INSERT INTO marts.customer_indicators_monthly SELECT * FROM marts.customer_indicators_monthly "
            f"WHERE month_start = DATE '{months[0]}-01' LIMIT 1"
        )
    test = ["test", "--select", "customer_indicators_monthly,test_name:unique_combination_of_columns"]
    later_month = run_dbt(test, copy, tmp_path / "target", month=months[-1])
    assert "ERROR=0" in later_month.stdout and "FAIL=" not in later_month.stdout
    everything = run_dbt(test, copy, tmp_path / "target", check=False)
    assert (
        everything.returncode == 1
        and "FAIL 1 unique_combination_of_columns_customer_indicators_monthly" in everything.stdout
    )


def test_a_data_tests_month_column_is_read_from_the_manifest_as_the_warehouse_has_it(pipeline_run):
    """Which column a test's month window filters (macros/tests_in_run_months.sql) is taken from the
    tested table's documented columns without asking the database: for every model a data test
    reads, the documented columns name the month column the built table has, or the table has none
    (then the macro asks the database, as it does for the raw sources, whose columns are not
    documented)."""
    manifest = json.loads((Path(__file__).resolve().parent.parent / "dbt_project/target/manifest.json").read_text())
    tested = {
        unique_id
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        for unique_id in node["depends_on"]["nodes"]
        if unique_id.startswith("model.")
    }
    candidates = ("month_start", "delivery_month", "_delivery_month")

    def month_column(columns) -> str | None:
        names = {name.lower() for name in columns}
        return next((c for c in candidates if c in names), None)

    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        built = {
            unique_id: month_column(
                name
                for (name,) in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                    [manifest["nodes"][unique_id]["schema"], manifest["nodes"][unique_id]["alias"]],
                ).fetchall()
            )
            for unique_id in tested
        }
    documented = {unique_id: month_column(manifest["nodes"][unique_id]["columns"]) for unique_id in tested}
    assert len(tested) > 30 and sum(1 for column in built.values() if column) > 25
    assert documented == built


def test_a_failed_dbt_test_fails_its_table_s_one_check_and_names_the_test(pipeline_run):
    """A tested table's dbt data tests are one Dagster check (orchestration/dbt_checks.py): a row
    breaking one test fails that table's check with the test named, blocks the run, and leaves the
    other tables' checks passed; one check per tested table, not one per test."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from orchestration.dbt import dbt_asset_definitions
    from orchestration.definitions import defs

    month = pipeline_run["months"][-1]
    models = dbt_asset_definitions()[0]
    job = defs().resolve_job_def("build_months")
    tags = {ASSET_PARTITION_RANGE_START_TAG: month, ASSET_PARTITION_RANGE_END_TAG: month}
    planted = "planted-out-of-range-score"

    def build_models(instance):
        return job.execute_in_process(
            instance=instance, tags=tags, asset_selection=list(models.keys), raise_on_error=False
        )

    with duckdb.connect(str(WAREHOUSE)) as con:
        con.execute(
            f"INSERT INTO raw.nps_responses SELECT * REPLACE ('{planted}' AS response_id, 11 AS score) "
            f"FROM raw.nps_responses WHERE _delivery_month = DATE '{month}-01' LIMIT 1"
        )
    try:
        with dg.DagsterInstance.get() as instance:
            failed = build_models(instance)
        evaluations = failed.get_asset_check_evaluations()
        assert not failed.success
        assert {e.check_name for e in evaluations} == {"dbt_tests"}
        by_table = {e.asset_key.to_user_string(): e for e in evaluations}
        assert len(by_table) == len(evaluations) > 10
        check = by_table["staging/stg_nps_responses"]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        [test] = check.metadata["failed_tests"].value
        assert test["test"].startswith("accepted_range_stg_nps_responses_score") and test["failing_rows"] == 1
        assert check.metadata["tests_run"].value > 1
        assert all(e.passed for key, e in by_table.items() if key != "staging/stg_nps_responses")
    finally:
        with duckdb.connect(str(WAREHOUSE)) as con:
            con.execute(f"DELETE FROM raw.nps_responses WHERE response_id = '{planted}'")
        with dg.DagsterInstance.get() as instance:
            assert build_models(instance).success


def test_the_pandas_baseline_computes_the_mart_s_indicators(pipeline_run):
    """The benchmark's pandas baseline (bench/pandas_indicators.py) is a fair comparison only if it
    computes the same columns under the same rules: for the last month it agrees with the mart on
    every column of every live customer."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from pandas_indicators import disagreements, indicators_for_month

    last = pipeline_run["months"][-1]
    baseline = indicators_for_month(LANDING, last)
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        mart = con.execute(
            f"SELECT * FROM marts.customer_indicators_monthly WHERE month_start = DATE '{last}-01' ORDER BY customer_id"
        ).df()
    assert len(mart) > 1000
    assert disagreements(baseline, mart) == {}
