"""The callback's contracts: what heuristics consume, models with several outputs, state, schedule warnings."""

import warnings

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.heuristics import BALD, CombineHeuristics, Entropy, Margin, Variance
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_datamodule, make_trainer


class DropoutRegressor(pl.LightningModule):
    """One output unit: what a default log-softmax used to turn into all-zero scores."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def regression_data(n=80):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    return TensorDataset(x, x.sum(1) + 0.1 * torch.randn(n, generator=generator))


def test_regression_is_scored_on_raw_outputs_not_zeros(tmp_path):
    pl.seed_everything(0)
    dm = ActiveDataModule(regression_data(), task="regression", initial_labels=10, seed=0)
    callback = ActiveLearningCallback(Variance(), query_size=5, iterations=8)
    make_trainer(tmp_path, [callback], max_epochs=2).fit(DropoutRegressor(), datamodule=dm)
    first = callback.history[0]
    assert first["active/score_pool_max"] > first["active/score_pool_min"] > 0
    assert dm.num_labelled == 20


def test_a_classification_heuristic_on_a_single_output_is_a_clear_error(tmp_path):
    dm = ActiveDataModule(regression_data(), task="regression", initial_labels=10, seed=0)
    callback = ActiveLearningCallback(BALD(), query_size=5, iterations=8)
    with pytest.raises(ValueError, match="regression output"):
        make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutRegressor(), datamodule=dm)
    assert dm.num_labelled == 10


class TwoHeads(DropoutClassifier):
    """Class logits and a regression value from one trunk, as a tuple or a dict."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.as_dict = as_dict
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3))
        self.classes, self.value = nn.Linear(16, 3), nn.Linear(16, 1)

    def forward(self, x):
        h = self.net(x)
        logits, value = self.classes(h), self.value(h)
        return {"logits": logits, "value": value} if self.as_dict else (logits, value)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        logits = out["logits"] if self.as_dict else out[0]
        return F.cross_entropy(logits, y)

    def validation_step(self, batch, batch_idx):
        pass


@pytest.mark.parametrize(
    ("as_dict", "heuristic"),
    [
        (False, CombineHeuristics([BALD(), Variance()], weights=[1.0, 0.5])),
        (True, CombineHeuristics([BALD(), Variance()], outputs=["logits", "value"])),
        (True, CombineHeuristics([BALD(), Margin(), Variance()], outputs=["logits", "logits", "value"])),
        (True, BALD(output="logits")),
        (False, BALD(output=0)),
    ],
    ids=["tuple-combined", "dict-combined", "dict-shared-head", "dict-one-head", "tuple-one-head"],
)
def test_models_with_several_outputs_run_through_the_callback(tmp_path, as_dict, heuristic):
    pl.seed_everything(0)
    dm = make_datamodule()
    callback = ActiveLearningCallback(heuristic, query_size=4, iterations=6)
    make_trainer(tmp_path, [callback], max_epochs=2).fit(TwoHeads(as_dict), datamodule=dm)
    assert dm.num_labelled == 14
    assert callback.history[0]["active/score_pool_max"] > callback.history[0]["active/score_pool_min"]


def test_heuristics_combined_on_one_tensor_output_select_as_their_weighted_sum(tmp_path):
    def acquired(heuristic):
        pl.seed_everything(0)
        dm = make_datamodule()
        callback = ActiveLearningCallback(heuristic, query_size=4, iterations=6, seed=3)
        make_trainer(tmp_path, [callback], max_epochs=3).fit(DropoutClassifier(), datamodule=dm)
        return dm.acquired_at

    alone = acquired(BALD())

    # A member with weight 0 adds exact zeros: the selections must match BALD's alone, item for item.
    def combined(weights):
        return CombineHeuristics([BALD(), Entropy()], weights=weights, outputs=[None, None])

    assert torch.equal(acquired(combined([1.0, 0.0])), alone)
    assert not torch.equal(acquired(combined([0.0, 1.0])), alone)


def test_a_multi_output_model_without_a_named_output_is_a_clear_error(tmp_path):
    callback = ActiveLearningCallback(BALD(), query_size=4, iterations=6)
    with pytest.raises(TypeError, match=r"name the output to score, e\.g\. `BALD\(output=0\)`"):
        make_trainer(tmp_path, [callback], max_epochs=1).fit(TwoHeads(), datamodule=make_datamodule())


def _fit_with_checkpoints(tmp_path, max_epochs, iterations, ckpt_path=None):
    pl.seed_everything(0)
    dm = make_datamodule()
    callback = ActiveLearningCallback("bald", query_size=4, iterations=iterations, seed=5)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer = make_trainer(tmp_path, [callback, checkpoint], max_epochs=max_epochs, enable_checkpointing=True)
    trainer.fit(DropoutClassifier(), datamodule=dm, ckpt_path=ckpt_path)
    return dm, callback


