"""Great Expectations suites: loaded from expectations/, run on DuckDB through GX's SQL data source
as blocking Dagster asset checks; a bad month is stopped before marts and tiers, and a corrected
re-delivery replaces it cleanly."""

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import LANDING, WAREHOUSE
from valuetier.cli import main as cli
from valuetier.core.contract import SOURCES
from valuetier.quality.suites import EXPECTATIONS_DIR, SuiteError, all_suites, load_suite

pytestmark = pytest.mark.integration


def fingerprint(table: str, where: str = "TRUE") -> tuple[str, int]:
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        rows = con.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY ALL").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest(), len(rows)


def test_gx_still_needs_and_takes_the_duckdb_connection_patch():
    """If a GX upgrade renames or drops the list we extend, this fails before any validation does."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    from valuetier.quality.suites import _persist_duckdb_connections

    assert hasattr(engine, "_PERSISTED_CONNECTION_DIALECTS")
    _persist_duckdb_connections()
    _persist_duckdb_connections()  # idempotent
    assert sum(d == "duckdb" for d in engine._PERSISTED_CONNECTION_DIALECTS) == 1
    assert engine._dialect_requires_persisted_connection(connection_string="duckdb:///x.duckdb")


def test_data_docs_templates_are_compiled_once_per_process():
    """GX renders every validation's page through a new Jinja environment; each is given the
    process's bytecode cache, so a template is compiled once. Fails if a GX upgrade moves the view."""
    from great_expectations.render.view.view import DefaultJinjaView

    from valuetier.quality import data_docs

    data_docs.compile_templates_once()
    data_docs.compile_templates_once()  # idempotent
    first, second = DefaultJinjaView(), DefaultJinjaView()
    assert first.env is not second.env and first.env.bytecode_cache is second.env.bytecode_cache
    first.env.get_template("page.j2")
    compiled = dict(data_docs._compiled.cache.code)
    assert compiled, "the first environment compiled no template into the cache"
    reused = data_docs._compiled.cache.reused
    second.env.get_template("page.j2")
    assert data_docs._compiled.cache.code == compiled and data_docs._compiled.cache.reused > reused


def test_every_checked_table_has_one_reviewable_suite(tmp_path):
    suites = {s.table: s for s in all_suites()}
    expected = {f"raw.{name}" for name in SOURCES} | {
        "staging.stg_customers",
        "staging.stg_accounts",
        "staging.stg_transactions",
        "marts.customer_indicators_monthly",
        "marts.customer_tiers",
    }
    assert set(suites) == expected
    assert len(list(EXPECTATIONS_DIR.glob("*.json"))) == len(expected)
    transactions = suites["raw.transactions"]
    checks = {e["meta"].get("check") for e in transactions.expectations}
    assert {"volume", "freshness", "references:customer_id", "distribution:amount:geomean"} <= checks
    assert all(e["meta"]["severity"] in ("error", "warning") for s in suites.values() for e in s.expectations)
    broken = tmp_path / "broken.json"
    broken.write_text(
        '{"name": "x", "meta": {"table": "raw.x", "month_column": "m", "key": ["k"]}, '
        '"expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "k"}}]}'
    )
    with pytest.raises(SuiteError, match="broken.json: expectation 0 .* needs meta.severity"):
        load_suite(broken)


def test_checks_ran_in_the_pipeline_and_passed_on_the_clean_bank(pipeline_run):
    from valuetier.core.settings import Settings

    evaluations = [
        *pipeline_run["result"].get_asset_check_evaluations(),
        *pipeline_run["scored"].get_asset_check_evaluations(),
    ]
    ours = {e.asset_key.to_user_string(): e for e in evaluations if e.check_name == "great_expectations"}
    # Every suite's table is materialised by the first run (built, then scored): all are checked.
    assert set(ours) == {"/".join(s.asset_key_path) for s in all_suites()}
    failed = {k: e.metadata["failed_expectations"].value for k, e in ours.items() if not e.passed}
    assert failed == {}
    transactions = ours["raw/transactions"].metadata
    assert transactions["rows_checked"].value == pq.ParquetDataset(LANDING / "transactions").read().num_rows
    assert transactions["months"].value == f"{pipeline_run['months'][0]}..{pipeline_run['months'][-1]}"
    docs = Settings.from_env().quality_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.exists() and transactions["data_docs"].value == str(docs)
    # Each check rendered its validation's page; the index, built once when each run ended, lists them all.
    index = docs.read_text()
    for table, evaluation in ours.items():
        page = Path(evaluation.metadata["validation_page"].value)
        assert page.exists() and page.relative_to(docs.parent).as_posix() in index, table


