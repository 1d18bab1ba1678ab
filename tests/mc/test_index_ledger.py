"""The index ledger refuses a repeated index whether batches rise (its fast path) or come in any order."""

import pytest
import torch

from lightning_bal.mc.pool_batches import IndexLedger

CASES = [
    # (batches, index that comes again or None)
    ([[0, 1, 2], [3, 4], [9]], None),  # rising: the pool loader's order
    ([[5, 6], [0, 1], [7, 8]], None),  # a batch below the largest seen, repeating nothing
    ([[0, 1, 2], [2, 3]], 2),  # rising batches that overlap at their edge
    ([[0, 1, 2], [5, 6], [1]], 1),  # rising, then one from the first batch
    ([[4, 2], [3, 4]], 4),  # an unordered batch first, a rising one repeating it next
    ([[0, 1, 1, 2]], 1),  # a repeat within one non-decreasing batch
    ([[3], [10], [7, 8], [11, 12], [8]], 8),  # a recorded index below `top` caught after a rising batch
]


@pytest.mark.parametrize(("batches", "repeated"), CASES)
def test_a_repeated_index_is_refused_in_any_order(batches, repeated):
    ledger = IndexLedger()
    for i, batch in enumerate(batches):
        if repeated is not None and i == len(batches) - 1:
            with pytest.raises(ValueError, match=rf"\[{repeated}\] came again"):
                ledger.check(torch.tensor(batch))
        else:
            ledger.check(torch.tensor(batch))
    recorded = batches if repeated is None else batches[:-1]  # a refused batch records nothing
    seen = sorted({index for batch in recorded for index in batch})
    assert torch.nonzero(ledger.seen).squeeze(1).tolist() == seen


def test_a_negative_index_is_refused_before_anything_is_recorded():
    ledger = IndexLedger()
    ledger.check(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="non-negative dataset indices, but got -1"):
        ledger.check(torch.tensor([-1, 2, 3]))
    assert torch.nonzero(ledger.seen).squeeze(1).tolist() == [0, 1]
    ledger.check(torch.tensor([2, 3]))
