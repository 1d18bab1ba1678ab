"""Training to convergence within each step (``monitor``), test-set figures per step, and EPIG's target dataset."""

import lightning.pytorch as pl
import pytest
import torch
from torch.nn import functional as F  # noqa: N812

import lightning_bal.mc.posterior as posterior_module
from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import Convergence, MCTestCurve, TestCurve
from lightning_bal.callbacks.pool_pass import PoolPass
from lightning_bal.functional import epig
from lightning_bal.heuristics import EPIG
from lightning_bal.mc import MCDropout
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_datamodule, make_trainer, record_targets


class ScriptedValidation(DropoutClassifier):
    """Logs ``name = values[epoch]`` and keeps a copy of its weights at every validation, by epoch."""

    def __init__(self, values, name="val_score"):
        super().__init__()
        self.values = values
        self.name = name
        self.weights_at = {}

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        self.log(self.name, float(self.values[self.current_epoch]))

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.weights_at[self.current_epoch] = {k: v.clone() for k, v in self.state_dict().items()}


def record_scored_models(monkeypatch) -> list:
    """``(epoch, weights)`` of the model each time the callback scores the pool."""
    scored = []
    original = PoolPass.run

    def spy(self, context):
        module = context.pl_module
        scored.append((module.trainer.current_epoch, {k: v.clone() for k, v in module.state_dict().items()}))
        return original(self, context)

    monkeypatch.setattr(PoolPass, "run", spy)
    return scored


@pytest.mark.parametrize(
    ("values", "kwargs", "step_epochs", "best_epochs"),
    [
        # Improves at 1, then two validations without improvement: step at 3 with the weights of epoch 1.
        ([5, 4, 4.5, 4.2, 3, 3.5, 3.1], {"patience": 2}, [3, 6], [1, 4]),
        # Always improving: only the cap ends a step.
        ([10, 9, 8, 7, 6, 5, 4], {"patience": 2, "max_epochs": 3}, [2, 5], [2, 5]),
        # A higher value is better, but only by more than min_delta.
        ([0.5, 0.55, 0.56, 0.9, 0.7, 0.95, 0.96], {"mode": "max", "min_delta": 0.1, "patience": 2}, [2, 5], [0, 3]),
        # patience=1: the first validation without improvement ends the step.
        ([3, 2, 2, 1, 1, 1, 1], {"patience": 1}, [2, 4, 6], [1, 3, 5]),
    ],
)
def test_step_runs_when_the_monitored_metric_stops_improving(
    tmp_path, monkeypatch, values, kwargs, step_epochs, best_epochs
):
    scored = record_scored_models(monkeypatch)
    pl.seed_everything(0)
    model = ScriptedValidation(values)
    callback = ActiveLearningCallback(
        "bald", query_size=2, iterations=4, seed=0, convergence=Convergence("val_score", **{"mode": "min", **kwargs})
    )
    make_trainer(tmp_path, [callback], max_epochs=len(values)).fit(model, datamodule=make_datamodule())
    assert [epoch for epoch, _ in scored] == step_epochs
    for (_, weights), best in zip(scored, best_epochs, strict=True):
        assert all(torch.equal(weights[k], model.weights_at[best][k]) for k in weights), "not the best weights"
    # The step's figures are those of the model it scored with, not of the last epoch.
    assert [h["active/val_score"] for h in callback.history] == [pytest.approx(values[e]) for e in best_epochs]
    assert callback.steps_done == len(step_epochs)
    trained = [b - a for a, b in zip([-1, *step_epochs], step_epochs, strict=False)]
    assert [h["active/epochs_trained"] for h in callback.history] == trained


def test_without_restoring_the_last_weights_are_scored(tmp_path, monkeypatch):
    scored = record_scored_models(monkeypatch)
    pl.seed_everything(0)
    model = ScriptedValidation([5, 4, 4.5, 4.2])
    callback = ActiveLearningCallback(
        "bald",
        query_size=2,
        iterations=4,
        seed=0,
        convergence=Convergence("val_score", mode="min", patience=2, restore_best_weights=False),
    )
    make_trainer(tmp_path, [callback], max_epochs=4).fit(model, datamodule=make_datamodule())
    ((epoch, weights),) = scored
    assert epoch == 3
    assert all(torch.equal(weights[k], model.weights_at[3][k]) for k in weights)
    assert callback.history[0]["active/val_score"] == pytest.approx(4.2)  # the figures of the scored model


