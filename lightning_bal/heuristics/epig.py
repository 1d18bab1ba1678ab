"""EPIG as a heuristic: score pool batches against target inputs set once per acquisition step."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from lightning_bal.functional import epig
from lightning_bal.functional.epig import check_targets
from lightning_bal.heuristics.base import Heuristic

__all__ = ["EPIG"]


class EPIG(Heuristic):
    r"""Expected predictive information gain (Bickford Smith et al., 2023), see :func:`~lightning_bal.functional.epig`.

    .. math:: \mathrm{EPIG}(x) = E_{x^* \sim p_*}\, I[y; y^* \mid x, x^*]

    Pointwise, so pool batches are scored one at a time, but every batch is scored against the same targets: call
    :meth:`set_targets` with the ``[T, K, C]`` log-probabilities of T target inputs (a sample of the input
    distribution of interest, e.g. of the pool) once per acquisition step, from the same K MC samples as the pool
    batches, before :meth:`score`. Callers detect this need with ``getattr(heuristic, "needs_targets", False)``.

    Args:
        validate_args: Check the targets and each pool batch.

    Example:
        >>> import torch
        >>> log_probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> heuristic = EPIG()
        >>> heuristic.set_targets(log_probs[1:])
        >>> heuristic.select(log_probs, 1)
        Selection(indices=tensor([1]), scores=tensor([0.2218]), probabilities=None)
    """

    name: ClassVar[str] = "epig"
    needs_mc_samples: ClassVar[bool] = True
    needs_targets: ClassVar[bool] = True

    def __init__(self, validate_args: bool = True) -> None:
        super().__init__(validate_args=validate_args)
        self._targets: Tensor | None = None

    def set_targets(self, log_probs_targets: Tensor) -> None:
        """Set the ``[T, K, C]`` target log-probabilities that :meth:`score` measures information about.

        They are kept on their device and moved to the device of the first pool batch that needs them.
        """
        if self.validate_args:
            check_targets(log_probs_targets)
        self._targets = log_probs_targets.detach()

    def score(self, log_probs: Tensor) -> Tensor:
        """``[N, K, C]`` pool log-probabilities to ``[N]`` EPIG scores against the targets."""
        if self._targets is None:
            raise RuntimeError(
                "EPIG needs target inputs: call `set_targets(log_probs_targets)` with their [T, K, C]"
                " log-probabilities before `score`."
            )
        if self._targets.device != log_probs.device:
            self._targets = self._targets.to(log_probs.device)
        return epig(log_probs, self._targets, self.validate_args)
