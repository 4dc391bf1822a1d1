"""The SQL's dbt unit tests (models/*/_*__unit_tests.yml), on hand-computed fixtures, against an
empty warehouse: the relations they read are built with no rows (`dbt run --empty`), since a unit
test needs only their columns. No generated bank and no pipeline run: part of `make test-fast`."""

import duckdb

from tests.conftest import run_dbt
from valuetier.core.tables import ensure_tiers_tables
from valuetier.ingest.loader import ensure_raw_tables


def test_dbt_unit_tests_pass(tmp_path):
    warehouse = tmp_path / "empty.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ensure_raw_tables(con)  # the sources the bank delivers
        ensure_tiers_tables(con)  # and those the Python steps write (tiers, challenger scores)
    run_dbt(["run", "--empty"], warehouse, tmp_path / "target")
    result = run_dbt(["test", "--select", "test_type:unit"], warehouse, tmp_path / "target")
    assert "ERROR=0" in result.stdout and "FAIL=" not in result.stdout
    passed = int(result.stdout.rsplit("PASS=", 1)[1].split()[0])
    assert passed >= 8