def test_a_month_failing_an_error_expectation_stops_before_marts_and_a_corrected_redelivery_replaces_it(
    pipeline_run, tmp_path
):
    """Amounts delivered in cents (x100) pass the row contract but not the learned distribution: the
    month's raw check fails with ERROR, so dbt, CLV and tiers do not run for it and the published
    tiers stay as they were. Re-delivering the corrected file and re-running gives the original rows."""
    from orchestration.run import run_months

    month = pipeline_run["months"][-1]
    delivered = LANDING / "transactions" / f"{month}.parquet"
    original = tmp_path / "original.parquet"
    shutil.copy(delivered, original)
    published = {t: fingerprint(t) for t in ("marts.customer_tiers", "marts.customer_indicators_monthly")}
    raw_before = fingerprint("raw.transactions")

    table = pq.read_table(original)
    cents = table.set_column(
        table.schema.get_field_index("amount"), "amount", pc.multiply(table["amount"], 100).cast(table["amount"].type)
    )
    pq.write_table(cents, delivered)
    try:
        with dg.DagsterInstance.get() as instance:
            result = run_months(instance, month, month)
        assert not result.success
        evaluations = {
            e.asset_key.to_user_string(): e
            for e in result.get_asset_check_evaluations()
            if e.check_name == "great_expectations"
        }
        check = evaluations["raw/transactions"]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        failed = check.metadata["failed_expectations"].value
        mean = next(f for f in failed if f["expectation"] == "distribution:amount:geomean")
        assert mean["severity"] == "error" and mean["samples"][0]["month"] == month
        assert mean["samples"][0]["observed"] > 50 * mean["samples"][0]["upper_bound"] / 1.5
        # Nothing downstream of the failed check ran.
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert "raw/transactions" in materialized
        assert not {"marts/customer_indicators_monthly", "marts/customer_tiers"} & materialized
        for table_name, before in published.items():
            assert fingerprint(table_name) == before, table_name
    finally:
        shutil.copy(original, delivered)

    with dg.DagsterInstance.get() as instance:
        assert run_months(instance, month, month).success
    assert fingerprint("raw.transactions") == raw_before
    for table_name, before in published.items():
        assert fingerprint(table_name) == before, table_name


def test_failed_expectations_name_observed_values_and_sample_keys(pipeline_run, tmp_path):
    """Rows that slipped past the contract (here edited in a copy) fail the column expectations,
    and the outcome names the failing keys; a warning does not count as an error."""
    from valuetier.quality.suites import profile_months, validate

    month = pipeline_run["months"][-1]
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(WAREHOUSE, copy)
    suite = next(s for s in all_suites() if s.table == "raw.transactions")
    with duckdb.connect(str(copy)) as con:
        broken = [
            r[0]
            for r in con.execute(
                f"""UPDATE raw.transactions SET currency = NULL, txn_type = 'gift'
                    WHERE _delivery_month = '{month}-01' AND _source_row <= 3 RETURNING transaction_id"""
            ).fetchall()
        ]
        # Ingestion profiles the rows it loads, in the same transaction; rows edited in place since
        # (their count unchanged) are profiled again the same way.
        profile_months(con, suite, [month])
    result = validate(copy, tmp_path / "quality", suite, month, month)
    failed = {(o.expectation, o.column): o for o in result.errors}
    assert set(failed) == {
        ("expect_column_values_to_not_be_null", "currency"),
        ("expect_column_values_to_be_in_set", "txn_type"),
    }
    for outcome in failed.values():
        assert outcome.unexpected_count == 3
        assert sorted(sample["transaction_id"] for sample in outcome.samples) == sorted(broken)
    assert result.warnings == [] and not result.passed
    assert result.docs_index.exists()


