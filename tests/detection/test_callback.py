"""Detection through the callback: every detection heuristic by name, Random and the diversity heuristics, the mAP
curves against images and boxes labelled, and the same labels on one process and on two."""

from __future__ import annotations

from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import DetectionMAP
from lightning_bal.heuristics import DetectionBADGE, DetectionCoreSet, get_heuristic
from lightning_bal.mc import mc_predict
from lightning_bal.tasks.detection import Detection, detection_collate
from tests.callbacks.test_ddp import AssertRanksAgree, WriteResult
from tests.detection.models import CLASSES, Squares, TinyDetector
from tests.detection.skips import needs_map

POINTWISE = ["detection_entropy", "detection_bald", "localization_variance", "localization_stability", "box_existence"]


def datamodule(n: int = 24, **kwargs) -> ActiveDataModule:
    return ActiveDataModule(
        Squares(n),
        test_dataset=Squares(8, seed=1),
        task="detection",
        num_classes=CLASSES + 1,
        initial_labels=4,
        seed=0,
        batch_size=4,
        pool_batch_size=8,
        collate_fn=detection_collate,
        **kwargs,
    )


def fit(tmp_path, callback, devices: int = 1, extra=(), lr: float = 0.01) -> ActiveDataModule:
    pl.seed_everything(0)
    dm = datamodule()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)) if devices > 1 else "auto",
        max_epochs=3,
        callbacks=[callback, *extra],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(TinyDetector(lr=lr), datamodule=dm)
    return dm


def test_each_detection_heuristic_scores_the_pool_by_name():
    """The engine keeps each image's K detections; every heuristic gives one finite score per image, in order."""
    torch.manual_seed(0)
    data = Squares(10)
    loader = [(data.images[:6], torch.arange(6)), (data.images[6:], torch.arange(6, 10))]
    keep = get_heuristic("detection_bald").transform  # `None` would turn the labels into floats
    prediction = mc_predict(TinyDetector(threshold=0.36), loader, 4, seed=0, task=Detection(), output_transform=keep)
    assert len(prediction.log_probs) == 10
    assert all(len(samples) == 4 for samples in prediction.log_probs)
    counts = {sample["boxes"].shape[0] for samples in prediction.log_probs for sample in samples}
    assert len(counts) > 1, "the samples hold different numbers of boxes"
    for name in POINTWISE:
        heuristic = get_heuristic(name)
        scores = heuristic.score(heuristic.transform(prediction.log_probs))
        assert scores.shape == (10,)
        assert bool(torch.isfinite(scores).all())
        assert bool((scores >= 0).all())
    assert get_heuristic("detection_bald").score(prediction.log_probs).max() > 0


@needs_map
def test_a_step_logs_map_against_images_and_boxes_labelled(tmp_path):
    callback = ActiveLearningCallback(
        "detection_bald", query_size=3, iterations=3, seed=0, evaluations=[DetectionMAP("test")]
    )
    dm = fit(tmp_path, callback)
    assert dm.num_labelled == 4 + 3 * len(callback.history)
    assert len(callback.history) == 3
    for figures in callback.history:
        assert 0 <= figures["active/test_map"] <= 1
        assert 0 <= figures["active/test_map_50"] <= 1
    boxes = [figures["active/num_boxes_labelled"] for figures in callback.history]
    assert boxes == sorted(boxes)
    # At a step's log, D_L is what it was when the step began (its picks are labelled after the figures).
    first_step = dm.labelled_indices[dm.acquired_at[dm.labelled_indices] == 0]
    assert boxes[0] == sum(len(dm.train_dataset.targets[i]["labels"]) for i in first_step.tolist())


@pytest.mark.parametrize(
    "heuristic",
    [
        "random",
        DetectionCoreSet(layer="backbone"),
        DetectionBADGE(num_classes=CLASSES + 1, layer="backbone"),
    ],
    ids=["random", "coreset", "badge"],
)
def test_random_and_the_diversity_heuristics_label_detection_images(tmp_path, heuristic):
    callback = ActiveLearningCallback(heuristic, query_size=3, iterations=2, seed=0)
    dm = fit(tmp_path, callback)
    assert dm.num_labelled == 4 + 3 * 3
    assert torch.bincount(dm.acquired_at[dm.acquired_at >= 0]).tolist() == [4, 3, 3, 3]


