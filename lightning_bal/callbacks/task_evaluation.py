"""Per-step figures for tasks beyond classification, of the whole split whatever the number of processes."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Subset
from torchmetrics import MeanMetric

from lightning_bal.callbacks.evaluation import StepContext, StepEvaluation
from lightning_bal.data import ActiveDataModule
from lightning_bal.data.views import target_of
from lightning_bal.functional.outputs import OutputKey, select_output
from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.sampling import call_module
from lightning_bal.tasks import MultiLabel, PerPosition, Regression, check_num_classes
from lightning_bal.utilities.distributed import shard
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["MultiLabelF1", "RegressionCurve", "SegmentationIoU"]

Split = Literal["val", "test"]


def check_split(split: Any) -> Split:
    if split not in ("val", "test"):
        raise ValueError(f"Expected argument `split` to be 'val' or 'test', but got {split!r}.")
    return split


class _SplitEvaluation(StepEvaluation):
    """An evaluation of its ``split``, each rank over its own shard of it."""

    split: Split

    def check(self, datamodule: ActiveDataModule) -> None:
        """Needs the split's dataset."""
        self._require(datamodule, self.split)

    def _shard(self, context: StepContext) -> tuple[Any, Tensor]:
        """The split's dataset and this rank's indices of it."""
        dataset, trainer = context.datamodule.eval_dataset(self.split), context.trainer
        return dataset, shard(torch.arange(len(dataset)), trainer.global_rank, trainer.world_size)  # type: ignore[arg-type]