def test_the_tiers_and_the_indicators_of_a_month_must_name_the_same_customers(pipeline_run, tmp_path):
    """Both ways of the tiers' same-month reference to the indicators fail on the rows that break
    them, with their count and their keys: a tier row whose indicator row is gone (the reference,
    an anti-join) and an indicator row without a tier row (every live customer tiered)."""
    from valuetier.quality.suites import validate

    month = pipeline_run["months"][-1]
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(WAREHOUSE, copy)
    suite = next(s for s in all_suites() if s.table == "marts.customer_tiers")
    with duckdb.connect(str(copy)) as con:
        # Rows whose stable tier is their plain tier, so that the tier sizes still agree.
        picked = [
            r[0]
            for r in con.execute(
                f"""SELECT customer_id FROM marts.customer_tiers WHERE month_start = '{month}-01'
                    AND value_tier = plain_tier ORDER BY customer_id LIMIT 5"""
            ).fetchall()
        ]
        orphans, untiered = picked[:2], picked[2:]
        con.execute(
            f"DELETE FROM marts.customer_indicators_monthly WHERE month_start = '{month}-01' AND customer_id IN ?",
            [orphans],
        )
        con.execute(
            f"DELETE FROM marts.customer_tiers WHERE month_start = '{month}-01' AND customer_id IN ?", [untiered]
        )
    result = validate(copy, tmp_path / "quality", suite, month, month)
    failed = {o.expectation: o for o in result.errors}
    assert set(failed) == {"references:customer_id", "every_live_customer_tiered"}, failed
    assert failed["references:customer_id"].observed == 2
    assert sorted(s["customer_id"] for s in failed["references:customer_id"].samples) == orphans
    assert failed["every_live_customer_tiered"].observed == 3
    assert sorted(s["customer_id"] for s in failed["every_live_customer_tiered"].samples) == untiered


