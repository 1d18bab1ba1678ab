"""The TensorBoard dashboard: the custom-scalars layout, hp_metric, and the user-guide image rendered from events."""

import os
import shutil
from pathlib import Path

import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.experiments import DropoutCNN, Experiment, load_digits
from lightning_bal.utilities.tensorboard import add_layout, layout, plot_curves_from_events, read_scalars, write_layout
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule, make_trainer

DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"


def _events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_a_run_logs_the_layout_and_hp_metric_from_its_curve(tmp_path):
    callback = ActiveLearningCallback("bald", query_size=4, iterations=2, label_budget=14)
    logger = TensorBoardLogger(tmp_path, name="run", version=0)  # default_hp_metric=True writes -1 at the start
    trainer = make_trainer(tmp_path, [callback], max_epochs=-1, logger=logger, log_every_n_steps=1)
    trainer.fit(DropoutClassifier(), datamodule=make_datamodule())
    events = _events(tmp_path / "run" / "version_0")
    hp_metric = [(e.step, e.value) for e in events.Scalars("hp_metric")]
    curve = [(e.step, e.value) for e in events.Scalars("active/val_acc")]
    assert hp_metric[0] == (0, -1.0)
    assert hp_metric[1:] == curve
    assert [step for step, _ in curve] == [6, 10, 14]
    assert "custom_scalars__config__" in events.Tags()["tensors"]


def test_the_layout_groups_the_curves_against_labelled_samples():
    charts = layout()["active learning curves (x: labelled samples)"]
    assert charts["accuracy against labelled samples"] == ["Multiline", [r"active/\w*acc\w*"]]
    assert layout("al")["active learning: pool"]["labelled, pool and scored samples"][1] == [
        r"al/num_(labelled|pool|scored)"
    ]


def test_the_layout_is_added_once_per_writer_and_written_as_its_own_event_file(tmp_path):
    with SummaryWriter(str(tmp_path / "writer")) as writer:
        assert (add_layout(writer), add_layout(writer)) == (True, False)
    folder = write_layout(tmp_path / "layout")
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert "custom_scalars__config__" in _events(folder).Tags()["tensors"]


@pytest.mark.slow
def test_dashboard_image_for_the_user_guide(tmp_path):
    """Renders the image of docs/user_guide from real event files; `LIGHTNING_BAL_UPDATE_DOCS=1` rewrites it."""
    train, test = load_digits(seed=0)
    experiment = Experiment(
        ["bald", "random"],
        [0],
        model=lambda seed: DropoutCNN("digits", image_size=8),
        datamodule=lambda seed: ActiveDataModule(
            train, val_dataset=test, initial_labels=20, train_samples_per_epoch=2048, max_pool_size=300, seed=seed
        ),
        callback={"query_size": 10, "iterations": 5, "every_n_epochs": 3, "reset_weights": True, "label_budget": 70},
        trainer={"enable_progress_bar": False, "check_val_every_n_epoch": 3, "log_every_n_steps": 4},
        metric="active/val_acc",
        log_dir=tmp_path / "tb",
    )
    result = experiment.run()
    scalars = read_scalars(tmp_path / "tb")
    assert sorted(scalars) == ["bald/seed_0", "random/seed_0"]
    assert [step for step, _ in scalars["bald/seed_0"]["active/val_acc"]] == [20, 30, 40, 50, 60, 70]
    assert [value for _, value in scalars["random/seed_0"]["active/val_acc"]] == pytest.approx(
        [value for _, value in result.curves()["random"][0]]
    )
    image = plot_curves_from_events(tmp_path / "tb", tmp_path / "dashboard.png")
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("LIGHTNING_BAL_UPDATE_DOCS") == "1":
        shutil.copyfile(image, DOCS_IMAGE)
    assert DOCS_IMAGE.is_file(), "run with LIGHTNING_BAL_UPDATE_DOCS=1 to write docs/images/dashboard.png"
