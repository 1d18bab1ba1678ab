"""The train shuffle: a function of (seed, epoch) alone, which a plain ``RandomSampler`` is not."""

import pytest
import torch
from torch.utils.data import RandomSampler

from lightning_bal.data.views import EpochShuffleSampler
from lightning_bal.utilities.seeding import Stream, derive_seed


@pytest.mark.parametrize(("length", "num_samples"), [(7, None), (7, 7), (5, 12), (3, 30), (1, 4)])
@pytest.mark.parametrize("seed", [0, 11])
def test_a_resumed_run_shuffles_like_an_uninterrupted_one(length, num_samples, seed):
    running = EpochShuffleSampler(length, seed, num_samples)
    uninterrupted = []
    for epoch in range(4):
        running.set_epoch(epoch)
        uninterrupted.append(list(running))
        torch.rand(3)  # the global RNG moves between epochs; the shuffle must not notice
    for epoch in range(4):
        resumed = EpochShuffleSampler(length, seed, num_samples, epoch=epoch)
        assert list(resumed) == list(resumed) == uninterrupted[epoch]
    size = max(length, num_samples or 0)
    for order in uninterrupted:
        assert len(order) == size
        rounds = [order[start : start + length] for start in range(0, size, length)]
        assert all(len(set(part)) == len(part) for part in rounds)  # whole permutations, then a partial one
        assert sorted(set(order)) == list(range(length))
    if length > 3:
        assert len({tuple(order) for order in uninterrupted}) == 4  # a new shuffle every epoch


def test_a_plain_random_sampler_would_not_resume_the_same_shuffle():
    """Why the class exists: ``RandomSampler`` draws epoch 1 from where its generator stopped after epoch 0, a state
    no checkpoint holds; rebuilt from the seed on resume, it repeats epoch 0 instead of drawing epoch 1."""
    seed, length = 3, 20
    plain = RandomSampler(range(length), generator=torch.Generator().manual_seed(seed))
    _, plain_epoch_1 = list(plain), list(plain)
    plain_resumed = list(RandomSampler(range(length), generator=torch.Generator().manual_seed(seed)))
    assert plain_resumed != plain_epoch_1
    sampler = EpochShuffleSampler(length, seed)
    sampler.set_epoch(1)
    assert list(sampler) == list(EpochShuffleSampler(length, seed, epoch=1))


def test_the_draw_is_random_samplers_from_the_epochs_seed():
    """The order is ``RandomSampler``'s, from a generator seeded with the epoch's derived seed (no hand-made draw)."""
    generator = torch.Generator().manual_seed(derive_seed(5, 2, Stream.SHUFFLE))
    expected = list(RandomSampler(range(6), num_samples=15, generator=generator))
    assert list(EpochShuffleSampler(6, 5, num_samples=15, epoch=2)) == expected
