"""Optional figures of the model at each active learning step (``evaluations=[...]``), logged under ``active/``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryCalibrationError

from lightning_bal.callbacks.context import StepContext
from lightning_bal.data import ActiveDataModule
from lightning_bal.functional import weighted_risk
from lightning_bal.functional.outputs import OutputKey, log_softmax_classes, select_output
from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.sampling import call_module
from lightning_bal.utilities.distributed import shard
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["Calibration", "LabelledRisk", "MCTestCurve", "StepContext", "StepEvaluation", "TestCurve"]


class StepEvaluation:
    """Base class: figures of the model the step scores the pool with (its weights before any reset).

    Subclasses set ``needs_mc`` (it samples the posterior), implement :meth:`__call__` and, if needed, :meth:`check`.

    Args:
        output: the output holding the class logits (tuple position or dict key); ``None``: ``forward``'s only one.
    """

    needs_mc: ClassVar[bool] = False
    # The split whose dataset it needs and on whose first item `forward` must give class logits (None: no check).
    _split: ClassVar[Literal["val", "test"] | None] = None

    def __init__(self, output: OutputKey | None = None) -> None:
        if output is not None and (isinstance(output, bool) or not isinstance(output, (int, str))):
            raise TypeError(
                f"Expected argument `output` to be a tuple position, a dict key or None, but got {output!r}."
            )
        self.output = output

    def check(self, datamodule: ActiveDataModule) -> None:
        """Raise a clear error at setup when the datamodule lacks what this evaluation needs."""
        if self._split is not None:
            self._require(datamodule, self._split)

    def check_model(self, pl_module: pl.LightningModule, datamodule: ActiveDataModule) -> None:
        """Raise a clear error at fit start unless ``forward`` gives ``[batch, classes]`` logits on the split's data."""
        if self._split is None:
            return
        dataset = datamodule.eval_dataset(self._split)
        if len(dataset) == 0:  # type: ignore[arg-type]
            return
        inputs, _ = next(iter(datamodule.inputs_dataloader(dataset, torch.zeros(1, dtype=torch.long))))
        with switch_modes(pl_module, lambda _: False), torch.inference_mode():
            outputs = call_module(pl_module, move_data_to_device(inputs, pl_module.device))
        try:
            logits = select_output(outputs, self.output)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ValueError(f"`{type(self).__name__}` could not pick the class logits from `forward`: {err}") from err
        self._logits_check(logits)

    def __call__(self, context: StepContext) -> dict[str, float]:
        """The figures of this step, by name (logged as ``active/<name>``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _require(self, datamodule: ActiveDataModule, split: Literal["val", "test"]) -> None:
        if (datamodule.val_dataset if split == "val" else datamodule.test_dataset) is None:
            raise ValueError(
                f"`{type(self).__name__}` needs a `{split}_dataset` in the `ActiveDataModule`, but it has none."
            )

    def _logits_check(self, logits: Tensor) -> Tensor:
        if logits.ndim != 2 or logits.shape[1] < 2:
            raise ValueError(
                f"`{type(self).__name__}` needs class logits `[batch, classes]` from the model's `forward` (or"
                f" `output=`), but got shape {tuple(logits.shape)}."
            )
        return logits

    def _deterministic(self, pl_module: pl.LightningModule, loader: Any) -> tuple[Tensor, Tensor]:
        """``(indices, log-probabilities)`` of the model, stochastic layers off, over ``(inputs, indices)``."""
        indices, log_probs = [], []
        with switch_modes(pl_module, lambda _: False), torch.inference_mode():
            for inputs, batch_indices in loader:
                outputs = call_module(pl_module, move_data_to_device(inputs, pl_module.device))
                logits = self._logits_check(select_output(outputs, self.output))
                log_probs.append(logits.float().log_softmax(-1).cpu())
                indices.append(batch_indices)
        if not log_probs:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, 0)
        return torch.cat(indices), torch.cat(log_probs)

    def _mc_mean(
        self, context: StepContext, split: Literal["val", "test"], stream: Stream
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """``(log of the mean of the K MC probabilities, targets)`` per batch of this rank's shard of a split."""
        seed = derive_seed(context.seed, context.step, stream)
        targets = context.datamodule.eval_targets(split)

        def transform(outputs: Any) -> Tensor:
            return log_softmax_classes(select_output(outputs, self.output))

        loader = _local_loader(context, split)
        for indices, log_probs in context.posterior.batches(
            context.pl_module, loader, context.iterations, seed, transform
        ):
            # In log space: a mean of probabilities can underflow to 0 where the model is confidently wrong.
            yield torch.logsumexp(log_probs, 1) - math.log(log_probs.shape[1]), targets[indices.cpu()]