def test_resume_with_other_iterations_keeps_the_callback_state_and_history(tmp_path):
    _, first = _fit_with_checkpoints(tmp_path, 2, iterations=5)
    ckpt = tmp_path / "ckpt" / "epoch=1.ckpt"
    assert "ActiveLearningCallback" in torch.load(ckpt, weights_only=True)["callbacks"]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*no state for.*")
        dm, resumed = _fit_with_checkpoints(tmp_path, 3, iterations=8, ckpt_path=ckpt)
    assert resumed.steps_done == 3
    assert dm.num_labelled == 6 + 12
    assert [h["active/num_labelled"] for h in resumed.history] == [6.0, 10.0, 14.0]
    assert resumed.history[:2] == first.history


def test_a_checkpoint_without_the_callbacks_state_warns(tmp_path):
    pl.seed_everything(0)
    trainer = make_trainer(tmp_path, [], max_epochs=1, enable_checkpointing=False)
    trainer.fit(DropoutClassifier(), datamodule=make_datamodule())
    trainer.save_checkpoint(tmp_path / "plain.ckpt")
    callback = ActiveLearningCallback("bald", query_size=4, iterations=4)
    with pytest.warns(UserWarning, match="no state for `ActiveLearningCallback`"):
        make_trainer(tmp_path, [callback], max_epochs=2).fit(
            DropoutClassifier(), datamodule=make_datamodule(), ckpt_path=tmp_path / "plain.ckpt"
        )


def test_one_callback_reused_for_a_second_fit_starts_a_new_run(tmp_path):
    callback = ActiveLearningCallback("bald", query_size=5, iterations=4, reset_weights=True)
    for _ in range(2):
        model, dm = DropoutClassifier(), make_datamodule(n=90, initial=15)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        make_trainer(tmp_path, [callback], max_epochs=3).fit(model, datamodule=dm)
        assert dm.num_labelled == 30
        assert callback.steps_done == 3
        assert len(callback.history) == 3
        assert all(torch.equal(callback._initial_weights[k], initial[k]) for k in initial), "this model's weights"


def test_validation_that_skips_step_epochs_warns(tmp_path):
    callback = ActiveLearningCallback("bald", query_size=4, iterations=4, every_n_epochs=3)
    with pytest.warns(UserWarning, match=r"check_val_every_n_epoch=2.*every_n_epochs=3"):
        make_trainer(tmp_path, [callback], max_epochs=1, check_val_every_n_epoch=2).fit(
            DropoutClassifier(), datamodule=make_datamodule()
        )


def test_trainer_limits_that_cannot_spend_the_budget_warn_at_setup_and_at_the_end(tmp_path):
    callback = ActiveLearningCallback("bald", query_size=4, iterations=4, label_budget=30)
    with pytest.warns(UserWarning, match="label_budget=30") as record:
        make_trainer(tmp_path, [callback], max_epochs=2).fit(DropoutClassifier(), datamodule=make_datamodule())
    messages = [str(w.message) for w in record]
    assert any("max_epochs=2" in m and "Trainer(max_epochs=-1)" in m for m in messages)
    assert any("ended after 2 active learning steps with 14 of `label_budget=30`" in m for m in messages)


def test_run_until_the_budget_is_spent_with_max_epochs_minus_one(tmp_path):
    dm = make_datamodule()
    callback = ActiveLearningCallback("bald", query_size=4, iterations=4, label_budget=18)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*label_budget.*")
        make_trainer(tmp_path, [callback], max_epochs=-1).fit(DropoutClassifier(), datamodule=dm)
    assert dm.num_labelled == 18
    assert callback.history[-1]["active/num_labelled"] == 18


def test_the_scored_subset_is_logged_next_to_the_pool(tmp_path):
    dm = make_datamodule(n=200, max_pool_size=20)
    callback = ActiveLearningCallback("bald", query_size=3, iterations=4)
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(), datamodule=dm)
    (figures,) = callback.history
    assert figures["active/num_pool"] == 194
    assert figures["active/num_scored"] == 20


def test_the_run_seed_defaults_to_the_datamodules(tmp_path):
    selections = []
    for _ in range(2):
        pl.seed_everything(0)
        dm = ActiveDataModule(blobs(60), initial_labels=6, seed=3, val_dataset=blobs(20, seed=1))
        callback = ActiveLearningCallback("power_bald", query_size=4, iterations=4)
        make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(), datamodule=dm)
        selections.append(callback.last_selection)
    assert torch.equal(*selections)
