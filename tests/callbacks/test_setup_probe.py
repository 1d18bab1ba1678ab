"""A heuristic that cannot score the model's outputs fails at fit start, before any training, state unchanged."""

from __future__ import annotations

import pytest
import torch

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks.checks import probe_heuristic
from lightning_bal.heuristics import BALD, BatchBALD, Entropy, Random, Variance
from lightning_bal.mc.posterior import MCDropout
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_trainer
from tests.tasks.models import (
    DropoutRegressor,
    Sequences,
    Tagger,
    TinySegmenter,
    pad_collate,
    regression_data,
    segmentation_data,
)


class BadMask(Tagger):
    """Returns a mask one token short."""

    def forward(self, tokens):
        out = super().forward(tokens)
        return {"logits": out["logits"], "valid": out["valid"][:, :-1]}


class OneUnit(DropoutClassifier):
    """A classifier's trunk with a single output unit: a regression head."""

    def __init__(self):
        super().__init__()
        self.net[-1] = torch.nn.Linear(self.net[-1].in_features, 1)


def _sequences():
    return ActiveDataModule(Sequences(20), initial_labels=4, seed=0, collate_fn=pad_collate)


@pytest.mark.parametrize(
    ("make", "heuristic", "model", "error", "match"),
    [
        (
            _sequences,
            BALD(output="logits", mask="valid"),
            BadMask,
            ValueError,
            r"Expected argument `mask` to have shape",
        ),
        (
            lambda: ActiveDataModule(regression_data(20), task="regression", initial_labels=4, seed=0),
            BALD(output="mean"),
            DropoutRegressor,
            ValueError,
            r"regression output",
        ),
        (
            lambda: ActiveDataModule(regression_data(20), task="regression", initial_labels=4, seed=0),
            Entropy(),
            DropoutRegressor,
            ValueError,
            r"Expected a regression heuristic .* not a regression output",
        ),
        (
            lambda: ActiveDataModule(blobs(30), initial_labels=4, seed=0),
            Variance(),
            DropoutClassifier,
            ValueError,
            r"Expected a classification heuristic for the class logits of `task='classification'`",
        ),
        (
            lambda: ActiveDataModule(blobs(30), initial_labels=4, seed=0, task=None),
            BALD(),
            OneUnit,
            ValueError,
            r"Expected class logits \[B, K, C, \.\.\.\] with C >= 2",
        ),
        (
            lambda: ActiveDataModule(segmentation_data(20), initial_labels=4, seed=0),
            BatchBALD(),
            TinySegmenter,
            ValueError,
            r"log_probs",
        ),
    ],
    ids=[
        "mask-shape",
        "class-heuristic-on-regression-head",
        "class-heuristic-on-regression-task",
        "regression-heuristic-on-class-logits",
        "single-unit-output",
        "batchbald-on-pixels",
    ],
)
def test_a_heuristic_that_cannot_score_the_outputs_fails_before_training(
    tmp_path, make, heuristic, model, error, match
):
    dm = make()
    before = dm.state_dict()
    trainer = make_trainer(tmp_path, [ActiveLearningCallback(heuristic, query_size=2, iterations=3, seed=0)])
    with pytest.raises(error, match=match):
        trainer.fit(model(), datamodule=dm)
    assert trainer.global_step == 0
    assert torch.equal(dm.acquired_at, torch.as_tensor(before["acquired_at"]))


def test_the_probe_leaves_the_random_state_and_the_model_modes_alone():
    dm = ActiveDataModule(blobs(30), initial_labels=4, seed=0)
    model = DropoutClassifier().train()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    assert probe_heuristic(model, dm, BALD(), MCDropout(), seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(module.training for module in model.modules())
    assert not probe_heuristic(model, dm, Random(), MCDropout(), seed=0)
