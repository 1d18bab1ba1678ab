"""Stopping criteria: scripted metrics for each decision, and each one ending a real run."""

from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch

from lightning_bal import ActiveLearningCallback
from lightning_bal.annotation import LowUncertainty, MetricPlateau, StablePredictions, TargetReached
from lightning_bal.annotation.stopping import cohen_kappa
from lightning_bal.callbacks import StepContext, TestCurve
from tests.helpers.models import blobs
from tests.helpers.runs import SeededDropoutClassifier, make_datamodule, make_trainer
from tests.helpers.steps import scripted_step as context


@pytest.mark.parametrize(
    ("values", "mode", "patience", "stops_at"),
    [
        ([0.5, 0.6, 0.7, 0.7, 0.69, 0.71], "max", 2, 4),
        ([0.5, 0.6, 0.7, 0.8], "max", 1, None),
        ([1.0, 0.9, 0.95, 0.92], "min", 2, 3),
    ],
)
def test_metric_plateau(values, mode, patience, stops_at):
    criterion = MetricPlateau("val_acc", mode=mode, patience=patience)
    stopped = None
    for step, value in enumerate(values):
        criterion.update(context(step, {"val_acc": value}))
        if criterion.stop and stopped is None:
            stopped = step
    assert stopped == stops_at


def test_metric_plateau_needs_its_metric():
    with pytest.raises(RuntimeError, match=r"monitor='val_acc'.*val_loss"):
        MetricPlateau("val_acc").update(context(0, {"val_loss": 1.0}))


@pytest.mark.parametrize(
    ("monitor", "mode", "target", "stops_at"),
    [
        ("test_acc", "max", 0.8, 2),  # an evaluation figure
        ("val_acc", "max", 0.8, 3),  # a validation metric
        ("val_loss", "min", 0.3, 2),
        ("test_acc", "max", 0.99, None),
    ],
)
def test_target_reached(monitor, mode, target, stops_at):
    val = [{"val_acc": a, "val_loss": b} for a, b in [(0.5, 0.9), (0.7, 0.5), (0.79, 0.3), (0.85, 0.4)]]
    test = [{"test_acc": a} for a in (0.6, 0.75, 0.8, 0.78)]
    criterion = TargetReached(monitor, target, mode=mode)
    stopped = None
    for step in range(4):
        assert criterion.update(context(step, val[step], figures=test[step])) == {}
        if criterion.stop and stopped is None:
            stopped = step
    assert stopped == stops_at
    if stops_at is not None:
        assert criterion.reason.startswith(f"{monitor} reached {target:g}")
        assert f"with {10 + stops_at} labels" in criterion.reason


def test_target_reached_refuses_bad_arguments():
    with pytest.raises(RuntimeError, match=r"monitor='test_acc'.*\['val_acc'\]"):
        TargetReached("test_acc", 0.9).update(context(0, {"val_acc": 1.0}))
    with pytest.raises(ValueError, match="`target`"):
        TargetReached("val_acc", float("nan"))
    with pytest.raises(ValueError, match="`mode`"):
        TargetReached("val_acc", 0.9, mode="above")
    with pytest.raises(TypeError, match="`monitor`"):
        TargetReached("", 0.9)


def test_target_reached_changes_nothing_before_the_target(tmp_path):
    """A run stopped at a test accuracy has the history of a longer run up to the first step that reaches it."""

    def run(stopping):
        pl.seed_everything(0)
        callback = ActiveLearningCallback(
            "bald", query_size=3, iterations=3, label_budget=21, evaluations=[TestCurve()], stopping=stopping
        )
        datamodule = make_datamodule(n=60, initial=6, test_dataset=blobs(40, seed=3))
        trainer = make_trainer(tmp_path, [callback], max_epochs=20)
        trainer.fit(SeededDropoutClassifier(), datamodule=datamodule)
        return [(row["active/num_labelled"], row["active/test_acc"]) for row in callback.history]

    full = run([])
    assert len(full) == 6
    target = sorted(acc for _, acc in full)[-3]  # reached after the first step, before the last
    first = next(step for step, (_, acc) in enumerate(full) if acc >= target)
    assert 0 < first < len(full) - 1
    assert run([TargetReached("test_acc", target)]) == full[: first + 1]


@pytest.mark.parametrize(
    ("mean_below", "max_below", "scores", "stop"),
    [
        (0.1, None, [0.05, 0.12], True),
        (0.1, 0.1, [0.05, 0.12], False),
        (None, 0.2, [0.05, 0.12], True),
        (0.01, None, [0.05, 0.12], False),
    ],
)
def test_low_uncertainty(mean_below, max_below, scores, stop):
    criterion = LowUncertainty(mean_below, max_below)
    figures = criterion.update(context(0, scores=torch.tensor(scores, dtype=torch.float64)))
    assert criterion.stop is stop
    assert figures == pytest.approx({"stop_pool_score_mean": sum(scores) / 2, "stop_pool_score_max": max(scores)})
    assert LowUncertainty(1.0).update(context(0)) == {}, "no scores (off rank zero): no decision"


