"""Training sets, models, metrics and the registry, on the small bank's warehouse (built once by
the session's pipeline run)."""

import json
from dataclasses import replace

import duckdb
import numpy as np
import pytest

from tests.conftest import WAREHOUSE
from valuetier.core.months import add_months
from valuetier.core.parameters import business_parameters
from valuetier.tiering.metrics import churn_report, cut_tiers, ranking_report
from valuetier.tiering.registry import IncompatibleArtifactError, Registry, RegistryError, TamperedArtifactError
from valuetier.tiering.training import FEATURES, SearchSpace, build_training_set, labelled_months, train_models

pytestmark = pytest.mark.integration
SMALL_SEARCH = SearchSpace(learning_rate=(0.1,), max_leaf_nodes=(15,), min_samples_leaf=(20, 50), max_iter=60, folds=2)


def card_fields(**overrides) -> dict:
    """The fields a registry card needs besides the artifact, with small placeholder values."""
    fields = dict(
        training_months=["2024-01"],
        holdout_month="2024-06",
        horizon_months=6,
        value_measure="p",
        features=["f"],
        parameters={},
        metrics={},
        data_fingerprint="f",
    )
    return fields | overrides


def test_training_rows_are_capped_evenly_across_months():
    import pandas as pd

    from valuetier.tiering.training import sample_rows

    frame = pd.DataFrame(
        {"month_start": np.repeat(["2024-01", "2024-02", "2024-03"], [1000, 3000, 6000]), "customer_id": range(10000)}
    )
    capped = sample_rows(frame, 2000, seed=1)
    assert capped.month_start.value_counts().to_dict() == {"2024-03": 1200, "2024-02": 600, "2024-01": 200}
    assert capped.customer_id.is_monotonic_increasing and capped.equals(sample_rows(frame, 2000, seed=1))
    assert not capped.equals(sample_rows(frame, 2000, seed=2))
    assert sample_rows(frame, 20000, seed=1) is frame


class RetiredModelClass:
    """Stands for a model class an earlier ValueTier pickled and this one no longer has."""


def test_an_artifact_of_retired_model_classes_is_refused_with_a_reason(tmp_path, monkeypatch):
    import sys

    registry = Registry(tmp_path / "models")
    card = registry.register(RetiredModelClass(), **card_fields())
    monkeypatch.delattr(sys.modules[__name__], "RetiredModelClass")
    with pytest.raises(IncompatibleArtifactError, match="cannot read .*RetiredModelClass.*: retrain"):
        registry.load(card.version)


def test_cut_tiers_gives_exact_stable_shares():
    scores = np.array([5, 1, 5, 3, 2, 9, 0, 5, 4, 7], dtype=float)
    tiers = cut_tiers(scores, 0.1, 0.3)
    assert tiers.tolist() == ["mid", "low", "mid", "low", "low", "high", "low", "low", "low", "mid"]
    assert tiers.tolist() == cut_tiers(scores.copy(), 0.1, 0.3).tolist()
    with pytest.raises(ValueError, match="shares"):
        cut_tiers(scores, 0.8, 0.3)


def test_ranking_report_on_a_perfect_and_a_reversed_ranking():
    realised = np.arange(100, dtype=float)
    shares = business_parameters().tier_high_share, business_parameters().tier_mid_share
    perfect, reversed_ = ranking_report(realised, realised, *shares), ranking_report(-realised, realised, *shares)
    assert perfect.per_tier["high"]["f1"] == 1.0 and perfect.spearman == 1.0
    assert perfect.high_tier_value_capture == pytest.approx(realised[90:].sum() / realised.sum(), abs=1e-4)
    assert reversed_.per_tier["high"]["f1"] == 0.0 and reversed_.spearman == -1.0
    assert churn_report([0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0])["auc"] == 1.0


@pytest.fixture(scope="module")
def training(pipeline_run):
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        months = labelled_months(con, 3)
        train = build_training_set(con, months[:-1], horizon_months=3)
        holdout = build_training_set(con, months[-1:], horizon_months=3)
    return months, train, holdout