def test_badge_embeds_the_most_uncertain_box_and_the_pooled_features():
    box = {"boxes": torch.tensor([[0.0, 0, 8, 8]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}
    badge = DetectionBADGE(num_classes=3, layer="backbone")
    embeddings = badge.embed(torch.ones(2, 5, 2, 2), [[box, box], [none, none]])
    # Image 0: mean distribution (0.5, 0.5, 0); argmax is class 0 -> a = (-0.5, 0.5, 0); image 1: the background.
    torch.testing.assert_close(embeddings[:, :3], torch.tensor([[-0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(embeddings[:, 3:], torch.ones(2, 5))
    with pytest.raises(ValueError, match="`num_classes`"):
        DetectionBADGE(num_classes=1)


@pytest.mark.slow
@pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])
def test_one_process_and_two_label_the_same_images(tmp_path):
    """Each rank reduces its images' detections to scores; only the scores and indices cross ranks."""
    one = _fit_result(tmp_path, 1, "one.pt")
    two = _fit_result(tmp_path, 2, "two.pt")
    assert torch.bincount(one[one >= 0]).tolist() == [4, 3, 3, 3]
    assert torch.equal(one, two)


@needs_map
@pytest.mark.slow
@pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])
def test_map_over_two_processes_is_the_map_over_the_whole_test_set(tmp_path):
    """Each rank evaluates its half of the test images; the synchronised metric gives one process's figures."""
    one = _fit_result(tmp_path, 1, "one.pt", [DetectionMAP("test")])
    two = _fit_result(tmp_path, 2, "two.pt", [DetectionMAP("test")])
    assert torch.equal(one, two)
    histories = [torch.load(tmp_path / f"{name}.pt.extra", weights_only=False)["history"] for name in ("one", "two")]
    keys = ["active/test_map", "active/test_map_50", "active/num_boxes_labelled"]
    figures = [[[step[key] for key in keys] for step in history] for history in histories]
    assert len(figures[0]) == 3
    assert figures[0] == figures[1]
    assert any(step[1] > 0 for step in figures[0]), "a figure that cannot be told apart from an empty evaluation"


def _fit_result(tmp_path, devices: int, name: str, evaluations=()) -> torch.Tensor:
    callback = ActiveLearningCallback(
        "detection_bald", query_size=3, iterations=3, seed=7, evaluations=list(evaluations)
    )
    extra = [WriteResult(tmp_path / name), *([AssertRanksAgree()] if devices > 1 else [])]
    # No training (lr 0): one process and two score one model, whose gradients would be averaged differently.
    fit(tmp_path, callback, devices, extra, lr=0.0)
    return torch.load(tmp_path / name, weights_only=True)


def test_badge_takes_the_class_count_from_the_first_detections_it_embeds():
    box = {"boxes": torch.tensor([[0.0, 0, 8, 8]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}
    probs = {**box, "class_probs": torch.tensor([[0.2, 0.5, 0.2, 0.1]])}
    badge = DetectionBADGE(layer="backbone")
    assert badge.embed(torch.ones(1, 2), [[probs, probs]]).shape == (1, 4 + 2)
    assert badge.embed(torch.ones(1, 2), [[box, box]]).shape == (1, 4 + 2)
    # An image without boxes still carries the model's width in its [0, C + 1] class_probs.
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}
    empty = {**none, "class_probs": torch.zeros(0, 4)}
    assert DetectionBADGE(layer="backbone").embed(torch.ones(1, 2), [[empty, empty]]).shape == (1, 4 + 2)


def test_badge_without_class_probs_needs_the_class_count():
    box = {"boxes": torch.tensor([[0.0, 0, 8, 8]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}
    badge = DetectionBADGE(layer="backbone")
    with pytest.raises(ValueError, match=r"`num_classes` \(C \+ 1\) of `DetectionBADGE` for detections without"):
        badge.embed(torch.ones(1, 2), [[box, box]])
    assert badge.detection_classes is None
    assert DetectionBADGE(num_classes=3, layer="backbone").embed(torch.ones(1, 2), [[box, box]]).shape == (1, 3 + 2)
