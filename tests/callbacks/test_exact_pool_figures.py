"""Stopping criteria judge the whole pool's scores, not the bounded sample kept for the histogram."""

from typing import ClassVar

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.annotation import LowUncertainty
from lightning_bal.callbacks.pool_pass import HISTOGRAM_SAMPLE
from lightning_bal.heuristics import Heuristic
from lightning_bal.mc.posterior import Posterior
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_trainer

POOL = 5 * HISTOGRAM_SAMPLE


class InputsAsSamples(Posterior):
    """Every MC sample of an item is its input: the pool's scores are known without running the model."""

    def batches(self, module, dataloader, iterations, seed, output_transform):
        for inputs, indices in dataloader:
            yield indices, output_transform(inputs[:, None].expand(-1, iterations, -1))


class FirstInput(Heuristic):
    """Scores an item by its first input feature."""

    name: ClassVar[str] = "first_input"
    consumes: ClassVar[str] = "outputs"

    def score(self, outputs):
        return outputs[:, 0, 0]


@pytest.mark.parametrize(("max_below", "steps"), [(0.1, 1), (1.0, 0)])
def test_low_uncertainty_sees_the_pools_exact_maximum(tmp_path, max_below, steps):
    """One item of 50,000 scores 0.9, the rest 0.01: a strided sample of 10,000 would miss it and stop the run."""
    inputs = torch.full((POOL + 6, 1), 0.01)
    datamodule = ActiveDataModule(
        TensorDataset(inputs, torch.arange(POOL + 6) % 3), initial_labels=6, seed=0, pool_batch_size=4096
    )
    inputs[datamodule.pool_indices[3], 0] = 0.9  # off the stride of the histogram's sample
    callback = ActiveLearningCallback(
        FirstInput(), 2, 2, posterior=InputsAsSamples(), stopping=[LowUncertainty(max_below=max_below)]
    )
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(features=1), datamodule=datamodule)
    assert callback.steps_done == steps
    assert callback.history[0]["active/stop_pool_score_max"] == pytest.approx(0.9)
