"""The small detector: torchvision's train/eval conventions, the output contract, MC-Dropout in the head, training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lightning_bal.experiments import DigitCanvases, DigitDetector, detection_collate, train_detector
from lightning_bal.experiments.detector import _box_iou, _suppress
from lightning_bal.mc.split import SplitModule


@pytest.fixture(scope="module")
def data():
    return DigitCanvases(size=24, seed=0)


def _check_detections(found, size, num_classes, limit):
    assert found.keys() == {"boxes", "labels", "scores", "class_probs"}
    m = len(found["boxes"])
    assert m <= limit
    assert found["boxes"].shape == (m, 4)
    assert found["boxes"].dtype == torch.float32
    assert found["labels"].shape == (m,)
    assert found["labels"].dtype == torch.int64
    assert found["scores"].shape == (m,)
    assert found["class_probs"].shape == (m, num_classes)
    if m:
        boxes = found["boxes"]
        assert bool((boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all())
        assert float(boxes.min()) >= 0
        assert bool((boxes[:, 2] <= size[0]).all() and (boxes[:, 3] <= size[1]).all())
        assert int(found["labels"].min()) >= 1
        assert int(found["labels"].max()) < num_classes
        torch.testing.assert_close(found["class_probs"].sum(1), torch.ones(m))
        picked = found["class_probs"].gather(1, found["labels"][:, None])[:, 0]
        torch.testing.assert_close(picked, found["scores"])
        assert bool((found["scores"][:-1] >= found["scores"][1:]).all())


@pytest.mark.parametrize(("sizes", "max_detections"), [([(96, 96), (96, 96)], 20), ([(50, 70), (96, 33)], 5)])
def test_eval_returns_one_detection_dict_per_image(sizes, max_detections):
    torch.manual_seed(0)
    model = DigitDetector(max_detections=max_detections, score_threshold=0.0).eval()
    images = [torch.rand(1, height, width) for width, height in sizes]
    with torch.no_grad():
        found = model(images)
    assert len(found) == len(images)
    for detections, size in zip(found, sizes, strict=True):
        _check_detections(detections, size, 11, max_detections)


def test_a_batched_tensor_and_a_list_give_the_same_detections(data):
    torch.manual_seed(0)
    model = DigitDetector(score_threshold=0.0).eval()
    images, _ = detection_collate([data[0], data[1]])
    with torch.no_grad():
        listed, stacked = model(images), model(torch.stack(images))
    for one, other in zip(listed, stacked, strict=True):
        for key in one:
            torch.testing.assert_close(one[key], other[key])


def test_training_mode_returns_losses_and_needs_targets(data):
    torch.manual_seed(0)
    model = DigitDetector().train()
    images, targets = detection_collate([data[i] for i in range(4)])
    targets[0] = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}  # an empty image trains too
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg"}
    assert all(loss.ndim == 0 and torch.isfinite(loss) for loss in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="`targets` in training mode"):
        model(images)


def test_dropout_sits_in_the_head_and_samples_differ(data):
    torch.manual_seed(0)
    model = DigitDetector(score_threshold=0.0).eval()
    assert not any(isinstance(m, torch.nn.Dropout2d) for m in model.backbone.modules())
    for module in model.head.modules():
        if isinstance(module, torch.nn.Dropout2d):
            module.train()
    images, _ = detection_collate([data[2]])
    with torch.no_grad():
        first, second = model(images)[0], model(images)[0]
        features = model.embed(images), model.embed(images)
    assert not torch.equal(first["class_probs"], second["class_probs"])
    assert torch.equal(*features)  # the backbone is deterministic: it can run once for the K samples


def test_embed_pools_the_backbone(data):
    model = DigitDetector(width=8).eval()
    images, _ = detection_collate([data[0], data[1], data[2]])
    with torch.no_grad():
        embedding = model.embed(images)
        assert embedding.shape == (3, 16)
        torch.testing.assert_close(embedding, model.backbone(torch.stack(images)).mean(dim=(2, 3)))


@given(st.lists(st.tuples(*[st.integers(0, 60)] * 2, *[st.integers(1, 30)] * 2), min_size=1, max_size=6))
def test_box_iou_is_symmetric_bounded_and_one_on_itself(rows):
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in rows], dtype=torch.float32)
    iou = _box_iou(boxes, boxes)
    torch.testing.assert_close(iou, iou.T)
    assert float(iou.min()) >= 0
    assert float(iou.max()) <= 1 + 1e-6
    torch.testing.assert_close(iou.diagonal(), torch.ones(len(boxes)))


@pytest.mark.parametrize(
    ("labels", "kept"),
    [
        ([1, 1, 1], [True, False, True]),  # the second overlaps the first (IoU 0.81); the third is apart
        ([1, 2, 1], [True, True, True]),  # another label is never suppressed
    ],
)
def test_suppression_drops_a_worse_box_of_the_same_label(labels, kept):
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert _suppress(boxes, scores, torch.tensor(labels), 0.5).tolist() == kept


@pytest.fixture(scope="module")
def trained():
    """100 steps on 32 canvases (about 10 s): the smoke test's detector and its training canvases."""
    data = DigitCanvases(size=32, seed=0, max_digits=3, min_size=24, max_size=36)
    cache = [data[i] for i in range(len(data))]
    torch.manual_seed(0)
    model = DigitDetector()
    losses = train_detector(model, cache, steps=100, batch_size=8, seed=0)
    images, targets = detection_collate(cache)
    with torch.no_grad():
        found = model(images)
    return model, losses, found, targets


