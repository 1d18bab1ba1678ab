"""ICAL as a heuristic: BALD pre-filters the pool, greedy HSIC dependence on the pool picks the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.functional.ical import Samples, ical
from lightning_bal.functional.outputs import OutputKey
from lightning_bal.heuristics.base import Selection
from lightning_bal.heuristics.batchbald import BALDPrefiltered
from lightning_bal.heuristics.registry import register_heuristic
from lightning_bal.utilities.checks import check_positive_int

__all__ = ["ICAL"]


@register_heuristic
class ICAL(BALDPrefiltered):
    r"""ICAL (Jain, Liu and Gifford, 2020) over the ``max_candidates`` items with the highest BALD score.

    Greedily adds the candidate that makes the batch's sampled labels most dependent (normalised HSIC over the K
    MC samples) on the labels of a random target set of ``num_targets`` candidates, drawn again at each pick; see
    :func:`~lightning_bal.functional.ical.ical` and the "ICAL" section of ``docs/diversity.md`` for the
    approximations. :meth:`score` is BALD, the pre-filter: the callback keeps the log-probabilities of the
    :meth:`num_candidates` best-scored items (under DDP, merged from every rank's best) and passes them to
    :meth:`select`, so the target set is drawn from those candidates (the whole pool with ``max_candidates=None``).
    The K MC samples must be consistent across items (the callback's default MC-Dropout draws them so).

    Args:
        max_candidates: Pre-filter size M (default 1000; ``None`` keeps the whole pool). Memory is M K² numbers.
        num_targets: Target-set size (200, the authors' default).
        resample_targets: Draw a new target set at each pick (the authors' default).
        normalized: Normalised HSIC (default; penalises candidates redundant with the batch) or plain HSIC.
        samples: ``"labels"`` (one sampled label per MC sample, the authors' choice) or ``"probs"``.
        validate_args: Check inputs (see :func:`~lightning_bal.functional.ical.ical`).
        output: Which output of a multi-output model to score (tuple position or dict key).

    Example:
        >>> labels = torch.tensor([[0, 0, 1, 1]] * 3 + [[0, 1, 0, 1]] * 2)
        >>> log_probs = torch.nn.functional.one_hot(labels, 2).float().clamp(1e-6, 1 - 1e-6).log()
        >>> ICAL().select(log_probs, 2, torch.Generator().manual_seed(0)).indices
        tensor([0, 3])
    """

    name = "ical"
    cost = (
        "BALD, then q greedy picks over the top M = `max_candidates`, each O(M·K²) on [K, K] sample kernels"
        " (keeps M×K² numbers), against T = `num_targets` candidates drawn at each pick"
    )

    def __init__(
        self,
        max_candidates: int | None = 1000,
        num_targets: int = 200,
        resample_targets: bool = True,
        normalized: bool = True,
        samples: Samples = "labels",
        validate_args: bool = True,
        output: OutputKey | None = None,
    ) -> None:
        super().__init__(validate_args=validate_args, output=output)
        if max_candidates is not None and (
            isinstance(max_candidates, bool) or not isinstance(max_candidates, int) or max_candidates < 1
        ):
            raise ValueError(
                f"Expected argument `max_candidates` to be a positive integer or None, but got {max_candidates!r}."
            )
        for arg, flag in (("resample_targets", resample_targets), ("normalized", normalized)):
            if not isinstance(flag, bool):
                raise TypeError(f"Expected argument `{arg}` to be a bool, but got {flag!r}.")
        if samples not in ("labels", "probs"):
            raise ValueError(f"Expected argument `samples` to be 'labels' or 'probs', but got {samples!r}.")
        self.max_candidates = max_candidates
        self.num_targets = check_positive_int("num_targets", num_targets)
        self.resample_targets = resample_targets
        self.normalized = normalized
        self.samples: Samples = samples

    def select(self, log_probs: Tensor, query_size: int, generator: torch.Generator | None = None) -> Selection:
        """Greedy ICAL over ``[N, K, C]`` log-probabilities; scores are the batch's dependence at each pick."""
        keep = self._prefilter(log_probs, query_size)
        if keep is not None:
            keep = keep.sort().values
            log_probs = log_probs[keep]
        indices, scores = ical(
            log_probs,
            query_size,
            self.num_targets,
            self.resample_targets,
            self.normalized,
            self.samples,
            generator,
            self.validate_args,
        )
        return Selection(indices if keep is None else keep[indices], scores)

    def __repr__(self) -> str:
        return (
            f"ICAL(max_candidates={self.max_candidates}, num_targets={self.num_targets},"
            f" normalized={self.normalized}, samples={self.samples!r})"
        )
