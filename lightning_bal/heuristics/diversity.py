"""Heuristics that select on embeddings rather than on scores: BADGE and Core-Set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import check_generator
from lightning_bal.functional.cold_start import probcover, typiclust
from lightning_bal.functional.diversity import GreedySelection, check_finite, k_center_greedy, kmeans_pp
from lightning_bal.functional.gradient_embeddings import gradient_embedding
from lightning_bal.functional.outputs import OutputKey
from lightning_bal.heuristics.base import Heuristic, Selection
from lightning_bal.heuristics.registry import register_heuristic
from lightning_bal.mc.features import FeatureTap
from lightning_bal.utilities.checks import check_python_int
from lightning_bal.utilities.collective import Collective

__all__ = ["BADGE", "CoreSet", "EmbeddingHeuristic", "ProbCover", "TypiClust"]


def _check_rows(name: str, value: Any, shape: str) -> None:
    """Refuse ``value`` unless it is a tensor of rows (items) of at least one dimension each."""
    if not isinstance(value, Tensor) or value.ndim < 2:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"Expected argument `{name}` to be a tensor {shape}, but got {got}.")


class EmbeddingHeuristic(Heuristic):
    """Base class of heuristics that select a batch from per-item embeddings taken during the pool pass.

    The pool pass takes features at :meth:`feature_tap`, turns each batch into embeddings with :meth:`embed` and
    calls :meth:`select_embeddings` on every rank: the pool is never gathered (see ``docs/diversity.md``).

    Args:
        layer: Name of the submodule whose output are the features; ``None`` for the model's deterministic split.
        embeddings: ``[len(dataset), E]`` embeddings the user supplies, by dataset index; then no model runs.
    """

    needs_embeddings = True
    #: Whether :meth:`select_embeddings` also needs the embeddings of D_L.
    needs_labelled_embeddings: ClassVar[bool] = False
    #: The functional selection with :meth:`_options`; a subclass without one implements :meth:`select_embeddings`.
    _greedy: ClassVar[Callable[..., GreedySelection] | None] = None

    def __init__(
        self,
        layer: str | None = None,
        output: OutputKey | None = None,
        validate_args: bool = True,
        embeddings: Tensor | None = None,
    ) -> None:
        super().__init__(output=output, validate_args=validate_args)
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"Expected argument `layer` to be a submodule name or None, but got {layer!r}.")
        if embeddings is not None:
            _check_rows("embeddings", embeddings, "[len(dataset), E]")
            if layer is not None:
                raise ValueError("Expected either `layer` or `embeddings`, but got both.")
            check_finite("embeddings", embeddings)
        self.layer = layer
        self.embeddings = embeddings

    def feature_tap(self) -> FeatureTap:
        """Where the pool pass takes the features: ``layer``, or the model's split."""
        return FeatureTap(self.layer)

    def embed(self, features: Tensor, outputs: Any) -> Tensor:
        """Embeddings ``[B, E]`` of a batch from its features ``[B, ...]`` and transformed outputs."""
        _check_rows("features", features, "[B, ...] of a batch's features")
        return features.flatten(1).float()

    def score(self, log_probs: Any) -> Tensor:
        """Not pointwise: these heuristics select from embeddings (see :meth:`select_embeddings`)."""
        raise TypeError(f"{type(self).__name__} selects from embeddings: use `select_embeddings` (or `select`).")

    def select_embeddings(
        self,
        embeddings: Tensor,
        query_size: int,
        *,
        seed: int,
        indices: Tensor | None = None,
        labelled: Tensor | None = None,
        collective: Collective | None = None,
    ) -> GreedySelection:
        """Select ``query_size`` items (dataset indices) from this rank's ``embeddings`` ``[N_r, E]`` and D_L's."""
        greedy = type(self)._greedy
        if greedy is None:
            raise NotImplementedError(f"{type(self).__name__} must implement `select_embeddings`.")
        options = self._options(embeddings, labelled)
        return greedy(embeddings, query_size, seed=seed, indices=indices, collective=collective, **options)

    def _options(self, embeddings: Tensor, labelled: Tensor | None) -> dict[str, Any]:
        """Keyword arguments of ``_greedy`` beside the embeddings, seed, dataset indices and collective."""
        return {}

    def select(self, embeddings: Any, query_size: int, generator: torch.Generator | None = None) -> Selection:
        """Select ``query_size`` of the N rows of ``embeddings`` ``[N, E]`` on one process (no labelled set)."""
        check_generator(generator)
        state = None if generator is None else generator.get_state()
        seed = 0 if generator is None else int(torch.randint(2**62, (1,), generator=generator))
        try:
            picks = self.select_embeddings(embeddings, query_size, seed=seed)
        except Exception:
            # A refused selection leaves the generator as it was, so the caller can retry with the same draws.
            if generator is not None and state is not None:
                generator.set_state(state)
            raise
        return Selection(picks.indices, picks.scores)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()" if self.layer is None else f"{type(self).__name__}(layer={self.layer!r})"


