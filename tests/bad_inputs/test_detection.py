"""Detection: bad labels, bad saved boxes, models that return another format, bad heuristic and evaluation settings.

Each refusal names the argument (or state entry, or output field) and the problem, and leaves every state as it was.
"""

from __future__ import annotations

import io

import lightning.pytorch as pl
import pytest
import torch

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import DetectionMAP
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.functional.detection import check_detections, detection_scores, match_samples
from lightning_bal.heuristics import (
    BoxExistence,
    DetectionBADGE,
    DetectionBALD,
    DetectionCoreSet,
    DetectionEntropy,
    DetectionHeuristic,
    LocalizationStability,
    LocalizationVariance,
)
from lightning_bal.tasks.detection import Detection, detection_collate
from tests.bad_inputs.harness import accepts, refuses
from tests.detection.models import CLASSES, Squares, TinyDetector
from tests.detection.skips import needs_map

BOX = {"boxes": [[1.0, 1.0, 5.0, 5.0]], "labels": [1]}
NAN = float("nan")
POINTWISE = [DetectionEntropy, DetectionBALD, LocalizationVariance, LocalizationStability, BoxExistence]


def _datamodule() -> ActiveDataModule:
    return ActiveDataModule(
        Squares(10),
        test_dataset=Squares(4, seed=1),
        task=Detection(image_size=(32, 32)),
        num_classes=CLASSES + 1,
        initial_labels=2,
        seed=0,
        batch_size=2,
        pool_batch_size=4,
        collate_fn=detection_collate,
    )


LABELS = [
    ({"boxes": [[0, 0, NAN, 4]], "labels": [1]}, ValueError, r"`labels`' 'boxes' to be finite"),
    ({"boxes": [[0, 0, 4, float("inf")]], "labels": [1]}, ValueError, r"'boxes' to be finite"),
    ({"boxes": [[4, 0, 1, 4]], "labels": [1]}, ValueError, r"'boxes' to have x1 < x2 and y1 < y2.*4\.0, 0\.0, 1\.0"),
    ({"boxes": [[0, 4, 4, 4]], "labels": [1]}, ValueError, r"x1 < x2 and y1 < y2"),
    ({"boxes": [[0, 0, 40, 4]], "labels": [1]}, ValueError, r"inside the image \(width 32, height 32\)"),
    ({"boxes": [[-2, 0, 4, 4]], "labels": [1]}, ValueError, r"inside the image"),
    ({"boxes": [[0, 0, 4, 4]], "labels": [0]}, ValueError, r"'labels' to hold classes in \[1, 3\) \(0 is the back"),
    ({"boxes": [[0, 0, 4, 4]], "labels": [3]}, ValueError, r"classes in \[1, 3\).*\[3\]"),
    ({"boxes": [[0, 0, 4, 4]], "labels": [-1]}, ValueError, r"classes in \[1, 3\)"),
    ({"boxes": [[0, 0, 4, 4]], "labels": [1.5]}, TypeError, r"'labels' to hold integer classes"),
    ({"boxes": [[0, 0, 4, 4]], "labels": [1, 1]}, ValueError, r"one class per box \(1\)"),
    ({"boxes": [0, 0, 4, 4], "labels": [1]}, ValueError, r"'boxes' to be \[n, 4\]"),
    ({"boxes": "box", "labels": [1]}, TypeError, r"'boxes' to hold numbers"),
    ({"boxes": [[0, 0, 4, 4]]}, KeyError, r"`labels` to hold dicts with 'boxes' and 'labels'"),
    ({"box": [[0, 0, 4, 4]], "labels": [1]}, KeyError, r"'boxes' and 'labels'"),
    ({**BOX, "image_size": (4, 4)}, ValueError, r"inside the image \(width 4, height 4\)"),
    ({**BOX, "image_size": (4, -4)}, ValueError, r"`labels' 'image_size'` to be \(height, width\)"),
    ([], TypeError, r"`labels` to hold one dict per image.*list"),
    ([BOX], TypeError, r"one dict per image.*got list"),
    (None, TypeError, r"one dict per image.*NoneType"),
    (3, TypeError, r"one dict per image.*int"),
]


@pytest.mark.parametrize(("label", "error", "match"), LABELS)
def test_a_bad_label_is_refused_by_the_task_and_the_datamodule(label, error, match):
    task = Detection(image_size=(32, 32))
    refuses("detection.Detection.check_label", lambda: task.check_label(label, CLASSES + 1), error, match, task)
    dm = _datamodule()
    pair = dm.pool_indices[:2]
    refuses("detection.ActiveDataModule.label", lambda: dm.label(pair, [BOX, label]), error, match, dm)


