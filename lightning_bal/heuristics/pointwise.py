"""Pointwise heuristics, thin classes over functional: classification, EPIG, multi-label, regression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_bal import functional
from lightning_bal.data.views import map_style_size
from lightning_bal.functional._validation import Reduction
from lightning_bal.functional.epig import check_targets
from lightning_bal.functional.outputs import Masked, OutputKey, select_output, split_masked
from lightning_bal.heuristics.base import Heuristic, Selection, with_mask
from lightning_bal.heuristics.registry import register_heuristic
from lightning_bal.utilities.checks import check_positive_int

__all__ = [
    "BALD",
    "EPIG",
    "Entropy",
    "GaussianMI",
    "LeastConfidence",
    "Margin",
    "MeanSTD",
    "MultiLabelBALD",
    "MultiLabelEntropy",
    "Variance",
    "VariationRatios",
]


class _Pointwise(Heuristic):
    """A heuristic whose score is the functional ``_function(values, reduction, validate_args, mask)``."""

    _function: ClassVar[Callable[..., Tensor]]

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, C, ...]`` log-probabilities (``[N, K, ...]`` outputs for regression) to ``[N]`` scores."""
        values, mask = split_masked(log_probs, mask)
        return type(self)._function(values, self.reduction, self.validate_args, mask)


# Reading the MC pass's [N, K, C] log-probabilities once.
_POINTWISE = "O(N·K·C) after the MC pass"


@register_heuristic
class Entropy(_Pointwise):
    """Max-entropy acquisition: :func:`~lightning_bal.functional.entropy` of the MC-mean prediction.

    Examples:
        >>> Entropy().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name = "entropy"
    cost = _POINTWISE + " (K = 1 works)"
    _function = staticmethod(functional.entropy)


@register_heuristic
class BALD(_Pointwise):
    """BALD, the mutual information of prediction and parameters (Houlsby et al., 2011).

    Examples:
        >>> log_probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> BALD().select(log_probs, 1)
        Selection(indices=tensor([1]), scores=tensor([0.3681]), probabilities=None, gains=None)
    """

    name = "bald"
    cost = _POINTWISE
    needs_mc_samples = True
    _function = staticmethod(functional.bald)


@register_heuristic
class Margin(_Pointwise):
    """Smallest margin between the two most probable classes of the MC-mean prediction (lower is better).

    Examples:
        >>> Margin().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name = "margin"
    cost = _POINTWISE + " (K = 1 works)"
    higher_is_better = False
    _function = staticmethod(functional.margin)