class TestCurve(StepEvaluation):
    """Accuracy and mean NLL of the deterministic model on the datamodule's ``test_dataset`` (``active/test_acc``, ...).

    Examples:
        >>> TestCurve()
        TestCurve()
    """

    __test__ = False  # not a pytest test class, whatever its name
    _split = "test"

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"test_acc": ..., "test_nll": ...}``."""
        indices, log_probs = self._deterministic(context.pl_module, _local_loader(context, "test"))
        batches = [(log_probs, context.datamodule.eval_targets("test")[indices])]
        accuracy, nll = accuracy_and_nll(batches, context.pl_module.device)
        return {"test_acc": accuracy, "test_nll": nll}


class MCTestCurve(StepEvaluation):
    """Accuracy and mean NLL of the mean of the K MC probabilities on the ``test_dataset`` (``active/test_mc_acc``)."""

    __test__ = False
    needs_mc: ClassVar[bool] = True
    _split = "test"

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"test_mc_acc": ..., "test_mc_nll": ...}``."""
        batches = self._mc_mean(context, "test", Stream.TEST)
        accuracy, nll = accuracy_and_nll(batches, context.pl_module.device)
        return {"test_mc_acc": accuracy, "test_mc_nll": nll}


class Calibration(StepEvaluation):
    """ECE (15 bins) and accuracy of the MC-averaged validation predictions (``active/val_mc_ece``, ``..._acc``)."""

    needs_mc: ClassVar[bool] = True
    _split = "val"

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"val_mc_ece": ..., "val_mc_acc": ...}``."""
        # The top-label ECE of torchmetrics' multiclass metric is the binary ECE of (confidence, correct) pairs;
        # the binary metric needs no class count, which a rank with an empty shard could not know.
        device = context.pl_module.device
        ece = BinaryCalibrationError(n_bins=15).to(device)
        accuracy = MeanMetric(nan_strategy="disable").to(device)
        for log_probs, targets in self._mc_mean(context, "val", Stream.CALIBRATION):
            # Rounding can put a certain prediction a hair above 1, which the metric would read as a logit.
            confidence, predicted = log_probs.exp().clamp(max=1.0).max(-1)
            correct = predicted == targets.to(device)
            ece.update(confidence, correct.long())
            accuracy.update(correct.float())
        return {"val_mc_ece": float(ece.compute()), "val_mc_acc": float(accuracy.compute())}


class LabelledRisk(StepEvaluation):
    """The model's mean NLL over D_L (``active/train_nll_mean``), and its LURE estimate (Farquhar et al., 2021).

    ``active/train_nll_lure`` is logged when every labelled sample was drawn with a recorded probability.
    """

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"train_nll_mean": ..., "train_nll_lure": ...}`` on rank zero, ``{}`` elsewhere."""
        datamodule = context.datamodule
        targets = datamodule.labelled_targets()
        if not context.trainer.is_global_zero or targets is None:
            return {}
        labelled = datamodule.labelled_indices
        # The pool view reads D_L without augmentation, in the order of `labelled`, which `targets` follows.
        _, log_probs = self._deterministic(context.pl_module, datamodule.pool_dataloader(labelled))
        nll = -log_probs.gather(1, targets[:, None]).squeeze(1).double()
        metrics = {"train_nll_mean": float(nll.mean())}
        if not datamodule.acquisition_probability[labelled].isnan().any():
            metrics["train_nll_lure"] = float(weighted_risk(nll, datamodule.risk_weights("lure")[labelled]))
        return metrics


def _local_loader(context: StepContext, split: Literal["val", "test"]) -> Any:
    """``(inputs, indices)`` batches of this rank's shard of a split."""
    dataset = context.datamodule.eval_dataset(split)
    local = shard(torch.arange(len(dataset)), context.rank, context.world_size)  # type: ignore[arg-type]
    return context.datamodule.inputs_dataloader(dataset, local)


def accuracy_and_nll(batches: Iterable[tuple[Tensor, Tensor]], device: torch.device) -> tuple[float, float]:
    """Accuracy and mean NLL of ``([B, C] log-probabilities, [B] targets)`` batches, over every rank's batches."""
    # float64 on purpose: torchmetrics' accuracy is float32, and 0.6 would then be logged as 0.6000000238.
    accuracy = MeanMetric(nan_strategy="disable").set_dtype(torch.float64).to(device)
    nll = MeanMetric(nan_strategy="disable").set_dtype(torch.float64).to(device)
    for log_probs, targets in batches:
        if not len(targets):
            continue
        log_probs, targets = log_probs.to(device, torch.float64), targets.to(device)
        accuracy.update((log_probs.argmax(-1) == targets).double())
        nll.update(F.nll_loss(log_probs, targets, reduction="none"))
    return float(accuracy.compute()), float(nll.compute())