@register_heuristic
class BADGE(EmbeddingHeuristic):
    r"""BADGE (Ash et al., 2020): k-means++ seeding on the gradient embeddings of the last layer.

    .. math:: g_i = (\bar p_i - e_{\hat y_i}) \otimes h_i, \qquad \text{picks} \sim \text{k-means++}(\{g_i\})

    ``h``: the MC mean input of the model's last ``nn.Linear`` (or ``layer``'s output); see docs/diversity.md.

    Examples:
        >>> log_probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.1, 0.9]]).log()
        >>> features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.1], [1.0, 1.0]])
        >>> badge = BADGE()
        >>> badge.select(badge.embed(features, log_probs), 2).indices
        tensor([1, 3])
    """

    name = "badge"
    _greedy = staticmethod(kmeans_pp)
    cost = "O(N·(C + D)) per pick for q k-means++ picks on factored gradient embeddings (D features); no N×N matrix"

    def feature_tap(self) -> FeatureTap:
        """The input of the model's last ``nn.Linear`` (or ``layer``'s output when given)."""
        return FeatureTap(self.layer if self.layer is not None else FeatureTap.LAST_LINEAR)

    def embed(self, features: Tensor, outputs: Any) -> Tensor:
        """Factored gradient embeddings ``[B, C + D]`` (see ``gradient_embedding``)."""
        _check_rows("features", features, "[B, ...] of a batch's features")
        embeddings = gradient_embedding(outputs, features)
        self.num_classes = embeddings.shape[1] - features.flatten(1).shape[1]
        return embeddings

    def _options(self, embeddings: Tensor, labelled: Tensor | None) -> dict[str, Any]:
        num_classes = getattr(self, "num_classes", None)
        if num_classes is None and embeddings.shape[0] > 0:
            raise RuntimeError("Expected `BADGE.embed` to run before `select_embeddings`: the class count is unknown.")
        return {"num_classes": num_classes}


@register_heuristic
class CoreSet(EmbeddingHeuristic):
    r"""Core-Set (Sener and Savarese, 2018): greedy k-center on the features, the labelled set as initial centres.

    .. math:: x^\star = \arg\max_{x \in \text{pool}} \min_{c \in D_L \cup \text{picks}} \lVert h(x) - h(c) \rVert

    Needs no predictions, only features: with ``iterations=1`` in the callback the pool pass costs one forward.

    Examples:
        >>> features = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [9.0, 0.0]])
        >>> CoreSet().select_embeddings(features, 2, seed=0, labelled=torch.tensor([[0.0, 0.0]])).indices
        tensor([3, 2])
    """

    name = "coreset"
    cost = "O(N·D) per pick for q greedy k-center picks, D_L as the first centres; no N×N matrix"
    consumes = "outputs"
    needs_labelled_embeddings = True
    _greedy = staticmethod(k_center_greedy)

    def _options(self, embeddings: Tensor, labelled: Tensor | None) -> dict[str, Any]:
        return {"centres": labelled}


@register_heuristic
class TypiClust(EmbeddingHeuristic):
    r"""TypiClust (Hacohen et al., 2022), for the cold start: typical items of the largest uncovered clusters.

    See :func:`~lightning_bal.functional.cold_start.typiclust` and ``docs/diversity.md`` (cold start).

    Args:
        k: Neighbours of the typicality.

    Examples:
        >>> x = torch.tensor([[0.0], [0.2], [0.3], [0.35], [5.0], [5.1]])
        >>> TypiClust(k=1).select(x, 2).indices
        tensor([2, 4])
    """

    name = "typiclust"
    cost = "k-means into |D_L| + q clusters, then O(n·k·D) typicality per cluster (k nearest neighbours)"
    consumes = "outputs"
    needs_labelled_embeddings = True
    _greedy = staticmethod(typiclust)

    def __init__(
        self,
        k: int = 20,
        layer: str | None = None,
        embeddings: Tensor | None = None,
        output: OutputKey | None = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(layer=layer, output=output, validate_args=validate_args, embeddings=embeddings)
        self.k = check_python_int("k", k, 1)

    def _options(self, embeddings: Tensor, labelled: Tensor | None) -> dict[str, Any]:
        return {"labelled": labelled, "k": self.k}


@register_heuristic
class ProbCover(EmbeddingHeuristic):
    r"""ProbCover (Yehuda et al., 2022), for the cold start: greedy max coverage by δ-balls.

    See :func:`~lightning_bal.functional.cold_start.probcover` and ``docs/diversity.md`` (cold start).

    Args:
        delta: Ball radius; ``None`` to choose it by purity (the largest with ``alpha``-pure balls).
        num_classes: Clusters of the purity test.
        alpha: Purity required.

    Examples:
        >>> x = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
        >>> ProbCover(delta=0.15).select(x, 2).indices
        tensor([1, 3])
    """

    name = "probcover"
    cost = "O(N²·D) in blocks to build the δ-ball graph (kept as an edge list), then O(edges) per pick"
    consumes = "outputs"
    needs_labelled_embeddings = True
    _greedy = staticmethod(probcover)

    def __init__(
        self,
        delta: float | None = None,
        num_classes: int | None = None,
        alpha: float = 0.95,
        layer: str | None = None,
        embeddings: Tensor | None = None,
        output: OutputKey | None = None,
        validate_args: bool = True,
    ) -> None:
        super().__init__(layer=layer, output=output, validate_args=validate_args, embeddings=embeddings)
        if delta is None or num_classes is not None:
            when = " when `delta` is None" if delta is None else " or None"
            check_python_int("num_classes", num_classes, 2, expected=f"an integer >= 2{when}")
        # A NaN radius covers nothing and an infinite one everything: either way the picks would mean nothing.
        if delta is not None and (
            isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < float("inf")
        ):
            raise ValueError(f"Expected argument `delta` to be a finite positive radius or None, but got {delta!r}.")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ValueError(f"Expected argument `alpha` to be in (0, 1), but got {alpha!r}.")
        self.delta = None if delta is None else float(delta)
        self.num_classes = num_classes
        self.alpha = float(alpha)

    def _options(self, embeddings: Tensor, labelled: Tensor | None) -> dict[str, Any]:
        return {"labelled": labelled, "delta": self.delta, "num_classes": self.num_classes, "alpha": self.alpha}
