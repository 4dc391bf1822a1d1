"""A fitted gradient-boosting model as flat arrays, scored by compiled code: its predictions and its
exact occlusion drivers in one pass over a customer's features.

How a tree's exit leaf is found (QuickScorer, Lucchese et al., SIGIR 2015): a tree's leaves, left to
right, are the bits of a 64-bit word. A split that sends a value right rules out the leaves of its
left subtree; clearing those bits for every split that goes right leaves the exit leaf as the
lowest bit still set. Every split of every tree, grouped by feature and sorted by threshold, is one
array, and for a feature's value the splits that go right are a prefix of its group. So a customer
is scored by reading those prefixes, with no walk down dependent nodes; a walk spends its time on
mispredicted branches (on the bench's champion, 200 trees up to 19 splits deep, the walk was 2.5x
slower).

Why the drivers come cheap: the drivers of a customer's predicted value are occlusion contributions
-- how much the prediction moves when one feature is set to its training median. Re-predicting the
batch once per feature costs 41 predictions per customer. A feature's occlusion can only change a
tree's answer where the path to the customer's exit leaf meets a split on that feature and the
median goes the other way there. Those places depend on the leaf and the median only, so they are
listed once per leaf; only the subtree the median leads into is walked, with the customer's other
values. The contributions are the same numbers as re-predicting (up to the order of float
additions), and the predictions bit for bit the model's own.

Supports scikit-learn's HistGradientBoosting models with one output (a regressor, a binary
classifier's decision function), numeric splits and up to 64 leaves a tree, alone or last in a
Pipeline of transformers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import BaseHistGradientBoosting
from sklearn.pipeline import Pipeline

_ROWS_PER_TASK = 256  # rows a compiled task scores at a time (the tasks share the cores)
_LEAF_BITS = 64
_ALL_LEAVES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
# The lowest set bit's index by a de Bruijn multiplication: (word & -word) * _DE_BRUIJN >> 58 is
# unique per bit.
_DE_BRUIJN = np.uint64(0x03F7_9D71_B4CB_0A89)
_LOWEST_BIT = np.zeros(_LEAF_BITS, dtype=np.int64)
for _bit in range(_LEAF_BITS):
    _LOWEST_BIT[((1 << _bit) * int(_DE_BRUIJN) & int(_ALL_LEAVES)) >> 58] = _bit


@dataclass(frozen=True)
class TreeEnsemble:
    """Every tree's nodes, and every split grouped by feature and by threshold within it."""

    links: np.ndarray  # int32 (nodes, 4): split feature (-1 at a leaf), left, right, missing values go left
    numbers: np.ndarray  # float64 (nodes,): the threshold (a value <= it goes left), or a leaf's value
    parents: np.ndarray  # int64 (nodes,): the parent node, -1 at a root
    subtree_leaves: np.ndarray  # uint64 (nodes,): the node's leaves as bits of its tree's word
    leaf_nodes: np.ndarray  # int64 (trees, 64): the node of the tree's leaf at each bit, left to right (-1: none)
    thresholds: np.ndarray  # float64 (splits,)
    missing_right: np.ndarray  # bool (splits,): a missing value goes right
    split_tree: np.ndarray  # int64 (splits,): the tree the split is in, in boosting order
    # uint64 (splits,): the tree's leaves still possible when the split goes right (its left subtree's cleared)
    split_leaves: np.ndarray
    feature_splits: np.ndarray  # int64 (features + 1,): feature k's splits are [its entry, the next)
    baseline: float
    model: BaseHistGradientBoosting  # for its link function
    transformers: Pipeline | None  # the pipeline steps before the model

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline | BaseHistGradientBoosting) -> TreeEnsemble:
        model = pipeline[-1] if isinstance(pipeline, Pipeline) else pipeline
        if not isinstance(model, BaseHistGradientBoosting) or any(len(trees) != 1 for trees in model._predictors):
            raise TypeError(f"a one-output HistGradientBoosting model is needed, not {type(model).__name__}")
        trees = [iteration[0].nodes for iteration in model._predictors]
        if any(nodes["is_categorical"].any() for nodes in trees):
            raise TypeError("tree drivers support numeric splits only; the model has categorical splits")
        if any(nodes["is_leaf"].sum() > _LEAF_BITS for nodes in trees):
            raise TypeError(f"tree scoring supports up to {_LEAF_BITS} leaves a tree; the model has more")
        sizes = [len(nodes) for nodes in trees]
        offsets = np.cumsum([0] + sizes)
        nodes = np.concatenate(trees)
        shift = np.repeat(offsets[:-1], sizes)
        leaf = nodes["is_leaf"].astype(bool)
        links = np.stack(
            [
                np.where(leaf, -1, nodes["feature_idx"]),
                nodes["left"] + shift,
                nodes["right"] + shift,
                nodes["missing_go_to_left"],
            ],
            axis=1,
        )
        parents = np.full(len(nodes), -1, dtype=np.int64)
        parents[links[~leaf, 1]] = parents[links[~leaf, 2]] = np.flatnonzero(~leaf)
        # Each node's leaves as bits [first, past) of its tree's word, leaves numbered left to right.
        first, past = np.concatenate([_leaf_ranges(tree) for tree in trees], axis=1)
        leaf_nodes = np.full((len(trees), _LEAF_BITS), -1, dtype=np.int64)  # -1: a bit past the tree's leaves
        leaf_nodes[np.repeat(np.arange(len(trees)), sizes)[leaf], first[leaf]] = np.flatnonzero(leaf)
        bits = [((1 << int(b - a)) - 1) << int(a) for a, b in zip(first, past, strict=True)]
        subtree_leaves = np.array(bits, dtype=np.uint64)
        splits = np.flatnonzero(~leaf)
        splits = splits[np.lexsort((nodes["num_threshold"][splits], links[splits, 0]))]  # by feature, then threshold
        return cls(
            links=np.ascontiguousarray(links, dtype=np.int32),
            numbers=np.where(leaf, nodes["value"], nodes["num_threshold"]).astype(np.float64),
            parents=parents,
            subtree_leaves=subtree_leaves,
            leaf_nodes=leaf_nodes,
            thresholds=nodes["num_threshold"][splits].astype(np.float64),
            missing_right=~nodes["missing_go_to_left"][splits].astype(bool),
            split_tree=np.searchsorted(offsets, splits, side="right").astype(np.int64) - 1,
            split_leaves=~subtree_leaves[links[splits, 1]],
            feature_splits=np.searchsorted(links[splits, 0], np.arange(model.n_features_in_ + 1)).astype(np.int64),
            baseline=float(np.ravel(model._baseline_prediction)[0]),
            model=model,
            transformers=pipeline[:-1] if isinstance(pipeline, Pipeline) and len(pipeline) > 1 else None,
        )

    def _matrix(self, features: pd.DataFrame) -> np.ndarray:
        x = self.transformers.transform(features) if self.transformers is not None else features
        return np.ascontiguousarray(np.asarray(x, dtype=np.float64))

    def _splits(self) -> tuple:
        return self.thresholds, self.missing_right, self.split_tree, self.split_leaves, self.feature_splits

    def raw_scores(self, features: pd.DataFrame) -> np.ndarray:
        """The model's raw scores (a classifier's decision function), bit for bit."""
        leaf_values = np.where(self.leaf_nodes >= 0, self.numbers[self.leaf_nodes], np.nan)
        return _raw_scores(self._matrix(features), *self._splits(), leaf_values, self.baseline, _LOWEST_BIT)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """A regressor's predictions, or a binary classifier's probability of its second class: bit
        for bit the model's own predict, or predict_proba[:, 1]."""
        return self.model._loss.link.inverse(self.raw_scores(features))

    def predict_with_occlusion(self, features: pd.DataFrame, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predictions, contributions) of a regressor: contributions[i, j] is prediction i minus
        the prediction with feature j set to reference[j] (NaN: missing), the rest of row i as is."""
        x = self._matrix(features)
        # The transformers hold for the reference too: occluding a feature that was empty at fit
        # (a constant to the trees) changes nothing.
        occluded = self._matrix(pd.DataFrame([reference], columns=features.columns))[0]
        nodes = (self.links, self.numbers)
        partings = _partings(self.leaf_nodes.ravel(), self.parents, self.subtree_leaves, *nodes, occluded)
        raw, delta = _raw_scores_and_occlusion(
            x, occluded, *self._splits(), self.leaf_nodes, *nodes, *partings, self.baseline, _LOWEST_BIT
        )
        inverse = self.model._loss.link.inverse
        predicted = inverse(raw)
        return predicted, predicted[:, None] - inverse(raw[:, None] + delta)


def _leaf_ranges(nodes: np.ndarray) -> np.ndarray:
    """(first, past) per node: its leaves as bits [first, past), the tree's leaves numbered left to right."""
    first, past = np.zeros(len(nodes), dtype=np.int64), np.zeros(len(nodes), dtype=np.int64)
    leaves, stack = 0, [(0, False)]
    while stack:  # depth first, left subtree first; a split's range is known once both children are done
        node, children_done = stack.pop()
        if nodes["is_leaf"][node]:
            first[node], past[node] = leaves, leaves + 1
            leaves += 1
        elif children_done:
            first[node], past[node] = first[nodes["left"][node]], past[nodes["right"][node]]
        else:
            stack += [(node, True), (nodes["right"][node], False), (nodes["left"][node], False)]
    return np.stack([first, past])


