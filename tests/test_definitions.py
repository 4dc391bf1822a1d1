import subprocess

import dagster as dg
import pytest

from orchestration.definitions import defs
from valuetier.application.publish import PUBLISHED_MARTS
from valuetier.core.contract import SOURCE_ORDER
from valuetier.core.months import dbt_month_window

# Loaded once, as a code location does (a Definitions built after a test instance has closed trips over
# the closed instance's state storage).
DEFS = defs()


def test_definitions_load_with_one_lineage_graph():
    graph = DEFS.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {f"raw/{s}" for s in SOURCE_ORDER} <= keys
    assert {
        "staging/stg_transactions",
        "marts/customer_indicators_monthly",
        "marts/customer_tiers",
        "evaluation/eval_tier_outcomes_monthly",
        "marts/dim_customer",
    } <= keys
    # dbt sources are the ingestion assets, so staging hangs off raw in one graph.
    stg = graph.get(dg.AssetKey(["staging", "stg_transactions"]))
    assert dg.AssetKey(["raw", "transactions"]) in stg.parent_keys
    groups = {graph.get(dg.AssetKey.from_user_string(k)).group_name for k in keys}
    assert groups == {"raw", "staging", "intermediate", "marts", "evaluation", "monitoring", "published", "model"}
    # The evaluation reads the tiers the Python scoring writes: dbt marts -> scoring -> dbt evaluation.
    tiers = dg.AssetKey(["marts", "customer_tiers"])
    outcomes = dg.AssetKey(["intermediate", "int_tier_outcomes"])
    assert tiers in graph.get(outcomes).parent_keys
    assert outcomes in graph.get(dg.AssetKey(["evaluation", "eval_tier_outcomes_monthly"])).parent_keys
    # BI's published marts come last, after the tiers, the indicators and their evaluation.
    evaluation = {dg.AssetKey(m.name.split(".")) for m in PUBLISHED_MARTS if m.schema == "evaluation"}
    assert len(evaluation) >= 9 and all(graph.get(key).group_name == "evaluation" for key in evaluation)
    alerts, drift = dg.AssetKey(["monitoring", "alerts"]), dg.AssetKey(["monitoring", "drift_monthly"])
    assert graph.get(dg.AssetKey(["published", "bi_marts"])).parent_keys == {
        tiers,
        dg.AssetKey(["marts", "customer_indicators_monthly"]),
        *evaluation,
        alerts,
        drift,
        dg.AssetKey(["marts", "crm_actions"]),
    }
    # Monitoring measures the scored month's indicators and tiers.
    assert graph.get(drift).parent_keys == {tiers, dg.AssetKey(["marts", "customer_indicators_monthly"])}
    # Its alerts come from the drift and from the fairness review (tier_fairness).
    assert graph.get(alerts).parent_keys == {drift, dg.AssetKey(["evaluation", "eval_tier_fairness_monthly"])}
    assert graph.get(tiers).parent_keys == {
        dg.AssetKey(["marts", "customer_indicators_monthly"]),
        dg.AssetKey(["marts", "customer_clv_monthly"]),
        dg.AssetKey(["model", "tiering_model"]),
    }


