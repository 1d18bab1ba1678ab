"""Deep ensembles trained as one model: M members' weights stacked, their forward vmapped with ``torch.func``."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from lightning_utilities import apply_to_collection
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F  # noqa: N812

from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.posterior import Posterior
from lightning_bal.mc.sampling import call_module
from lightning_bal.posteriors._common import finish, input_batches, stack_samples
from lightning_bal.posteriors._members import check_same_architecture
from lightning_bal.utilities.checks import check_python_int
from lightning_bal.utilities.seeding import check_seed

__all__ = ["DeepEnsemble", "EnsemblePosterior", "ensemble_cross_entropy", "ensemble_log_probs", "member_batches"]


def _key(name: str) -> str:
    # Registered names cannot hold dots; `-` cannot appear in a member's own attribute names.
    return name.replace(".", "-")


class DeepEnsemble(nn.Module):
    r"""M members of one architecture trained together as one module, in one fused (vmapped) forward.

    The members' weights are stacked ``[M, ...]`` and registered here, so one optimizer, one ``state_dict``, DDP and
    ``reset_weights`` cover every member. ``forward`` returns ``[M, B, ...]``. See docs/posteriors.md#deep-ensembles.

    Args:
        make_member: builds one member (called ``num_members`` times); every member must compute member 0's
            forward (the same weights' names, shapes and dtypes, submodules' classes and settings).
        num_members: M, at least 2.
        seed: build member ``m`` under ``torch.manual_seed(seed + m)`` (restored after); ``None``: the global generator.
        fused: train all members in one ``vmap`` (``True``), or one member after another (``False``); ``None``:
            vmapped unless the weights are on the CPU. Scoring always runs the members one after another.

    Members run one after another get their weights in member 0's memory format (e.g. channels-last convolutions,
    which stacking would otherwise turn back into the default format).

    Examples:
        >>> ensemble = DeepEnsemble(lambda: nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4)), 5, seed=0)
        >>> ensemble(torch.randn(2, 3)).shape
        torch.Size([5, 2, 4])
        >>> ensemble.stacked.get_parameter("0-weight").shape
        torch.Size([5, 8, 3])
    """

    def __init__(
        self,
        make_member: Callable[[], nn.Module],
        num_members: int,
        *,
        seed: int | None = None,
        fused: bool | None = None,
    ) -> None:
        if isinstance(make_member, nn.Module) or not callable(make_member):
            raise TypeError(
                "Expected argument `make_member` to be a function that builds one member (e.g. `lambda: Net()`),"
                f" but got {type(make_member).__name__}; use `DeepEnsemble.from_members` for existing modules."
            )
        check_python_int("num_members", num_members, 2, expected="an integer of at least 2")
        seed = check_seed("seed", seed)
        members = []
        for m in range(num_members):
            with torch.random.fork_rng(devices=[], enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(seed + m)
                members.append(make_member())
        super().__init__()
        self._setup(members, fused)

    @classmethod
    def from_members(cls, members: Sequence[nn.Module], *, fused: bool | None = None) -> DeepEnsemble:
        """An ensemble of existing ``members`` (their weights are copied; at least 2, one architecture)."""
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"Expected argument `members` to hold at least 2 modules, but got {len(members)}.")
        ensemble = cls.__new__(cls)
        nn.Module.__init__(ensemble)
        ensemble._setup(members, fused)
        return ensemble

    def _setup(self, members: list[nn.Module], fused: bool | None) -> None:
        check_same_architecture(members)
        if fused is not None and not isinstance(fused, bool):
            raise TypeError(f"Expected argument `fused` to be a bool or None, but got {fused!r}.")
        self.fused = fused
        params, buffers = stack_module_state(members)
        self._channels_last = {name for name, value in members[0].named_parameters() if _is_channels_last(value)}
        self.num_members = len(members)
        self._param_names = list(params)
        self._buffer_names = list(buffers)
        keys = [_key(name) for name in [*params, *buffers]]
        if len(set(keys)) != len(keys):
            raise ValueError("Expected the members' parameter and buffer names to stay distinct with `.` read as `-`.")
        self.stacked = nn.Module()
        for name, value in params.items():
            self.stacked.register_parameter(_key(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.stacked.register_buffer(_key(name), value.detach().clone())
        # The structure the stacked weights are called through: not registered (no weights of its own, on `meta`).
        self._base: tuple[nn.Module] = (copy.deepcopy(members[0]).to("meta"),)

    def _weights(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params: dict[str, Tensor] = {name: self.stacked.get_parameter(_key(name)) for name in self._param_names}
        buffers = {name: self.stacked.get_buffer(_key(name)) for name in self._buffer_names}
        return params, buffers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Every member's output on the same inputs, stacked: ``[M, B, ...]`` (tuples/dicts of them likewise)."""
        return self._run(args, kwargs, per_member=False)

    def forward_members(self, *args: Tensor, **kwargs: Any) -> Any:
        """Member ``m``'s output on its own inputs ``args[i][m]`` (:func:`member_batches`), stacked: ``[M, B, ...]``.

        Examples:
            >>> ensemble = DeepEnsemble(lambda: nn.Linear(3, 2), 2, seed=0)
            >>> x = torch.randn(2, 4, 3)
            >>> out = ensemble.forward_members(x)
            >>> out.shape, torch.allclose(out[1], ensemble.member(1)(x[1]))
            (torch.Size([2, 4, 2]), True)
        """
        for i, value in enumerate(args):
            if not isinstance(value, Tensor) or value.ndim < 1 or value.shape[0] != self.num_members:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(
                    f"Expected every positional argument of `forward_members` to be a tensor [M={self.num_members},"
                    f" B, ...], but argument {i} is {shape}."
                )
        return self._run(args, kwargs, per_member=True)

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any], per_member: bool) -> Any:
        base = self._base[0]
        base.train(self.training)
        params, buffers = self._weights()

        def member(member_params: dict[str, Tensor], member_buffers: dict[str, Tensor], *inputs: Any) -> Any:
            return functional_call(base, (member_params, member_buffers), inputs, kwargs)

        vmapped = self.fused if self.fused is not None else any(v.device.type != "cpu" for v in params.values())
        if torch.is_inference_mode_enabled() or not vmapped:
            # Faster than vmap's grouped convolutions here (see docs/posteriors.md#deep-ensembles); the same outputs.
            outputs = [
                member(
                    {n: _channels_last(v[m]) if n in self._channels_last else v[m] for n, v in params.items()},
                    {n: v[m] for n, v in buffers.items()},
                    *((a[m] for a in args) if per_member else args),
                )
                for m in range(self.num_members)
            ]
            return apply_to_collection(stack_samples(outputs), Tensor, lambda t: t.movedim(1, 0))
        in_dims = (0, 0, *((0 if per_member else None) for _ in args))
        return vmap(member, in_dims=in_dims, randomness="different")(params, buffers, *args)

    def member(self, index: int) -> nn.Module:
        """A standalone copy of member ``index`` (its own module, with its weights), e.g. to run it alone."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.num_members:
            raise ValueError(f"Expected argument `index` to be in [0, {self.num_members}), but got {index!r}.")
        params, buffers = self._weights()
        device = next(iter(params.values())).device if params else torch.device("cpu")
        module = copy.deepcopy(self._base[0]).to_empty(device=device)
        weights = {name: value[index].detach().clone() for name, value in {**params, **buffers}.items()}
        module.load_state_dict(weights, strict=False)
        return module.train(self.training)

    def extra_repr(self) -> str:
        """``num_members`` and the members' class, in the module's repr."""
        return f"num_members={self.num_members}, member={type(self._base[0]).__name__}"


def _is_channels_last(value: Tensor) -> bool:
    # Strides, not `is_contiguous`: with one channel both formats are contiguous, yet convolutions tell them apart.
    if value.dim() != 4:
        return False
    _, channels, height, width = value.shape
    default = (channels * height * width, height * width, width, 1)
    return value.stride() == (channels * height * width, 1, width * channels, channels) != default


def _channels_last(value: Tensor) -> Tensor:
    """``value`` with channels-last strides, as a differentiable copy."""
    return torch.empty_like(value, memory_format=torch.channels_last).copy_(value)


def member_batches(batch: Tensor, num_members: int) -> Tensor:
    """``[M, B, ...]`` from a batch ``[M * B, ...]``: member ``m`` gets the ``m``-th run of ``B`` consecutive items.

    A batch that ``M`` does not divide is completed from its start (at most ``M - 1`` items seen twice).

    Examples:
        >>> member_batches(torch.arange(6), 3)
        tensor([[0, 1],
                [2, 3],
                [4, 5]])
    """
    check_python_int("num_members", num_members, 1)
    if not isinstance(batch, Tensor) or batch.ndim < 1 or batch.shape[0] < num_members:
        shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ValueError(
            f"Expected argument `batch` to be a tensor of at least `num_members={num_members}` items, but got {shape}."
        )
    size = -(-batch.shape[0] // num_members)
    if size * num_members != batch.shape[0]:
        batch = batch[torch.arange(size * num_members, device=batch.device) % batch.shape[0]]
    return batch.unflatten(0, (num_members, size))


def ensemble_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    r"""The members' cross-entropies summed: :math:`\sum_m \frac1B \sum_i -\log p_m(y_i \mid x_i)`.

    Each member then gets the gradient it would get alone (a mean would scale its learning rate by 1/M).

    Args:
        logits: ``[M, B, C]`` (a :class:`DeepEnsemble`'s output).
        targets: class indices ``[B]``, or ``[M, B]``, one batch per member (:meth:`DeepEnsemble.forward_members`).

    Examples:
        >>> ensemble_cross_entropy(torch.zeros(3, 2, 4), torch.tensor([0, 1]))  # 3 x ln 4
        tensor(4.1589)
    """
    if logits.ndim != 3 or targets.shape not in (logits.shape[1:2], logits.shape[:2]):
        raise ValueError(
            "Expected `logits` [M, B, C] and `targets` [B] or [M, B], but got"
            f" {tuple(logits.shape)} and {tuple(targets.shape)}."
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"Expected `targets` to hold integer class indices, but got dtype {targets.dtype}.")
    num_members, num_classes = logits.shape[0], logits.shape[2]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(
            f"Expected `targets` in [0, {num_classes}) (the classes of `logits`), but got values in"
            f" [{int(targets.min())}, {int(targets.max())}]."
        )
    targets = targets.flatten() if targets.ndim == 2 else targets.repeat(num_members)
    return F.cross_entropy(logits.flatten(0, 1), targets) * num_members


def ensemble_log_probs(logits: Tensor) -> Tensor:
    r"""The ensemble's predictive log-probabilities ``[B, C]`` from ``[M, B, C]`` logits: :math:`\log\frac1M\sum_m p_m`.

    Examples:
        >>> ensemble_log_probs(torch.zeros(3, 2, 4)).exp()
        tensor([[0.2500, 0.2500, 0.2500, 0.2500],
                [0.2500, 0.2500, 0.2500, 0.2500]])
    """
    if logits.ndim != 3:
        raise ValueError(f"Expected `logits` shaped [M, B, C] (members, items, classes), got {tuple(logits.shape)}.")
    return torch.logsumexp(logits.float().log_softmax(-1), dim=0) - math.log(logits.shape[0])


class EnsemblePosterior(Posterior):
    """The members of the model's :class:`DeepEnsemble` as the K samples: K = M, sample ``m`` is member ``m``.

    The model's ``forward`` (in eval mode) must return the ensemble's ``[M, B, ...]``; ``iterations`` is ignored.

    Examples:
        >>> net = DeepEnsemble(lambda: nn.Linear(3, 4), 5, seed=0)
        >>> loader = [(torch.randn(2, 3), torch.arange(2))]
        >>> [out.shape for _, out in EnsemblePosterior().batches(net, loader, 20, 0, None)]
        [torch.Size([2, 5, 4])]
    """

    consistent_samples = True
    samples_before_fit = True

    def check(self, module: nn.Module) -> None:
        """The model must hold exactly one :class:`DeepEnsemble`."""
        self._ensemble(module)

    @staticmethod
    def _ensemble(module: nn.Module) -> DeepEnsemble:
        ensembles = [sub for sub in module.modules() if isinstance(sub, DeepEnsemble)]
        if len(ensembles) != 1:
            raise ValueError(
                "Expected argument `module` to hold exactly one `DeepEnsemble` for `EnsemblePosterior`, but"
                f" `{type(module).__name__}` holds {len(ensembles)}."
            )
        return ensembles[0]

    def batches(
        self,
        module: nn.Module,
        dataloader: Iterable[Any],
        iterations: int,
        seed: int,
        output_transform: Callable[[Any], Any] | None,
    ) -> Iterator[tuple[Tensor, Any]]:
        """``(dataset_indices [B], output_transform(outputs [B, M, ...]))``; ``iterations`` and ``seed`` unused."""
        num_members = self._ensemble(module).num_members

        def members_second(tensor: Tensor) -> Tensor:
            if tensor.ndim < 2 or tensor.shape[0] != num_members:
                raise ValueError(
                    f"Expected the model's outputs to be the ensemble's [M={num_members}, B, ...], but got a tensor of"
                    f" shape {tuple(tensor.shape)}: return the `DeepEnsemble`'s output from `forward`."
                )
            return tensor.movedim(0, 1)

        with switch_modes(module, lambda _: False):
            for inputs, indices in input_batches(module, dataloader):
                with torch.inference_mode():
                    outputs = finish(
                        apply_to_collection(call_module(module, inputs), Tensor, members_second), output_transform
                    )
                yield indices, outputs

    def __repr__(self) -> str:
        return "EnsemblePosterior()"
