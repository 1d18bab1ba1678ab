"""Segmentation, regression and sequence labelling end to end: ActiveDataModule + ActiveLearningCallback + Trainer."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset
from torchmetrics.classification import MulticlassJaccardIndex

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import RegressionCurve, SegmentationIoU
from lightning_bal.callbacks.evaluation import StepContext
from lightning_bal.functional import bald
from lightning_bal.heuristics import BALD, BatchBALD, Entropy, GaussianMI, PowerBALD, Variance
from lightning_bal.mc import Posterior, mc_batches
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


def _context(model, dm, posterior=None, iterations=4):
    """A step's context for one process, without a Trainer."""
    trainer = SimpleNamespace(global_rank=0, world_size=1, strategy=None)
    return StepContext(trainer, model, dm, iterations, posterior, seed=0, step=0, figures={})


@pytest.mark.parametrize("ignore_index", [None, IGNORE, 2])
def test_segmentation_figures_are_torchmetrics_over_the_whole_split(ignore_index):
    images, maps = segmentation_data(10, seed=1).tensors
    if ignore_index is not None:
        maps = maps.clone()
        maps[:, 0, :] = ignore_index  # a void row in every image
    # Several batches: the figures are those of the whole split, not of a batch.
    val = TensorDataset(images, maps)
    dm = ActiveDataModule(segmentation_data(12), val_dataset=val, initial_labels=2, seed=0, eval_batch_size=3)
    model = TinySegmenter()
    figures = SegmentationIoU(3, ignore_index=ignore_index)(_context(model, dm))
    model.eval()
    with torch.no_grad():
        predictions = model(images).argmax(1)
    expected = MulticlassJaccardIndex(3, average="macro", ignore_index=ignore_index)(predictions, maps)
    assert figures["val_miou"] == pytest.approx(float(expected), abs=1e-7)
    counted = maps != ignore_index if ignore_index is not None else torch.ones_like(maps, dtype=torch.bool)
    assert figures["val_pixel_acc"] == float((predictions == maps)[counted].double().mean())


class FixedSamples(Posterior):
    """K given samples of ``{"mean", "log_var"}`` per dataset index: the figures can be computed by hand."""

    def __init__(self, samples):
        self.samples = samples  # [N, K, 2]

    def batches(self, module, dataloader, iterations, seed, output_transform):
        for _, indices in dataloader:
            rows = self.samples[indices]
            yield indices, output_transform({"mean": rows[:, :, 0], "log_var": rows[:, :, 1]})


@pytest.mark.parametrize(("log_variance", "noise_variance"), [("log_var", None), (None, 0.25), (None, None)])
def test_regression_figures_over_the_whole_split(log_variance, noise_variance):
    data = regression_data(11, seed=1)
    dm = ActiveDataModule(
        regression_data(12), test_dataset=data, task="regression", initial_labels=2, seed=0, eval_batch_size=4
    )
    samples = torch.randn(11, 5, 2, generator=torch.Generator().manual_seed(0))
    evaluation = RegressionCurve("test", output="mean", log_variance=log_variance, noise_variance=noise_variance)
    figures = evaluation(_context(DropoutRegressor(), dm, FixedSamples(samples), iterations=5))
    samples, targets = samples.double(), data.tensors[1].double()
    mean = samples[:, :, 0].mean(1)
    assert figures["test_rmse"] == pytest.approx(float((mean - targets).square().mean().sqrt()), rel=1e-12)
    if log_variance is None and noise_variance is None:
        assert "test_nll" not in figures
        return
    noise = samples[:, :, 1].exp().mean(1) if log_variance else noise_variance
    variance = samples[:, :, 0].var(1, correction=0) + noise
    expected = 0.5 * (math.log(2 * math.pi) + variance.log() + (targets - mean).square() / variance).mean()
    assert figures["test_nll"] == pytest.approx(float(expected), rel=1e-12)
    assert figures["test_nll"] == pytest.approx(float(F.gaussian_nll_loss(mean, targets, variance, full=True)))


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