@numba.njit(inline="always")
def _child(links, numbers, node, v):
    if np.isnan(v):
        return links[node, 1] if links[node, 3] else links[node, 2]
    return links[node, 1] if v <= numbers[node] else links[node, 2]


@numba.njit(cache=True)
def _partings(leaf_nodes, parents, subtree_leaves, links, numbers, reference):
    """Per leaf (an entry of leaf_nodes, -1: no leaf), where the reference parts from the path to
    it: for each feature, the first split on the path where reference[feature] goes the other way,
    as (the child it goes to, the feature, its leaves or 0), root first. Leaf k's are
    [first[k], first[k + 1]).

    Its leaves are given where the row's exit word answers for that child: where it is a right
    child and no split below it is on the feature. The word's bits there are then cleared by the
    splits below it alone (its parent goes left, the splits above towards it too), under the same
    values the occluded row has."""
    path = np.empty(_LEAF_BITS, dtype=np.int64)  # a tree of 64 leaves is at most 63 splits deep
    settled = np.full(reference.shape[0], -1, dtype=np.int64)  # == k: the feature has parted for leaf k
    first = np.zeros(leaf_nodes.shape[0] + 1, dtype=np.int64)
    nodes = np.empty(leaf_nodes.shape[0] * min(reference.shape[0], _LEAF_BITS), dtype=np.int64)
    features = np.empty_like(nodes)
    answered = np.zeros(nodes.shape[0], dtype=np.uint64)
    below = np.empty(_LEAF_BITS, dtype=np.int64)
    count = 0
    for k in range(leaf_nodes.shape[0]):
        first[k] = count
        depth, node = 0, leaf_nodes[k]
        while node >= 0:  # from the leaf up: path[0] is the leaf, path[depth - 1] the root
            path[depth] = node
            depth += 1
            node = parents[node]
        for d in range(depth - 1, 0, -1):
            split, toward_leaf = path[d], path[d - 1]
            j = links[split, 0]
            if settled[j] != k:
                other = _child(links, numbers, split, reference[j])
                if other != toward_leaf:
                    settled[j] = k
                    nodes[count], features[count] = other, j
                    if other == links[split, 2]:
                        answered[count], below[0], todo = subtree_leaves[other], other, 1
                        while todo:
                            todo -= 1
                            node = below[todo]
                            if links[node, 0] == j:
                                answered[count] = 0
                                break
                            if links[node, 0] >= 0:
                                below[todo], below[todo + 1] = links[node, 1], links[node, 2]
                                todo += 2
                    count += 1
    first[leaf_nodes.shape[0]] = count
    return first, nodes[:count].copy(), features[:count].copy(), answered[:count].copy()


