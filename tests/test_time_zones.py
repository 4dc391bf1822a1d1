"""The same delivery loaded and built under three host time zones gives the same warehouse: nothing
in ingestion or dbt reads the host's clock. The delivery is a retailer's kind (CSV, the mapping's
time zone America/New_York) whose timestamps are dates alone, the case that once moved with the
host: '2017-02-08' had '-08' read as a UTC offset."""

import hashlib
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from tests.conftest import REPO, run_dbt
from valuetier.demo.generator import GeneratorConfig, generate

pytestmark = pytest.mark.integration

HOST_ZONES = ("UTC", "Asia/Shanghai", "America/New_York")
# What a run loads, in its order: every month, every source, with the landing folder's mapping.
LOAD = """
import sys
from pathlib import Path
from valuetier.core.contract import SOURCE_ORDER
from valuetier.ingest.loader import discover_months, load_month
from valuetier.ingest.mapping import find_mapping, load_mapping
from valuetier.core.warehouse import connect

landing, warehouse = Path(sys.argv[1]), Path(sys.argv[2])
mapping = load_mapping(find_mapping(landing))
with connect(warehouse) as con:
    for month in discover_months(landing):
        for source in SOURCE_ORDER:
            load_month(con, landing, source, month, mapping=mapping)
"""
BUILT = ("raw", "raw_quarantine", "staging", "intermediate", "marts")


def fingerprint(warehouse) -> dict[str, str]:
    """Every table of the loaded and built schemas, its rows in order, as a digest."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            f"AND table_schema IN ({', '.join(repr(s) for s in BUILT)}) ORDER BY ALL"
        ).fetchall()
        return {
            f"{schema}.{table}": hashlib.sha256(
                repr(con.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY ALL').fetchall()).encode()
            ).hexdigest()
            for schema, table in tables
        }


@pytest.fixture(scope="module")
def retailer(tmp_path_factory):
    landing = tmp_path_factory.mktemp("retailer") / "landing"
    generate(GeneratorConfig(customers=300, months=4, seed=21, out=landing, file_format="csv"), progress=lambda _: None)
    for source, column in (("transactions", "booked_at"), ("campaign_contacts", "sent_at")):
        for path in (landing / source).glob("*.csv"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame[column] = frame[column].str[:10]  # the date alone
            frame.to_csv(path, index=False)
    (landing / "mapping.yml").write_text("timezone: America/New_York\n")
    return landing


def test_three_host_time_zones_build_identical_warehouses(retailer, tmp_path):
    prints = {}
    for zone in HOST_ZONES:
        warehouse = tmp_path / zone.replace("/", "_") / "valuetier.duckdb"
        env = {**os.environ, "TZ": zone, "VALUETIER_WAREHOUSE": str(warehouse)}
        subprocess.run([sys.executable, "-c", LOAD, str(retailer), str(warehouse)], env=env, cwd=REPO, check=True)
        os.environ["TZ"] = zone  # run_dbt's subprocess inherits it
        try:
            run_dbt(
                ["run", "--select", "+customer_indicators_monthly", "+customer_tiers_rfm"], warehouse, tmp_path / zone
            )
        finally:
            del os.environ["TZ"]
        prints[zone] = fingerprint(warehouse)
    assert prints["UTC"]["raw.transactions"] and "marts.customer_indicators_monthly" in prints["UTC"]
    for zone in HOST_ZONES[1:]:
        differ = sorted(t for t in prints["UTC"] if prints[zone].get(t) != prints["UTC"][t])
        assert prints[zone].keys() == prints["UTC"].keys() and not differ, f"{zone} differs from UTC in {differ}"
    # Every date-only timestamp loaded as midnight in the mapping's zone, none quarantined.
    with duckdb.connect(str(tmp_path / "UTC" / "valuetier.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw_quarantine.quarantined_rows").fetchone() == (0,)
        assert con.execute("SELECT DISTINCT strftime(booked_at, '%H:%M') FROM raw.transactions").fetchall() == [
            ("00:00",)
        ]
