"""EPIG as a heuristic: score pool batches against the MC predictions of target inputs, passed in at scoring."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_bal.data.views import map_style_size
from lightning_bal.functional import epig
from lightning_bal.functional.epig import check_targets
from lightning_bal.functional.outputs import OutputKey
from lightning_bal.heuristics.base import Heuristic, Selection
from lightning_bal.heuristics.registry import register_heuristic
from lightning_bal.utilities.checks import check_positive_int

__all__ = ["EPIG"]


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

    Example:
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
        return epig(log_probs, targets.to(log_probs.device), self.validate_args)

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
