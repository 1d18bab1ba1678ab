"""Segmentation, regression and sequence labelling end to end: ActiveDataModule + ActiveLearningCallback + Trainer."""

import math

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import RegressionCurve, SegmentationIoU
from lightning_bal.callbacks.task_evaluation import gaussian_nll_terms, mean_iou
from lightning_bal.functional import bald
from lightning_bal.heuristics import BALD, BatchBALD, Entropy, GaussianMI, PowerBALD, Variance
from lightning_bal.mc import mc_batches
from tests.helpers.runs import make_trainer
from tests.tasks.models import (
    IGNORE,
    DropoutRegressor,
    Sequences,
    Tagger,
    TinySegmenter,
    pad_collate,
    regression_data,
    segmentation_data,
)


def test_mean_iou_matches_torchmetrics():
    generator = torch.Generator().manual_seed(0)
    predictions = torch.randint(0, 4, (5, 6, 6), generator=generator)
    targets = torch.randint(0, 4, (5, 6, 6), generator=generator)
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    confusion = multiclass_confusion_matrix(predictions, targets, 4)
    expected = MulticlassJaccardIndex(num_classes=4, average="macro")(predictions, targets)
    assert mean_iou(confusion) == pytest.approx(float(expected), abs=1e-6)


def test_gaussian_nll_matches_torch():
    mean, var, y = torch.randn(7), torch.rand(7) + 0.1, torch.randn(7)
    expected = torch.nn.functional.gaussian_nll_loss(mean, y, var, full=True, reduction="none")
    torch.testing.assert_close(gaussian_nll_terms(mean, var, y), expected)


@pytest.mark.parametrize(
    "heuristic", [BALD(), BALD(reduction="topq"), Entropy(reduction="max"), PowerBALD(reduction="sum")]
)
def test_segmentation_end_to_end_with_mean_iou(tmp_path, heuristic):
    dm = ActiveDataModule(segmentation_data(40), val_dataset=segmentation_data(10, seed=1), initial_labels=6, seed=0)
    callback = ActiveLearningCallback(
        heuristic, query_size=4, iterations=4, seed=0, evaluations=[SegmentationIoU(3, split="val")]
    )
    make_trainer(tmp_path, [callback], max_epochs=3).fit(TinySegmenter(), datamodule=dm)
    assert dm.num_labelled == 6 + 3 * 4
    first = callback.history[0]
    assert 0.0 <= first["active/val_miou"] <= 1.0
    assert first["active/score_pool_max"] > first["active/score_pool_min"] >= 0


def test_segmentation_scores_through_the_callback_equal_the_functional(tmp_path):
    """The pool pass scores images exactly as `bald` does on the engine's [N, K, C, H, W] log-probabilities."""
    model, data = TinySegmenter(), segmentation_data(12)
    dm = ActiveDataModule(data, initial_labels=2, seed=0, pool_batch_size=5)
    callback = ActiveLearningCallback(BALD(reduction="max"), query_size=3, iterations=5, seed=3)
    trainer = make_trainer(tmp_path, [callback], max_epochs=1)
    model.lr = 0.0  # the model the callback scores is the one scored below
    trainer.fit(model, datamodule=dm)
    pool = callback.history[0]
    # Rescore by hand with the mask seed the callback derives.
    from lightning_bal.utilities.seeding import Stream, derive_seed

    loader = [(data.tensors[0][i : i + 1], torch.tensor([i])) for i in range(12)]
    scores = torch.cat(
        [bald(out, reduction="max") for _, out in mc_batches(model, loader, 5, seed=derive_seed(3, 0, Stream.MASKS))]
    )
    assert pool["active/score_pool_max"] == pytest.approx(float(scores[dm.acquired_at != 0].max()), rel=1e-5)


def test_batch_aware_heuristics_refuse_per_pixel_outputs():
    log_probs = torch.randn(4, 3, 3, 8, 8).log_softmax(2)
    with pytest.raises(ValueError, match=r"\[N, K, C\]|shape"):
        BatchBALD().select(log_probs, 2)


