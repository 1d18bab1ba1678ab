"""Masks in CombineHeuristics: every member reduces its per-position scores over the valid positions only."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks.checks import PROBE_ITEMS
from lightning_bal.functional import bald, entropy, variance
from lightning_bal.functional.outputs import Masked
from lightning_bal.heuristics import BALD, CombineHeuristics, Entropy, Margin, PowerBALD, Variance
from tests.helpers.runs import make_trainer
from tests.tasks.models import PAD, Sequences, Tagger, pad_collate


def _inputs(n=6, k=4, c=3, t=5, seed=0):
    """Log-probabilities ``[N, K, C, T]``, raw values ``[N, K, T]`` and a padding mask ``[N, T]`` (lengths 1..T)."""
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(n, k, c, t, generator=generator).mul(2).log_softmax(2)
    values = torch.randn(n, k, t, generator=generator)
    lengths = torch.arange(n) % t + 1
    valid = torch.arange(t)[None] < lengths[:, None]
    return log_probs, values, valid


def test_each_member_reduces_with_the_mask():
    log_probs, values, valid = _inputs()
    combined = CombineHeuristics([BALD(reduction="max"), Variance()], weights=[3.0, 1.0], mask="valid")
    scores = combined.score([Masked(log_probs, valid), Masked(values, valid)])
    expected = 0.75 * bald(log_probs, "max", mask=valid) + 0.25 * variance(values, mask=valid)
    torch.testing.assert_close(scores, expected)
    # Item by item with the padding cut off: the same scores.
    alone = torch.cat(
        [
            CombineHeuristics([BALD(reduction="max"), Variance()], weights=[3.0, 1.0]).score(
                [log_probs[i : i + 1, ..., :length], values[i : i + 1, ..., :length]]
            )
            for i, length in enumerate(valid.sum(1).tolist())
        ]
    )
    torch.testing.assert_close(scores, alone)
    # Without the mask the padding counts, and the scores differ.
    unmasked = CombineHeuristics([BALD(reduction="max"), Variance()], weights=[3.0, 1.0]).score([log_probs, values])
    assert not torch.allclose(unmasked, scores)


def test_transform_hands_each_masked_member_its_mask_of_sample_zero():
    log_probs, values, valid = _inputs()
    k = log_probs.shape[1]
    outputs = {"tags": log_probs, "depth": values, "valid": valid[:, None].expand(-1, k, -1)}
    combined = CombineHeuristics([Entropy(), Variance(), Margin()], outputs=["tags", "depth", "more"], mask="valid")
    outputs["more"] = log_probs
    inputs = combined.transform(outputs)
    assert all(isinstance(member, Masked) and torch.equal(member.mask, valid) for member in inputs)
    torch.testing.assert_close(inputs[0].values, log_probs)
    # One mask per member, None leaving a member unmasked.
    partly = CombineHeuristics([Entropy(), Variance()], outputs=["tags", "depth"], mask=["valid", None])
    first, second = partly.transform(outputs)
    assert isinstance(first, Masked)
    assert isinstance(second, torch.Tensor)
    torch.testing.assert_close(
        partly.score([first, second]), 0.5 * entropy(log_probs, mask=valid) + 0.5 * variance(values)
    )


def test_stochastic_members_score_the_masked_reduction():
    log_probs, _, valid = _inputs()
    combined = CombineHeuristics([PowerBALD(reduction="topq")], mask=1)
    scores = combined.score(combined.transform((log_probs, valid[:, None].expand(-1, log_probs.shape[1], -1))))
    torch.testing.assert_close(scores, bald(log_probs, "topq", mask=valid))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mask": "a"}, ValueError, r"`mask` to name an output apart from the scored `outputs`"),
        ({"mask": ["m"]}, ValueError, r"`mask` to name one output, or one output \(or None\) per heuristic \(2\)"),
        ({"mask": True}, TypeError, r"`mask` to be a tuple position, a dict key, or a sequence"),
        ({"mask": 1.5}, TypeError, r"`mask` to be a tuple position, a dict key, or a sequence"),
        ({"mask": ["m", 2.0]}, TypeError, r"`mask` to hold tuple positions, dict keys or None"),
        (
            {"heuristics": [BALD(output="x", mask="m"), Variance()]},
            ValueError,
            r"members of `heuristics` to name no `mask` of their own.*CombineHeuristics\(mask='m'\)",
        ),
    ],
    ids=["scored-output", "wrong-length", "bool", "float", "float-in-list", "member-mask"],
)
def test_bad_masks_are_refused_at_construction(kwargs, error, match):
    kwargs = {"heuristics": [BALD(), Variance()], "outputs": ["a", "b"], **kwargs}
    with pytest.raises(error, match=match):
        CombineHeuristics(**kwargs)


def test_a_mask_of_the_wrong_shape_or_dtype_is_refused_naming_it():
    log_probs, values, valid = _inputs()
    combined = CombineHeuristics([BALD(), Variance()], outputs=["a", "b"], mask="m")
    with pytest.raises(ValueError, match="Expected argument `mask` to have shape"):
        combined.score([Masked(log_probs, valid[:, :-1]), Masked(values, valid)])
    k = log_probs.shape[1]
    with pytest.raises(TypeError, match="Expected output 'm' of the model to be a bool mask"):
        combined.transform({"a": log_probs, "b": values, "m": valid[:, None].expand(-1, k, -1).float()})


class TwoHeadTagger(Tagger):
    """Tags ``[B, 3, T]`` and a per-token value ``[B, T]`` (an untrained regression head), with the padding mask."""

    def __init__(self, lr: float = 0.1):
        super().__init__(lr)
        self.value = nn.Conv1d(8, 1, 1)

    def forward(self, tokens):
        features = self.drop(self.embed(tokens)).transpose(1, 2)
        return {"logits": self.out(features), "value": self.value(features)[:, 0], "valid": tokens != PAD}


def test_combined_masked_heads_through_the_callback(tmp_path):
    """Padded pool batches through the callback: each item's combined score is its score alone, padding cut off,
    and the callback labels the top-scored items."""
    pl.seed_everything(0)
    dm = ActiveDataModule(Sequences(40), initial_labels=6, seed=0, collate_fn=pad_collate, pool_batch_size=8)
    combined = CombineHeuristics(
        [BALD(reduction="mean"), Variance(reduction="max")],
        weights=[1.0, 0.5],
        outputs=["logits", "value"],
        mask="valid",
    )
    recorded = []
    score = combined.score

    def record(inputs):
        recorded.append((inputs, score(inputs)))
        return recorded[-1][1]

    combined.score = record
    pool = dm.pool_indices.clone()
    make_trainer(tmp_path, [ActiveLearningCallback(combined, query_size=4, iterations=5, seed=0)], max_epochs=1).fit(
        TwoHeadTagger(), datamodule=dm
    )
    assert dm.num_labelled == 10
    # The first call is the setup probe, on the first pool items (`probe_heuristic` in `callbacks/checks.py`).
    assert len(recorded[0][1]) == PROBE_ITEMS
    recorded = recorded[1:]
    assert sum(len(scores) for _, scores in recorded) == pool.numel()
    assert any(not bool(tags.mask.all()) for (tags, _), _ in recorded), "no batch was padded"
    for (tags, values), scores in recorded:
        assert torch.equal(tags.mask, values.mask)
        for i, length in enumerate(tags.mask.sum(1).tolist()):
            alone = score([tags.values[i : i + 1, ..., :length], values.values[i : i + 1, ..., :length]])
            torch.testing.assert_close(scores[i : i + 1], alone)
    all_scores = torch.cat([scores for _, scores in recorded])
    chosen = pool[all_scores.topk(4).indices]
    assert torch.equal(dm.acquired_at[chosen], torch.ones(4, dtype=dm.acquired_at.dtype))
    assert int((dm.acquired_at == 1).sum()) == 4