def test_cohen_kappa_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = torch.randint(0, 4, (50,), generator=generator)
        b = torch.where(torch.rand(50, generator=generator) < 0.7, a, torch.randint(0, 4, (50,), generator=generator))
        assert cohen_kappa(a, b) == pytest.approx(metrics.cohen_kappa_score(a.numpy(), b.numpy()))
    assert cohen_kappa(torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long)) == 1.0


@pytest.mark.parametrize(
    ("first", "second", "kappa"),
    [
        # The figures of the hand-written kappa torchmetrics' replaced (issue #28), to float32 precision.
        ([0, 1, 2, 0, 1, 2, 0, 1], [0, 1, 2, 0, 1, 1, 0, 2], 0.6190476190476191),
        ([0, 0, 1, 1, 2, 3], [3, 0, 1, 1, 2, 3], 0.7777777777777778),
        ([2, 0, 2, 0, 2], [2, 0, 0, 0, 2], 0.6153846153846155),
        ([0, 1, 0, 1], [1, 0, 1, 0], -1.0),
        ([0, 0, 0], [1, 1, 1], 0.0),
        ([1, 1, 1, 1], [1, 1, 1, 1], 1.0),  # p_e = 1: a labeling agrees fully with itself
    ],
)
def test_cohen_kappa_keeps_the_figures_of_the_hand_written_one(first, second, kappa):
    assert cohen_kappa(torch.tensor(first), torch.tensor(second)) == pytest.approx(kappa, abs=1e-6)


def test_stable_predictions_needs_patience_successive_stable_steps():
    base = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    flipped = base.clone()
    flipped[:4] = (flipped[:4] + 1) % 3
    scripted = iter([base, base, flipped, flipped, flipped, flipped])
    criterion = StablePredictions(stop_set=None, threshold=0.9, patience=2)
    kappas, stops = [], []
    for step in range(6):
        figures = criterion.update(context(step, predict=lambda _: next(scripted)))
        kappas.append(figures.get("stop_kappa"))
        stops.append(criterion.stop)
    assert kappas[0] is None
    assert kappas[1] == 1.0
    assert kappas[2] < 0.9
    assert stops == [False, False, False, False, True, True]
    restored = StablePredictions(stop_set=None, threshold=0.9, patience=2)
    restored.load_state_dict(criterion.state_dict())
    assert torch.equal(restored.previous, flipped)
    assert restored.stable_steps == 3
    assert restored.stop


def test_criteria_read_the_step_context():
    """The callback hands the criteria its one step context: they read D_L, the validation figures and predictions."""
    datamodule = make_datamodule()
    model = SeededDropoutClassifier().eval()
    trainer = SimpleNamespace(callback_metrics={"val_acc": torch.tensor(0.75), "train_loss": torch.tensor(1.0)})
    step = StepContext(trainer, model, datamodule, 4, None, seed=0, step=2, figures={"test_acc": 0.5})
    target = TargetReached("val_acc", 0.7)
    target.update(step)
    assert target.stop
    assert target.reason == f"val_acc reached 0.7 (0.75 with {datamodule.num_labelled} labels)"
    stop_set = torch.utils.data.Subset(datamodule.train_dataset, range(8))
    stable = StablePredictions(stop_set, threshold=0.9, patience=1)
    stable.update(step)
    assert stable.update(step) == {"stop_kappa": 1.0, "stop_stable_steps": 1.0}


def test_low_uncertainty_needs_an_uncertainty_heuristic():
    with pytest.raises(ValueError, match="does not score uncertainty"):
        ActiveLearningCallback("random", 4, stopping=[LowUncertainty(0.1)])
    with pytest.raises(TypeError, match="`stopping`"):
        ActiveLearningCallback("bald", 4, stopping=["plateau"])


@pytest.mark.parametrize(
    ("criterion", "steps"),
    [
        (LowUncertainty(max_below=100.0), 0),  # always low: stops at the first step, before labelling
        (StablePredictions(blobs(30, seed=2), threshold=-1.0, patience=1), 1),  # stable from the 2nd step on
        (MetricPlateau("val_loss", mode="min", patience=1, min_delta=100.0), 1),  # never improves after the first
        (TargetReached("val_loss", 100.0, mode="min"), 0),  # reached at the first step
    ],
)
def test_each_criterion_ends_a_run(tmp_path, criterion, steps):
    callback = ActiveLearningCallback("bald", query_size=3, iterations=3, stopping=[criterion])
    passes = []
    run_pool_pass = callback.pool_pass.run
    callback.pool_pass.run = lambda *args, **kwargs: passes.append(1) or run_pool_pass(*args, **kwargs)
    dm = make_datamodule(n=60, initial=6)
    trainer = make_trainer(tmp_path, [callback], max_epochs=10)
    trainer.fit(SeededDropoutClassifier(), datamodule=dm)
    assert callback.steps_done == steps
    # Only a criterion that reads the pool's scores costs a pool pass at the step that stops.
    assert len(passes) == steps + criterion.needs_pool_scores
    assert trainer.current_epoch == steps + 1
    assert dm.num_labelled == 6 + 3 * steps
    logged = {key for row in callback.history for key in row}
    # TargetReached's figure is the monitored one, already logged.
    assert any(key.startswith("active/stop_") for key in logged) is not isinstance(criterion, TargetReached)
