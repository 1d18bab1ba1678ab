"""SWAG (Maddox et al. 2019): a Gaussian over the weights from the moments of each step's training trajectory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.posterior import Posterior, StepFacts
from lightning_bal.mc.sampling import call_module
from lightning_bal.posteriors._common import (
    finish,
    input_batches,
    stack_samples,
    state_entries,
    state_int,
    state_tensor,
)
from lightning_bal.utilities.checks import check_finite_positive, check_python_int

if TYPE_CHECKING:
    import lightning.pytorch as pl

__all__ = ["SWAG"]


class SWAG(Posterior):
    """SWAG: K weight samples from a Gaussian fitted to the weights SGD visits while each step trains.

    The moments restart with each step's training; BatchNorm statistics are recomputed for every sample on D_L.
    Memory: ``(rank + 2) x P`` floats for P trainable weights. See docs/posteriors.md#swag.

    Args:
        rank: R, the most deviation columns kept (the low-rank part of the covariance).
        every_n_batches: collect the weights after every this many training batches.
        burn_in_epochs: training epochs of each step before collecting starts.
        scale: s, scales the covariance (the paper samples with 0.5).

    Examples:
        >>> swag = SWAG(rank=10)
        >>> swag.rank, swag.samples_before_fit
        (10, False)
    """

    consistent_samples = True

    def __init__(
        self, rank: int = 20, *, every_n_batches: int = 1, burn_in_epochs: int = 0, scale: float = 0.5
    ) -> None:
        self.rank = check_python_int("rank", rank, 1)
        self.every_n_batches = check_python_int("every_n_batches", every_n_batches, 1)
        self.burn_in_epochs = check_python_int("burn_in_epochs", burn_in_epochs, 0)
        self.scale = check_finite_positive("scale", scale)
        self._clear()
        self._refresh_loader: Callable[[], Iterable[Any]] | None = None

    def _clear(self) -> None:
        self.num_snapshots = 0
        self.mean = torch.zeros(0)
        self.sq_mean = torch.zeros(0)
        self.deviations = torch.zeros(0, 0)
        self._step_start_epoch = -1
        self._batches_seen = 0
        self._stale = False

    @staticmethod
    def _params(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
        if not isinstance(module, nn.Module):
            raise TypeError(f"Expected argument `module` to be a `torch.nn.Module`, but got {type(module).__name__}.")
        return [(name, p) for name, p in module.named_parameters() if p.requires_grad]

    def check(self, module: nn.Module) -> None:
        """The model needs trainable parameters."""
        if not self._params(module):
            raise ValueError(
                f"Expected argument `module` to have trainable parameters for SWAG, but `{module}` has none."
            )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Collect the weights every ``every_n_batches`` batches past the step's burn-in (moments restart per step)."""
        if self._stale or self._step_start_epoch < 0:
            self._clear()
            self._step_start_epoch = trainer.current_epoch
        if trainer.current_epoch - self._step_start_epoch < self.burn_in_epochs:
            return
        self._batches_seen += 1
        if self._batches_seen % self.every_n_batches == 0:
            self.collect(pl_module)

    def collect(self, module: nn.Module) -> None:
        """Add ``module``'s current trainable weights to the moments.

        Examples:
            >>> net, swag = nn.Linear(1, 1, bias=False), SWAG(rank=2)
            >>> for value in (1.0, 2.0, 3.0):
            ...     _ = net.weight.data.fill_(value)
            ...     swag.collect(net)
            >>> swag.mean, swag.sq_mean, swag.deviations
            (tensor([2.]), tensor([4.6667]), tensor([[0.5000],
                    [1.0000]]))
        """
        weights = torch.cat([p.detach().reshape(-1) for _, p in self._params(module)]).float().cpu()
        if self.num_snapshots and weights.numel() != self.mean.numel():
            raise RuntimeError(
                f"SWAG collected {self.mean.numel()} weights so far, but the model now has {weights.numel()}."
            )
        n = self.num_snapshots
        self.mean = weights.clone() if n == 0 else (self.mean * n + weights) / (n + 1)
        self.sq_mean = weights**2 if n == 0 else (self.sq_mean * n + weights**2) / (n + 1)
        deviation = (weights - self.mean)[None]
        kept = self.deviations if self.deviations.numel() else torch.zeros(0, weights.numel())
        self.deviations = torch.cat([kept, deviation])[-self.rank :]
        self.num_snapshots = n + 1

    def fit(self, context: StepFacts) -> None:
        """Close this step's moments (the next training batch starts new ones) and keep D_L for BatchNorm."""
        self._require_moments()
        datamodule = context.datamodule
        indices = datamodule.labelled_indices.clone()
        self._refresh_loader = lambda: datamodule.pool_dataloader(indices)
        self._stale = True

    def _require_moments(self) -> None:
        if self.num_snapshots == 0:
            raise RuntimeError(
                "SWAG has collected no weights yet: it collects them during each active learning step's training"
                f" (after `burn_in_epochs={self.burn_in_epochs}` epochs, every `every_n_batches={self.every_n_batches}`"
                " batches), so the step trained no batch past the burn-in."
            )

    def sample_weights(self, num_samples: int, generator: torch.Generator) -> Tensor:
        """``[K, P]`` weight vectors drawn from the SWAG Gaussian."""
        self._require_moments()
        variance = (self.sq_mean - self.mean**2).clamp_min(0.0)
        # In place, in the order of the formula: the same numbers as out-of-place ops, without K x P temporaries.
        noise = torch.randn(num_samples, self.mean.numel(), generator=generator).mul_(variance.sqrt()).div_(2**0.5)
        rank = self.deviations.shape[0]
        if rank >= 2:
            z2 = torch.randn(num_samples, rank, generator=generator)
            noise.add_((z2 @ self.deviations).div_((2 * (rank - 1)) ** 0.5))
        return noise.mul_(self.scale**0.5).add_(self.mean)

    def batches(
        self,
        module: nn.Module,
        dataloader: Iterable[Any],
        iterations: int,
        seed: int,
        output_transform: Callable[[Any], Any] | None,
    ) -> Iterator[tuple[Tensor, Any]]:
        """``(dataset_indices [B], output_transform(outputs [B, K, ...]))``, sample ``k`` a SWAG weight draw."""
        self._require_moments()
        states = self._sample_states(module, iterations, torch.Generator().manual_seed(seed))
        with switch_modes(module, lambda _: False):
            for inputs, indices in input_batches(module, dataloader):
                with torch.inference_mode():
                    samples = [call_module(_bound(module, state), inputs) for state in states]
                    outputs = finish(stack_samples(samples), output_transform)
                yield indices, outputs

    def _sample_states(
        self, module: nn.Module, num_samples: int, generator: torch.Generator
    ) -> list[dict[str, Tensor]]:
        """Each sample's weights and (refreshed on D_L) BatchNorm buffers, by name."""
        params = self._params(module)
        if sum(p.numel() for _, p in params) != self.mean.numel():
            raise RuntimeError(
                f"SWAG collected {self.mean.numel()} weights, but the model has {sum(p.numel() for _, p in params)}."
            )
        device = params[0][1].device
        vectors = self.sample_weights(num_samples, generator).to(device)
        sizes = [p.numel() for _, p in params]
        states = [
            {name: part.view_as(p).to(p.dtype) for (name, p), part in zip(params, vector.split(sizes), strict=True)}
            for vector in vectors
        ]
        norms = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if norms:
            if self._refresh_loader is None:
                raise RuntimeError(
                    "SWAG needs D_L to refresh the model's BatchNorm statistics: sample it after an active learning"
                    " step's `fit` (a resumed run refits before sampling)."
                )
            refreshed = _refreshed_buffers(module, norms, states, self._refresh_loader())
            for state, buffers in zip(states, refreshed, strict=True):
                state.update(buffers)
        return states

    def state_dict(self) -> dict[str, Any]:
        """The moments and where the collection stands (tensors and primitives)."""
        return {
            "num_snapshots": self.num_snapshots,
            "mean": self.mean,
            "sq_mean": self.sq_mean,
            "deviations": self.deviations,
            "stale": self._stale,
            "step_start_epoch": self._step_start_epoch,
            "batches_seen": self._batches_seen,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (an empty dict: a fresh SWAG); a bad entry raises before any change."""
        names = ("num_snapshots", "mean", "sq_mean", "deviations", "stale", "step_start_epoch", "batches_seen")
        state = state_entries("SWAG", state_dict, names)
        if state is None:
            self._clear()
            return
        count = state_int("SWAG", "num_snapshots", state["num_snapshots"], 0)
        mean = state_tensor("SWAG", "mean", state["mean"], 1)
        sq_mean = state_tensor("SWAG", "sq_mean", state["sq_mean"], 1)
        deviations = state_tensor("SWAG", "deviations", state["deviations"], 2)
        if sq_mean.shape != mean.shape or (deviations.numel() and deviations.shape[1] != mean.numel()):
            raise ValueError(
                f"Expected SWAG state entries of matching shapes, but got `mean` {tuple(mean.shape)}, `sq_mean`"
                f" {tuple(sq_mean.shape)} and `deviations` {tuple(deviations.shape)}."
            )
        if (count == 0) != (mean.numel() == 0) or deviations.shape[0] > count:
            raise ValueError(
                f"Expected state entry `num_snapshots` of `SWAG` to count the collected weights, but got {count} with"
                f" {mean.numel()} mean weights and {deviations.shape[0]} deviations."
            )
        if bool((sq_mean < 0).any()):
            raise ValueError("Expected state entry `sq_mean` of `SWAG` (a mean of squares) to be >= 0, but it is not.")
        if not isinstance(state["stale"], bool):
            raise TypeError(f"Expected state entry `stale` of `SWAG` to be a bool, but got {state['stale']!r}.")
        start = state_int("SWAG", "step_start_epoch", state["step_start_epoch"], -1)
        seen = state_int("SWAG", "batches_seen", state["batches_seen"], 0)
        self.num_snapshots = count
        self.mean, self.sq_mean, self.deviations = mean.clone(), sq_mean.clone(), deviations.clone()
        self._stale, self._step_start_epoch, self._batches_seen = state["stale"], start, seen
        # D_L for the BatchNorm refresh comes back with the next `fit`.

    def __repr__(self) -> str:
        return (
            f"SWAG(rank={self.rank}, every_n_batches={self.every_n_batches}, burn_in_epochs={self.burn_in_epochs},"
            f" scale={self.scale})"
        )


def _bound(module: nn.Module, state: dict[str, Tensor]) -> Callable[..., Any]:

    def forward(*args: Any, **kwargs: Any) -> Any:
        return functional_call(module, state, args, kwargs, strict=False)

    return forward


def _refreshed_buffers(
    module: nn.Module, norms: list[_BatchNorm], samples: list[dict[str, Tensor]], loader: Iterable[Any]
) -> list[dict[str, Tensor]]:
    """Each sample's BatchNorm statistics, recomputed over ``loader`` (its items averaged), in one pass over it."""
    names = {id(m): name for name, m in module.named_modules()}
    fresh: dict[str, Tensor] = {}
    for norm in norms:
        prefix = names[id(norm)]
        for attr in ("running_mean", "running_var", "num_batches_tracked"):
            value = getattr(norm, attr)
            start = torch.ones_like(value) if attr == "running_var" else torch.zeros_like(value)
            fresh[f"{prefix}.{attr}" if prefix else attr] = start
    buffers = [{key: value.clone() for key, value in fresh.items()} for _ in samples]
    bound = [_bound(module, {**weights, **own}) for weights, own in zip(samples, buffers, strict=True)]
    momenta = [norm.momentum for norm in norms]
    try:
        seen = 0
        with switch_modes(module, lambda m: isinstance(m, _BatchNorm)), torch.no_grad():
            for inputs, indices in input_batches(module, loader):
                # Each batch weighs by its size (as SWAG's reference code does): the mean is D_L's exact mean.
                for norm in norms:
                    norm.momentum = indices.numel() / (seen + indices.numel())
                seen += indices.numel()
                for forward in bound:
                    call_module(forward, inputs)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
    return buffers
