"""What a bank's security team checks before anything touches customer data: personal data is a
real keyed hash from the moment it loads, and no output of a run (warehouse, published marts,
Parquet, logs, run history, metadata, reports, Data Docs, dbt's files) holds a name, national id,
phone, e-mail or the key in clear; the Data Docs open offline with their tables."""

import hashlib
import hmac
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.conftest import CHROMIUM, LANDING, SCREENSHOTS, SESSION_DIR, WAREHOUSE
from valuetier.core.tables import QUARANTINE_TABLE
from valuetier.demo.generator import GeneratorConfig, generate
from valuetier.demo.population import GIVEN, SURNAMES
from valuetier.ingest.loader import KEYED_HASH, DeliveryError, ensure_raw_tables, load_month
from valuetier.ingest.pii import install_keyed_hash, keyed_hash, keyed_hash_sql, padded_key_blocks

KEY = "test-secret-key"  # the session's VALUETIER_PII_KEY (tests/conftest.py)


def test_the_keyed_hash_is_hmac_sha256():
    # RFC 4231, test case 2 (its data is already trimmed and lower case).
    assert keyed_hash("what do ya want for nothing?", "Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    with duckdb.connect() as con:
        for key in ("Jefe", KEY, "k" * 100, "密钥-ünï"):  # a key longer than SHA-256's block is hashed first
            install_keyed_hash(con, "h", key)
            for value in (" Zhang.Wei@Example.cn ", "王小明", "+86 130 0000 0000", ""):
                expected = hmac.new(key.encode(), value.strip().lower().encode(), hashlib.sha256).hexdigest()
                assert keyed_hash(value, key) == expected
                assert con.execute("SELECT h(?::VARCHAR)", [value]).fetchone()[0] == expected, (key, value)
            assert con.execute("SELECT h(NULL::VARCHAR)").fetchone()[0] is None
    # The key is in the SQL only as HMAC's two padded blocks, never as written.
    assert KEY not in keyed_hash_sql("v", KEY) and KEY.encode().hex() not in keyed_hash_sql("v", KEY)


# Spellings of one identifier an extract may deliver: each hashes as its plain form, in Python and in SQL.
SPELLINGS = {
    "zhang wei": (" Zhang Wei ", "Zhang\tWei", "Zhang\nWei", "ZHANG\u3000WEI", "\u3000Zhang  Wei\u3000"),
    "13000000000": ("１３０００００００００", " 13000000000\t"),
    "josé": ("Jose\u0301", "JOSÉ", "jos\u00e9"),
    "ann@bank.cn": ("Ann@Bank.cn\n", "ＡＮＮ＠ＢＡＮＫ．ＣＮ"),
}


def test_python_and_sql_normalise_an_identifier_the_same_way():
    with duckdb.connect() as con:
        install_keyed_hash(con, "h", KEY)
        for plain, spellings in SPELLINGS.items():
            expected = hmac.new(KEY.encode(), plain.encode(), hashlib.sha256).hexdigest()
            for spelling in (plain, *spellings):
                assert keyed_hash(spelling, KEY) == expected, spelling
                assert con.execute("SELECT h(?::VARCHAR)", [spelling]).fetchone()[0] == expected, spelling
        # Different identifiers stay different: inner spaces are kept (one), letters are not folded away.
        assert keyed_hash("zhangwei", KEY) != keyed_hash("zhang wei", KEY)
        assert keyed_hash("jose", KEY) != keyed_hash("josé", KEY)


def test_ingestion_stores_personal_data_only_as_keyed_hashes(pipeline_run):
    delivered = pd.read_parquet(LANDING / "customers" / f"{pipeline_run['months'][0]}.parquet")
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        columns = {r[0] for r in con.execute("DESCRIBE raw.customers").fetchall()}
        stored = con.execute(
            "SELECT customer_id, full_name_hash, national_id_hash, phone_hash, email_hash FROM raw.customers "
            "WHERE _delivery_month = ?",
            [f"{pipeline_run['months'][0]}-01"],
        ).df()
    assert not {"full_name", "national_id", "phone", "email"} & columns
    joined = delivered.merge(stored, on="customer_id")
    assert len(joined) == len(delivered)
    for column in ("full_name", "national_id", "phone", "email"):
        assert (joined[column].map(lambda v: keyed_hash(v, KEY)) == joined[f"{column}_hash"]).all(), column


@pytest.fixture(scope="module")
def small_landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("pii")
    generate(GeneratorConfig(customers=60, months=1, seed=5, out=root / "landing"), progress=lambda _: None)
    return root


def test_a_quarantined_row_keeps_hashes_not_personal_data(small_landing, tmp_path):
    landing = tmp_path / "landing"
    frame = pd.read_parquet(small_landing / "landing" / "customers" / "2023-01.parquet")
    frame["opened_at"] = frame["opened_at"].astype(str)
    frame.loc[0, "opened_at"] = "not a date"
    (landing / "customers").mkdir(parents=True)
    frame.to_parquet(landing / "customers" / "2023-01.parquet")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        result = load_month(con, landing, "customers", "2023-01", pii_key=KEY)
        assert result.quarantined == 1 and result.loaded == len(frame) - 1
        [(record,)] = con.execute(f"SELECT raw_record FROM {QUARANTINE_TABLE}").fetchall()
        functions = con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_name = ? AND NOT internal", [KEYED_HASH]
        ).fetchone()[0]
    assert frame.loc[0, "full_name"] not in record and frame.loc[0, "email"] not in record
    assert keyed_hash(frame.loc[0, "email"], KEY) in record and "not a date" in record
    assert functions == 1  # the macro is the connection's (TEMP) ...
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:  # ... never stored in the warehouse file
        assert not con.execute(
            "SELECT count(*) FROM duckdb_functions() WHERE function_name = ?", [KEYED_HASH]
        ).fetchone()[0]


