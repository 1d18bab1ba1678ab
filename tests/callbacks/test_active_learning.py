import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import lightning_bal.mc.posterior as posterior_module
from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import LabelledRisk
from lightning_bal.heuristics import BALD, BatchBALD, Entropy, Random
from lightning_bal.mc import MCDropout
from tests.helpers.models import DropoutClassifier, NoDropoutClassifier, blobs
from tests.helpers.runs import make_datamodule, make_trainer, record_targets


class RecordPool(Callback):
    """Records the pool before each of the callback's steps (it runs first: callbacks run in list order)."""

    def __init__(self):
        self.pools = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.pools.append(trainer.datamodule.pool_indices.clone())


@pytest.mark.parametrize(
    "heuristic",
    [BALD(), Entropy(), Random(), BatchBALD(num_samples=200), "bald", "random", "epig", "power_bald"],
    ids=str,
)
def test_each_step_labels_query_size_pool_samples(tmp_path, heuristic):
    pl.seed_everything(0)
    dm = make_datamodule()
    record = RecordPool()
    callback = ActiveLearningCallback(heuristic, query_size=5, iterations=6, seed=1)
    make_trainer(tmp_path, [record, callback], max_epochs=3).fit(DropoutClassifier(), datamodule=dm)
    assert dm.num_labelled == 6 + 3 * 5
    assert torch.bincount(dm.acquired_at[dm.labelled_indices]).tolist() == [6, 5, 5, 5]
    for step, pool in enumerate(record.pools, start=1):
        acquired = torch.nonzero(dm.acquired_at == step).reshape(-1)
        assert torch.isin(acquired, pool).all()
    assert callback.steps_done == 3
    assert sorted(callback.last_selection.tolist()) == torch.nonzero(dm.acquired_at == 3).reshape(-1).tolist()


def spy_on_mc_batches(monkeypatch) -> dict:
    """Record the MC samples the callback draws, by dataset index."""
    seen = {}
    original = posterior_module.mc_batches

    def spy(*args, **kwargs):
        for indices, log_probs in original(*args, **kwargs):
            seen.update(zip(indices.tolist(), log_probs, strict=True))
            yield indices, log_probs

    monkeypatch.setattr(posterior_module, "mc_batches", spy)
    return seen


def test_bald_selection_is_the_top_of_the_streamed_scores(tmp_path, monkeypatch):
    """What the callback labels is exactly the top-q of BALD over the pool, computed here from the same MC samples."""
    pl.seed_everything(0)
    dm = make_datamodule(n=70)
    pool_before = dm.pool_indices.clone()
    seen = spy_on_mc_batches(monkeypatch)
    callback = ActiveLearningCallback(BALD(), query_size=4, iterations=8, seed=3)
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(), datamodule=dm)
    assert sorted(seen) == pool_before.tolist(), "every pool sample scored exactly once"
    scores = BALD().score(torch.stack([seen[i] for i in pool_before.tolist()]))
    assert sorted(callback.last_selection.tolist()) == sorted(pool_before[scores.topk(4).indices].tolist())