def test_a_warm_process_validates_without_gx_set_up_and_the_index_lists_every_validation(pipeline_run, tmp_path):
    """Validations after the first in a process write no GX configuration (no great_expectations.yml,
    suite, validation definition or checkpoint file) and read each stored result once; the Data
    Docs index still lists every validation, and a new quality directory gets a context of its own."""
    import re
    import subprocess
    import sys

    from valuetier.quality import suites as quality

    month = pipeline_run["months"][-1]
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(WAREHOUSE, copy)
    checked = [s for s in all_suites() if s.table in ("raw.transactions", "raw.customers", "staging.stg_accounts")]
    directory = tmp_path / "quality"
    quality.validate(copy, directory, checked[0], month, month)
    config = directory / "gx" / "great_expectations.yml"
    written = {p: p.stat().st_mtime_ns for p in (directory / "gx").rglob("*") if p.is_file()}
    context = quality._gx_contexts(directory).results
    store_reads = []
    read = context.validation_results_store.get
    context.validation_results_store.get = lambda key: store_reads.append(key) or read(key)
    try:
        for suite in checked * 2:
            assert quality.validate(copy, directory, suite, month, month).passed
    finally:
        del context.validation_results_store.get
    stored = sorted((directory / "gx" / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 1 + 2 * len(checked)
    # Each index build lists every stored result; none is read again: only each new one, for its page.
    assert len(store_reads) == len(set(map(str, store_reads))) == 2 * len(checked)
    configuration = {p: t for p, t in written.items() if not {"data_docs", "validations"} & set(p.parts)}
    assert config in configuration
    assert {p: p.stat().st_mtime_ns for p in configuration} == configuration
    assert not [*(directory / "gx").glob("checkpoints/*"), *(directory / "gx").glob("validation_definitions/*")]
    index = quality.docs_index(directory).read_text()
    assert len(set(re.findall(r"validations/[^\"]+?\.html", index))) == len(stored)
    # The index the process kept its listing for is the one GX builds from the stored files alone.
    rebuild = (
        "import sys, great_expectations as gx; from pathlib import Path;"
        "from valuetier.quality.data_docs import compile_templates_once, localise; compile_templates_once();"
        "c = gx.get_context(mode='file', project_root_dir=sys.argv[1]);"
        "c.build_data_docs(resource_identifiers=[max(c.validation_results_store.list_keys(), "
        "key=lambda k: k.run_id.run_time)]); localise(Path(sys.argv[2]), since=0)"
    )
    site = quality.docs_index(directory).parent
    subprocess.run([sys.executable, "-c", rebuild, str(directory), str(site)], check=True, capture_output=True)
    assert quality.docs_index(directory).read_text() == index
    # A quality directory replaced under the process is opened again, not written through a stale context.
    shutil.rmtree(directory)
    assert quality.validate(copy, directory, checked[1], month, month).passed and config.exists()
    assert len(list((directory / "gx" / "uncommitted" / "validations").rglob("*.json"))) == 1
    assert quality._gx_contexts(directory).results is not context


def test_validations_left_without_the_index_are_all_listed_by_one_index_build(pipeline_run, tmp_path):
    """Validating suites in a row (a run's checks) renders each validation's page and leaves the Data
    Docs index as it was; one build_docs_index afterwards lists every stored validation."""
    import re

    from valuetier.quality import suites as quality

    month = pipeline_run["months"][-1]
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(WAREHOUSE, copy)
    checked = [s for s in all_suites() if s.table in ("raw.transactions", "raw.customers", "staging.stg_accounts")]
    directory = tmp_path / "quality"
    first = quality.validate(copy, directory, checked[0], month, month)
    index = quality.docs_index(directory)
    assert first.docs_index == index and index.exists()
    before = (index.read_text(), index.stat().st_mtime_ns)
    pages = [quality.validate(copy, directory, s, month, month, index=False).docs_page for s in checked]
    assert (index.read_text(), index.stat().st_mtime_ns) == before
    site = index.parent
    assert all(page.exists() and page.is_relative_to(site / "validations") for page in pages)
    assert not [page for page in pages if page.relative_to(site).as_posix() in before[0]]

    assert quality.build_docs_index(directory) == index
    listed = set(re.findall(r"validations/[^\"]+?\.html", index.read_text()))
    stored = list((directory / "gx" / "uncommitted" / "validations").rglob("*.json"))
    assert {page.relative_to(site).as_posix() for page in [first.docs_page, *pages]} == listed
    assert len(listed) == len(stored) == 1 + len(checked)


def test_a_learned_check_warns_on_a_first_load_blocks_a_monthly_run_and_can_be_accepted(pipeline_run, tmp_path):
    """A month whose transactions volume falls by four fifths: while the whole history is first
    loaded the volume check only warns; run alone, as a regular month, it blocks; once an operator
    accepts the month with a reason, it passes and shows the acceptance."""
    from orchestration.quality import check_metadata
    from valuetier.quality.suites import validate

    months = pipeline_run["months"]
    month = months[9]
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(WAREHOUSE, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(f"DELETE FROM raw.transactions WHERE _delivery_month = '{month}-01' AND _source_row % 5 <> 0")
    suite = next(s for s in all_suites() if s.table == "raw.transactions")
    quality = tmp_path / "quality"

    first_load = validate(copy, quality, suite, months[0], months[-1])
    assert first_load.first_load and first_load.passed
    [volume] = [o for o in first_load.warnings if o.expectation == "volume"]
    assert volume.note.startswith("first load of a history") and volume.samples[0]["month"] == month

    monthly = validate(copy, quality, suite, month, month)
    assert not monthly.first_load and not monthly.passed
    [volume] = [o for o in monthly.errors if o.expectation == "volume"]
    command = f'valuetier quality accept --month {month} --check raw_transactions.volume --reason "..."'
    assert volume.to_accept == [command]

    reason = "branch network closed for renovation"
    assert cli(["quality", "--quality-dir", str(quality), "accept", "--month", month,
                "--check", "raw_transactions.volume", "--reason", reason, "--by", "ops"]) == 0  # fmt: skip
    accepted = validate(copy, quality, suite, month, month)
    assert accepted.passed and not [o for o in accepted.outcomes if o.expectation == "volume" and not o.success]
    assert [(a["check"], a["month"], a["reason"], a["accepted_by"]) for a in accepted.accepted] == [
        ("volume", month, reason, "ops")
    ]
    assert check_metadata(accepted)["accepted_by_operator"].value == accepted.accepted
    # Contract checks are never accepted.
    assert cli(["quality", "--quality-dir", str(quality), "accept", "--month", month,
                "--check", "raw_transactions.freshness", "--reason", "x"]) == 2  # fmt: skip


def test_an_accepted_month_runs_through_dagster_and_the_summary_shows_it(pipeline_run, tmp_path, capsys):
    from orchestration.run import print_summary, run_months
    from valuetier.core.settings import Settings
    from valuetier.quality.acceptance import acceptances_path

    month = pipeline_run["months"][-1]
    delivered = LANDING / "transactions" / f"{month}.parquet"
    original = tmp_path / "original.parquet"
    shutil.copy(delivered, original)
    published = {t: fingerprint(t) for t in ("marts.customer_tiers", "marts.customer_indicators_monthly")}
    quality = Settings.from_env().quality_dir
    table = pq.read_table(original)
    pq.write_table(table.slice(0, table.num_rows // 5), delivered)
    try:
        with dg.DagsterInstance.get() as instance:
            blocked = run_months(instance, month, month)
            assert not blocked.success
            [check] = [
                e for e in blocked.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(["raw", "transactions"])
            ]
            assert check.severity == dg.AssetCheckSeverity.ERROR
            assert any(f["expectation"] == "volume" for f in check.metadata["failed_expectations"].value)
            command = f'valuetier quality accept --month {month} --check raw_transactions.volume --reason "..."'
            assert f"raw_transactions error: volume  failed; to accept a month: {command}" in check.description
            assert cli(["quality", "accept", "--month", month, "--check", "raw_transactions.volume",
                        "--reason", "a partial extract, confirmed by the bank"]) == 0  # fmt: skip
            accepted = run_months(instance, month, month)
            assert accepted.success
            [check] = [
                e for e in accepted.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(["raw", "transactions"])
            ]
            assert check.metadata["accepted_by_operator"].value[0]["month"] == month
        print_summary(Settings.from_env(), 1.0)
        assert f"{month} raw_transactions.volume: a partial extract, confirmed by the bank" in capsys.readouterr().out
    finally:
        shutil.copy(original, delivered)
        acceptances_path(quality).unlink(missing_ok=True)
        with dg.DagsterInstance.get() as instance:
            assert run_months(instance, month, month).success
    for table_name, before in published.items():
        assert fingerprint(table_name) == before, table_name


def _row_checked_twin(suite, directory):
    """The same suite checked on its table's rows (as before month profiles)."""
    import json

    raw = json.loads(suite.path.read_text())
    del raw["meta"]["checked_on"]
    path = directory / suite.path.name
    path.write_text(json.dumps(raw))
    return load_suite(path)


def test_month_profiles_find_what_the_rows_find(pipeline_run, tmp_path):
    """Every raw suite checked on the month profiles ingestion wrote fails exactly the expectations
    that the same suite checked on the rows fails, with the same rows counted and the same months
    and bands, on the clean bank (a first load, where the learned checks only warn) and on a month
    broken in every way a row rule can see. The profiles of the pipeline's run describe its rows."""
    from valuetier.core.tables import PROFILES_TABLE
    from valuetier.quality.profiles import ROWS
    from valuetier.quality.suites import profile_months, validate

    months = pipeline_run["months"]
    month = months[-1]
    profiled = [s for s in all_suites() if s.profiled]
    assert {s.table for s in profiled} == {f"raw.{name}" for name in SOURCES}
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        for suite in profiled:
            by_month = con.execute(
                f"SELECT strftime(month, '%Y-%m'), value FROM {PROFILES_TABLE} WHERE suite = ? AND statistic = ? "
                "AND value > 0 ORDER BY 1",
                [suite.name, ROWS],
            ).fetchall()
            loaded = con.execute(
                f"SELECT strftime({suite.month_column}, '%Y-%m'), count(*) FROM {suite.table} GROUP BY 1 ORDER BY 1"
            ).fetchall()
            assert by_month == loaded, suite.name

    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(WAREHOUSE, copy)
    where = f"_delivery_month = '{month}-01'"
    with duckdb.connect(str(copy)) as con:
        con.execute(f"UPDATE raw.transactions SET currency = NULL, amount = -5 WHERE {where} AND _source_row <= 4")
        con.execute(f"UPDATE raw.transactions SET txn_type = 'gift' WHERE {where} AND _source_row BETWEEN 5 AND 7")
        con.execute(
            f"UPDATE raw.transactions SET booked_at = booked_at - INTERVAL 45 DAY, customer_id = 'C-nobody' "
            f"WHERE {where} AND _source_row BETWEEN 8 AND 9"
        )
        con.execute(f"INSERT INTO raw.transactions SELECT * FROM raw.transactions WHERE {where} AND _source_row <= 2")
        con.execute(f"UPDATE raw.customers SET full_name_hash = 'Wang Xiaoming' WHERE {where} AND _source_row = 1")
        con.execute(f"UPDATE raw.balances SET balance = balance * 100 WHERE {where}")
        for suite in profiled:
            profile_months(con, suite, [month])  # what ingestion does as it loads a month

    def failures(result) -> dict:
        """What failed: for a learned check its months and their bands, for a row rule the rows counted."""
        found = {}
        for o in result.errors + result.warnings:
            if o.expectation.startswith(("volume", "distribution", "quarantine")):
                found[o.expectation, o.column, o.severity] = o.samples
            elif o.expectation.endswith("_unique"):
                # GX counts every row of a repeated key; a profile counts the rows past the first.
                found[o.expectation, o.column, o.severity] = "repeated"
            else:
                found[o.expectation, o.column, o.severity] = (
                    o.unexpected_count if o.unexpected_count is not None else o.observed
                )
        return found

    for suite in profiled:
        twin = _row_checked_twin(suite, tmp_path)
        for first, last in ((months[0], months[-1]), (month, month)):
            on_profiles = validate(copy, tmp_path / "q", suite, first, last)
            on_rows = validate(copy, tmp_path / "q", twin, first, last)
            assert on_profiles.rows == on_rows.rows, suite.name
            assert not [o for o in on_profiles.outcomes if o.error], suite.name
            got, expected = failures(on_profiles), failures(on_rows)
            assert got.keys() == expected.keys(), (suite.name, first)
            for what, found in expected.items():
                if isinstance(found, list):
                    # A band: the same months and statistics, summed in another order, and a quantile of
                    # a DECIMAL column kept as a DOUBLE in the profile (exact to 1e-15).
                    found = [
                        {k: v if k == "month" else pytest.approx(float(v), rel=1e-9) for k, v in sample.items()}
                        for sample in found
                    ]
                assert got[what] == found, (suite.name, first, what)
    checked = validate(copy, tmp_path / "q", next(s for s in profiled if s.table == "raw.transactions"), month, month)
    failed = {(o.expectation, o.column): o for o in checked.errors}
    assert set(failed) == {
        ("expect_compound_columns_to_be_unique", "transaction_id,_delivery_month"),
        ("expect_column_values_to_not_be_null", "currency"),
        ("expect_column_values_to_be_between", "amount"),
        ("expect_column_values_to_be_in_set", "txn_type"),
        ("freshness", "booked_at"),
        ("references:customer_id", "customer_id"),
    }
    assert failed["expect_compound_columns_to_be_unique", "transaction_id,_delivery_month"].unexpected_count == 2
    assert len(failed["expect_compound_columns_to_be_unique", "transaction_id,_delivery_month"].samples) == 4
    assert [s["customer_id"] for s in failed["references:customer_id", "customer_id"].samples] == ["C-nobody"] * 2
