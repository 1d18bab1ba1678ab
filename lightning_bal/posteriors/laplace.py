"""Last-layer Laplace: a Gaussian over the last Linear layer's weights, its precision the softmax GGN on D_L."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.posterior import Posterior, StepFacts
from lightning_bal.mc.sampling import call_module
from lightning_bal.posteriors._common import finish, input_batches, state_entries, state_tensor
from lightning_bal.utilities.checks import check_finite_positive

__all__ = ["LastLayerLaplace"]


class LastLayerLaplace(Posterior):
    r"""Last-layer Laplace approximation (Daxberger et al. 2021): K samples of the last Linear layer's weights.

    The network up to the last layer keeps its trained weights; the last layer's ``[W b]`` gets the Gaussian
    :math:`\mathcal N(\theta_{MAP}, (H + \tau I)^{-1})`, ``H`` the softmax GGN over D_L, refitted at every step on
    every rank. See docs/posteriors.md#last-layer-laplace.

    Args:
        last_layer: name of the last layer (as in ``named_modules()``); ``None`` takes the last ``nn.Linear``.
            The model's ``forward`` must return that layer's output, the class logits ``[B, C]``.
        hessian_structure: ``"full"`` (a ``C(H+1)`` square covariance) or ``"diag"``.
        prior_precision: :math:`\tau > 0`.

    Examples:
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))
        >>> laplace = LastLayerLaplace()
        >>> laplace.fit_loader(net, [(torch.randn(20, 3), torch.arange(20))])
        >>> [out.shape for _, out in laplace.batches(net, [torch.randn(5, 3)], 10, 0, None)]
        [torch.Size([5, 10, 4])]
    """

    consistent_samples = True

    def __init__(
        self,
        last_layer: str | None = None,
        *,
        hessian_structure: Literal["full", "diag"] = "full",
        prior_precision: float = 1.0,
    ) -> None:
        if last_layer is not None and not isinstance(last_layer, str):
            raise TypeError(f"Expected argument `last_layer` to be a module name or None, but got {last_layer!r}.")
        if hessian_structure not in ("full", "diag"):
            raise ValueError(
                f"Expected argument `hessian_structure` to be 'full' or 'diag', but got {hessian_structure!r}."
            )
        self.prior_precision = check_finite_positive("prior_precision", prior_precision)
        self.last_layer = last_layer
        self.hessian_structure = hessian_structure
        self.mean = torch.zeros(0)
        # `full`: the lower Cholesky factor L of the posterior precision; `diag`: the precision's square root.
        self.factor = torch.zeros(0)

    def _layer(self, module: nn.Module) -> tuple[str, nn.Linear]:
        if not isinstance(module, nn.Module):
            raise TypeError(f"Expected argument `module` to be a `torch.nn.Module`, but got {type(module).__name__}.")
        if self.last_layer is not None:
            layer = dict(module.named_modules()).get(self.last_layer)
            if not isinstance(layer, nn.Linear):
                found = "no such module" if layer is None else f"a {type(layer).__name__}"
                raise ValueError(
                    f"Expected argument `last_layer` to name an `nn.Linear` of `{type(module).__name__}`, but"
                    f" {self.last_layer!r} is {found}."
                )
            return self.last_layer, layer
        linears = [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"LastLayerLaplace could not find the last layer of `{type(module).__name__}`: it holds no"
                " `nn.Linear`. Pass `last_layer=` the name of the layer that computes the logits."
            )
        return linears[-1]

    def check(self, module: nn.Module) -> None:
        """The model must hold the last layer (``last_layer``, or an ``nn.Linear``)."""
        self._layer(module)

    @contextmanager
    def _features(self, module: nn.Module) -> Iterator[Callable[[Any], tuple[Tensor, Tensor]]]:
        """A function of a batch's inputs returning ``(phi~ [B, H(+1)], logits [B, C])``, checked against the model."""
        name, layer = self._layer(module)
        captured: dict[str, Tensor] = {}

        def hook(_: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            captured["input"], captured["output"] = args[0], output

        def run(inputs: Any) -> tuple[Tensor, Tensor]:
            captured.clear()
            outputs = call_module(module, inputs)
            if "output" not in captured or not isinstance(outputs, Tensor) or outputs is not captured["output"]:
                raise ValueError(
                    f"LastLayerLaplace could not find the last layer of `{type(module).__name__}`: its output is not"
                    f" that of `{name}`. Return the logits of the last `nn.Linear` from `forward`, or pass"
                    " `last_layer=` the name of the layer that computes them."
                )
            if outputs.ndim != 2 or outputs.shape[1] < 2:
                raise ValueError(
                    f"LastLayerLaplace needs class logits [B, C] from the last layer, but got {tuple(outputs.shape)}."
                )
            features = captured["input"].float()
            if layer.bias is not None:
                features = torch.cat([features, features.new_ones(features.shape[0], 1)], dim=1)
            return features, outputs.float()

        handle = layer.register_forward_hook(hook)
        try:
            with switch_modes(module, lambda _: False):
                yield run
        finally:
            handle.remove()

    @staticmethod
    def _weights(layer: nn.Linear) -> Tensor:
        """``vec([W b])``, row-major: ``[C * (H + 1)]``."""
        weight = layer.weight.detach().float()
        if layer.bias is not None:
            weight = torch.cat([weight, layer.bias.detach().float()[:, None]], dim=1)
        return weight.reshape(-1).cpu()

    def fit(self, context: StepFacts) -> None:
        """Fit the Gaussian on D_L with the model as trained in this step."""
        datamodule = context.datamodule
        self.fit_loader(context.pl_module, datamodule.pool_dataloader(datamodule.labelled_indices))

    def fit_loader(self, module: nn.Module, dataloader: Iterable[Any]) -> None:
        """Fit the Gaussian on the inputs of ``dataloader`` (``(inputs, indices)`` or inputs alone)."""
        _, layer = self._layer(module)
        mean = self._weights(layer)
        diag = self.hessian_structure == "diag"
        hessian = torch.zeros((mean.numel(),) if diag else (mean.numel(), mean.numel()), dtype=torch.float64)
        with self._features(module) as features, torch.no_grad():
            for inputs, _ in input_batches(module, dataloader):
                phi, logits = features(inputs)
                phi, probs = phi.double().cpu(), logits.double().softmax(-1).cpu()
                if diag:
                    # diag(Lambda_i)[c] * phi_i[h]^2 with Lambda_i = diag(p_i) - p_i p_i^T.
                    hessian += torch.einsum("nc,nh->ch", probs - probs**2, phi**2).reshape(-1)
                else:
                    lam = torch.diag_embed(probs) - probs[:, :, None] * probs[:, None, :]
                    hessian += torch.einsum("ncd,nh,ng->chdg", lam, phi, phi).reshape(hessian.shape)
        if diag:
            factor = (hessian + self.prior_precision).sqrt()
        else:
            hessian += self.prior_precision * torch.eye(mean.numel(), dtype=torch.float64)
            factor = torch.linalg.cholesky(hessian)
        self.mean, self.factor = mean, factor

    def sample_weights(self, num_samples: int, generator: torch.Generator) -> Tensor:
        """``[K, C * (H + 1)]`` samples of the last layer's ``vec([W b])``."""
        if self.mean.numel() == 0:
            raise RuntimeError(
                "LastLayerLaplace was sampled before it was fitted: it fits at each active learning step."
            )
        z = torch.randn(num_samples, self.mean.numel(), generator=generator, dtype=torch.float64)
        if self.hessian_structure == "diag":
            noise = z / self.factor
        else:
            # theta = mean + L^{-T} z has covariance (L L^T)^{-1}, the inverse of the posterior precision.
            noise = torch.linalg.solve_triangular(self.factor.mT, z.T, upper=True).T
        return (self.mean.double() + noise).float()

    def batches(
        self,
        module: nn.Module,
        dataloader: Iterable[Any],
        iterations: int,
        seed: int,
        output_transform: Callable[[Any], Any] | None,
    ) -> Iterator[tuple[Tensor, Any]]:
        """``(dataset_indices [B], output_transform(logits [B, K, C]))``, sample ``k`` a draw of the last layer."""
        _, layer = self._layer(module)
        if self.mean.numel() and self.mean.numel() != self._weights(layer).numel():
            raise RuntimeError(
                f"LastLayerLaplace was fitted on a last layer of {self.mean.numel()} weights, but the model's has"
                f" {self._weights(layer).numel()}."
            )
        samples = self.sample_weights(iterations, torch.Generator().manual_seed(seed))
        samples = samples.to(layer.weight.device).reshape(iterations, layer.out_features, -1)
        with self._features(module) as features:
            for inputs, indices in input_batches(module, dataloader):
                with torch.inference_mode():
                    phi, _ = features(inputs)
                    outputs = finish(torch.einsum("bh,kch->bkc", phi, samples), output_transform)
                yield indices, outputs

    def state_dict(self) -> dict[str, Any]:
        """The fitted mean and precision factor (empty before the first fit)."""
        return {"mean": self.mean, "factor": self.factor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (an empty dict: unfitted); a bad entry raises before any change."""
        state = state_entries("LastLayerLaplace", state_dict, ("mean", "factor"))
        if state is None:
            self.mean, self.factor = torch.zeros(0), torch.zeros(0)
            return
        mean = state_tensor("LastLayerLaplace", "mean", state["mean"], 1)
        diag = self.hessian_structure == "diag"
        factor = state_tensor("LastLayerLaplace", "factor", state["factor"], 1 if diag or not mean.numel() else 2)
        expected = (mean.numel(),) if diag else (mean.numel(), mean.numel())
        if not mean.numel():
            expected = (0,)
        if tuple(factor.shape) != expected:
            raise ValueError(
                f"Expected state entry `factor` of a `{self.hessian_structure}` LastLayerLaplace to have shape"
                f" {expected}, but got {tuple(factor.shape)}."
            )
        # The precision's square root (diag) or its Cholesky factor (full): sampling divides by it or solves with it.
        pivots = factor if diag or factor.ndim == 1 else factor.diagonal()
        if bool((pivots <= 0).any()) or (factor.ndim == 2 and bool(factor.triu(1).any())):
            kind = "positive" if diag else "lower-triangular with a positive diagonal"
            raise ValueError(f"Expected state entry `factor` of LastLayerLaplace to be {kind}, but it is not.")
        self.mean, self.factor = mean.clone(), factor.clone()

    def __repr__(self) -> str:
        return (
            f"LastLayerLaplace(last_layer={self.last_layer!r}, hessian_structure={self.hessian_structure!r},"
            f" prior_precision={self.prior_precision})"
        )