@numba.njit(inline="always")
def _exit_leaf(leaves, lowest_bit):
    lowest = leaves & (~leaves + np.uint64(1))
    return lowest_bit[(lowest * _DE_BRUIJN) >> np.uint64(58)]


@numba.njit(inline="always")
def _exit_leaves(x, i, leaves, thresholds, missing_right, split_tree, split_leaves, feature_splits):
    """Fill `leaves`, one word per tree, with the leaves row i's splits that go right leave possible."""
    leaves[:] = _ALL_LEAVES
    for k in range(x.shape[1]):
        value = x[i, k]
        if np.isnan(value):
            for split in range(feature_splits[k], feature_splits[k + 1]):
                if missing_right[split]:
                    leaves[split_tree[split]] &= split_leaves[split]
        else:  # the feature's splits that go right: those with a threshold below the value
            split, end = feature_splits[k], feature_splits[k + 1]
            while split < end and thresholds[split] < value:
                leaves[split_tree[split]] &= split_leaves[split]
                split += 1


# A row's trees are summed in boosting order: the same float sum as the model's own predict.
@numba.njit(parallel=True, cache=True)
def _raw_scores(
    x, thresholds, missing_right, split_tree, split_leaves, feature_splits, leaf_values, baseline, lowest_bit
):
    n, trees = x.shape[0], leaf_values.shape[0]
    raw = np.empty(n)
    for task in numba.prange((n + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK):
        leaves = np.empty(trees, dtype=np.uint64)
        for i in range(task * _ROWS_PER_TASK, min(n, (task + 1) * _ROWS_PER_TASK)):
            _exit_leaves(x, i, leaves, thresholds, missing_right, split_tree, split_leaves, feature_splits)
            score = baseline
            for tree in range(trees):
                score += leaf_values[tree, _exit_leaf(leaves[tree], lowest_bit)]
            raw[i] = score
    return raw


@numba.njit(parallel=True, cache=True)
def _raw_scores_and_occlusion(
    x,
    reference,
    thresholds,
    missing_right,
    split_tree,
    split_leaves,
    feature_splits,
    leaf_nodes,
    links,
    numbers,
    parting_first,
    parting_nodes,
    parting_features,
    parting_leaves,
    baseline,
    lowest_bit,
):
    n, features = x.shape
    trees = leaf_nodes.shape[0]
    raw = np.empty(n)
    delta = np.zeros((n, features))  # raw score with feature j occluded, minus the raw score
    for task in numba.prange((n + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK):
        leaves = np.empty(trees, dtype=np.uint64)
        for i in range(task * _ROWS_PER_TASK, min(n, (task + 1) * _ROWS_PER_TASK)):
            _exit_leaves(x, i, leaves, thresholds, missing_right, split_tree, split_leaves, feature_splits)
            score = baseline
            for tree in range(trees):
                bit = _exit_leaf(leaves[tree], lowest_bit)
                leaf_value = numbers[leaf_nodes[tree, bit]]
                score += leaf_value
                leaf = tree * _LEAF_BITS + bit  # its entry in leaf_nodes.ravel(), which the partings follow
                for parting in range(parting_first[leaf], parting_first[leaf + 1]):
                    j, walk = parting_features[parting], parting_nodes[parting]
                    if parting_leaves[parting]:
                        walk = leaf_nodes[tree, _exit_leaf(leaves[tree] & parting_leaves[parting], lowest_bit)]
                    while links[walk, 0] >= 0:
                        f = links[walk, 0]
                        walk = _child(links, numbers, walk, reference[j] if f == j else x[i, f])
                    delta[i, j] += numbers[walk] - leaf_value
            raw[i] = score
    return raw, delta