def test_valid_labels_are_accepted():
    dm = _datamodule()
    empty = {"boxes": [], "labels": []}
    picks = dm.pool_indices[:3].tolist()
    accepts(lambda: dm.label(picks, [BOX, empty, {**BOX, "image_size": (8, 8)}]))
    assert [dm.annotations[i]["boxes"].shape for i in picks] == [(1, 4), (0, 4), (1, 4)]


def _state() -> dict:
    ledger = LabelLedger(5, task="detection", num_classes=CLASSES + 1)
    ledger.label([1, 3], labels=[BOX, {"boxes": torch.zeros(0, 4), "labels": []}])
    buffer = io.BytesIO()
    torch.save(ledger.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


STATES = [
    (lambda s: s["annotation_fields"]["boxes"].fill_(NAN), r"`annotation_values` valid.*'boxes' to be finite"),
    (lambda s: s["annotation_fields"]["boxes"][:, 0].fill_(9), r"`annotation_values` valid.*x1 < x2"),
    (lambda s: s["annotation_fields"]["labels"].fill_(0), r"`annotation_values` valid.*classes in \[1, 3\)"),
    (lambda s: s["annotation_fields"].pop("labels"), r"`annotation_fields` and `annotation_field_rows`"),
    (
        lambda s: s["annotation_field_rows"].update(boxes=torch.tensor([2, 0])),
        r"`annotation_fields\['boxes'\]`.*2 rows",
    ),
    (
        lambda s: s["annotation_field_rows"].update(boxes=torch.tensor([1.0, 0.0])),
        r"`annotation_field_rows\['boxes'\]`",
    ),
    (lambda s: s["annotation_field_rows"].update(labels=torch.tensor([1])), r"`annotation_field_rows\['labels'\]`.*2"),
    (lambda s: s["annotation_fields"].update(boxes="boxes"), r"`annotation_fields\['boxes'\]` to be a tensor"),
    (lambda s: (s.pop("annotation_fields"), s.pop("annotation_field_rows")), r"`annotation_values`.*finite.*NaN"),
    (lambda s: s.update(annotation_fields=[1]), r"`annotation_fields`.*dicts"),
]


@pytest.mark.parametrize(("change", "match"), STATES)
def test_a_bad_saved_box_state_is_refused(change, match):
    state = _state()
    change(state)
    ledger = LabelLedger(5, task="detection", num_classes=CLASSES + 1)
    ledger.label([0], labels=[BOX])
    refuses("detection.LabelLedger.load_state_dict", lambda: ledger.load_state_dict(state), ValueError, match, ledger)


def test_a_good_saved_box_state_loads():
    ledger = LabelLedger(5, task="detection", num_classes=CLASSES + 1)
    accepts(lambda: ledger.load_state_dict(_state()))
    assert ledger.annotations[3]["boxes"].shape == (0, 4)


SAMPLE = {"boxes": torch.tensor([[0.0, 0, 4, 4]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
OUTPUTS = [
    (torch.zeros(2, 3), TypeError, r"`outputs` to be a list of dicts.*Tensor"),
    ({"boxes": SAMPLE["boxes"]}, TypeError, r"list of dicts.*dict"),
    ([[]], TypeError, r"`outputs\[0\]` to be a dict with \['boxes', 'labels', 'scores'\].*list"),
    ([{"boxes": SAMPLE["boxes"]}], KeyError, r"`outputs\[0\]` to hold.*lacks \['labels', 'scores'\]"),
    ([{**SAMPLE, "boxes": SAMPLE["boxes"].tolist()}], TypeError, r"`outputs\[0\]\['boxes'\]` to be a tensor"),
    ([{**SAMPLE, "boxes": torch.zeros(1, 5)}], ValueError, r"'boxes'\]` to be a float tensor \[m, 4\]"),
    ([{**SAMPLE, "boxes": torch.full((1, 4), NAN)}], ValueError, r"'boxes'\]` to hold finite coordinates"),
    ([{**SAMPLE, "labels": torch.tensor([0])}], ValueError, r"'labels'\]` to hold classes >= 1"),
    ([{**SAMPLE, "labels": torch.tensor([1.0])}], ValueError, r"'labels'\]` to be an integer tensor \[1\]"),
    ([{**SAMPLE, "scores": torch.tensor([0.5, 0.5])}], ValueError, r"'scores'\]` to be a float tensor \[1\]"),
    ([{**SAMPLE, "scores": torch.tensor([NAN])}], ValueError, r"'scores'\]` to lie in \[0, 1\]"),
    ([{**SAMPLE, "class_probs": torch.ones(2, 3) / 3}], ValueError, r"'class_probs'\]` to be a tensor \[1, C \+ 1\]"),
    ([{**SAMPLE, "class_probs": torch.ones(1, 3)}], ValueError, r"'class_probs'\]` to hold probabilities summing"),
]


@pytest.mark.parametrize(("outputs", "error", "match"), OUTPUTS)
def test_model_outputs_of_another_format_are_refused(outputs, error, match):
    refuses("detection.functional.check_detections", lambda: check_detections(outputs), error, match)
    refuses("detection.Detection.stack_samples", lambda: Detection().stack_samples([outputs]), error, "sample 0")


class ReturnsLogits(TinyDetector):
    """A classifier's output where detections belong."""

    def forward(self, images, targets=None):
        if self.training and targets is not None:
            return super().forward(images, targets)
        return torch.zeros(len(images), CLASSES + 1)


class ReturnsNaNBoxes(TinyDetector):
    def forward(self, images, targets=None):
        outputs = super().forward(images, targets)
        if isinstance(outputs, list):
            for output in outputs:
                output["boxes"] = torch.full_like(output["boxes"], NAN)
        return outputs


class ReturnsEmptyLists(TinyDetector):
    """An empty list where each image's dict belongs."""

    def forward(self, images, targets=None):
        outputs = super().forward(images, targets)
        return [[] for _ in outputs] if isinstance(outputs, list) else outputs


@pytest.mark.parametrize(
    ("model", "evaluations", "error", "match"),
    [
        (ReturnsLogits, [], TypeError, r"list of dicts.*Tensor"),
        (ReturnsNaNBoxes, [], ValueError, r"'boxes'\]` to hold finite coordinates"),
        (ReturnsEmptyLists, [], TypeError, r"to be a dict with \['boxes', 'labels', 'scores'\].*list"),
        pytest.param(
            ReturnsLogits, [DetectionMAP()], TypeError, r"`forward's outputs` to be a list of dicts", marks=needs_map
        ),
        pytest.param(
            ReturnsEmptyLists, [DetectionMAP()], TypeError, r"`forward's outputs\[0\]` to be a dict", marks=needs_map
        ),
    ],
    ids=["logits", "nan-boxes", "empty-lists", "logits-map", "empty-lists-map"],
)
def test_a_model_that_returns_another_format_fails_at_fit_start(tmp_path, model, evaluations, error, match):
    """The setup probe (or the evaluation's check) refuses before any training or label change."""
    pl.seed_everything(0)
    dm, net = _datamodule(), model()
    callback = ActiveLearningCallback("detection_bald", query_size=2, iterations=2, seed=0, evaluations=evaluations)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    refuses(
        "detection.ActiveLearningCallback (model outputs)", lambda: trainer.fit(net, datamodule=dm), error, match, dm
    )


@pytest.mark.parametrize("heuristic", ["bald", "entropy", "variance", "power_bald"])
def test_a_heuristic_of_another_task_is_refused_at_fit_start(tmp_path, heuristic):
    pl.seed_everything(0)
    dm = _datamodule()
    callback = ActiveLearningCallback(heuristic, query_size=2, iterations=2, seed=0)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    match = r"detection heuristic \(e.g. 'detection_bald'.*for `task='detection'`"
    refuses(
        "detection.ActiveLearningCallback (heuristic)",
        lambda: trainer.fit(TinyDetector(), datamodule=dm),
        ValueError,
        match,
        dm,
    )


@pytest.mark.parametrize("cls", [DetectionHeuristic, *POINTWISE])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"iou_threshold": 0.0}, r"`iou_threshold` to be a number in \(0, 1\], but got 0.0"),
        ({"iou_threshold": "0.5"}, r"`iou_threshold`.*'0.5'"),
        ({"reduction": "median"}, r"`reduction` to be one of"),
        ({"empty_score": NAN}, r"`empty_score` to be a number, but got nan"),
        ({"empty_score": None}, r"`empty_score` to be a number, but got None"),
    ],
)
def test_bad_heuristic_settings_are_refused(cls, kwargs, match):
    refuses(f"heuristics.{cls.__name__}()", lambda: cls(**kwargs), ValueError, match)
    accepts(lambda: cls(reduction="topq", iou_threshold=1, empty_score=float("inf")))


