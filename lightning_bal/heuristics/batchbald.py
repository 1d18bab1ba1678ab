"""Batch-aware heuristics: BALD pre-filters the pool, BatchBALD (joint MI) or ICAL (HSIC) picks the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.functional import bald, batchbald
from lightning_bal.functional.ical import Samples, ical
from lightning_bal.functional.outputs import OutputKey
from lightning_bal.heuristics.base import Heuristic, Selection, top_k
from lightning_bal.heuristics.registry import register_heuristic
from lightning_bal.utilities.checks import check_bool, check_one_of, check_positive_int, check_python_int

__all__ = ["BALDPrefiltered", "BatchBALD", "ICAL"]


class BALDPrefiltered(Heuristic):
    """A batch-aware heuristic that picks among the :meth:`num_candidates` items of highest BALD (its :meth:`score`)."""

    needs_mc_samples = True
    batch_aware = True
    max_candidates: int | None

    def score(self, log_probs: Tensor) -> Tensor:
        """``[N, K, C]`` log-probabilities to ``[N]`` BALD scores, the pre-filter."""
        return bald(log_probs, "mean", self.validate_args)

    def num_candidates(self, query_size: int, pool_size: int) -> int:
        """``min(pool_size, max(query_size, max_candidates))``: how many top-BALD items ``select`` needs."""
        limit = pool_size if self.max_candidates is None else max(query_size, self.max_candidates)
        return min(pool_size, limit)

    def _prefilter(self, log_probs: Tensor, query_size: int) -> Tensor | None:
        """Positions of the :meth:`num_candidates` best BALD scores, best first; ``None`` when all are kept."""
        candidates = self.num_candidates(query_size, log_probs.shape[0]) if log_probs.ndim > 0 else 0
        return top_k(self.score(log_probs), candidates) if 0 < candidates < log_probs.shape[0] else None

    def select_from_scores(
        self, scores: Tensor, query_size: int, generator: torch.Generator | None = None
    ) -> Selection:
        """Not available: the selection needs the candidates' log-probabilities, not only their scores."""
        raise TypeError(
            f"Expected `select(log_probs, ...)` for the batch-aware {type(self).__name__}: it needs the"
            " log-probabilities of the `num_candidates(query_size, pool_size)` best-scored items, but got"
            " `select_from_scores(scores, ...)`."
        )


@register_heuristic
class BatchBALD(BALDPrefiltered):
    """BatchBALD (Kirsch et al., 2019) over the ``max_candidates`` items with the highest BALD score.

    The K MC samples must be consistent across items; see docs/heuristics.md#batchbald-kirsch-et-al-2019.

    Args:
        max_candidates: Pre-filter size M (``None`` keeps the whole pool); the cost grows linearly in M.
        num_samples: Joint configurations enumerated exactly, or drawn once exact enumeration is larger.

    Examples:
        >>> log_probs = torch.tensor([[[0.9, 0.1], [0.1, 0.9]], [[0.6, 0.4], [0.4, 0.6]], [[0.5, 0.5], [0.5, 0.5]]])
        >>> selection = BatchBALD().select(log_probs.log(), 2)
        >>> selection.indices, selection.scores  # each pick's BALD score
        (tensor([0, 1]), tensor([0.3681, 0.0201]))
        >>> selection.gains  # joint MI each pick added: the second, correlated with the first, less than its BALD
        tensor([0.3681, 0.0073])
    """

    name = "batchbald"
    _repr_attributes = ("max_candidates", "num_samples")
    cost = (
        "BALD, then b greedy rounds over the top M = `max_candidates`, each O(M·K·min(C^i, S)) with"
        " S = `num_samples`; keeps M×K×C log-probabilities"
    )

    def __init__(
        self,
        max_candidates: int | None = 1000,
        num_samples: int = 10_000,
        validate_args: bool = True,
        output: OutputKey | None = None,
    ) -> None:
        super().__init__(validate_args=validate_args, output=output)
        self.max_candidates = None if max_candidates is None else check_python_int("max_candidates", max_candidates, 1)
        self.num_samples = check_python_int("num_samples", num_samples, 1)

    def select(self, log_probs: Tensor, query_size: int, generator: torch.Generator | None = None) -> Selection:
        """Greedy BatchBALD over ``[N, K, C]``: ``scores`` are the picks' BALD, ``gains`` their joint MI increments."""
        keep = self._prefilter(log_probs, query_size)
        if keep is not None:
            log_probs = log_probs[keep]
        indices, joint_mi = batchbald(log_probs, query_size, self.num_samples, generator, self.validate_args)
        bald_scores = bald(log_probs[indices], "mean", validate_args=False).to(joint_mi.dtype)
        gains = torch.diff(joint_mi, prepend=joint_mi.new_zeros(1)) if query_size else joint_mi
        return Selection(indices if keep is None else keep[indices], bald_scores, gains=gains)


@register_heuristic
class ICAL(BALDPrefiltered):
    r"""ICAL (Jain, Liu and Gifford, 2020) over the ``max_candidates`` items with the highest BALD score.

    Greedily adds the candidate whose sampled labels make the batch most dependent (HSIC over the K consistent MC
    samples) on those of ``num_targets`` random candidates; see ``docs/diversity.md`` (ICAL).

    Args:
        max_candidates: Pre-filter size M (``None`` keeps the whole pool); memory is M K² numbers.
        num_targets: Target-set size, drawn from the candidates.
        resample_targets: Draw a new target set at each pick.
        normalized: Normalised HSIC (penalises candidates redundant with the batch) or plain HSIC.
        samples: ``"labels"`` (one sampled label per MC sample) or ``"probs"``.

    Examples:
        >>> labels = torch.tensor([[0, 0, 1, 1]] * 3 + [[0, 1, 0, 1]] * 2)
        >>> log_probs = torch.nn.functional.one_hot(labels, 2).float().clamp(1e-6, 1 - 1e-6).log()
        >>> ICAL().select(log_probs, 2, torch.Generator().manual_seed(0)).indices
        tensor([0, 3])
    """

    name = "ical"
    _repr_attributes = ("max_candidates", "num_targets", "normalized", "samples")
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
        if max_candidates is not None:
            check_python_int("max_candidates", max_candidates, 1, expected="a positive integer or None")
        self.max_candidates = max_candidates
        self.num_targets = check_positive_int("num_targets", num_targets)
        check_bool("resample_targets", resample_targets)
        check_bool("normalized", normalized)
        self.resample_targets = resample_targets
        self.normalized = normalized
        self.samples: Samples = check_one_of("samples", samples, ("labels", "probs"))

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