def test_rank_zeros_metric_decides(tmp_path, monkeypatch):
    """The local metric improves every epoch (no step would ever run); the broadcast value of rank zero, constant
    here, is what counts: with patience 1 the steps run at epochs 1 and 3."""
    from lightning.pytorch.strategies import SingleDeviceStrategy

    original = SingleDeviceStrategy.broadcast

    def rank_zero_says_constant(self, obj, src=0):
        return 1.0 if isinstance(obj, float) else original(self, obj, src)

    monkeypatch.setattr(SingleDeviceStrategy, "broadcast", rank_zero_says_constant)
    scored = record_scored_models(monkeypatch)
    callback = ActiveLearningCallback(
        "bald", query_size=2, iterations=4, seed=0, convergence=Convergence("val_score", mode="min", patience=1)
    )
    model = ScriptedValidation([5, 4, 3, 2])
    make_trainer(tmp_path, [callback], max_epochs=4).fit(model, datamodule=make_datamodule())
    assert [epoch for epoch, _ in scored] == [1, 3]


def test_validate_outside_fit_leaves_the_convergence_state_alone(tmp_path):
    callback = ActiveLearningCallback(
        "bald", query_size=2, iterations=4, seed=0, convergence=Convergence("val_score", mode="min", patience=3)
    )
    model = ScriptedValidation([5, 4, 6, 7])
    trainer = make_trainer(tmp_path, [callback], max_epochs=3)
    dm = make_datamodule()
    trainer.fit(model, datamodule=dm)
    plateau = callback.convergence.plateau
    state = (plateau.best, plateau.wait)
    model.values = [0.0] * 10
    trainer.validate(model, datamodule=dm, verbose=False)
    assert (plateau.best, plateau.wait) == state == (4.0, 1)


def test_a_metric_that_is_not_logged_is_a_clear_error(tmp_path):
    callback = ActiveLearningCallback(
        "bald", query_size=2, iterations=4, convergence=Convergence("val_nope", mode="min")
    )
    trainer = make_trainer(tmp_path, [callback], max_epochs=2, num_sanity_val_steps=0)
    with pytest.raises(RuntimeError, match=r"monitor='val_nope'.*val_acc, val_loss"):
        trainer.fit(DropoutClassifier(), datamodule=make_datamodule())


