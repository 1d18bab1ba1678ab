"""The chunked MC pass: its per-item mass check sees every chunk, whatever the chunk size."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_bal.functional import _mc_pass
from lightning_bal.functional._mc_pass import mc_moments


def log_probs(n: int, k: int, c: int, *trailing: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, c, *trailing, generator=torch.Generator().manual_seed(seed)).log_softmax(2)


@pytest.mark.parametrize("chunk_elements", [1, 60, 1 << 20])
@pytest.mark.parametrize("trailing", [(), (5,)])
@pytest.mark.parametrize("item", [0, 6, 11])
def test_bad_item_found_in_any_chunk(monkeypatch, chunk_elements, trailing, item):
    """A row summing to 2 moves its item's mean row mass to 1.25: refused in the first, a middle or the last chunk."""
    monkeypatch.setattr(_mc_pass, "_CHUNK_ELEMENTS", chunk_elements)
    value = log_probs(12, 4, 3, *trailing)
    position = (0,) * len(trailing)
    value[(item, 1, slice(None), *position)] += math.log(2.0)
    row = ", ".join([str(item), "1", ":"] + [str(p) for p in position])
    mean = ", ".join([str(item), ":", ":"] + [str(p) for p in position])
    pattern = rf"row mass of `log_probs\[{row}\]` is 2 \(mean row mass of `log_probs\[{mean}\]` is 1.25\)"
    with pytest.raises(ValueError, match=pattern):
        mc_moments(value)


@pytest.mark.parametrize("chunk_elements", [1, 60, 1 << 20])
@pytest.mark.parametrize("trailing", [(), (5,)])
@pytest.mark.parametrize("item", [0, 6, 11])
def test_offsetting_rows_of_one_item_accepted(monkeypatch, chunk_elements, trailing, item):
    """The documented limit: rows of one item summing to 2 and 0 leave its mean row mass at 1 and pass the check."""
    monkeypatch.setattr(_mc_pass, "_CHUNK_ELEMENTS", chunk_elements)
    value = log_probs(12, 4, 3, *trailing)
    position = (0,) * len(trailing)
    value[(item, 1, slice(None), *position)] += math.log(2.0)
    value[(item, 2, slice(None), *position)] = -math.inf
    moments = mc_moments(value)
    assert torch.isfinite(moments.mean_probs).all()


def test_bad_row_named_in_the_bad_item_not_in_an_offsetting_one():
    """An earlier item with offsetting rows passes, so the message names the row of the item that failed."""
    value = log_probs(12, 4, 3)
    value[0, 1] += math.log(2.0)
    value[0, 2] = -math.inf
    value[9, 3] += math.log(3.0)
    with pytest.raises(ValueError, match=r"row mass of `log_probs\[9, 3, :\]` is 3 \(mean row mass .* is 1.5\)"):
        mc_moments(value)


@pytest.mark.parametrize("chunk_elements", [1, 60, 1 << 20])
def test_nan_in_a_later_chunk_refused(monkeypatch, chunk_elements):
    monkeypatch.setattr(_mc_pass, "_CHUNK_ELEMENTS", chunk_elements)
    value = log_probs(12, 4, 3)
    value[10, 3, 1] = math.nan
    with pytest.raises(ValueError, match=r"`log_probs`.*NaN"):
        mc_moments(value)


@pytest.mark.parametrize("chunk_elements", [1, 60, 1 << 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_chunking_does_not_change_moments(monkeypatch, chunk_elements, dtype):
    value = log_probs(12, 4, 3, 2).to(dtype)
    expected = mc_moments(value, expected_entropy=True, variance=True)
    monkeypatch.setattr(_mc_pass, "_CHUNK_ELEMENTS", chunk_elements)
    for got, want in zip(mc_moments(value, expected_entropy=True, variance=True), expected, strict=True):
        torch.testing.assert_close(got, want)