def test_a_warehouse_holding_personal_data_in_clear_is_refused(tmp_path):
    with duckdb.connect(str(tmp_path / "old.duckdb")) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.customers (customer_id VARCHAR, full_name VARCHAR, phone VARCHAR)")
        with pytest.raises(DeliveryError, match=r"raw.customers holds personal data in clear \(full_name, phone\)"):
            ensure_raw_tables(con)


# Everything the generator writes as personal data, by its shape: names from its lists, its phone
# numbers, e-mail addresses and (checked against the delivered ids) 18-digit national ids.
NAMES = rf"\b(?:{'|'.join(SURNAMES)}) (?:{'|'.join(GIVEN)})\b"
PATTERNS = [NAMES, r"\+86 1[0-9]{2} [0-9]{4} [0-9]{4}", r"[a-z]+\.[a-z]+\.[0-9]+@example\.cn", r"[0-9]{18}"]


def _secrets() -> list[str]:
    # The key as written, and HMAC's padded blocks of it as they appear in the SQL (valuetier.ingest.pii).
    return [KEY, *(block.hex() for block in padded_key_blocks(KEY))]


def _in_clear(text: str, national_ids: set[str]) -> list[str]:
    found = [m for p in PATTERNS[:3] for m in re.findall(p, text)]
    found += [m for m in re.findall(PATTERNS[3], text) if m in national_ids]
    return found + [s for s in _secrets() if s in text]


def _in_clear_in_duckdb(path: Path, national_ids: set[str]) -> list[str]:
    found = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' OR data_type LIKE '%[]' OR data_type LIKE 'STRUCT%' OR data_type = 'JSON'"
        ).fetchall()
        for schema, table, column in columns:
            hits = con.execute(
                f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM "{schema}"."{table}" '
                f'WHERE regexp_matches(CAST("{column}" AS VARCHAR), ?) LIMIT 20',
                ["|".join(f"(?:{p})" for p in [*PATTERNS, *map(re.escape, _secrets())])],
            ).fetchall()
            found += [f"{schema}.{table}.{column}: {h}" for (v,) in hits for h in _in_clear(v, national_ids)]
    return found


def _in_clear_in_parquet(path: Path, national_ids: set[str]) -> list[str]:
    with duckdb.connect() as con:
        frame = con.execute(f"SELECT * FROM read_parquet('{path}')").df()
    return [f"{c}: {h}" for c in frame.columns for v in frame[c].tolist() for h in _in_clear(str(v), national_ids)]