def test_a_nan_metric_fails_the_step_and_labels_nothing(tmp_path):
    dm = make_datamodule()
    labelled = dm.acquired_at.clone()
    callback = ActiveLearningCallback(
        "bald", query_size=2, iterations=4, convergence=Convergence("val_score", mode="min")
    )
    with pytest.raises(ValueError, match="`val_score` is nan"):
        make_trainer(tmp_path, [callback], max_epochs=3).fit(ScriptedValidation([1, float("nan"), 1]), datamodule=dm)
    assert torch.equal(dm.acquired_at, labelled)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: ActiveLearningCallback("bald", 2, convergence=Convergence("val_loss"), every_n_epochs=2),
            ValueError,
            "either `every_n_epochs` or `convergence`",
        ),
        (lambda: Convergence("val_loss", mode="up"), ValueError, "`mode` to be 'min' or 'max'"),
        (lambda: Convergence("val_loss", patience=0), ValueError, "`patience` to be a positive integer"),
        (lambda: Convergence("val_loss", min_delta=-1.0), ValueError, "`min_delta` to be a finite number >= 0"),
        (lambda: Convergence("val_loss", max_epochs=0), ValueError, "`max_epochs` to be a positive integer"),
        (lambda: Convergence(None), TypeError, "`monitor` to be a metric name"),
        (lambda: ActiveLearningCallback("bald", 2, convergence="val_loss"), TypeError, "`convergence` to be a"),
        (lambda: ActiveLearningCallback("bald", 2, max_epochs_per_step=5), TypeError, "'max_epochs_per_step'"),
        (lambda: ActiveLearningCallback("bald", 2, target_dataset=blobs(10)), TypeError, "'target_dataset'"),
        (lambda: ActiveLearningCallback("bald", 2, log_test=True), TypeError, "'log_test'"),
        (lambda: ActiveLearningCallback("bald", 2, seed="abc"), TypeError, "`seed` to be an integer"),
        (lambda: ActiveLearningCallback("bald", 2, evaluations=["test"]), TypeError, "`StepEvaluation`"),
        (lambda: ActiveLearningCallback("bald", 2, posterior={"consistent_masks": False}), TypeError, "`MCDropout`"),
        (lambda: ActiveLearningCallback("bald", 2, mc_kwargs={"consistant_masks": False}), TypeError, "'mc_kwargs'"),
        (lambda: MCDropout(consistant_masks=False), TypeError, "consistant_masks"),
        (lambda: MCDropout(chunk_rows=0), ValueError, "`chunk_rows`"),
        (lambda: MCDropout(dropconnect=1.5), ValueError, "`dropconnect`"),
    ],
)
def test_bad_arguments_fail_at_construction(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    ("kwargs", "datamodule_kwargs", "match"),
    [
        ({"convergence": Convergence("val_loss")}, {"val": False}, "needs a `val_dataset`"),
        ({"evaluations": [TestCurve()]}, {}, "`TestCurve` needs a `test_dataset`"),
        ({"evaluations": [MCTestCurve()]}, {}, "`MCTestCurve` needs a `test_dataset`"),
    ],
)
def test_missing_datasets_are_refused_at_setup(tmp_path, kwargs, datamodule_kwargs, match):
    callback = ActiveLearningCallback("bald", query_size=2, iterations=4, **kwargs)
    with pytest.raises(ValueError, match=match):
        make_trainer(tmp_path, [callback]).fit(DropoutClassifier(), datamodule=make_datamodule(**datamodule_kwargs))


def test_test_figures_are_those_of_the_scored_model(tmp_path):
    pl.seed_everything(0)
    test_set = blobs(40, seed=4)
    dm = make_datamodule(test_dataset=test_set, eval_batch_size=7)
    model = DropoutClassifier()
    callback = ActiveLearningCallback("bald", query_size=2, iterations=4, seed=0, evaluations=[TestCurve()])
    make_trainer(tmp_path, [callback], max_epochs=1).fit(model, datamodule=dm)
    inputs, targets = test_set.tensors
    model.eval()
    with torch.no_grad():
        logits = model(inputs)
    (figures,) = callback.history
    assert figures["active/test_acc"] == pytest.approx((logits.argmax(-1) == targets).float().mean().item())
    assert figures["active/test_nll"] == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-5)


@pytest.mark.parametrize("p", [1e-9, 0.3])
def test_mc_test_figures_average_the_mc_predictions(tmp_path, p):
    """With dropout all but off the K MC samples are the deterministic model: the MC figures equal the plain ones.
    With real dropout they are the figures of a different (averaged) predictive distribution."""
    pl.seed_everything(0)
    dm = make_datamodule(test_dataset=blobs(40, seed=4), eval_batch_size=7)
    callback = ActiveLearningCallback(
        "bald", query_size=2, iterations=8, seed=0, evaluations=[TestCurve(), MCTestCurve()]
    )
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(p=p, hidden=64), datamodule=dm)
    (figures,) = callback.history
    if p < 1e-6:
        assert figures["active/test_mc_acc"] == pytest.approx(figures["active/test_acc"])
        assert figures["active/test_mc_nll"] == pytest.approx(figures["active/test_nll"], rel=1e-5)
    else:
        assert figures["active/test_mc_nll"] != pytest.approx(figures["active/test_nll"], rel=1e-3)
        assert 0.0 < figures["active/test_mc_nll"] < 10.0
        assert 0.0 <= figures["active/test_mc_acc"] <= 1.0


