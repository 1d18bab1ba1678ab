"""`TestCurve`, `MCTestCurve` and `Calibration` check at fit start, on one item, that `forward` gives class logits."""

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import Calibration, MCTestCurve, TestCurve
from lightning_bal.heuristics import BALD
from tests.callbacks.test_contracts import TwoHeads
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_trainer


class OneOutput(DropoutClassifier):
    """Returns one value per item: a regression head where the evaluations expect class logits."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return (self(x).squeeze(-1) - y.float()).pow(2).mean()


class CountTrainingBatches(Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_start(self, *args):
        self.batches += 1


def _datamodule():
    return ActiveDataModule(
        blobs(40), val_dataset=blobs(12, seed=1), test_dataset=blobs(12, seed=2), initial_labels=6, seed=0
    )


@pytest.mark.parametrize(
    ("model", "evaluation", "match"),
    [
        (OneOutput, TestCurve(), r"`TestCurve` needs class logits `\[batch, classes\]`.*got shape \(1, 1\)"),
        (OneOutput, MCTestCurve(), r"`MCTestCurve` needs class logits `\[batch, classes\]`"),
        (OneOutput, Calibration(), r"`Calibration` needs class logits `\[batch, classes\]`"),
        (lambda: TwoHeads(as_dict=True), TestCurve(output="value"), r"got shape \(1, 1\)"),
        (lambda: TwoHeads(as_dict=True), TestCurve(output="missing"), "`TestCurve` could not pick the class logits"),
    ],
)
def test_wrong_outputs_fail_at_fit_start_before_any_training(tmp_path, model, evaluation, match):
    counter = CountTrainingBatches()
    callback = ActiveLearningCallback("random", query_size=2, label_budget=10, evaluations=[evaluation])
    trainer = make_trainer(tmp_path, [callback, counter], max_epochs=2)
    with pytest.raises(ValueError, match=match):
        trainer.fit(model(), datamodule=_datamodule())
    assert counter.batches == 0


@pytest.mark.parametrize(
    ("model", "output", "evaluation"),
    [
        (DropoutClassifier, None, TestCurve()),
        (DropoutClassifier, None, MCTestCurve()),
        (lambda: TwoHeads(as_dict=True), "logits", TestCurve(output="logits")),
        (lambda: TwoHeads(as_dict=False), 0, MCTestCurve(output=0)),
    ],
)
def test_class_logits_pass_the_check_and_the_run_goes_on(tmp_path, model, output, evaluation):
    callback = ActiveLearningCallback(
        BALD(output=output), query_size=2, iterations=2, label_budget=8, evaluations=[evaluation]
    )
    make_trainer(tmp_path, [callback], max_epochs=-1).fit(model(), datamodule=_datamodule())
    assert [int(step["active/num_labelled"]) for step in callback.history] == [6, 8]


def test_the_check_leaves_every_module_in_training_mode(tmp_path):
    model = DropoutClassifier()
    datamodule = _datamodule()
    make_trainer(tmp_path, [], max_epochs=1).fit(model, datamodule=datamodule)  # attaches the trainer
    model.train()
    TestCurve().check_model(model, datamodule)
    assert model.training
    assert all(module.training for module in model.modules())


def test_an_empty_test_set_is_left_to_the_step(tmp_path):
    empty = TensorDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    datamodule = ActiveDataModule(blobs(40), test_dataset=empty, initial_labels=6, seed=0)
    TestCurve().check_model(OneOutput(), datamodule)  # nothing to run forward on: no error
