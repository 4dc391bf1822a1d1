"""Champion against challenger in the backtest: the challenger scores the published months, and the
dbt backtest judges it on the same customers and months as the published tiers."""

import dataclasses
import shutil

import duckdb
import pytest

from tests.conftest import WAREHOUSE, run_dbt
from valuetier.core.tables import CHALLENGER_TABLE
from valuetier.tiering.challenger import challenger_version, score_challenger_month
from valuetier.tiering.registry import Registry

pytestmark = pytest.mark.integration


def copy_with_a_challenger_twin(tmp_path):
    """The session's warehouse and registry copied, with the champion's own models registered again
    as the challenger: the warehouse, the registry, the champion's version and the twin's card."""
    from valuetier.core.settings import Settings

    warehouse, models = tmp_path / "valuetier.duckdb", tmp_path / "models"
    shutil.copy(WAREHOUSE, warehouse)
    shutil.copytree(Settings.from_env().models_dir, models)
    registry = Registry(models)
    champion = registry.champion_version()
    card = dataclasses.asdict(registry.card(champion))
    for field in ("version", "package_versions", "artifact_sha256"):
        card.pop(field)
    twin = registry.register(registry.load(champion), **{**card, "status": "challenger", "decision": "test twin"})
    return warehouse, registry, champion, twin


def test_without_a_second_version_there_is_no_challenger(tmp_path):
    assert challenger_version(Registry(tmp_path / "models")) is None


def test_the_challenger_is_backtested_on_the_same_months(pipeline_run, tmp_path):
    """A challenger registered with the champion's own models must score exactly as the champion:
    its tiers are the published tiers' plain cut (the challenger is cut plainly into their sizes;
    the published tiers are stable), and the backtest's challenger rows, which judge every ranking
    on the plain cut, equal the published tiers' rows, month by month."""
    warehouse, registry, champion, twin = copy_with_a_challenger_twin(tmp_path)
    assert challenger_version(registry) == twin.version != champion
    months = pipeline_run["months"]
    with duckdb.connect(str(warehouse)) as con:
        for month in months:
            assert score_challenger_month(con, month, registry).customers > 0
        scored = con.execute(f"SELECT DISTINCT model_version FROM {CHALLENGER_TABLE}").fetchall()
        differ = con.execute(f"""SELECT count(*) FROM {CHALLENGER_TABLE} c JOIN marts.customer_tiers t
                                 USING (customer_id, month_start)
                                 WHERE c.value_tier <> t.plain_tier OR abs(c.predicted_value - t.predicted_value) > 0.01
                              """).fetchone()[0]
        tiered = con.execute("SELECT count(*) FROM marts.customer_tiers").fetchone()[0]
        assert con.execute(f"SELECT count(*) FROM {CHALLENGER_TABLE}").fetchone()[0] == tiered
    assert scored == [(twin.version,)] and differ == 0
    run_dbt(["build", "--select", "tag:evaluation"], warehouse, tmp_path / "target")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        backtest = con.execute("""
            SELECT month_start, ranking, customers, normalized_gini, tier_accuracy
            FROM evaluation.eval_model_backtest_monthly WHERE ranking IN ('tiers', 'challenger')""").fetchall()
    by = {(m, r): rest for m, r, *rest in backtest}
    months_backtested = {m for m, _ in by}
    assert months_backtested and all(by[(m, "challenger")] == by[(m, "tiers")] for m in months_backtested)


def test_the_challenger_is_cut_into_the_published_tiers_sizes_whatever_cut_made_them(pipeline_run, tmp_path):
    """A run may cut the published tiers by value thresholds instead of the tier shares (the one tier
    override the launchpad offers): the challenger is then cut into the same tier sizes, so the
    backtest compares the two rankings on tiers of equal size, not the override against the shares."""
    from valuetier.tiering.scoring import ScoringRules, current_champion, score_month_tiers

    warehouse, registry, _, _ = copy_with_a_challenger_twin(tmp_path)
    month = pipeline_run["months"][-1]
    sizes = f"""SELECT count(*) FILTER (WHERE value_tier = 'high'), count(*) FILTER (WHERE value_tier = 'mid'),
                       count(*) FROM {{}} WHERE strftime(month_start, '%Y-%m') = '{month}'"""
    with duckdb.connect(str(warehouse)) as con:
        high, mid = con.execute(
            f"""SELECT quantile_cont(predicted_value, 0.75), quantile_cont(predicted_value, 0.35)
                FROM marts.customer_tiers WHERE strftime(month_start, '%Y-%m') = '{month}'"""
        ).fetchone()
        score_month_tiers(con, month, current_champion(registry), ScoringRules(high_value=high, mid_value=mid))
        published = con.execute(sizes.format("marts.customer_tiers")).fetchone()
        by_shares = ScoringRules()
        assert published[0] > round(by_shares.high_share * published[2]) + 10  # the thresholds cut a larger high tier
        score_challenger_month(con, month, registry)
        assert con.execute(sizes.format(CHALLENGER_TABLE)).fetchone() == published
