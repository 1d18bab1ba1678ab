import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lightning_bal.mc.masks import MaskSampler, apply_dropout, mask_shape
from lightning_bal.utilities.hashing import hash_uniform32


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**40))
def test_keep_fraction_matches_p(p, seed):
    keep = MaskSampler(seed, consistent=False).keep(0, p, (500,), range(4), torch.arange(10))
    assert keep.shape == (10, 4, 500)
    # 20,000 Bernoulli draws: 6 standard deviations of the mean.
    assert abs(keep.float().mean().item() - (1 - p)) < 6 * (p * (1 - p) / keep.numel()) ** 0.5


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**62), start=st.integers(0, 10), stop=st.integers(11, 20))
def test_masks_depend_only_on_seed_index_and_sample(seed, start, stop):
    sampler = MaskSampler(seed, consistent=False)
    full = sampler.keep(3, 0.5, (7,), range(20), torch.arange(30))
    part = MaskSampler(seed, consistent=False).keep(3, 0.5, (7,), range(start, stop), torch.arange(30)[[5, 2, 9]])
    assert torch.equal(part, full[[5, 2, 9], start:stop])
    consistent = MaskSampler(seed, consistent=True)
    assert torch.equal(
        consistent.keep(3, 0.5, (7,), range(start, stop)), consistent.keep(3, 0.5, (7,), range(20))[start:stop]
    )


def test_masks_differ_across_layers_samples_items_and_seeds():
    sampler = MaskSampler(0, consistent=False)
    keep = sampler.keep(0, 0.5, (64,), range(2), torch.arange(2))
    assert not torch.equal(keep[0, 0], keep[0, 1])
    assert not torch.equal(keep[0, 0], keep[1, 0])
    assert not torch.equal(keep, sampler.keep(1, 0.5, (64,), range(2), torch.arange(2)))
    assert not torch.equal(keep, MaskSampler(1, consistent=False).keep(0, 0.5, (64,), range(2), torch.arange(2)))


def test_hash_is_spread():
    u = hash_uniform32(torch.arange(4), 2**14).double() / 2**32
    hist = torch.histc(u.flatten(), bins=16, min=0, max=1)
    assert hist.min() > 0.9 * u.numel() / 16


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (nn.Dropout(0.3), (6, 4, 4)),
        (nn.Dropout1d(0.3), (6, 9)),
        (nn.Dropout2d(0.3), (6, 4, 4)),
        (nn.Dropout3d(0.3), (6, 2, 3, 3)),
        (nn.AlphaDropout(0.3), (40,)),
        (nn.FeatureAlphaDropout(0.3), (6, 4, 4)),
    ],
)
def test_apply_dropout_matches_torch(layer, shape):
    # Recover torch's own mask from its output, then check our transform reproduces the output exactly.
    torch.manual_seed(0)
    x = torch.rand(5, *shape) + 1.0
    expected = layer.train()(x)
    if isinstance(layer, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
        dropped_value = apply_dropout(layer, torch.zeros(1), torch.zeros(1, dtype=torch.bool))
        keep = ~torch.isclose(expected, dropped_value.expand_as(expected))
    else:
        keep = expected != 0
    ms = mask_shape(layer, shape)
    if ms != shape:
        assert torch.equal(keep, keep[(slice(None), slice(None)) + (slice(0, 1),) * (len(shape) - 1)].expand_as(keep))
    torch.testing.assert_close(apply_dropout(layer, x, keep), expected)
