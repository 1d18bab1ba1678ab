"""The papers' protocol with a cold-start initial set (TypiClust, ProbCover on PCA embeddings of the pixels)."""

import pytest
import torch

from lightning_bal.experiments import PaperProtocol, cold_start_labels, load_digits, pixel_embeddings


@pytest.fixture(scope="module")
def digits():
    return load_digits(0)


@pytest.mark.parametrize("method", ["typiclust", "probcover"])
def test_the_cold_start_labels_the_initial_set_at_step_zero(digits, method):
    train, test = digits
    protocol = PaperProtocol(budget=40, initial_labels=10, cold_start=method, balanced_initial=False)
    datamodule = protocol.datamodule(train, test, seed=1)
    assert datamodule.num_labelled == 10
    assert datamodule.step == 0
    fresh = PaperProtocol(budget=40, initial_labels=0, balanced_initial=False).datamodule(train, test, seed=1)
    expected = cold_start_labels(fresh, train.tensors[0], method, 10, num_classes=10, seed=1)
    assert torch.equal(datamodule.labelled_indices.sort().values, expected.sort().values)


def test_typiclust_covers_more_classes_than_a_random_initial_set(digits):
    """Ten labels: the typical items of ten clusters span more digits than ten uniform draws (seeds 0-2)."""
    train, test = digits
    covered = {}
    for method in ("typiclust", None):
        protocol = PaperProtocol(budget=40, initial_labels=10, cold_start=method, balanced_initial=False)
        classes = [
            train.tensors[1][protocol.datamodule(train, test, seed).labelled_indices].unique().numel()
            for seed in range(3)
        ]
        covered[method] = sum(classes)
    assert covered["typiclust"] > covered[None]


def test_pixel_embeddings_are_unit_norm_and_seeded():
    x = torch.randn(50, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    first = pixel_embeddings(x, dims=8, seed=3)
    assert first.shape == (50, 8)
    torch.testing.assert_close(first.norm(dim=1), torch.ones(50))
    assert torch.equal(first, pixel_embeddings(x, dims=8, seed=3))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda dm, x: cold_start_labels(dm, x, "kcenter", 5, num_classes=10, seed=0), "`method`"),
        (lambda dm, x: pixel_embeddings(x, dims=0), "`dims`"),
    ],
)
def test_bad_cold_start_arguments_are_refused(digits, call, match):
    train, test = digits
    datamodule = PaperProtocol(budget=40, initial_labels=0, balanced_initial=False).datamodule(train, test, seed=0)
    with pytest.raises(ValueError, match=match):
        call(datamodule, train.tensors[0])
    assert datamodule.num_labelled == 0