def test_the_detector_learns_boxes_in_a_few_seconds(trained):
    model, losses, found, targets = trained
    assert not model.training
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:5]) / 5
    hits = total = 0
    for detections, target in zip(found, targets, strict=True):
        confident = detections["scores"] > 0.1
        iou = _box_iou(target["boxes"], detections["boxes"][confident])
        same = target["labels"][:, None] == detections["labels"][confident][None, :]
        hits += int(((iou >= 0.5) & same).any(1).sum())
        total += len(target["labels"])
    assert hits / total > 0.5  # recall at IoU 0.5 with the right digit: 0.75 when written


def test_the_detector_scores_above_zero_map(trained):
    """torchmetrics' mAP, which needs torchvision for boxes (torchmetrics 1.9), whatever its COCO backend."""
    mean_ap = pytest.importorskip("torchmetrics.detection.mean_ap")
    try:
        metric = mean_ap.MeanAveragePrecision(iou_type="bbox")
    except ModuleNotFoundError as err:
        pytest.skip(f"torchmetrics' MeanAveragePrecision cannot run here: {err}")
    _, _, found, targets = trained
    metric.update([{key: d[key] for key in ("boxes", "scores", "labels")} for d in found], targets)
    assert float(metric.compute()["map_50"]) > 0.3  # 0.68 when written


@pytest.mark.parametrize("sizes", [[(96, 96), (96, 96)], [(50, 70), (97, 33)]])
def test_the_mc_split_computes_forward_with_the_dropout_in_the_head_only(sizes):
    torch.manual_seed(0)
    model = DigitDetector(score_threshold=0.0).eval()
    assert isinstance(model, SplitModule)
    features, head = model.mc_split()
    assert not any(isinstance(m, torch.nn.Dropout2d) for m in features.modules())
    assert any(isinstance(m, torch.nn.Dropout2d) for m in head.modules())
    images = [torch.rand(1, height, width) for width, height in sizes]
    with torch.no_grad():
        whole, parts = model(images), head(*features(images))
    for one, other in zip(whole, parts, strict=True):
        for key in one:
            assert torch.equal(one[key], other[key])
    assert sum(p.numel() for p in features.parameters()) + sum(p.numel() for p in head.parameters()) == sum(
        p.numel() for p in model.parameters()
    )