@register_heuristic
class LeastConfidence(_Pointwise):
    """One minus the top probability of the MC-mean prediction (``1 -`` Baal's ``Certainty``), in ``[0, 1 - 1/C]``.

    Examples:
        >>> LeastConfidence().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name = "least_confidence"
    cost = _POINTWISE + " (K = 1 works)"
    _function = staticmethod(functional.least_confidence)


@register_heuristic
class VariationRatios(_Pointwise):
    """Disagreement of the MC samples' predicted classes (Gal et al., 2017).

    Examples:
        >>> log_probs = torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> VariationRatios().score(log_probs)
        tensor([0.0000, 0.5000])
    """

    name = "variation_ratios"
    cost = _POINTWISE
    needs_mc_samples = True
    _function = staticmethod(functional.variation_ratios)


@register_heuristic
class MeanSTD(_Pointwise):
    """Class-averaged standard deviation of the MC sample probabilities (Gal et al., 2017).

    Examples:
        >>> log_probs = torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> MeanSTD().score(log_probs)
        tensor([0.0000, 0.4000])
    """

    name = "mean_std"
    cost = _POINTWISE
    needs_mc_samples = True
    _function = staticmethod(functional.mean_std)


@register_heuristic
class EPIG(Heuristic):
    r"""Expected predictive information gain (Bickford Smith et al., 2023), see :func:`~lightning_bal.functional.epig`.

    .. math:: \mathrm{EPIG}(x) = E_{x^* \sim p_*}\, I[y; y^* \mid x, x^*]

    Pointwise, but every pool batch is scored against the same ``targets``: the ``[T, K, C]`` log-probabilities of T
    target inputs from the same K MC samples as the pool.

    Args:
        num_targets: How many target inputs the callback draws at each step.
        target_dataset: The inputs whose predictions matter (read with the datamodule's ``input_fn``); ``None``: the
            pool.

    Examples:
        >>> log_probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> EPIG().select(log_probs, 1, targets=log_probs[1:])
        Selection(indices=tensor([1]), scores=tensor([0.2218]), probabilities=None, gains=None)
    """

    name = "epig"
    cost = "O(N·T·K·C²) against T = `num_targets` target inputs, whose K predictions are computed each step"
    needs_mc_samples = True
    needs_targets = True
    _repr_attributes = ("num_targets",)

    def __init__(
        self,
        num_targets: int = 100,
        target_dataset: Dataset | None = None,
        validate_args: bool = True,
        output: OutputKey | None = None,
    ) -> None:
        super().__init__(validate_args=validate_args, output=output)
        self.num_targets = check_positive_int("num_targets", num_targets)
        if target_dataset is not None:
            map_style_size("target_dataset", target_dataset)
        self.target_dataset = target_dataset

    def score(self, log_probs: Tensor, targets: Tensor | None = None) -> Tensor:
        """``[N, K, C]`` pool log-probabilities to ``[N]`` EPIG scores against ``[T, K, C]`` target log-probs."""
        if targets is None:
            raise ValueError(
                "EPIG needs target inputs: pass `targets=` with their [T, K, C] log-probabilities, from the same K"
                " MC samples as the pool."
            )
        if self.validate_args:
            check_targets(targets)
        return functional.epig(log_probs, targets.to(log_probs.device), self.validate_args)

    def select(
        self,
        log_probs: Tensor,
        query_size: int,
        generator: torch.Generator | None = None,
        *,
        targets: Tensor | None = None,
    ) -> Selection:
        """Select the ``query_size`` items with the highest EPIG against ``targets``."""
        return self.select_from_scores(self.score(log_probs, targets), query_size, generator)


class _MultiLabel(Heuristic):
    """A heuristic of the per-class logits ``[N, K, C]`` of a multi-label model (``task="multilabel"``).

    Args:
        reduction: How the C per-class scores become one score per item; ``"sum"`` (the labels are independent),
            ``"mean"``, ``"max"``, ``"topq"``, a ``TopQ`` or a callable.
        output: Which output holds the logits, for a model that returns several.
    """

    consumes = "outputs"
    _function: ClassVar[Callable[..., Tensor]]

    def __init__(
        self, reduction: Reduction = "sum", validate_args: bool = True, output: OutputKey | None = None
    ) -> None:
        super().__init__(reduction=reduction, validate_args=validate_args, output=output)

    def score(self, log_probs: Tensor) -> Tensor:
        """``[N, K, C]`` per-class logits (the raw outputs: no softmax) to ``[N]`` scores."""
        return type(self)._function(log_probs, self.reduction, self.validate_args)


@register_heuristic
class MultiLabelEntropy(_MultiLabel):
    """Summed binary entropy of each class's MC-mean probability, :func:`~lightning_bal.functional.multilabel_entropy`.

    Examples:
        >>> logits = torch.tensor([[[0.0, 0.0]], [[9.0, -9.0]]])  # [N=2, K=1, C=2]
        >>> MultiLabelEntropy().select(logits, 1).indices
        tensor([0])
    """

    name = "multilabel_entropy"
    cost = "O(N·K·C) over the C per-class logits (K = 1 works)"
    _function = staticmethod(functional.multilabel_entropy)


@register_heuristic
class MultiLabelBALD(_MultiLabel):
    """Summed BALD of the classes' Bernoulli labels, see :func:`~lightning_bal.functional.multilabel_bald`.

    Examples:
        >>> logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[5.0, 0.0], [-5.0, 0.0]]])  # [N=2, K=2, C=2]
        >>> MultiLabelBALD().select(logits, 1)
        Selection(indices=tensor([1]), scores=tensor([0.6530]), probabilities=None, gains=None)
    """

    name = "multilabel_bald"
    cost = "O(N·K·C) over the C per-class logits"
    needs_mc_samples = True
    _function = staticmethod(functional.multilabel_bald)


@register_heuristic
class Variance(_Pointwise):
    """Variance of the MC predictions ``[N, K, ...]``, reduced over trailing dims (default ``"mean"``).

    Examples:
        >>> Variance().select(torch.tensor([[1.0, 3.0], [2.0, 2.0]]), 1)
        Selection(indices=tensor([0]), scores=tensor([1.]), probabilities=None, gains=None)
    """

    name = "variance"
    cost = "O(N·K·D) over the D output values"
    needs_mc_samples = True
    consumes = "outputs"
    _function = staticmethod(functional.variance)


@register_heuristic
class GaussianMI(Heuristic):
    r"""Mutual information of a heteroscedastic head, :math:`\frac12\log(1 + \mathrm{Var}_k\mu_k/\overline{\sigma^2})`.

    The model returns a predicted ``mean`` and ``log_variance`` (tuple positions or dict keys); :meth:`transform`
    stacks them as ``[B, K, 2, ...]`` for :meth:`score`; see
    docs/heuristics.md#gaussian-mutual-information-of-a-heteroscedastic-head-regression.

    Examples:
        >>> outputs = (torch.tensor([[0.0, 2.0], [1.0, 1.0]]), torch.zeros(2, 2))  # (means, log-variances), K=2
        >>> GaussianMI().score(GaussianMI().transform(outputs))
        tensor([0.3466, 0.0000])
    """

    name = "gaussian_mi"
    cost = "O(N·K·D) over the D (mean, variance) outputs of a heteroscedastic head"
    needs_mc_samples = True
    consumes = "outputs"

    def __init__(
        self,
        mean: OutputKey = 0,
        log_variance: OutputKey = 1,
        reduction: Reduction = "mean",
        validate_args: bool = True,
        mask: OutputKey | None = None,
    ) -> None:
        if mean == log_variance:
            raise ValueError(
                f"Expected arguments `mean` and `log_variance` to name two outputs, but both are {mean!r}."
            )
        super().__init__(reduction=reduction, validate_args=validate_args, output=mean, mask=mask)
        if mask is not None and mask == log_variance:
            raise ValueError(f"Expected argument `mask` to name an output apart from `log_variance`, got {mask!r}.")
        self.log_variance = log_variance

    def transform(self, outputs: Any) -> Tensor | Masked:
        """``(mean [B, K, ...], log-variance [B, K, ...])`` outputs to ``[B, K, 2, ...]`` (and the mask, if any)."""
        means, log_variances = select_output(outputs, self.output), select_output(outputs, self.log_variance)
        if means.shape != log_variances.shape:
            raise ValueError(
                f"Expected the model's mean {self.output!r} and log-variance {self.log_variance!r} outputs to have one"
                f" shape, but got {tuple(means.shape)} and {tuple(log_variances.shape)}."
            )
        return with_mask(outputs, torch.stack([means.float(), log_variances.float()], dim=2), self.mask)

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, 2, ...]`` stacked means and log-variances to ``[N]`` mutual informations in nats."""
        values, mask = split_masked(log_probs, mask)
        if self.validate_args and (not isinstance(values, Tensor) or values.dim() < 3 or values.shape[2] != 2):
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(
                f"Expected argument `log_probs` to be stacked means and log-variances [N, K, 2, ...] (see"
                f" `GaussianMI.transform`), but got {got}."
            )
        return functional.gaussian_mutual_information(
            values[:, :, 0], values[:, :, 1], self.reduction, self.validate_args, mask
        )

    def __repr__(self) -> str:
        return f"GaussianMI(mean={self.output!r}, log_variance={self.log_variance!r})"