def test_every_asset_says_what_it_is_who_owns_it_and_which_code_made_it():
    from orchestration.versions import OWNERS, code_version

    graph = DEFS.resolve_asset_graph()
    materialised = [graph.get(k) for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    assert len(materialised) > 50
    for node in materialised:
        name = node.key.to_user_string()
        assert node.description and len(node.description) > 30, name
        assert node.owners == OWNERS and node.group_name and node.kinds, name
        assert node.code_version, name
    # A Python asset's code version is its domain modules' source: it changes when they do.
    tiers = graph.get(dg.AssetKey(["marts", "customer_tiers"]))
    assert tiers.code_version == code_version(
        ("tiering.scoring", "tiering.training", "tiering.tree_ensemble", "core.value_measure")
    )
    assert tiers.code_version != code_version(("tiering.scoring",))
    # The dbt steps stay one build each per run: checks on the tiers would split the evaluation.
    for job, steps in (("monthly_pipeline", 2), ("rescore_tiers", 1), ("build_months", 1)):
        nodes = DEFS.resolve_job_def(job).graph.node_dict
        assert len([n for n in nodes if n.startswith("valuetier_dbt")]) == steps, job


def test_warehouse_writers_share_one_pool():
    for spec in DEFS.resolve_all_asset_specs():
        if spec.group_name == "model":  # trained on its own schedule, not per month
            assert spec.partitions_def is None
        else:
            assert spec.partitions_def is not None and spec.partitions_def.name == "month", spec.key
    for name in ("monthly_pipeline", "build_months", "train_tiering_model", "rescore_tiers"):
        job = DEFS.resolve_job_def(name)
        assert job.executor_def.name == "in_process"
        for node in job.graph.node_defs:
            assert node.pool == "duckdb", node.name
    assert DEFS.resolve_schedule_def("quarterly_training").cron_schedule == "0 6 10 1,4,7,10 *"


def test_dbt_month_window():
    assert dbt_month_window("2024-11", "2025-02") == {
        "VALUETIER_START_MONTH": "2024-11-01",
        "VALUETIER_END_MONTH": "2025-02-01",
    }
    assert dbt_month_window("2025-02", "2025-02") == {
        "VALUETIER_START_MONTH": "2025-02-01",
        "VALUETIER_END_MONTH": "2025-02-01",
    }
    with pytest.raises(ValueError, match="backwards"):
        dbt_month_window("2025-03", "2025-02")
    with pytest.raises(ValueError, match="YYYY-MM"):
        dbt_month_window("2025-3", "2025-04")


def test_sensor_adds_and_runs_each_new_month_once(bank):
    from orchestration.ingestion import new_month_sensor
    from orchestration.resources import ValueTierSettings
    from valuetier.ingest.loader import discover_months

    months = discover_months(bank)
    landed = {"valuetier": ValueTierSettings(landing=str(bank))}
    with dg.instance_for_test() as instance:
        first = new_month_sensor(dg.build_sensor_context(instance=instance, resources=landed))
        assert [r.partition_key for r in first.run_requests] == months
        [add] = first.dynamic_partitions_requests
        assert list(add.partition_keys) == months
        instance.add_dynamic_partitions("month", months[:-1])
        again = new_month_sensor(dg.build_sensor_context(instance=instance, resources=landed))
        assert [r.partition_key for r in again.run_requests] == months[-1:]


def test_the_monthly_schedule_runs_the_latest_month(bank, tmp_path):
    from datetime import datetime

    from orchestration.jobs import monthly_latest_month
    from orchestration.resources import ValueTierSettings
    from valuetier.ingest.loader import discover_months

    months = discover_months(bank)
    schedule = DEFS.resolve_schedule_def("monthly_latest_month")
    assert schedule.cron_schedule == "0 6 5 * *" and schedule.job_name == "monthly_pipeline"
    with dg.instance_for_test() as instance:
        when = datetime(2026, 12, 5, 6)
        landed = {"valuetier": ValueTierSettings(landing=str(bank))}
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when, resources=landed)
        request = monthly_latest_month(context)
        assert request.partition_key == months[-1] and request.run_key == f"scheduled-2026-12-{months[-1]}"
        assert instance.get_dynamic_partitions("month") == [months[-1]]  # registered when the sensor is off

    empty = ValueTierSettings(landing=str(tmp_path))  # an empty landing folder
    with dg.instance_for_test() as instance:
        skipped = monthly_latest_month(dg.build_schedule_context(instance=instance, resources={"valuetier": empty}))
        assert isinstance(skipped, dg.SkipReason) and str(tmp_path) in skipped.skip_message


def test_a_new_installation_builds_months_without_tiers_then_scores_them_once():
    tiers, evaluation = (
        dg.AssetKey(["marts", "customer_tiers"]),
        dg.AssetKey(["evaluation", "eval_tier_outcomes_monthly"]),
    )
    build = DEFS.resolve_job_def("build_months").asset_layer.asset_graph
    assert tiers not in build.get_all_asset_keys() and evaluation not in build.get_all_asset_keys()
    assert not any(check.asset_key == tiers for check in build.asset_check_keys)
    assert dg.AssetKey(["marts", "customer_clv_monthly"]) in build.get_all_asset_keys()
    score = DEFS.resolve_job_def("rescore_tiers").asset_layer.asset_graph
    published = dg.AssetKey(["published", "bi_marts"])
    assert published not in build.get_all_asset_keys()
    alerts = dg.AssetKey(["monitoring", "alerts"])
    assert {tiers, evaluation, alerts, published} <= set(score.get_all_asset_keys())
    report = dg.AssetKey(["published", "monthly_report"])
    assert alerts not in build.get_all_asset_keys() and report not in build.get_all_asset_keys()
    for key in (report, dg.AssetKey(["marts", "crm_actions"]), dg.AssetKey(["marts", "customer_tiers_challenger"])):
        assert key in score.get_all_asset_keys() and key not in build.get_all_asset_keys()
    assert any(check.asset_key == tiers for check in score.asset_check_keys)
    assert {c.name for c in score.asset_check_keys if c.asset_key == alerts} == {
        "no_error_alerts",
        "no_delivery_warnings",
    }