@pytest.mark.parametrize(
    ("call", "entry", "error", "match"),
    [
        (
            lambda: DetectionBADGE(num_classes=1),
            "heuristics.DetectionBADGE()",
            ValueError,
            r"`num_classes`.*>= 2 \(C \+ 1\) or None",
        ),
        (lambda: DetectionBADGE(3, iou_threshold=2), "heuristics.DetectionBADGE()", ValueError, r"`iou_threshold`"),
        (lambda: DetectionBADGE(3, layer=4), "heuristics.DetectionBADGE()", TypeError, r"`layer`.*submodule name"),
        (lambda: DetectionCoreSet(layer=4), "heuristics.DetectionCoreSet()", TypeError, r"`layer`.*submodule name"),
        (lambda: DetectionMAP(split="train"), "DetectionMAP()", ValueError, r"`split` to be 'val' or 'test'"),
    ],
)
def test_bad_constructor_arguments_are_refused(call, entry, error, match):
    refuses(entry, call, error, match)


def test_heuristic_calls_refuse_what_is_not_a_detection_output():
    one = [[SAMPLE, SAMPLE]]
    for cls in POINTWISE:
        heuristic = cls()
        name = cls.__name__
        refuses(
            f"{name}.box_score",
            lambda h=heuristic: h.box_score(one),
            TypeError,
            r"`matched`.*DetectionSamples",
            heuristic,
        )
        accepts(lambda h=heuristic: h.box_score(match_samples(one[0])))
    heuristic = DetectionBALD()
    bad = torch.zeros(2, 3, 4)
    refuses(
        "DetectionHeuristic.score", lambda: heuristic.score(bad), TypeError, r"`Detection\(\)` keeps them", heuristic
    )
    refuses(
        "DetectionHeuristic.transform",
        lambda: heuristic.transform([SAMPLE]),
        TypeError,
        r"per image, a list",
        heuristic,
    )
    refuses(
        "DetectionHeuristic.score",
        lambda: heuristic.score([[{**SAMPLE, "scores": torch.tensor([2.0])}]]),
        ValueError,
        r"'scores'\]` to lie in",
        heuristic,
    )
    refuses(
        "DetectionHeuristic.box_score",
        lambda: DetectionHeuristic().box_score(match_samples([SAMPLE])),
        NotImplementedError,
        r"must implement `box_score`",
    )
    badge = DetectionBADGE(num_classes=2)
    wide = [[{**SAMPLE, "labels": torch.tensor([4])}]]
    refuses(
        "DetectionBADGE.embed",
        lambda: badge.embed(torch.ones(1, 2), wide),
        ValueError,
        r"at most 2 classes \(`num_classes`\), but got 5",
        badge,
    )
    guessing = DetectionBADGE()
    refuses(
        "DetectionBADGE.embed",
        lambda: guessing.embed(torch.ones(1, 2), [[SAMPLE, SAMPLE]]),
        ValueError,
        r"`num_classes` \(C \+ 1\) of `DetectionBADGE` for detections without `class_probs`",
        guessing,
    )
    refuses(
        "DetectionBADGE.embed",
        lambda: badge.embed(torch.ones(1), [[SAMPLE]]),
        ValueError,
        r"`features` to be a tensor \[B, D, \.\.\.\]",
        badge,
    )
    refuses("DetectionBADGE.transform", lambda: badge.transform(torch.ones(1)), TypeError, r"per image, a list", badge)
    coreset = DetectionCoreSet(layer="backbone")
    refuses(
        "DetectionCoreSet.embed",
        lambda: coreset.embed("features", None),
        ValueError,
        r"`features` to be a tensor.*str",
        coreset,
    )
    refuses(
        "DetectionCoreSet.transform", lambda: coreset.transform(None) + 1, TypeError, r"unsupported operand", coreset
    )
    refuses(
        "detection.functional.detection_scores",
        lambda: detection_scores([[SAMPLE]], DetectionBALD().box_score, empty_score="0"),
        ValueError,
        r"`empty_score`",
    )


def test_the_evaluation_refuses_a_datamodule_of_another_task():
    dm = ActiveDataModule(Squares(4), test_dataset=Squares(2), task=None, collate_fn=detection_collate)
    evaluation = DetectionMAP()
    refuses(
        "DetectionMAP.check", lambda: evaluation.check(dm), ValueError, r"`DetectionMAP` with .*task='detection'", dm
    )
    no_test = ActiveDataModule(Squares(4), task="detection", collate_fn=detection_collate)
    refuses("DetectionMAP.check", lambda: evaluation.check(no_test), ValueError, r"needs a `test_dataset`", no_test)
    net = ReturnsLogits()
    refuses(
        "DetectionMAP.check_model",
        lambda: evaluation.check_model(net, _datamodule()),
        TypeError,
        r"`forward's outputs`",
        net,
    )
