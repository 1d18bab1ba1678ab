"""Rows of the papers' protocol that draw the K samples from another posterior: ``heuristic@posterior``."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from lightning_bal.callbacks import LabelledRisk, StepEvaluation, TestCurve
from lightning_bal.data import ActiveDataModule
from lightning_bal.experiments.experiment import Row
from lightning_bal.experiments.models import NETWORKS, DropoutCNN
from lightning_bal.mc import MCDropout
from lightning_bal.posteriors import (
    SWAG,
    DeepEnsemble,
    EnsemblePosterior,
    LastLayerLaplace,
    ensemble_log_probs,
    member_batches,
)
from lightning_bal.utilities.checks import check_argument, is_finite, is_int

__all__ = [
    "POSTERIORS",
    "EnsembleCNN",
    "EnsembleLabelledRisk",
    "EnsembleTestCurve",
    "ensemble_loader",
    "posterior_row",
    "split_row_name",
]

POSTERIORS = ("mc_dropout", "ensemble", "swag", "laplace")


def split_row_name(name: str) -> tuple[str, str | None]:
    """``"bald@swag"`` -> ``("bald", "swag")``; a name without ``@`` has no posterior of its own.

    Examples:
        >>> split_row_name("bald@ensemble"), split_row_name("random")
        (('bald', 'ensemble'), ('random', None))
    """
    if not isinstance(name, str):
        raise TypeError(f"Expected a row name `heuristic` or `heuristic@posterior`, but got {name!r}.")
    if not name:
        raise ValueError("Expected a row name `heuristic` or `heuristic@posterior`, but got an empty string.")
    heuristic, at, posterior = name.partition("@")
    if not at:
        return name, None
    if posterior not in POSTERIORS or not heuristic:
        raise ValueError(f"Expected a row `heuristic@posterior` with a posterior in {POSTERIORS}, but got {name!r}.")
    return heuristic, posterior


class EnsembleCNN(pl.LightningModule):
    """A :class:`~lightning_bal.posteriors.DeepEnsemble` of :class:`DropoutCNN` networks, trained like one of them.

    ``forward`` returns the members' logits ``[M, B, C]``; validation logs ``val_loss`` and ``val_acc`` of the mean
    prediction. Adam, without weight decay. See docs/posteriors.md#deep-ensembles for the members' data order.

    Args:
        members: the member networks (one architecture); their weights are copied.
        own_data_order: each member trains on its own part of every batch (serve it with :func:`ensemble_loader`).

    Examples:
        >>> model = EnsembleCNN.around(DropoutCNN("digits", image_size=8), num_members=3, seed=0)
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([3, 2, 10])
    """

    def __init__(self, members: Sequence[nn.Module], lr: float = 1e-3, own_data_order: bool = True) -> None:
        super().__init__()
        check_argument("lr", lr, is_finite(lr) and lr > 0, "a finite positive number")
        check_argument("own_data_order", own_data_order, isinstance(own_data_order, bool), "a bool", TypeError)
        self.lr = lr
        self.own_data_order = own_data_order
        self.ensemble = DeepEnsemble.from_members(members)

    @classmethod
    def around(cls, model: DropoutCNN, num_members: int = 5, seed: int = 0, own_data_order: bool = True) -> EnsembleCNN:
        """An ensemble whose member 0 is ``model``'s network and whose others are new ones, seeded by ``seed``."""
        if not isinstance(model, DropoutCNN):
            raise TypeError(f"Expected argument `model` to be a `DropoutCNN`, but got {type(model).__name__}.")
        check_argument("num_members", num_members, is_int(num_members) and num_members >= 2, "an integer of at least 2")
        check_argument("seed", seed, is_int(seed), "an integer", TypeError)
        hparams = model.hparams
        members: list[nn.Module] = [model.net]
        for m in range(1, num_members):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 1_000 + m)
                members.append(NETWORKS[hparams["network"]](hparams["image_size"], hparams["num_classes"]))
        return cls(members, lr=hparams["lr"], own_data_order=own_data_order)

    def forward(self, inputs: Tensor) -> Tensor:
        """``[M, B, C]``: every member's class logits."""
        return self.ensemble(inputs)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        """The members' cross-entropies summed (each member gets the gradient it would get alone), risk-weighted."""
        num_members = self.ensemble.num_members
        if self.own_data_order:
            inputs, targets, *weight = (member_batches(part, num_members) for part in batch)
            logits = self.ensemble.forward_members(inputs)
        else:
            inputs, targets, *weight = batch
            logits = self(inputs)
            targets = targets.expand(num_members, -1)
            weight = [w.expand(num_members, -1) for w in weight]
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(logits.shape[:2])
        loss = (losses * weight[0]).mean(1).sum() if weight else losses.mean(1).sum()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """``val_loss`` and ``val_acc`` of the ensemble's prediction."""
        inputs, targets = batch
        log_probs = ensemble_log_probs(self(inputs))
        self.log("val_loss", F.nll_loss(log_probs, targets))
        self.log("val_acc", (log_probs.argmax(-1) == targets).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over every member's weights."""
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class _EnsembleMean(StepEvaluation):
    """Reads an ensemble's ``[M, B, C]`` logits as its prediction, ``log mean_m p_m`` (``[B, C]`` stays as it is)."""

    def _logits_check(self, logits: Tensor) -> Tensor:
        # Log-probabilities are their own log-softmax, so the evaluation's log_softmax leaves them unchanged.
        return super()._logits_check(ensemble_log_probs(logits) if logits.ndim == 3 else logits)


class EnsembleTestCurve(_EnsembleMean, TestCurve):
    """:class:`~lightning_bal.callbacks.TestCurve` of an ensemble: ``active/test_acc`` and ``test_nll`` of its mean."""

    __test__ = False


class EnsembleLabelledRisk(_EnsembleMean, LabelledRisk):
    """:class:`~lightning_bal.callbacks.LabelledRisk` of an ensemble: the NLL of its mean prediction over D_L."""


def ensemble_loader(datamodule: ActiveDataModule, num_members: int) -> ActiveDataModule:
    """``datamodule``, serving ``num_members`` times its batch and its epoch, for an :class:`EnsembleCNN`.

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))
        >>> datamodule = ensemble_loader(ActiveDataModule(data, batch_size=4, train_samples_per_epoch=16), 5)
        >>> datamodule.batch_size, datamodule.train_samples_per_epoch
        (20, 80)
    """
    if not isinstance(datamodule, ActiveDataModule):
        raise TypeError(
            f"Expected argument `datamodule` to be an ActiveDataModule, but got {type(datamodule).__name__}."
        )
    check_argument("num_members", num_members, is_int(num_members) and num_members >= 1, "a positive integer")
    datamodule.batch_size *= num_members
    if datamodule.train_samples_per_epoch is not None:
        datamodule.train_samples_per_epoch *= num_members
    return datamodule


def posterior_row(name: str, *, members: int = 5, swag: dict[str, Any] | None = None) -> Row:
    """The :class:`~lightning_bal.experiments.Row` of ``heuristic@posterior`` over a :class:`DropoutCNN`.

    The posteriors of the rows are in docs/experiments.md#rows-with-another-posterior; ``swag`` holds SWAG's
    keyword arguments over the rows' defaults.

    Examples:
        >>> row = posterior_row("bald@laplace")
        >>> row.heuristic, row.callback["posterior"]
        ('bald', LastLayerLaplace(last_layer=None, hessian_structure='full', prior_precision=1.0))
    """
    heuristic, posterior = split_row_name(name)
    check_argument("members", members, is_int(members) and members >= 2, "an integer of at least 2")
    if swag is not None:
        check_argument("swag", swag, isinstance(swag, Mapping), "a mapping of SWAG's keyword arguments", TypeError)
        unknown = sorted(set(swag) - set(inspect.signature(SWAG).parameters))
        if unknown:
            raise ValueError(f"Expected argument `swag` to hold arguments of SWAG, but {unknown} are not among them.")
    check_argument("name", name, posterior is not None, "`heuristic@posterior`")
    if posterior == "mc_dropout":
        return Row(heuristic, callback={"posterior": MCDropout()})
    if posterior == "swag":
        settings = {"rank": 20, "every_n_batches": 4, "burn_in_epochs": 2, **(swag or {})}
        return Row(heuristic, callback={"posterior": SWAG(**settings)})
    if posterior == "laplace":
        return Row(heuristic, callback={"posterior": LastLayerLaplace()})

    def make(model: pl.LightningModule, seed: int) -> pl.LightningModule:
        if not isinstance(model, DropoutCNN):
            raise TypeError(
                f"The `@ensemble` rows need the experiment's model to be a `DropoutCNN`, got {type(model)}."
            )
        return EnsembleCNN.around(copy.deepcopy(model), members, seed)

    return Row(
        heuristic,
        model=make,
        datamodule=lambda datamodule: ensemble_loader(datamodule, members),
        callback={"posterior": EnsemblePosterior(), "evaluations": [EnsembleTestCurve(), EnsembleLabelledRisk()]},
    )