class RegressionCurve(_SplitEvaluation):
    """RMSE and Gaussian NLL of the MC-averaged regression predictions on the validation or test set.

    Logs ``active/<split>_rmse`` and, when a variance is known (a ``log_variance`` output, or ``noise_variance``),
    ``active/<split>_nll``; see docs/tasks.md#regression.

    Args:
        split: ``"test"`` (default) or ``"val"``.
        output: the output holding the predicted means (``None``: ``forward`` returns them).
        log_variance: the output holding predicted log-variances (a heteroscedastic head), if any.
        noise_variance: the noise variance of a single-output head's NLL; ``None`` logs no NLL for such a head.

    Examples:
        >>> RegressionCurve(split="val", output="mean", log_variance="log_var")
        RegressionCurve(split='val')
    """

    needs_mc: ClassVar[bool] = True

    def __init__(
        self,
        split: Split = "test",
        output: OutputKey | None = None,
        log_variance: OutputKey | None = None,
        noise_variance: float | None = None,
    ) -> None:
        super().__init__(output)
        self.split = check_split(split)
        if log_variance is not None and output is None:
            raise ValueError(
                "Expected argument `output` to name the mean output when `log_variance` is given, but got None."
            )
        if noise_variance is not None and not (
            isinstance(noise_variance, (int, float)) and not isinstance(noise_variance, bool) and noise_variance > 0
        ):
            raise ValueError(f"Expected argument `noise_variance` to be a positive number, but got {noise_variance!r}.")
        self.log_variance = log_variance
        self.noise_variance = noise_variance

    def _transform(self, outputs: Any) -> Tensor:
        means = select_output(outputs, self.output).float()
        if self.log_variance is None:
            return means.unsqueeze(2)
        return torch.stack([means, select_output(outputs, self.log_variance).float()], dim=2)

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"<split>_rmse": ..., "<split>_nll": ...}``."""
        dataset, local = self._shard(context)
        stream = Stream.TEST if self.split == "test" else Stream.CALIBRATION
        seed = derive_seed(context.seed, context.step, stream)
        rmse = Regression().metric()
        nll = MeanMetric(nan_strategy="disable").set_dtype(torch.float64)
        loader = context.datamodule.inputs_dataloader(dataset, local)
        for indices, outputs in context.posterior.batches(
            context.pl_module, loader, context.iterations, seed, self._transform
        ):
            outputs = outputs.double().cpu()
            means = outputs[:, :, 0]
            mean = means.mean(1)
            targets = torch.stack([torch.as_tensor(target_of(dataset[i])) for i in indices.tolist()])
            targets = targets.double().reshape(mean.shape)
            rmse.update(mean, targets)
            noise = outputs[:, :, 1].exp().mean(1) if self.log_variance is not None else self.noise_variance
            if noise is not None:
                variance = means.var(1, correction=0) + noise
                nll.update(F.gaussian_nll_loss(mean, targets, variance, full=True, reduction="none"))
        device = context.pl_module.device
        metrics = {f"{self.split}_rmse": float(rmse.to(device).compute())}
        if self.log_variance is not None or self.noise_variance is not None:
            metrics[f"{self.split}_nll"] = float(nll.to(device).compute())
        return metrics

    def __repr__(self) -> str:
        return f"RegressionCurve(split={self.split!r})"


class SegmentationIoU(_SplitEvaluation):
    """Mean IoU (torchmetrics' ``MulticlassJaccardIndex``) of the deterministic model's per-pixel predictions.

    One deterministic pass (stochastic layers off) over the split; logs ``active/<split>_miou`` and
    ``active/<split>_pixel_acc``. Targets are ``[H, W]`` class maps (``[T]`` for sequence labelling, padded by the
    datamodule's ``collate_fn``), ``item[1]`` or ``item["target"]``. See docs/tasks.md#segmentation.

    Args:
        num_classes: C, the number of classes (background included).
        split: ``"val"`` (default) or ``"test"``.
        ignore_index: the target value of void or padded pixels, if any.
        output: the output holding the ``[B, C, ...]`` logits of a model that returns several.

    Examples:
        >>> SegmentationIoU(num_classes=11)
        SegmentationIoU(num_classes=11, split='val')
    """

    def __init__(
        self,
        num_classes: int,
        split: Split = "val",
        ignore_index: int | None = None,
        output: OutputKey | None = None,
    ) -> None:
        super().__init__(output)
        self.num_classes = check_num_classes(num_classes)
        self.split = check_split(split)
        self.ignore_index = ignore_index

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"<split>_miou": ..., "<split>_pixel_acc": ...}``."""
        datamodule, module = context.datamodule, context.pl_module
        dataset, local = self._shard(context)
        # Synchronised by hand: the pixel accuracy is read off the same summed confusion matrix.
        iou = PerPosition(self.ignore_index).metric(self.num_classes).to(module.device)
        with switch_modes(module, lambda _: False), torch.inference_mode():
            # Whole items through the datamodule's collate function, so that padded targets come padded.
            for batch in datamodule._loader(Subset(dataset, local.tolist()), datamodule.eval_batch_size):
                inputs, targets = batch[0], batch[1]
                logits = select_output(call_module(module, move_data_to_device(inputs, module.device)), self.output)
                if logits.dim() < 3 or logits.shape[1] != self.num_classes:
                    raise ValueError(
                        f"`SegmentationIoU` needs logits [B, {self.num_classes}, ...] from the model (or `output=`),"
                        f" but got shape {tuple(logits.shape)}."
                    )
                predictions = logits.argmax(1)
                iou.update(predictions, torch.as_tensor(targets).long().to(module.device).reshape(predictions.shape))
        iou.sync()
        confusion = iou.confmat.double().cpu()
        counted = float(confusion.sum())
        accuracy = float(confusion.diagonal().sum()) / counted if counted else math.nan
        return {f"{self.split}_miou": float(iou.compute()), f"{self.split}_pixel_acc": accuracy}

    def __repr__(self) -> str:
        return f"SegmentationIoU(num_classes={self.num_classes}, split={self.split!r})"


class MultiLabelF1(_SplitEvaluation):
    """Macro F1 (the :class:`~lightning_bal.tasks.MultiLabel` task's metric) of the deterministic model's predictions.

    One deterministic pass (stochastic layers off) over the split; a class is predicted present where its logit is
    above 0. Targets are multi-hot ``[C]`` vectors, ``item[1]`` or ``item["target"]``. Logs ``active/<split>_f1``;
    see docs/tasks.md#multi-label-classification.

    Args:
        num_classes: C, the number of classes (labels).
        split: ``"val"`` (default) or ``"test"``.
        output: the output holding the ``[B, C]`` logits of a model that returns several.

    Examples:
        >>> MultiLabelF1(num_classes=5, split="test")
        MultiLabelF1(num_classes=5, split='test')
    """

    def __init__(self, num_classes: int, split: Split = "val", output: OutputKey | None = None) -> None:
        super().__init__(output)
        self.num_classes = check_num_classes(num_classes)
        self.split = check_split(split)

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"<split>_f1": ...}``."""
        datamodule, module = context.datamodule, context.pl_module
        dataset, local = self._shard(context)
        f1 = MultiLabel().metric(self.num_classes).to(module.device)
        with switch_modes(module, lambda _: False), torch.inference_mode():
            for batch in datamodule._loader(Subset(dataset, local.tolist()), datamodule.eval_batch_size):
                inputs, targets = batch[0], batch[1]
                logits = select_output(call_module(module, move_data_to_device(inputs, module.device)), self.output)
                if logits.dim() != 2 or logits.shape[1] != self.num_classes:
                    raise ValueError(
                        f"`MultiLabelF1` needs logits [B, {self.num_classes}] from the model (or `output=`), but got"
                        f" shape {tuple(logits.shape)}."
                    )
                # Probabilities, not logits: torchmetrics would take logits that all lie in [0, 1] for probabilities.
                f1.update(logits.float().sigmoid(), torch.as_tensor(targets).long().to(module.device))
        return {f"{self.split}_f1": float(f1.compute())}

    def __repr__(self) -> str:
        return f"MultiLabelF1(num_classes={self.num_classes}, split={self.split!r})"
