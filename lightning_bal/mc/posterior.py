"""How the K predictive samples are drawn: the posterior the callback and the evaluations sample from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor, nn

from lightning_bal.mc.dropconnect import check_dropconnect_layers
from lightning_bal.mc.engine import mc_batches
from lightning_bal.mc.features import FeatureTap
from lightning_bal.mc.layers import check_stochastic_layers
from lightning_bal.utilities.checks import check_bool

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from lightning_bal.data import ActiveDataModule

__all__ = ["MCDropConnect", "MCDropout", "Posterior", "StepFacts"]

_ENGINE_OPTIONS = ("consistent_masks", "share_prefix", "chunk_rows", "memory_budget", "autocast_dtype", "dropconnect")


class StepFacts(Protocol):
    """What :meth:`Posterior.fit` reads of the step (the callback's ``StepContext``, which this layer cannot import)."""

    @property
    def trainer(self) -> pl.Trainer: ...  # noqa: D102

    @property
    def pl_module(self) -> pl.LightningModule: ...  # noqa: D102

    @property
    def datamodule(self) -> ActiveDataModule: ...  # noqa: D102


class Posterior(ABC):
    """How the K predictive samples ``[B, K, C, ...]`` of a batch are drawn: the one object the callback samples.

    A new posterior is one subclass implementing :meth:`batches`; sample ``k`` must depend only on ``seed`` and ``k``
    (and, without :attr:`consistent_samples`, the item's dataset index), never on the batch order or the rank. See
    docs/posteriors.md#the-protocol for the other hooks and a minimal subclass.

    Attributes:
        consistent_samples: sample ``k`` is one fixed model for every item (what BatchBALD and EPIG need).
        samples_before_fit: :meth:`batches` works on a model before any :meth:`fit` (MC-Dropout, an ensemble; not
            SWAG or Laplace), so the callback can try the heuristic on a few pool items at fit start.
    """

    consistent_samples: bool = True
    samples_before_fit: bool = False

    def check(self, module: nn.Module) -> None:  # noqa: B027
        """Raise a clear error at setup if ``module`` cannot be sampled by this posterior."""

    @abstractmethod
    def batches(
        self,
        module: nn.Module,
        dataloader: Iterable[Any],
        iterations: int,
        seed: int,
        output_transform: Callable[[Any], Any] | None,
    ) -> Iterator[tuple[Tensor, Any]]:
        """Yield ``(dataset_indices [B], output_transform(outputs [B, K, ...]))`` for every batch of ``dataloader``.

        Args:
            module: the model (its ``forward`` is called).
            dataloader: yields ``(inputs, dataset_indices)``, or inputs alone (numbered in loader order).
            iterations: K, the samples asked for (an ensemble documents what it yields instead).
            seed: seeds the samples; the same on every rank.
            output_transform: maps the raw ``[B, K, ...]`` outputs (or a tuple/dict of them) to what is yielded;
                ``None`` yields them as float32.
        """

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: B027
        """Called by the callback after every training batch (after the optimizer step)."""

    def fit(self, context: StepFacts) -> None:  # noqa: B027
        """Called at every active learning step with its context, once its training is done, before any sampling."""

    def state_dict(self) -> dict[str, Any]:
        """What must survive a checkpoint (flat tensors and primitives); nothing by default."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: B027
        """Restore :meth:`state_dict`'s output."""


class MCDropout(Posterior):
    """MC-Dropout (and MC-DropConnect): K samples of the model's predictions with its stochastic layers on.

    Every option is checked when the object is built; the engine is :func:`~lightning_bal.mc.mc_batches`.

    Args:
        consistent_masks: sample ``k`` uses the same masks for every item (K fixed sub-networks; what BatchBALD and
            EPIG need, and the fast path), or ``False`` for independent masks per item.
        share_prefix: run the deterministic prefix once per batch where the model's structure allows it.
        chunk_rows: most rows (items x samples) per forward after the prefix; ``None``: from ``memory_budget``.
        memory_budget: bytes of activations per forward chunk and of K-sample outputs per run of items (default:
            32 MiB and 256 MiB on CPU, a quarter of free memory on GPU; see docs/scale.md).
        autocast_dtype: run the forwards under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``).
        dropconnect: also drop Linear/Conv weights with this probability (MC-DropConnect); then the model needs no
            dropout layer.

    Examples:
        >>> MCDropout(consistent_masks=False)
        MCDropout(consistent_masks=False)
    """

    samples_before_fit = True

    def __init__(
        self,
        *,
        consistent_masks: bool = True,
        share_prefix: bool = True,
        chunk_rows: int | None = None,
        memory_budget: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        dropconnect: float | None = None,
    ) -> None:
        check_bool("consistent_masks", consistent_masks)
        check_bool("share_prefix", share_prefix)
        for name, value in (("chunk_rows", chunk_rows), ("memory_budget", memory_budget)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Expected argument `{name}` to be a positive integer or None, but got {value!r}.")
        if autocast_dtype is not None and not isinstance(autocast_dtype, torch.dtype):
            raise TypeError(
                f"Expected argument `autocast_dtype` to be a torch.dtype or None, but got {autocast_dtype!r}."
            )
        if dropconnect is not None and (
            isinstance(dropconnect, bool) or not isinstance(dropconnect, (int, float)) or not 0 < dropconnect < 1
        ):
            raise ValueError(f"Expected argument `dropconnect` to be a probability in (0, 1), but got {dropconnect!r}.")
        self.consistent_masks = consistent_masks
        self.share_prefix = share_prefix
        self.chunk_rows = chunk_rows
        self.memory_budget = memory_budget
        self.autocast_dtype = autocast_dtype
        self.dropconnect = None if dropconnect is None else float(dropconnect)

    @property
    def consistent_samples(self) -> bool:  # type: ignore[override]
        """``consistent_masks``: each sample is one fixed sub-network."""
        return self.consistent_masks

    def check(self, module: nn.Module) -> None:
        """Raise a clear error if ``module`` cannot be sampled (no stochastic layer, or no layer DropConnect masks)."""
        if self.dropconnect is None:
            check_stochastic_layers(module)
        else:
            check_dropconnect_layers(module)

    def batches(
        self,
        module: nn.Module,
        dataloader: Iterable[Any],
        iterations: int,
        seed: int,
        output_transform: Callable[[Any], Any] | None,
        features: FeatureTap | None = None,
    ) -> Iterator[tuple[Tensor, Any]]:
        """``(dataset_indices [B], transformed outputs)`` of each batch: see :func:`~lightning_bal.mc.mc_batches`."""
        # The options are the engine's keywords, under the same names.
        options = {name: getattr(self, name) for name in _ENGINE_OPTIONS}
        return mc_batches(
            module, dataloader, iterations, seed=seed, output_transform=output_transform, features=features, **options
        )

    def __repr__(self) -> str:
        defaults = MCDropout()
        changed = {k: v for k, v in vars(self).items() if getattr(defaults, k) != v}
        return f"MCDropout({', '.join(f'{k}={v!r}' for k, v in changed.items())})"


class MCDropConnect(MCDropout):
    """MC-DropConnect (Mobiny et al. 2019): K samples with the Linear/Conv weights dropped with probability ``p``.

    :class:`MCDropout` with ``dropconnect=p``: the model needs no dropout layer (any it has is sampled as well).

    Args:
        p: probability of dropping each weight, in (0, 1).
        **kwargs: the other options of :class:`MCDropout` (``consistent_masks``, ``chunk_rows``, ...).

    Examples:
        >>> MCDropConnect(0.2)
        MCDropConnect(0.2)
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))
        >>> loader = [(torch.randn(5, 3), torch.arange(5))]
        >>> [out.shape for _, out in MCDropConnect(0.2).batches(net, loader, 6, 0, None)]
        [torch.Size([5, 6, 4])]
    """

    def __init__(self, p: float, **kwargs: Any) -> None:
        if "dropconnect" in kwargs:
            raise TypeError("MCDropConnect() takes the drop probability as `p`, not `dropconnect`.")
        super().__init__(dropconnect=p, **kwargs)

    def __repr__(self) -> str:
        options = repr(MCDropout(**{k: v for k, v in vars(self).items() if k != "dropconnect"}))[len("MCDropout(") : -1]
        return f"MCDropConnect({self.dropconnect!r}{', ' + options if options else ''})"