def test_the_dbt_resource_leaves_out_only_what_valuetier_does_not_use():
    """orchestration/resources.py's DbtCli overrides two dagster-dbt internals: an upgrade that
    renames them fails here, and the version it reports is the one `dbt --version` prints."""
    from dagster_dbt import DbtCliResource

    from orchestration.resources import DbtCli, build_resources

    assert {"_cli_version", "_initialize_dbt_core_adapter"} <= set(vars(DbtCliResource))
    dbt = build_resources()["dbt"]
    assert isinstance(dbt, DbtCli) and dbt._initialize_dbt_core_adapter(["build"]) is None
    printed = subprocess.run([dbt.dbt_executable, "--version"], capture_output=True, text=True, check=True).stdout
    assert f"installed: {dbt._cli_version}" in printed


def test_every_launchpad_config_field_says_what_it_does():
    """Dagster shows a config field's description in the launchpad; an attribute docstring it never reads."""
    from orchestration.clv import ClvConfig
    from orchestration.model import TrainingConfig
    from orchestration.monitoring import MonitoringConfig
    from orchestration.scoring import ScoringConfig

    for config in (ClvConfig, TrainingConfig, MonitoringConfig, ScoringConfig):
        fields = config.to_config_schema().as_field().config_type.fields
        assert fields, config
        for name, field in fields.items():
            assert field.description and len(field.description) > 15, f"{config.__name__}.{name}"


def test_settings_reach_assets_as_resources_bound_to_the_environment(tmp_path, monkeypatch):
    """Each settings field is bound to its variable where one is set (resolved when a run starts);
    an unset one keeps the documented default."""
    from orchestration.resources import ValueTierSettings

    monkeypatch.setenv("VALUETIER_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("VALUETIER_DUCKDB_THREADS", "1")
    monkeypatch.delenv("VALUETIER_MAPPING", raising=False)
    bound = ValueTierSettings.from_environment()
    assert bound.landing == dg.EnvVar("VALUETIER_LANDING") and bound.mapping is None
    with dg.build_resources({"valuetier": bound}) as resources:
        current = resources.valuetier.current
    assert current.landing_dir == tmp_path / "landing" and current.duckdb.threads == 1
    assert current.mapping_file is None


def test_importing_and_loading_the_definitions_read_no_setting():
    """Settings are read when a run starts, not when a module is imported or the code location loads:
    settings a run would refuse still let the UI show the definitions."""
    import os
    import sys

    refused = {**os.environ, "VALUETIER_MODE": "nonsense", "VALUETIER_DUCKDB_THREADS": "all"}
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "from orchestration.definitions import defs; print(len(defs().resolve_all_asset_specs()))",
        ],
        env=refused,
        capture_output=True,
        text=True,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert int(loaded.stdout) > 50
    # The settings are built in two places only: the resource, and the console runner's main.
    from tests.conftest import REPO

    readers = sorted(p.name for p in (REPO / "orchestration").glob("*.py") if "Settings.from_env(" in p.read_text())
    assert readers == ["resources.py", "run.py"]


def test_the_launchpad_offers_no_business_parameter():
    """A business parameter has one home, dbt_project.yml's vars, which dbt and every Python reader
    take: a launchpad override of one would reach some readers (the published tiers) and not others
    (the rule tiers, the challenger, the training's holdout, the backtest), so none is offered."""
    from dataclasses import fields

    from orchestration.clv import ClvConfig
    from orchestration.model import TrainingConfig
    from orchestration.monitoring import MonitoringConfig
    from orchestration.scoring import ScoringConfig
    from valuetier.core.parameters import BusinessParameters

    parameters = {f.name for f in fields(BusinessParameters)} | {"high_share", "mid_share", "churn_risk"}
    for config in (ClvConfig, MonitoringConfig, ScoringConfig, TrainingConfig):
        assert not parameters & set(config.model_fields), config.__name__
    # A training may shorten the label horizon of its candidate (horizon_months): the horizon is on
    # the model's card and on every row it scores (value_horizon_months), which the backtest reads.


def test_a_run_reads_the_settings_when_it_starts(tmp_path, monkeypatch):
    """The resource is built when the definitions load; the settings are those of the run's start,
    also for a variable that was not set at load (a test, an operator exporting one later)."""
    from orchestration.resources import ValueTierSettings

    monkeypatch.delenv("VALUETIER_WAREHOUSE", raising=False)
    loaded = ValueTierSettings.from_environment()
    seen = []

    @dg.op
    def probe(valuetier: ValueTierSettings):
        seen.append(valuetier.current.warehouse_path)

    @dg.job(resource_defs={"valuetier": loaded})
    def two_runs():
        probe()

    for name in ("first", "second"):
        monkeypatch.setenv("VALUETIER_WAREHOUSE", str(tmp_path / name / "valuetier.duckdb"))
        assert two_runs.execute_in_process().success
    assert seen == [tmp_path / "first" / "valuetier.duckdb", tmp_path / "second" / "valuetier.duckdb"]