def test_a_capped_training_set_is_sampled_in_the_warehouse_evenly_and_seeded(training):
    """A large bank's training set is never read whole: each month keeps the same share of its
    customers, the sample is the same for the same seed, and the rows available are still reported."""
    months, train, _ = training
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        capped = build_training_set(con, months[:-1], horizon_months=3, max_rows=4000, seed=1)
        again = build_training_set(con, months[:-1], horizon_months=3, max_rows=4000, seed=1)
        other = build_training_set(con, months[:-1], horizon_months=3, max_rows=4000, seed=2)
        uncapped = build_training_set(con, months[:-1], horizon_months=3, max_rows=len(train.frame))
    share = 4000 / len(train.frame)
    per_month, whole = capped.frame.month_start.value_counts(), train.frame.month_start.value_counts()
    assert ((per_month - np.ceil(share * whole[per_month.index])).abs() == 0).all()
    assert len(capped.frame) <= 4000 + len(whole) and capped.available_rows == len(train.frame)
    assert capped.frame.equals(again.frame) and not capped.frame.equals(other.frame)
    assert uncapped.frame.equals(train.frame)
    # every sampled row carries the same features and labels as in the whole set
    merged = capped.frame.merge(train.frame, on=["customer_id", "month_start"], suffixes=("", "_whole"))
    assert len(merged) == len(capped.frame) and (merged.realised_value == merged.realised_value_whole).all()


