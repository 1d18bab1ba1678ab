import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import Calibration
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule, make_trainer


@pytest.mark.parametrize("heuristic", ["bald", "batchbald", "random"])
def test_tensorboard_receives_the_active_learning_curve(tmp_path, heuristic):
    logger = TensorBoardLogger(tmp_path, name="al")
    dm = make_datamodule()
    callback = ActiveLearningCallback(heuristic, query_size=5, iterations=4, seed=0)
    make_trainer(tmp_path, [callback], max_epochs=3, logger=logger).fit(DropoutClassifier(), datamodule=dm)
    logger.experiment.flush()

    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])

    def series(tag):
        return [(e.step, e.value) for e in events.Scalars(tag)]

    assert series("active/num_labelled") == [(6, 6.0), (11, 11.0), (16, 16.0)]
    assert series("active/num_pool") == [(6, 84.0), (11, 79.0), (16, 74.0)]
    assert [s for s, _ in series("active/val_acc")] == [6, 11, 16]
    assert all(0.0 <= v <= 1.0 for _, v in series("active/val_acc"))
    assert all(v >= 0 for _, v in series("active/pool_pass_seconds"))
    counts = [sum(events.Scalars(f"active/labelled_class_{c}")[i].value for c in range(3)) for i in range(3)]
    assert counts == [6.0, 11.0, 16.0]
    histograms = set(events.Tags()["histograms"])
    assert "active/labelled_classes" in histograms
    if heuristic != "random":
        assert {"active/score_pool_mean", "active/score_selected_max", "active/score_pool_min"} <= scalars
        assert "active/pool_scores" in histograms
        # Like with like: the selected scores are pool scores (for BatchBALD too: its picks' BALD scores).
        for pool_max, selected_max in zip(
            events.Scalars("active/score_pool_max"), events.Scalars("active/score_selected_max"), strict=True
        ):
            assert selected_max.value <= pool_max.value + 1e-6
    gain_tags = {f"active/selected_joint_mi_gain_{s}" for s in ("mean", "max", "min")} | {"active/selected_joint_mi"}
    if heuristic == "batchbald":
        assert gain_tags <= scalars
        for step in callback.history:
            # Five picks: the batch's joint MI is the sum of what each pick added.
            assert step["active/selected_joint_mi"] == pytest.approx(5 * step["active/selected_joint_mi_gain_mean"])
            assert step["active/selected_joint_mi_gain_max"] <= step["active/score_pool_max"] + 1e-5
    else:
        assert not gain_tags & scalars
    if heuristic == "random":
        assert "active/score_pool_mean" not in scalars, "Random has no scores to report"


def test_calibration_of_mc_predictions_is_logged_per_step(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="al")
    callback = ActiveLearningCallback("bald", query_size=5, iterations=4, seed=0, evaluations=[Calibration()])
    make_trainer(tmp_path, [callback], max_epochs=2, logger=logger).fit(
        DropoutClassifier(), datamodule=make_datamodule()
    )
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    ece = [(e.step, e.value) for e in events.Scalars("active/val_mc_ece")]
    accuracy = [(e.step, e.value) for e in events.Scalars("active/val_mc_acc")]
    assert [s for s, _ in ece] == [s for s, _ in accuracy] == [6, 11]
    assert all(0.0 <= v <= 1.0 for _, v in ece + accuracy)
    assert callback.history[0]["active/val_mc_ece"] == pytest.approx(ece[0][1])


def test_calibration_needs_a_validation_set(tmp_path):
    callback = ActiveLearningCallback("bald", query_size=5, iterations=4, evaluations=[Calibration()])
    with pytest.raises(ValueError, match="`Calibration` needs a `val_dataset`"):
        make_trainer(tmp_path, [callback]).fit(DropoutClassifier(), datamodule=make_datamodule(val=False))