def test_regression_end_to_end_with_rmse_and_nll(tmp_path):
    dm = ActiveDataModule(
        regression_data(60), test_dataset=regression_data(20, seed=1), task="regression", initial_labels=10, seed=0
    )
    evaluation = RegressionCurve("test", output="mean", log_variance="log_var")
    callback = ActiveLearningCallback(
        GaussianMI(mean="mean", log_variance="log_var"), query_size=5, iterations=6, seed=0, evaluations=[evaluation]
    )
    make_trainer(tmp_path, [callback], max_epochs=2).fit(DropoutRegressor(), datamodule=dm)
    first = callback.history[0]
    assert dm.num_labelled == 20
    assert first["active/test_rmse"] > 0
    assert math.isfinite(first["active/test_nll"])
    assert first["active/score_pool_max"] > first["active/score_pool_min"] >= 0


def test_regression_variance_of_a_named_output_and_a_classification_heuristic_refused(tmp_path):
    dm = ActiveDataModule(regression_data(40), task="regression", initial_labels=10, seed=0)
    callback = ActiveLearningCallback(Variance(output="mean"), query_size=5, iterations=4, seed=0)
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutRegressor(), datamodule=dm)
    assert dm.num_labelled == 15
    dm = ActiveDataModule(regression_data(40), task="regression", initial_labels=10, seed=0)
    callback = ActiveLearningCallback(BALD(output="mean"), query_size=5, iterations=4, seed=0)
    with pytest.raises(ValueError, match="regression output"):
        make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutRegressor(), datamodule=dm)
    assert dm.num_labelled == 10


def test_sequence_labelling_end_to_end_excludes_padding(tmp_path):
    """Generated sequences of different lengths, batched by `collate_fn`; padded tokens never count."""
    data = Sequences(40)
    dm = ActiveDataModule(
        data, initial_labels=6, seed=0, collate_fn=pad_collate, pool_batch_size=8, val_dataset=Sequences(10, seed=1)
    )
    heuristic = BALD(output="logits", mask="valid", reduction="mean")
    callback = ActiveLearningCallback(
        heuristic,
        query_size=4,
        iterations=5,
        seed=0,
        evaluations=[SegmentationIoU(3, ignore_index=IGNORE, output="logits")],
    )
    model = Tagger()
    make_trainer(tmp_path, [callback], max_epochs=2).fit(model, datamodule=dm)
    assert dm.num_labelled == 14
    assert 0.0 <= callback.history[0]["active/val_miou"] <= 1.0
    # The same scores item by item (no padding at all) as in padded batches with the mask.
    pool = dm.pool_indices[:8]
    padded = torch.cat(
        [
            heuristic.score(out)
            for _, out in mc_batches(model, dm.pool_dataloader(pool), 5, seed=1, output_transform=heuristic.transform)
        ]
    )
    alone = torch.cat(
        [
            bald(out["logits"].log_softmax(2))
            for i in pool.tolist()
            for _, out in mc_batches(model, [(data[i][0][None], torch.tensor([i]))], 5, seed=1, output_transform=None)
        ]
    )
    torch.testing.assert_close(padded, alone)


def test_a_mask_of_the_wrong_shape_fails_at_the_first_pool_batch(tmp_path):
    class BadMask(Tagger):
        def forward(self, tokens):
            out = super().forward(tokens)
            return {"logits": out["logits"], "valid": out["valid"][:, :-1]}

    dm = ActiveDataModule(Sequences(20), initial_labels=4, seed=0, collate_fn=pad_collate)
    callback = ActiveLearningCallback(BALD(output="logits", mask="valid"), query_size=2, iterations=3, seed=0)
    with pytest.raises(ValueError, match="Expected argument `mask` to have shape"):
        make_trainer(tmp_path, [callback], max_epochs=1).fit(BadMask(), datamodule=dm)
    assert dm.num_labelled == 4
