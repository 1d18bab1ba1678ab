"""Parity with scikit-activeml 1.0.1: Core-Set picks, BADGE's first pick, its D^2 law and its k-means++ potential."""

import warnings

import numpy as np
import pytest
import torch

from lightning_bal.functional.cold_start import coverage, probcover, purity_radius, typiclust
from lightning_bal.functional.diversity import (
    k_center_greedy,
    kmeans_potential,
    kmeans_pp,
    min_sq_distances,
)
from lightning_bal.functional.gradient_embeddings import gradient_embedding, gradient_embedding_dense

pytestmark = pytest.mark.reference


def _data(n=300, d=8, c=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(d, c))


@pytest.mark.parametrize("num_labelled", [1, 7])
def test_core_set_picks_match_with_a_labelled_set(num_labelled):
    pool_module = pytest.importorskip("skactiveml.pool")
    x, _ = _data()
    y = np.full(len(x), np.nan)
    y[:num_labelled] = 0
    expected = pool_module.CoreSet(random_state=0).query(x, y, batch_size=20)
    ours = k_center_greedy(torch.from_numpy(x[num_labelled:]), 20, centres=torch.from_numpy(x[:num_labelled]))
    assert (ours.indices + num_labelled).tolist() == expected.tolist()


def test_core_set_picks_match_after_the_same_first_pick_without_labels():
    """Without D_L both draw the first pick at random (different generators); from it on the greedy is the same."""
    pool_module = pytest.importorskip("skactiveml.pool")
    x, _ = _data()
    expected = pool_module.CoreSet(random_state=0).query(x, np.full(len(x), np.nan), batch_size=15)
    first = int(expected[0])
    rest = [i for i in range(len(x)) if i != first]
    ours = k_center_greedy(torch.from_numpy(x[rest]), 14, centres=torch.from_numpy(x[[first]]))
    assert [rest[i] for i in ours.indices.tolist()] == expected[1:].tolist()


def _badge_classifier(weight, classes):
    base = pytest.importorskip("skactiveml.base")

    class Fixed(base.SkactivemlClassifier):
        """A fixed linear-softmax classifier whose last-layer inputs are its inputs."""

        def __init__(self, weight=None, classes=None, missing_label=np.nan):
            super().__init__(classes=classes, missing_label=missing_label)
            self.weight = weight

        def fit(self, X, y, sample_weight=None):  # noqa: N803 (scikit-learn's names)
            return self

        def predict_proba(self, X, return_embeddings=False):  # noqa: N803
            z = X @ self.weight
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            return (p, X) if return_embeddings else p

        def predict(self, X):  # noqa: N803
            return self.predict_proba(X).argmax(1)

    return Fixed(weight, classes=classes)


def _badge(seed, batch_size, x, weight):
    pool_module = pytest.importorskip("skactiveml.pool")
    clf = _badge_classifier(weight, np.arange(weight.shape[1]))
    strategy = pool_module.Badge(random_state=seed, clf_embedding_flag_name="return_embeddings")
    return strategy.query(x, np.full(len(x), np.nan), clf, fit_clf=False, batch_size=batch_size, return_utilities=True)


def test_badge_first_pick_and_d2_law_match():
    x, weight = _data()
    picks, utilities = _badge(0, 8, x, weight)
    embeddings = gradient_embedding(torch.from_numpy(x @ weight).log_softmax(1), torch.from_numpy(x))
    dense = gradient_embedding_dense(embeddings, weight.shape[1]).double()
    for include_origin in (False, True):
        assert int(kmeans_pp(embeddings, 1, num_classes=4, include_origin=include_origin).indices[0]) == picks[0]
    # Their law for pick i given their earlier picks: D^2 to the picks and to the origin, normalised.
    for i in range(1, 8):
        d2 = torch.minimum(min_sq_distances(dense, dense[list(picks[:i])]), dense.square().sum(1))
        law = (d2 / d2.sum()).numpy()
        law[list(picks[:i])] = np.nan
        np.testing.assert_allclose(utilities[i], law, rtol=1e-4, atol=1e-9)


def test_badge_potential_matches_over_seeds():
    """Different generators: the mean k-means++ potential over 30 seeded runs agrees within 10%."""
    x, weight = _data()
    embeddings = gradient_embedding(torch.from_numpy(x @ weight).log_softmax(1), torch.from_numpy(x))
    dense = gradient_embedding_dense(embeddings, weight.shape[1]).double()
    theirs, ours = [], []
    for seed in range(30):
        theirs.append(float(kmeans_potential(dense, dense[list(_badge(seed, 10, x, weight)[0])])))
        picks = kmeans_pp(embeddings, 10, seed=seed, num_classes=4, include_origin=True).indices
        ours.append(float(kmeans_potential(dense, dense[picks])))
    assert abs(np.mean(ours) / np.mean(theirs) - 1) < 0.10


def _six_blobs():
    rng = np.random.default_rng(0)
    sizes = [30, 45, 60, 75, 90, 105]
    return np.concatenate([rng.normal(size=(n, 5)) * 0.5 + 8 * rng.normal(size=5) for n in sizes])


def test_typiclust_picks_match():
    """Separated blobs, one per cluster: both k-means agree, and then the picks must be the same."""
    pool_module = pytest.importorskip("skactiveml.pool")
    x = _six_blobs()
    labelled = [0, 75]  # one item in each of the two smallest-but-one blobs
    y = np.full(len(x), np.nan)
    y[labelled] = 0
    expected = pool_module.TypiClust(k=5, random_state=0).query(x, y, batch_size=4)
    pool = [i for i in range(len(x)) if i not in labelled]
    ours = typiclust(torch.from_numpy(x[pool]), 4, labelled=torch.from_numpy(x[labelled]), k=5)
    assert [pool[i] for i in ours.indices.tolist()] == expected.tolist()


def test_probcover_radius_matches():
    pool_module = pytest.importorskip("skactiveml.pool")
    x = _six_blobs()
    strategy = pool_module.ProbCover(n_classes=6, random_state=0)
    strategy.query(x, np.full(len(x), np.nan), batch_size=2)
    assert purity_radius(torch.from_numpy(x), 6) == pytest.approx(strategy.delta_max_)


@pytest.mark.parametrize("delta", [0.4, 0.7, 1.0])
def test_probcover_coverage_matches(delta):
    """Ties in the coverage counts are broken at random by scikit-activeml and by index here: the first pick's
    coverage is the same (the maximum degree), and the coverage after 10 picks agrees within 2 points."""
    pool_module = pytest.importorskip("skactiveml.pool")
    x = np.random.default_rng(1).normal(size=(300, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its purity warning: the radius is given here
        picks, utilities = pool_module.ProbCover(deltas=[delta], random_state=0).query(
            x, np.full(len(x), np.nan), batch_size=10, return_utilities=True
        )
    ours = probcover(torch.from_numpy(x), 10, delta=delta)
    assert ours.scores[0] == np.nanmax(utilities[0])
    points = torch.from_numpy(x)
    theirs_coverage = coverage(points, points[picks], delta)
    assert abs(float(coverage(points, points[ours.indices], delta)) - float(theirs_coverage)) <= 0.02
