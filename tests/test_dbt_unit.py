"""The SQL's dbt unit tests (models/*/_*__unit_tests.yml), on hand-computed fixtures, against an
empty warehouse: the relations they read are built with no rows (`dbt run --empty`), since a unit
test needs only their columns. No generated bank and no pipeline run: part of `make test-fast`."""

import json
import re

import duckdb
import pytest

from tests.conftest import run_dbt
from valuetier.application.publish import PUBLISHED_MARTS
from valuetier.core.tables import ensure_crm_actions_tables, ensure_tiers_tables
from valuetier.ingest.loader import ensure_raw_tables


def test_dbt_unit_tests_pass(tmp_path):
    warehouse = tmp_path / "empty.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ensure_raw_tables(con)  # the sources the bank delivers
        ensure_tiers_tables(con)  # and those the Python steps write (tiers, challenger scores,
        ensure_crm_actions_tables(con)  # CRM actions, uplift scores)
    run_dbt(["run", "--empty"], warehouse, tmp_path / "target")
    result = run_dbt(["test", "--select", "test_type:unit"], warehouse, tmp_path / "target")
    assert "ERROR=0" in result.stdout and "FAIL=" not in result.stdout
    passed = int(result.stdout.rsplit("PASS=", 1)[1].split()[0])
    assert passed >= 8


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    target = tmp_path_factory.mktemp("parse")
    run_dbt(["parse"], target / "unused.duckdb", target)
    return json.loads((target / "manifest.json").read_text())


def test_every_dbt_mart_published_for_bi_has_an_enforced_contract(manifest):
    """A published mart's column names and types are a promise to its readers: dbt refuses a build
    whose columns differ from the YAML (dbt_project.yml sets the contracts on DuckDB)."""
    models = {
        (n["config"]["schema"], n["name"]): n for n in manifest["nodes"].values() if n["resource_type"] == "model"
    }
    published = [m for m in PUBLISHED_MARTS if (m.schema, m.name.split(".")[1]) in models]
    assert len(published) >= 11  # the indicators and every evaluation mart
    for mart in published:
        node = models[(mart.schema, mart.name.split(".")[1])]
        assert node["contract"]["enforced"], mart.name
        untyped = [c["name"] for c in node["columns"].values() if not c.get("data_type")]
        assert node["columns"] and not untyped, f"{mart.name}: no data_type for {untyped}"
    # ... and the contracted models are exactly those published.
    contracted = {key for key, n in models.items() if n["contract"]["enforced"]}
    assert contracted == {(m.schema, m.name.split(".")[1]) for m in published}


# The naming scheme (docs/warehouse.md, "Names"): a prefix says what one row is.
NAMES = {
    "staging": r"stg_[a-z_]+",
    "intermediate": r"int_[a-z_]+",
    "marts": r"(dim|fct|customer|quarantine)_[a-z_]+",
    "evaluation": r"eval_[a-z_]+",
}


def test_every_dbt_model_is_named_by_the_scheme(manifest):
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model":
            folder = node["fqn"][1]
            assert re.fullmatch(NAMES[folder], node["name"]), f"{folder}/{node['name']}"
            # The folder is the layer, except the evaluation's intermediates, built with the evaluation.
            expected = "intermediate" if folder == "intermediate" else folder
            assert node["config"]["schema"] == expected, node["name"]
