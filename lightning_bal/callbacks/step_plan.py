"""What an active learning step does before and after it scores the pool: how many to label, and whether to stop."""

from __future__ import annotations

from typing import NamedTuple

from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lightning_bal.annotation.stopping import StoppingCriterion, stop_reasons
from lightning_bal.callbacks.context import StepContext
from lightning_bal.callbacks.pool_pass import PoolSelection
from lightning_bal.data import ActiveDataModule

__all__ = ["QueryPlan", "plan_query", "stop_reasons_at"]


class QueryPlan(NamedTuple):
    """The pool items a step scores and how many of them it labels, or why the run stops instead."""

    candidates: Tensor
    query_size: int
    stop_reason: str | None


def plan_query(datamodule: ActiveDataModule, query_size: int, label_budget: int | None) -> QueryPlan:
    """Plan a step: score ``datamodule.scoring_indices()``, label at most ``query_size`` within ``label_budget``.

    Items queried from people and not yet answered count as bought.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(30, 2), torch.arange(30) % 3)
        >>> datamodule = ActiveDataModule(data, initial_labels=6, seed=0)
        >>> plan_query(datamodule, query_size=10, label_budget=12).query_size
        6
        >>> plan_query(datamodule, query_size=10, label_budget=6).stop_reason
        'the label budget is spent'
    """
    bought = datamodule.num_labelled + len(datamodule.ledger.pending_query)
    budget_left = None if label_budget is None else label_budget - bought
    candidates = datamodule.scoring_indices()
    if (budget_left is not None and budget_left <= 0) or candidates.numel() == 0:
        reason = "the label budget is spent" if candidates.numel() else "the pool is exhausted"
        return QueryPlan(candidates, 0, reason)
    if candidates.numel() < query_size:
        rank_zero_warn(
            f"The pool to score holds {candidates.numel()} samples, fewer than `query_size={query_size}`:"
            " labelling all of them; training stops at the next step."
        )
    limit = query_size if budget_left is None else budget_left
    return QueryPlan(candidates, min(query_size, candidates.numel(), limit), None)


def stop_reasons_at(
    criteria: list[StoppingCriterion], context: StepContext, selection: PoolSelection | None = None
) -> list[str]:
    """Why ``criteria`` end the run at this step (empty: go on), the same on every rank; adds their figures.

    Asked before the pool pass (``selection=None``) of the criteria that do not read the pool's scores, so a run they
    stop skips the pass, and after it of those that do.
    """
    asked = [c for c in criteria if c.needs_pool_scores == (selection is not None)]
    if not asked:
        return []  # every rank holds the same criteria: all skip the collective alike

    statistics = None if selection is None else selection.pool_statistics
    view = context._replace(
        # The criteria read the figures as they were before any of them added its own.
        figures=dict(context.figures),
        validation=context.val_metrics,
        pool_scores=None if selection is None else selection.pool_scores,
        pool_mean=None if statistics is None else statistics.mean,
        pool_max=None if statistics is None else statistics.max,
    )
    reasons = stop_reasons(asked, view, context.figures)
    trainer = context.trainer
    if not trainer.strategy.reduce_boolean_decision(bool(reasons), all=False):
        return []
    return reasons or ["another rank's stopping criterion"]
