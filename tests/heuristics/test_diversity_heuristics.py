"""BADGE and Core-Set as heuristics: by name, standalone, and through the callback's pool pass."""

import lightning.pytorch as pl
import pytest
import torch

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import initial_selection
from lightning_bal.functional.cold_start import typiclust
from lightning_bal.functional.diversity import k_center_greedy, kmeans_pp
from lightning_bal.functional.gradient_embeddings import gradient_embedding
from lightning_bal.heuristics import BADGE, BALD, CoreSet, ProbCover, TypiClust, get_heuristic
from lightning_bal.utilities.seeding import Stream, derive_seed
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_datamodule, make_trainer


@pytest.mark.parametrize(
    ("name", "cls"), [("badge", BADGE), ("coreset", CoreSet), ("typiclust", TypiClust), ("probcover", ProbCover)]
)
def test_registered_by_name(name, cls):
    kwargs = {"num_classes": 3} if cls is ProbCover else {}
    heuristic = get_heuristic(name, layer="net.1", **kwargs)
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


@pytest.mark.parametrize("heuristic", [TypiClust(k=5), ProbCover(num_classes=3)])
def test_cold_start_heuristics_through_the_callback_from_a_tiny_labelled_set(tmp_path, heuristic):
    pl.seed_everything(0)
    dm = make_datamodule(initial=2)
    callback = ActiveLearningCallback(heuristic, query_size=5, iterations=1, seed=3)
    make_trainer(tmp_path, [callback], max_epochs=2).fit(DropoutClassifier(), datamodule=dm)
    assert torch.bincount(dm.acquired_at[dm.acquired_at >= 0]).tolist() == [2, 5, 5]


def test_initial_selection_from_user_embeddings_with_an_empty_labelled_set():
    """Cold start from 0 labels: TypiClust on supplied embeddings, seeded by the datamodule's seed."""
    dm = make_datamodule(initial=0)
    inputs = blobs(90).tensors[0]
    picks = initial_selection(dm, TypiClust(k=5, embeddings=inputs), 3)
    seed = derive_seed(0, -1, Stream.SELECTION)
    assert torch.equal(picks, typiclust(inputs, 3, k=5, seed=seed).indices)
    dm.label(picks)
    assert dm.num_labelled == 3


def test_initial_selection_from_model_features():
    dm = make_datamodule(initial=0)
    picks = initial_selection(dm, ProbCover(delta=1.0), 4, DropoutClassifier())
    assert picks.unique().numel() == 4


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda dm: initial_selection(dm, BALD(), 3), TypeError, "select from embeddings"),
        (lambda dm: initial_selection(dm, TypiClust(), 3), ValueError, "`module`"),
        (lambda dm: initial_selection(dm, TypiClust(embeddings=torch.zeros(90, 2)), 0), ValueError, "`query_size`"),
        (lambda dm: ProbCover(), ValueError, "`num_classes`"),
        (lambda dm: TypiClust(k=0), ValueError, "`k`"),
        (lambda dm: CoreSet(layer="net.0", embeddings=torch.zeros(90, 2)), ValueError, "both"),
    ],
)
def test_cold_start_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(make_datamodule(initial=0))


def test_features_need_the_mc_dropout_posterior():
    from lightning_bal.mc import Posterior

    class Other(Posterior):
        def batches(self, module, dataloader, iterations, seed, output_transform):
            yield from ()

    with pytest.raises(TypeError, match="MCDropout"):
        initial_selection(make_datamodule(initial=0), CoreSet(), 2, DropoutClassifier(), posterior=Other())
    features = torch.randn(90, 3)
    chosen = initial_selection(make_datamodule(initial=0), CoreSet(embeddings=features), 2, posterior=Other())
    assert chosen.shape == (2,)  # user embeddings: the posterior is never run