def test_training_set_is_point_in_time(training):
    months, train, _ = training
    assert len(months) == 12  # 15 months less a 3-month horizon
    frame = train.frame
    assert list(frame.columns[:2]) == ["customer_id", "month_start"] and set(FEATURES) <= set(frame.columns)
    assert (train.value_measure, train.value_measure_reason) == (
        "profit",
        "auto: the deliveries carry fee income or net interest margin",
    )
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        row = frame.iloc[len(frame) // 2]
        month = row.month_start.strftime("%Y-%m-%d")
        # Features are exactly the indicator row of month M ...
        assert (
            con.execute(
                f"SELECT monetary_12m::DOUBLE FROM marts.customer_indicators_monthly WHERE customer_id = ? "
                f"AND month_start = DATE '{month}'",
                [row.customer_id],
            ).fetchone()[0]
            == row.monetary_12m
        )
        # ... and the label is the profit of the 3 months after M, nothing else.
        label = con.execute(
            "SELECT coalesce(sum(profit_contribution), 0)::DOUBLE "
            "FROM intermediate.int_transactions_by_customer_month WHERE customer_id = ? "
            f"AND month_start > DATE '{month}' AND month_start <= DATE '{month}' + INTERVAL 3 MONTH",
            [row.customer_id],
        ).fetchone()[0]
    assert label == pytest.approx(row.realised_value)


def test_model_beats_rfm_and_training_is_deterministic(training, tmp_path):
    _, train, holdout = training
    first, second = train_models(train, SMALL_SEARCH, seed=3), train_models(train, SMALL_SEARCH, seed=3)
    h = holdout.frame
    predicted = first.predict_value(h)
    assert np.array_equal(predicted, second.predict_value(h))
    shares = business_parameters().tier_high_share, business_parameters().tier_mid_share
    model = ranking_report(predicted, h.realised_value, *shares)
    rfm = ranking_report(
        business_parameters().rfm_weighted(h.recency_score, h.frequency_score, h.monetary_score),
        h.realised_value,
        *shares,
    )
    assert model.high_tier_value_capture > rfm.high_tier_value_capture
    assert model.per_tier["high"]["f1"] > rfm.per_tier["high"]["f1"]
    churn = first.predict_churn(h)
    assert np.all((churn >= 0) & (churn <= 1))

    registry = Registry(tmp_path / "models")
    fields = card_fields(
        training_months=[str(m) for m in train.months],
        holdout_month="x",
        horizon_months=3,
        value_measure="profit (configured)",
        features=list(FEATURES),
    )
    a, b = registry.register(first, **fields), registry.register(second, **fields)
    assert (a.version, b.version) == ("v0001", "v0002")
    assert a.artifact_sha256 == b.artifact_sha256  # same data and seed, same bytes


def test_registry_refuses_tampered_or_incompatible_artifacts_and_keeps_a_better_champion(tmp_path):
    registry = Registry(tmp_path / "models")
    fields = card_fields()
    first = registry.decide(registry.register({"model": 1}, **fields), True, "beats both", {"promoted": True})
    assert first.status == "champion" and registry.champion_version() == "v0001"
    assert first.promotion == {"promoted": True} and registry.card("v0001").promotion == {"promoted": True}
    worse = registry.decide(registry.register({"model": 2}, **fields), False, "not promoted: worse", {})
    assert worse.status == "rejected" and worse.decision == "not promoted: worse"
    assert registry.champion_version() == "v0001"
    better = registry.decide(registry.register({"model": 3}, **fields), True, "promoted", {})
    assert better.status == "champion" and registry.champion_version() == "v0003"
    assert registry.card("v0001").status == "retired"

    assert registry.rollback("v0001").status == "champion" and registry.champion_version() == "v0001"
    assert registry.load("v0001") == {"model": 1}

    artifact = tmp_path / "models" / "v0003" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    with pytest.raises(TamperedArtifactError, match="v0003/model.joblib: sha256"):
        registry.load("v0003")
    with pytest.raises(TamperedArtifactError):
        registry.rollback("v0003")

    card_path = tmp_path / "models" / "v0002" / "card.json"
    card = json.loads(card_path.read_text())
    card["package_versions"]["scikit-learn"] = "0.24.2"
    card_path.write_text(json.dumps(card))
    with pytest.raises(IncompatibleArtifactError, match="scikit-learn 0.24.2"):
        registry.load("v0002")


def test_reason_codes_are_the_occlusion_of_each_feature(training):
    """The published drivers are occlusion contributions computed from the trees in one pass: the
    same numbers, and so the same top drivers, as re-predicting with each feature at its median."""
    from valuetier.tiering.scoring import Champion, value_drivers

    _, train, holdout = training
    models = train_models(train, SMALL_SEARCH, seed=3)
    sample = holdout.frame.iloc[:400]
    x = sample.loc[:, list(FEATURES)]
    base = models.predict_value(x)
    by_repredicting = np.column_stack(
        [base - models.predict_value(x.assign(**{f: models.feature_medians.get(f, np.nan)})) for f in FEATURES]
    )
    predicted, top, contributions = value_drivers(Champion("v", models), sample)
    assert np.array_equal(predicted, base)
    expected_top = np.argsort(-np.abs(by_repredicting), axis=1, kind="stable")[:, :3]
    assert (top == expected_top).mean() > 0.99  # only exact ties in size may swap
    np.testing.assert_allclose(contributions, np.take_along_axis(by_repredicting, top, axis=1), atol=1e-6)
    assert np.abs(contributions[:, 0]).min() > 0


def test_scoring_tiers_every_customer_once_with_reasons(training):
    from valuetier.core.value_measure import ValueMeasure
    from valuetier.tiering.scoring import BASIS_DRIVERS, RULE_DRIVER, Champion, ScoringRules, score_customers

    _, train, holdout = training
    champion = Champion("v0001", train_models(train, SMALL_SEARCH, seed=3), horizon_months=3)
    frame = holdout.frame.assign(rfm_segment="x")
    scored = score_customers(frame, champion, ScoringRules())
    assert len(scored) == len(frame) and scored.customer_id.is_unique
    assert scored.value_tier.value_counts().to_dict() == {
        "low": len(frame) - round(0.4 * len(frame)),
        "mid": round(0.4 * len(frame)) - round(0.1 * len(frame)),
        "high": round(0.1 * len(frame)),
    }
    assert scored.value_score.between(0, 100).all() and scored.churn_probability.between(0, 1).all()
    assert set(scored.lifecycle_stage) <= {"new", "growing", "mature", "declining", "dormant"}
    short = frame.tenure_months < 3
    assert (scored.tiered_by_rule == short.to_numpy()).all() and short.any()
    assert scored.top_drivers[~short.to_numpy()].str.count(";").eq(2).all()
    assert (scored.top_drivers[short.to_numpy()] == RULE_DRIVER).all()
    # A short history is valued at its run-rate over the model's horizon.
    one = frame[short].iloc[0]
    run_rate = one.cumulative_profit_contribution / (one.tenure_months + 1) * 3
    assert scored[short.to_numpy()].predicted_value.iloc[0] == pytest.approx(run_rate, abs=0.01)
    high = scored[scored.value_tier == "high"]
    assert set(high.segment) <= {"high-value at risk", "high-value loyal", "new high potential"}
    # The same models and rows give the same scores.
    assert score_customers(frame, champion, ScoringRules()).equals(scored)
    # Cut points in value instead of shares.
    by_value = score_customers(frame, champion, ScoringRules(high_value=500.0, mid_value=100.0))
    expected = np.select([by_value.predicted_value >= 500, by_value.predicted_value >= 100], ["high", "mid"], "low")
    assert (by_value.value_tier == expected).all() and set(by_value.value_tier) == {"high", "mid", "low"}
    with pytest.raises(ValueError, match="mid <= high"):
        score_customers(frame, champion, ScoringRules(high_value=100.0, mid_value=500.0))
    # No champion yet: everyone by rule, nobody flagged at risk, the shares still exact.
    by_rule = score_customers(frame, None, ScoringRules())
    assert by_rule.tiered_by_rule.all() and (by_rule.model_version == "rule").all()
    assert by_rule.churn_probability.isna().all() and not by_rule.segment.str.contains("at risk").any()
    assert by_rule.value_tier.value_counts().to_dict() == scored.value_tier.value_counts().to_dict()
    assert (by_rule.top_drivers == BASIS_DRIVERS["clv"]).all()
    # No champion and no CLV, on a bank without margins: the weighted RFM score ranks, never a zero run-rate.
    bare = frame.assign(clv_12m=np.nan, cumulative_profit_contribution=0.0)
    revenue = ValueMeasure("revenue", "auto: no fee income or net interest margin in the deliveries")
    by_rfm = score_customers(bare, None, ScoringRules(), revenue)
    assert (by_rfm.top_drivers == BASIS_DRIVERS["rfm"]).all()
    rfm = business_parameters().rfm_weighted(bare.recency_score, bare.frequency_score, bare.monetary_score)
    high = by_rfm.value_tier.to_numpy() == "high"
    assert rfm[high].min() >= rfm[~high].max()
    assert by_rfm.predicted_value.gt(0).mean() > 0.5  # the revenue run-rate, not zero margins


def test_scoring_a_month_in_batches_equals_scoring_it_at_once(pipeline_run, tmp_path):
    """Streaming in batches must not change a single row: tiers and scores are cut month-wide."""
    from valuetier.core.settings import Settings
    from valuetier.tiering.registry import Registry
    from valuetier.tiering.scoring import ScoringRules, current_champion, score_month_tiers

    month = pipeline_run["months"][-1]
    champion = current_champion(Registry(Settings.from_env().models_dir))
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(WAREHOUSE.read_bytes())
    tables = {}
    with duckdb.connect(str(copy)) as con:
        for batch_size in (10**6, 333):
            result = score_month_tiers(con, month, champion, ScoringRules(batch_size=batch_size))
            tables[batch_size] = con.execute(
                f"SELECT * FROM marts.customer_tiers WHERE month_start = '{month}-01' ORDER BY customer_id"
            ).df()
        total = con.execute("SELECT count(*) FROM marts.customer_tiers").fetchone()[0]
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        original_total = con.execute("SELECT count(*) FROM marts.customer_tiers").fetchone()[0]
    assert result.customers == len(tables[333]) > 1000
    assert tables[333].equals(tables[10**6])
    assert total == original_total  # re-scoring replaced the month, it added nothing


def test_training_plan_keeps_the_holdout_later_than_every_label():
    from valuetier.tiering.training import TrainingDataError
    from valuetier.tiering.training_cycle import TrainingPlan, plan_months

    labelled = [f"2024-{m:02d}" for m in range(1, 13)]
    training, holdout = plan_months(labelled, TrainingPlan(horizon_months=3, training_months=4))
    assert holdout == "2024-12" and training == ["2024-06", "2024-07", "2024-08", "2024-09"]
    with pytest.raises(TrainingDataError, match="at least two training months"):
        plan_months(labelled[:4], TrainingPlan(horizon_months=3))


def earns_its_place(promotion: dict) -> bool:
    """The gate's rule, read back from a card's promotion record: the model's capture over each
    baseline's plus the margin, its Gini over theirs, and not clearly worse than a champion."""
    figures, margin = promotion["rankings"], promotion["margin"]
    model = figures["model"]
    beats = all(
        model["high_tier_value_capture"] >= round(figures[b]["high_tier_value_capture"] + margin, 4)
        and model["normalized_gini"] > figures[b]["normalized_gini"]
        for b in ("rfm_weighted", "clv_12m")
    )
    interval = promotion["champion_difference_interval"]
    return beats and (interval is None or interval[1] >= 0)


def test_train_and_decide_registers_evaluates_and_gates_the_champion(training, tmp_path):
    from valuetier.tiering.training_cycle import TrainingPlan, train_and_decide

    registry = Registry(tmp_path / "models")
    plan = TrainingPlan(horizon_months=3, training_months=4)
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(WAREHOUSE.read_bytes())
    with duckdb.connect(str(copy)) as con:
        first = train_and_decide(con, registry, plan, SMALL_SEARCH)
        assert first.promotion["champion"] is None and first.promotion["margin"] == 0.005
        assert set(first.promotion["rankings"]) == {"model", "rfm_weighted", "clv_12m"}
        assert first.status == ("champion" if earns_its_place(first.promotion) else "rejected"), first.decision
        assert registry.champion_version() == ("v0001" if first.status == "champion" else None)
        registry.rollback("v0001")  # champion either way, by hand if the gate kept the baseline
        # The same data and seed again: the same scores as the champion, a difference of exactly 0,
        # with the holdout scored in batches of 333 customers (the first run's in one batch).
        second = train_and_decide(con, registry, plan, SMALL_SEARCH, batch_size=333)
        evaluation = con.execute(
            "SELECT model_version, ranking, value FROM marts.model_evaluation "
            "WHERE metric = 'high_tier_value_capture' ORDER BY 1, 2"
        ).fetchall()
        gini = con.execute("SELECT count(*) FROM marts.model_evaluation WHERE metric = 'normalized_gini'").fetchone()
    assert second.promotion["champion"] == "v0001" and second.promotion["champion_difference_interval"] == [0.0, 0.0]
    assert "worse beyond the holdout's noise" not in second.decision
    assert second.status == first.status == ("champion" if earns_its_place(second.promotion) else "rejected")
    assert registry.champion_version() == ("v0002" if second.status == "champion" else "v0001")
    assert second.artifact_sha256 == first.artifact_sha256 and second.metrics["model"] == first.metrics["model"]
    assert second.metrics["champion_on_this_holdout"]["version"] == "v0001"
    assert [(v, r) for v, r, _ in evaluation] == [
        (v, r) for v in ("v0001", "v0002") for r in ("clv_12m", "model", "rfm_weighted")
    ]
    assert gini[0] == 6
    capture = {(v, r): value for v, r, value in evaluation}
    assert capture[("v0001", "model")] > capture[("v0001", "rfm_weighted")]
    assert add_months(first.training_months[-1], 3) <= first.holdout_month


def test_a_model_trained_on_shuffled_labels_is_rejected(training, tmp_path):
    """Labels shuffled across customers: the model learns nothing real, cannot beat the baselines
    on a true holdout, and the champion stays; with no champion the tiers rank by the better one."""
    from valuetier.tiering.promotion import PromotionRules, decide
    from valuetier.tiering.training_cycle import rankings

    _, train, holdout = training
    rng = np.random.default_rng(5)
    shuffled = train.frame.assign(
        realised_value=rng.permutation(train.frame.realised_value.to_numpy()),
        churned=rng.permutation(train.frame.churned.to_numpy()),
    )
    noise = train_models(replace(train, frame=shuffled), SMALL_SEARCH, seed=3)
    real = train_models(train, SMALL_SEARCH, seed=3)
    frame = holdout.frame
    rules = PromotionRules(margin=business_parameters().promotion_margin, high_share=0.1, mid_share=0.3)
    champion = ("v0001", real.predict_value(frame))
    rejected = decide(frame.realised_value, rankings(frame, noise.predict_value(frame)), rules, champion)
    assert not rejected.promoted
    assert "under rfm_weighted" in rejected.why or "under clv_12m" in rejected.why
    assert rejected.why.endswith("the champion v0001 stays")
    assert rejected.record["champion_difference_interval"][1] < 0  # clearly worse than the champion
    alone = decide(frame.realised_value, rankings(frame, noise.predict_value(frame)), rules)
    assert not alone.promoted and alone.why.endswith(f"tiers rank by {alone.better_baseline} (no champion)")
    figures = alone.record["rankings"]
    assert alone.better_baseline == max(
        ("rfm_weighted", "clv_12m"), key=lambda b: figures[b]["high_tier_value_capture"]
    )
    # The real model, on the same holdout, ranks far better than the shuffled one.
    real_figures = decide(frame.realised_value, rankings(frame, real.predict_value(frame)), rules).record["rankings"]
    assert real_figures["model"]["normalized_gini"] > figures["model"]["normalized_gini"] + 0.2


def test_a_tampered_champion_stops_training_and_scoring(training, tmp_path):
    from valuetier.tiering.scoring import current_champion
    from valuetier.tiering.training_cycle import ChampionUnavailable, TrainingPlan, train_and_decide

    registry = Registry(tmp_path / "models")
    plan = TrainingPlan(horizon_months=3, training_months=4)
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(WAREHOUSE.read_bytes())
    with duckdb.connect(str(copy)) as con:
        train_and_decide(con, registry, plan, SMALL_SEARCH)
        registry.rollback("v0001")  # the champion, whatever the gate decided on this short history
        artifact = registry.root / "v0001" / "model.joblib"
        artifact.write_bytes(artifact.read_bytes() + b"tampered")
        with pytest.raises(ChampionUnavailable, match=r"champion v0001 cannot be loaded: .*v0001/model.joblib"):
            train_and_decide(con, registry, plan, SMALL_SEARCH)
        artifact.unlink()  # a missing file, too
        with pytest.raises(ChampionUnavailable, match=r"champion v0001 cannot be loaded: .*v0001/model.joblib"):
            train_and_decide(con, registry, plan, SMALL_SEARCH)
    assert registry.versions() == ["v0001"] and registry.champion_version() == "v0001"  # nothing registered
    with pytest.raises(RegistryError, match="v0001/model.joblib is missing"):
        current_champion(registry)


def test_rollback_command(tmp_path, capsys):
    from valuetier.cli import main

    registry = Registry(tmp_path / "models")
    fields = card_fields(metrics={"model": {"high_tier_value_capture": 0.5}})
    registry.decide(registry.register({"model": 1}, **fields), True, "first", {})
    registry.decide(registry.register({"model": 2}, **fields), True, "second", {})
    assert main(["model", "--registry", str(registry.root), "rollback", "v0001"]) == 0
    assert registry.champion_version() == "v0001"
    assert main(["model", "--registry", str(registry.root), "list"]) == 0
    listing = capsys.readouterr().out
    assert "v0001  champion" in listing and "v0002  retired" in listing
    assert main(["model", "--registry", str(registry.root), "rollback", "v0009"]) == 1
    assert "no model version v0009" in capsys.readouterr().err


def test_training_asset_through_dagster(pipeline_run):
    """The session's first run trained the champion; a training with another plan is judged against it
    on its own holdout, and the decision is recorded on the card, in metadata and in the registry."""
    import dagster as dg

    from orchestration.definitions import defs
    from valuetier.core.settings import Settings

    config = {
        "horizon_months": 3,
        "training_months": 4,
        "learning_rate": [0.1],
        "max_leaf_nodes": [15],
        "min_samples_leaf": [20, 50],
        "max_iter": 60,
        "cv_folds": 2,
    }
    registry = Registry(Settings.from_env().models_dir)
    champion_before = registry.champion_version()
    with dg.DagsterInstance.get() as instance:
        result = (
            defs()
            .resolve_job_def("train_tiering_model")
            .execute_in_process(instance=instance, run_config={"ops": {"model__tiering_model": {"config": config}}})
        )
    assert result.success
    [event] = result.asset_materializations_for_node("model__tiering_model")
    metadata = event.metadata
    version = metadata["version"].value
    card = registry.card(version)
    assert champion_before is not None and version != champion_before
    assert card.status == metadata["status"].value and card.decision == metadata["decision"].value
    assert card.metrics["champion_on_this_holdout"]["version"] == champion_before
    expected_champion = version if card.status == "champion" else champion_before
    assert card.status in ("champion", "rejected") and registry.champion_version() == expected_champion
    assert card.artifact_sha256 == metadata["artifact_sha256"].value
    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        rankings = {
            r
            for (r,) in con.execute(
                "SELECT DISTINCT ranking FROM marts.model_evaluation WHERE model_version = ?", [version]
            ).fetchall()
        }
    assert rankings == {"model", "rfm_weighted", "clv_12m"}

    # A promotion asks for the latest month to be scored with the new champion; a rejection does not.
    from orchestration.scoring import rescore_on_new_champion

    with dg.DagsterInstance.get() as instance:
        [request] = list(rescore_on_new_champion(dg.build_sensor_context(instance=instance, definitions=defs())))
    if card.status == "champion":
        assert isinstance(request, dg.RunRequest) and request.run_key == f"champion-{version}"
        assert request.partition_key == pipeline_run["months"][-1]
    else:
        assert isinstance(request, dg.SkipReason)
    registry.rollback(champion_before)  # later tests score with the session's champion


def test_a_feature_empty_in_every_training_row_does_not_break_training(training):
    """A bank's first months have no 3-month trend yet; scikit-learn cannot bin an all-empty column."""
    _, train, holdout = training
    frame = train.frame.assign(spend_trend_3m=np.nan, median_response_hours_12m=np.nan)
    empty = replace(train, frame=frame)
    models = train_models(empty, SMALL_SEARCH, seed=3)
    assert np.isfinite(models.predict_value(holdout.frame)).all()


def test_training_plan_adapts_its_horizon_to_the_history(pipeline_run):
    from valuetier.tiering.training import TrainingDataError
    from valuetier.tiering.training_cycle import TrainingPlan, adapt_plan

    with duckdb.connect(str(WAREHOUSE), read_only=True) as con:
        as_configured = adapt_plan(con, TrainingPlan(horizon_months=3))
        # 15 months: a 12-month horizon leaves no training month; 6 is the longest that stacks 3.
        adapted = adapt_plan(con, TrainingPlan(horizon_months=12, min_horizon_months=3))
        with pytest.raises(TrainingDataError, match="no label horizon from 12 down to 7 months"):
            adapt_plan(con, TrainingPlan(horizon_months=12, min_horizon_months=7))
    assert as_configured.plan.horizon_months == 3 and as_configured.note.startswith("configured plan")
    assert adapted.plan.horizon_months == 6 and len(adapted.training_months) == 3
    assert adapted.note.startswith("adapted to the history: 6-month horizon instead of 12, 3 training months")
    assert add_months(adapted.training_months[-1], 6) <= adapted.holdout_month


def test_a_month_with_customers_but_no_live_one_fails_instead_of_publishing_nothing(pipeline_run, tmp_path):
    from valuetier.tiering.scoring import NothingToPublish, ScoringRules, score_month_tiers

    month = pipeline_run["months"][-1]
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(WAREHOUSE.read_bytes())
    with duckdb.connect(str(copy)) as con:
        before = con.execute(f"SELECT count(*) FROM marts.customer_tiers WHERE month_start = '{month}-01'").fetchone()
        con.execute(f"DELETE FROM marts.customer_indicators_monthly WHERE month_start = '{month}-01'")
        with pytest.raises(NothingToPublish, match=f"tiers {month}: 0 live customers to publish, though 2,"):
            score_month_tiers(con, month, None, ScoringRules())
        after = con.execute(f"SELECT count(*) FROM marts.customer_tiers WHERE month_start = '{month}-01'").fetchone()
    assert after == before  # the published month is kept, not emptied


def test_a_version_is_written_whole_or_not_at_all(tmp_path):
    """A training run killed while it writes a version leaves no version behind (its staging
    folder, or a folder without a card from an older ValueTier, is not one), and the next run
    writes the same version number."""
    from valuetier.tiering.registry import Registry

    registry = Registry(tmp_path / "models")
    (registry.root / ".v0001.4242").mkdir(parents=True)  # staged by a run killed before its rename
    (registry.root / ".v0001.4242" / "card.json").write_text("{}")
    (registry.root / "v0001").mkdir()  # an older writer's folder, killed before its card
    (registry.root / "v0001" / "model.joblib").write_bytes(b"half")
    assert registry.versions() == []
    card = registry.register({"model": 1}, **card_fields())
    assert card.version == "v0001" and registry.versions() == ["v0001"]
    assert registry.load("v0001") == {"model": 1}
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".v0001.") and p.name != ".v0001.4242"]