def test_random_heuristic_skips_the_mc_pass(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("Random must not run an MC pass")

    monkeypatch.setattr(posterior_module, "mc_batches", forbidden)
    dm = make_datamodule()
    make_trainer(tmp_path, [ActiveLearningCallback(Random(), query_size=4, seed=0)], max_epochs=2).fit(
        NoDropoutClassifier(), datamodule=dm
    )
    assert dm.num_labelled == 6 + 8


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"heuristic": "bald", "query_size": 0}, ValueError, "`query_size` to be a positive integer, but got 0"),
        ({"heuristic": "bald", "query_size": 2.5}, TypeError, "`query_size` to be a positive integer"),
        (
            {"heuristic": object(), "query_size": 3},
            TypeError,
            "`heuristic` to be a `lightning_bal.heuristics.Heuristic`",
        ),
        ({"heuristic": "no-such-heuristic", "query_size": 3}, (KeyError, ValueError), "no-such-heuristic"),
        ({"heuristic": "bald", "query_size": 3, "iterations": 1}, ValueError, "`iterations` to be at least 2"),
        ({"heuristic": "bald", "query_size": 3, "every_n_epochs": 0}, ValueError, "`every_n_epochs`"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        ActiveLearningCallback(**kwargs)


class FailIfTrained(DropoutClassifier):
    def training_step(self, batch, batch_idx):
        raise AssertionError("setup errors must come before any training")


def test_no_active_datamodule_is_refused_at_setup(tmp_path):
    loader = torch.utils.data.DataLoader(blobs(20), batch_size=4)
    trainer = make_trainer(tmp_path, [ActiveLearningCallback("bald", query_size=2)])
    with pytest.raises(TypeError, match="`lightning_bal.ActiveDataModule`"):
        trainer.fit(FailIfTrained(), train_dataloaders=loader)


def test_model_without_dropout_is_refused_at_setup(tmp_path):
    class NoDropoutFailIfTrained(NoDropoutClassifier):
        def training_step(self, batch, batch_idx):
            raise AssertionError("setup errors must come before any training")

    dm = make_datamodule()
    before = dm.state_dict()["acquired_at"].clone()
    with pytest.raises((ValueError, RuntimeError, TypeError), match="(?i)stochastic|dropout"):
        make_trainer(tmp_path, [ActiveLearningCallback("bald", query_size=2)]).fit(
            NoDropoutFailIfTrained(), datamodule=dm
        )
    assert torch.equal(dm.acquired_at, before)


def test_conflicting_reload_setting_is_refused(tmp_path):
    trainer = make_trainer(
        tmp_path, [ActiveLearningCallback("bald", query_size=2, every_n_epochs=3)], reload_dataloaders_every_n_epochs=2
    )
    with pytest.raises(ValueError, match="reload_dataloaders_every_n_epochs=2"):
        trainer.fit(FailIfTrained(), datamodule=make_datamodule())


def test_label_budget_stops_training_after_the_last_labelled_set_is_trained(tmp_path):
    dm = make_datamodule()
    trainer = make_trainer(tmp_path, [ActiveLearningCallback("entropy", query_size=5, label_budget=13, seed=0)], 10)
    trainer.fit(DropoutClassifier(), datamodule=dm)
    assert dm.num_labelled == 13, "5 then the 2 that are left of the budget"
    assert torch.bincount(dm.acquired_at[dm.labelled_indices]).tolist() == [6, 5, 2]
    assert trainer.current_epoch == 3, "epochs 0-1 acquire, epoch 2 trains on the final set, then stop"
    callback = trainer.callbacks[0]
    assert [h["active/num_labelled"] for h in callback.history] == [6.0, 11.0, 13.0], "the final set closes the curve"
    assert all("active/val_acc" in h for h in callback.history)


def test_pool_smaller_than_query_labels_the_rest_warns_and_stops(tmp_path):
    dm = ActiveDataModule(blobs(12), initial_labels=4, seed=0, batch_size=4)
    trainer = make_trainer(tmp_path, [ActiveLearningCallback("bald", query_size=5, iterations=4, seed=0)], 10)
    with pytest.warns(UserWarning, match="fewer than `query_size=5`"):
        trainer.fit(DropoutClassifier(), datamodule=dm)
    assert dm.num_pool == 0
    assert torch.bincount(dm.acquired_at).tolist() == [4, 5, 3]
    assert trainer.current_epoch == 3


def test_max_pool_size_scores_a_recorded_subset(tmp_path):
    dm = make_datamodule(n=200)
    record = []

    class Record(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            record.append(trainer.datamodule.scoring_indices().clone())

    dm.max_pool_size = 20
    callback = ActiveLearningCallback("bald", query_size=3, iterations=4, seed=0)
    make_trainer(tmp_path, [Record(), callback], max_epochs=2).fit(DropoutClassifier(), datamodule=dm)
    for step, subset in enumerate(record, start=1):
        assert subset.numel() == 20
        assert torch.isin(torch.nonzero(dm.acquired_at == step).reshape(-1), subset).all()


class CheckResetAtEpochStart(Callback):
    def __init__(self):
        self.initial = None
        self.checked = 0

    def on_fit_start(self, trainer, pl_module):
        self.initial = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch > 0:
            for key, value in pl_module.state_dict().items():
                assert torch.equal(value, self.initial[key]), key
            assert not trainer.optimizers[0].state, "optimizer state re-created"
            self.checked += 1


class MomentumClassifier(DropoutClassifier):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def test_reset_weights_restores_initial_weights_and_optimizer(tmp_path):
    check = CheckResetAtEpochStart()
    callback = ActiveLearningCallback("bald", query_size=3, iterations=4, reset_weights=True, seed=0)
    make_trainer(tmp_path, [check, callback], max_epochs=3).fit(MomentumClassifier(), datamodule=make_datamodule())
    assert check.checked == 2


def test_training_mode_and_grad_mode_restored_after_a_step(tmp_path):
    class CheckModes(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            assert pl_module.training
            assert all(m.training for m in pl_module.modules())
            assert torch.is_grad_enabled()

    callback = ActiveLearningCallback("bald", query_size=3, iterations=4, seed=0)
    make_trainer(tmp_path, [callback, CheckModes()], max_epochs=3).fit(
        DropoutClassifier(), datamodule=make_datamodule()
    )


def test_nan_predictions_fail_the_step_and_label_nothing(tmp_path):
    class NaNAfterFirstEpoch(DropoutClassifier):
        def forward(self, x):
            out = super().forward(x)
            return out * float("nan") if not self.training else out

    dm = make_datamodule()
    with pytest.raises(ValueError, match="(?i)nan"):
        make_trainer(tmp_path, [ActiveLearningCallback("bald", query_size=3, iterations=4, seed=0)]).fit(
            NaNAfterFirstEpoch(), datamodule=dm
        )
    assert dm.num_labelled == 6
    assert dm.step == 0


def test_epig_scores_the_pool_against_targets_drawn_from_the_pool(tmp_path, monkeypatch):
    """The targets are MC predictions of pool samples with the pool's own masks; the selection is EPIG's top-q."""
    from lightning_bal.functional import epig
    from lightning_bal.heuristics import EPIG

    pl.seed_everything(0)
    dm = make_datamodule(n=70)
    pool_before = dm.pool_indices.clone()
    seen = spy_on_mc_batches(monkeypatch)
    heuristic = EPIG(num_targets=15)
    given = record_targets(heuristic)
    callback = ActiveLearningCallback(heuristic, query_size=4, iterations=8, seed=3)
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(), datamodule=dm)
    targets = given[0]
    assert all(t is targets for t in given), "every pool batch is scored against the same targets"
    assert sorted(seen) == pool_before.tolist()
    pool_log_probs = torch.stack([seen[i] for i in pool_before.tolist()])
    assert targets.shape == (15, 8, 3)
    # The targets are pool samples predicted with the pool's own masks: each is one of the pool's rows.
    assert all(any(torch.equal(row, target) for row in pool_log_probs) for target in targets)
    scores = epig(pool_log_probs, targets)
    expected = pool_before[scores.topk(4).indices]
    assert sorted(callback.last_selection.tolist()) == sorted(expected.tolist())


def test_stochastic_selection_records_probabilities_for_risk_weights(tmp_path):
    dm = make_datamodule(n=60)  # initial labels drawn uniformly: probabilities recorded
    make_trainer(tmp_path, [ActiveLearningCallback("power_bald", query_size=4, iterations=5, seed=0)], 2).fit(
        DropoutClassifier(), datamodule=dm
    )
    acquired = dm.acquisition_probability[dm.acquired_at > 0]
    assert acquired.numel() == 8
    assert torch.isfinite(acquired).all()
    weights = dm.risk_weights("lure")[dm.labelled_indices]
    assert torch.isfinite(weights).all()
    assert (weights > 0).all()


def test_probabilities_are_not_recorded_when_only_a_subset_was_scored(tmp_path):
    dm = make_datamodule(n=60)
    dm.max_pool_size = 20
    callback = ActiveLearningCallback("power_bald", query_size=4, iterations=5, seed=0)
    make_trainer(tmp_path, [callback], 1).fit(DropoutClassifier(), datamodule=dm)
    assert dm.acquisition_probability[dm.acquired_at == 1].isnan().all()
    with pytest.raises(ValueError, match="have none"):
        dm.risk_weights()


@pytest.mark.parametrize("heuristic", ["batchbald", "epig"])
def test_joint_heuristics_refuse_per_item_masks(heuristic):
    with pytest.raises(ValueError, match="K fixed models"):
        ActiveLearningCallback(heuristic, query_size=2, posterior=MCDropout(consistent_masks=False))


@pytest.mark.parametrize(("heuristic", "lure"), [("power_bald", True), ("bald", False)])
def test_risk_estimates_are_logged_next_to_the_plain_mean(tmp_path, heuristic, lure):
    dm = make_datamodule(n=60)
    callback = ActiveLearningCallback(heuristic, query_size=4, iterations=5, seed=0, evaluations=[LabelledRisk()])
    make_trainer(tmp_path, [callback], 2).fit(DropoutClassifier(), datamodule=dm)
    first, second = callback.history
    assert first["active/train_nll_mean"] > 0
    # Step 1 scores a model trained on the 6 uniform initial labels only: LURE weights are all 1 there.
    assert ("active/train_nll_lure" in second) == lure
    if lure:
        assert first["active/train_nll_lure"] == pytest.approx(first["active/train_nll_mean"])
        assert second["active/train_nll_lure"] != pytest.approx(second["active/train_nll_mean"])
