"""BADGE and Core-Set as heuristics: by name, standalone, and through the callback's pool pass."""

import lightning.pytorch as pl
import pytest
import torch

from lightning_bal import ActiveLearningCallback
from lightning_bal.functional.diversity import gradient_embedding, k_center_greedy, kmeans_pp
from lightning_bal.heuristics import BADGE, CoreSet, get_heuristic
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule, make_trainer


@pytest.mark.parametrize(("name", "cls"), [("badge", BADGE), ("coreset", CoreSet)])
def test_registered_by_name(name, cls):
    heuristic = get_heuristic(name, layer="net.1")
    assert isinstance(heuristic, cls)
    assert heuristic.layer == "net.1"
    assert heuristic.needs_embeddings


def test_standalone_select_is_the_functional_selection():
    generator = torch.Generator().manual_seed(0)
    log_probs, features = torch.randn(30, 4, 3, generator=generator).log_softmax(-1), torch.randn(30, 5)
    badge = BADGE()
    embeddings = badge.embed(features, log_probs)
    assert torch.equal(embeddings, gradient_embedding(log_probs, features))
    assert torch.equal(
        badge.select_embeddings(embeddings, 6, seed=1).indices, kmeans_pp(embeddings, 6, seed=1, num_classes=3).indices
    )
    assert CoreSet().select(features, 4, torch.Generator().manual_seed(0)).indices.shape == (4,)
    labelled = features[:3]
    assert torch.equal(
        CoreSet().select_embeddings(features, 4, seed=0, labelled=labelled).indices,
        k_center_greedy(features, 4, centres=labelled).indices,
    )


def test_scores_are_refused_with_a_pointer_to_selection():
    with pytest.raises(TypeError, match="select_embeddings"):
        BADGE().score(torch.zeros(2, 3, 2))


def _run(tmp_path, heuristic, iterations=4):
    pl.seed_everything(0)
    dm = make_datamodule()
    callback = ActiveLearningCallback(heuristic, query_size=5, iterations=iterations, seed=3)
    make_trainer(tmp_path, [callback], max_epochs=3).fit(DropoutClassifier(), datamodule=dm)
    return dm, callback


@pytest.mark.parametrize("heuristic", [BADGE(), CoreSet(), CoreSet(layer="net.0")])
def test_callback_labels_query_size_items_per_step(tmp_path, heuristic):
    dm, callback = _run(tmp_path, heuristic, iterations=1 if isinstance(heuristic, CoreSet) else 4)
    assert torch.bincount(dm.acquired_at[dm.acquired_at >= 0]).tolist() == [6, 5, 5, 5]
    # Every pick is a new item.
    picked = dm.labelled_indices
    assert picked.unique().numel() == picked.numel() == 21


class _FarthestFirst(CoreSet):
    """Records the inputs the pool pass gives Core-Set, to check them against a direct computation."""

    seen = []

    def select_embeddings(self, embeddings, query_size, **kwargs):
        type(self).seen.append((embeddings, kwargs["indices"], kwargs["labelled"]))
        return super().select_embeddings(embeddings, query_size, **kwargs)


def test_pool_pass_gives_core_set_the_split_features_of_pool_and_labelled_set(tmp_path):
    _FarthestFirst.seen = []
    dm, callback = _run(tmp_path, _FarthestFirst(), iterations=1)
    embeddings, indices, labelled = _FarthestFirst.seen[-1]
    # The split of DropoutClassifier is after its ReLU: 16 hidden units; the last step had 16 labelled items.
    assert embeddings.shape == (indices.numel(), 16)
    assert labelled.shape == (16, 16)
    assert len(set(indices.tolist())) == indices.numel() == 90 - 16
    assert set(indices.tolist()).isdisjoint(dm.labelled_indices[dm.acquired_at[dm.labelled_indices] < 3].tolist())
