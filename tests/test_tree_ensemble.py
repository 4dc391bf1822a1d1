"""The compiled tree scorer: the model's own predictions bit for bit, and occlusion contributions
equal to re-predicting with one feature set to its reference value."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from valuetier.tiering.training import _boosting
from valuetier.tiering.tree_ensemble import TreeEnsemble


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    x = pd.DataFrame(rng.normal(size=(3000, 6)), columns=[f"f{i}" for i in range(6)])
    x.loc[::5, "f2"] = np.nan  # missing values: the trees send them one way
    x["f5"] = np.nan  # empty at fit: a constant to the trees (EmptyFeaturesToConstant)
    y = np.exp(x.f0 + np.nan_to_num(x.f2) + 0.5 * x.f3 * x.f4)
    return x, y


def occlusion_by_repredicting(predict, x: pd.DataFrame, reference: np.ndarray) -> np.ndarray:
    base = predict(x)
    return np.column_stack([base - predict(x.assign(**{name: reference[j]})) for j, name in enumerate(x.columns)])


# 15 leaves; 64, a tree's whole word (every bit a leaf, splits deep down one side).
@pytest.mark.parametrize(("loss", "leaves"), [("poisson", 15), ("squared_error", 15), ("squared_error", 64)])
def test_the_scorer_predicts_and_occludes_like_the_model(data, loss, leaves):
    x, y = data
    model = _boosting(
        HistGradientBoostingRegressor(loss=loss, max_iter=40, max_leaf_nodes=leaves, min_samples_leaf=5, random_state=0)
    )
    model.fit(x, y)
    trees = TreeEnsemble.from_pipeline(model)
    assert max(int(tree[0].nodes["is_leaf"].sum()) for tree in model[-1]._predictors) == leaves
    assert np.array_equal(trees.predict(x), model.predict(x))
    reference = x.median().to_numpy().copy()
    reference[0] = np.nan  # a missing reference goes where the trees send missing values
    predicted, contributions = trees.predict_with_occlusion(x, reference)
    assert np.array_equal(predicted, model.predict(x))
    expected = occlusion_by_repredicting(model.predict, x, reference)
    np.testing.assert_allclose(contributions, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    assert np.abs(contributions[:, [0, 2, 3, 4]]).max(axis=0).min() > 0  # the features the trees use move it
    assert not contributions[:, 5].any()  # the empty feature never does


def test_the_scorer_gives_a_classifiers_decision_function_and_probability(data):
    x, y = data
    model = _boosting(HistGradientBoostingClassifier(max_iter=30, random_state=0)).fit(x, y > np.median(y))
    trees = TreeEnsemble.from_pipeline(model)
    assert np.array_equal(trees.raw_scores(x), model.decision_function(x))
    assert np.array_equal(trees.predict(x), model.predict_proba(x)[:, 1])


def test_the_scorer_refuses_models_it_cannot_score(data):
    x, y = data
    x = x.drop(columns="f5")
    three_classes = HistGradientBoostingClassifier(max_iter=3).fit(x, np.digitize(y, np.quantile(y, [0.3, 0.6])))
    with pytest.raises(TypeError, match="one-output"):
        TreeEnsemble.from_pipeline(three_classes)
    wide = HistGradientBoostingRegressor(max_iter=2, max_leaf_nodes=65, min_samples_leaf=5).fit(x, y)
    with pytest.raises(TypeError, match="up to 64 leaves"):
        TreeEnsemble.from_pipeline(wide)