def test_epig_draws_its_targets_from_the_given_dataset(tmp_path, monkeypatch):
    calls = []
    original = posterior_module.mc_batches

    def spy(module, loader, *args, **kwargs):
        indices, log_probs = [], []
        for batch_indices, batch_log_probs in original(module, loader, *args, **kwargs):
            indices.append(batch_indices)
            log_probs.append(batch_log_probs)
            yield batch_indices, batch_log_probs
        calls.append((loader.dataset.dataset, torch.cat(indices), torch.cat(log_probs)))

    monkeypatch.setattr(posterior_module, "mc_batches", spy)
    pl.seed_everything(0)
    dm = make_datamodule(n=70)
    pool_before = dm.pool_indices.clone()
    targets_set = blobs(25, seed=9)
    heuristic = EPIG(num_targets=10, target_dataset=targets_set)
    given = record_targets(heuristic)
    callback = ActiveLearningCallback(heuristic, query_size=4, iterations=8, seed=3)
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(), datamodule=dm)
    (target_source, target_indices, target_log_probs), (pool_source, pool_indices, pool_log_probs) = calls
    assert target_source is targets_set
    assert pool_source is dm.train_dataset
    assert target_indices.unique().numel() == 10
    assert int(target_indices.max()) < 25
    assert torch.equal(given[0], target_log_probs[target_indices.argsort()])
    assert torch.equal(pool_indices, pool_before)
    expected = pool_before[epig(pool_log_probs, given[0]).topk(4).indices]
    assert sorted(callback.last_selection.tolist()) == sorted(expected.tolist())


def test_convergence_state_survives_a_checkpoint():
    callback = ActiveLearningCallback("bald", query_size=2, convergence=Convergence("val_loss"))
    callback.convergence.observe(0.25, {"w": torch.ones(3)}, {"val_loss": 0.25})
    callback.convergence.observe(0.5, {"w": torch.zeros(3)}, {"val_loss": 0.5})
    callback.convergence.observe(0.5, {"w": torch.zeros(3)}, {"val_loss": 0.5})
    restored = ActiveLearningCallback("bald", query_size=2, convergence=Convergence("val_loss"))
    restored.load_state_dict(callback.state_dict())
    tracked = restored.convergence
    assert (tracked.plateau.best, tracked.plateau.wait, tracked.best_val_metrics) == (0.25, 2, {"val_loss": 0.25})
    assert torch.equal(tracked.best_weights["w"], torch.ones(3))


def test_uses_the_datamodule_input_fn_for_targets(tmp_path):
    """A target dataset of mappings is read with the datamodule's ``input_fn``, like the pool."""

    class Mapped(torch.utils.data.Dataset):
        def __init__(self, base):
            self.base = base

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            x, y = self.base[i]
            return {"input": x, "target": y}

    pl.seed_everything(0)
    dm = ActiveDataModule(Mapped(blobs(60)), initial_labels=6, seed=0, batch_size=16, targets=blobs(60).targets)
    heuristic = EPIG(num_targets=5, target_dataset=Mapped(blobs(20, seed=2)))
    given = record_targets(heuristic)
    callback = ActiveLearningCallback(heuristic, query_size=3, iterations=4, seed=0)
    make_trainer(tmp_path, [callback], max_epochs=1).fit(MappedClassifier(), datamodule=dm)
    assert given[0].shape == (5, 4, 3)
    assert dm.num_labelled == 9


class MappedClassifier(DropoutClassifier):
    def training_step(self, batch, batch_idx):
        return super().training_step((batch["input"], batch["target"]), batch_idx)


def test_restore_best_weights_restores_the_best_accuracy_weights(tmp_path, monkeypatch):
    """Issue #28: `Convergence("val_accuracy")` without `mode` maximises it, and restores the best epoch's weights."""
    scored = record_scored_models(monkeypatch)
    pl.seed_everything(0)
    model = ScriptedValidation([0.5, 0.6, 0.9, 0.8, 0.85, 0.7], name="val_accuracy")
    callback = ActiveLearningCallback(
        "bald", query_size=2, iterations=4, seed=0, convergence=Convergence("val_accuracy", patience=2)
    )
    make_trainer(tmp_path, [callback], max_epochs=6).fit(model, datamodule=make_datamodule())
    # The best is epoch 2's 0.9; two validations without improvement end the step at epoch 4.
    assert [epoch for epoch, _ in scored] == [4]
    (_, weights), best = scored[0], model.weights_at[2]
    assert all(torch.equal(weights[k], best[k]) for k in weights), "not the best accuracy's weights"
    assert callback.history[0]["active/val_accuracy"] == pytest.approx(0.9)