def test_no_personal_data_or_key_in_clear_in_any_output_of_a_run(pipeline_run):
    """Every file the session's runs wrote, outside the bank's own deliveries: DuckDB files by their
    text columns, Parquet by its values, everything else as bytes (logs, SQLite run history,
    metadata, HTML reports and Data Docs, dbt's target folders, the model registry's cards)."""
    customers = pd.concat(pd.read_parquet(p) for p in (LANDING / "customers").glob("*.parquet"))
    national_ids = set(customers["national_id"].dropna())
    sample = customers.iloc[0]
    assert re.fullmatch(NAMES, sample["full_name"]) and _in_clear(" ".join(sample.astype(str)), national_ids)
    leaks, scanned = [], 0
    for path in sorted(SESSION_DIR.rglob("*")):
        if not path.is_file() or (SESSION_DIR / "bank") in path.parents:
            continue
        scanned += 1
        if path.suffix == ".duckdb":
            found = _in_clear_in_duckdb(path, national_ids)
        elif path.suffix == ".parquet":
            found = _in_clear_in_parquet(path, national_ids)
        else:
            found = _in_clear(path.read_bytes().decode("utf-8", errors="replace"), national_ids)
        leaks += [f"{path.relative_to(SESSION_DIR)}: {f}" for f in found[:3]]
    assert scanned > 200
    assert leaks == [], "\n".join(leaks[:30])


def test_the_data_docs_open_offline_with_their_tables(pipeline_run):
    from playwright.sync_api import sync_playwright

    from valuetier.core.settings import Settings
    from valuetier.quality.data_docs import external_references
    from valuetier.quality.suites import docs_index

    index = docs_index(Settings.from_env().quality_dir)
    site = index.parent
    assert external_references(site) == []
    page_file = next((site / "validations").rglob("*.html"))
    outside = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def local_only(route):
            url = route.request.url
            (route.continue_() if url.startswith("file://") else (outside.append(url), route.abort()))

        page.route("**/*", local_only)
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        for name, target in (("index", index), ("validation", page_file)):
            page.goto(target.as_uri(), wait_until="load")
            page.wait_for_timeout(500)
            if name == "index":
                # bootstrap-table draws the index's list of validations from data in the page.
                rows = page.locator(".bootstrap-table tbody tr").count()
                assert rows > 0, "the index lists no validation"
            else:
                assert page.locator("table tbody tr").count() > 0
            # Bootstrap's stylesheet is applied (unstyled, the body is in the browser's serif).
            assert "Segoe UI" in page.evaluate("getComputedStyle(document.body).fontFamily")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"data-docs-{name}.png"), full_page=True)
        browser.close()
    assert outside == [] and failed == []


def test_the_offline_audit_flags_a_vulnerable_pin_and_passes_the_lock():
    import json

    from valuetier.audit import SNAPSHOT, affects, audit, pinned

    snapshot = json.loads(SNAPSHOT.read_text())
    [old] = [f for f in audit({"jinja2": "2.7.1"}, snapshot["advisories"]) if f.id == "PYSEC-2014-8"]
    assert old.fixed == ("2.7.2",)
    assert not [f for f in audit({"jinja2": "2.7.2"}, snapshot["advisories"]) if f.id == "PYSEC-2014-8"]
    ranges = {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.2"}, {"fixed": "1.4"}]}]}
    assert [affects(ranges, v) for v in ("1.1", "1.2", "1.3.9", "1.4")] == [False, True, True, False]
    unfixed = {"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "2.0"}]}]}
    assert affects(unfixed, "2.0") and not affects(unfixed, "2.0.1")
    accepted = {old.id: "not reachable"}
    assert audit({"jinja2": "2.7.1"}, snapshot["advisories"], accepted)[0].accepted == "not reachable"
    # The lock as it is: every pin known to the snapshot, no open finding (make test runs the same).
    pins = pinned()
    assert len(pins) > 100 and pins["dagster"] == "1.13.27"
    assert [f for f in audit(pins, snapshot["advisories"]) if not f.accepted] == []
