"""Active learning for regression on scikit-learn's bundled diabetes data: heteroscedastic MLP, GaussianMI vs Variance.

    python examples/regression.py --heuristics gaussian_mi variance random

The model predicts a mean and a log-variance (a Gaussian likelihood head) with dropout before each layer; the
callback scores the pool with the K MC predictions: ``variance`` of the means, or ``gaussian_mi``, the mutual
information 1/2 log(1 + Var_k mu_k / mean sigma^2_k), which discounts noisy regions. ``RegressionCurve`` logs
test RMSE and NLL against the number of labelled samples (TensorBoard under ``outputs/regression``); the final
figures are printed and written to a CSV.
"""

from __future__ import annotations

import argparse
import csv
import logging
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_diabetes
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import RegressionCurve
from lightning_bal.heuristics import GaussianMI, Heuristic, Random, Variance


def diabetes(seed: int = 0, test_size: int = 100) -> tuple[TensorDataset, TensorDataset]:
    """The 442 diabetes patients as ``(features [10], standardised target)``, split into a pool and a test set."""
    data = load_diabetes()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.float32)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = order[:test_size], order[test_size:]
    mean, std = x[train].mean(0), x[train].std(0)
    y_mean, y_std = y[train].mean(), y[train].std()
    x, y = (x - mean) / std, (y - y_mean) / y_std
    return TensorDataset(x[train], y[train]), TensorDataset(x[test], y[test])


class HeteroscedasticMLP(pl.LightningModule):
    """Returns ``{"mean": [B], "log_var": [B]}``; trained with the Gaussian negative log-likelihood."""

    def __init__(self, features: int = 10, hidden: int = 64, dropout: float = 0.1, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.trunk = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, log_var = self.head(self.trunk(x)).unbind(-1)
        return {"mean": mean, "log_var": log_var.clamp(-8.0, 4.0)}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self(x)
        loss = F.gaussian_nll_loss(out["mean"], y, out["log_var"].exp())
        self.log("train_nll", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def make_heuristic(name: str) -> Heuristic:
    """``gaussian_mi``, ``variance`` (of the predicted means) or ``random``."""
    if name == "gaussian_mi":
        return GaussianMI(mean="mean", log_variance="log_var")
    if name == "variance":
        return Variance(output="mean")
    if name == "random":
        return Random()
    raise ValueError(f"Expected argument `name` to be 'gaussian_mi', 'variance' or 'random', but got {name!r}.")


def run(
    heuristic: str = "gaussian_mi",
    initial: int = 20,
    query_size: int = 10,
    steps: int = 10,
    epochs_per_step: int = 20,
    iterations: int = 20,
    seed: int = 0,
    output_dir: str | Path = "outputs/regression",
    logger: bool = True,
) -> dict[str, float]:
    """One active learning run; returns the last step's figures (``active/test_rmse``, ``active/test_nll``, ...)."""
    pl.seed_everything(seed, workers=True)
    train, test = diabetes(seed)
    datamodule = ActiveDataModule(
        train,
        test_dataset=test,
        task="regression",
        initial_labels=initial,
        batch_size=16,
        train_samples_per_epoch=128,
        seed=seed,
    )
    callback = ActiveLearningCallback(
        make_heuristic(heuristic),
        query_size=query_size,
        iterations=iterations,
        every_n_epochs=epochs_per_step,
        label_budget=initial + steps * query_size,
        evaluations=[RegressionCurve("test", output="mean", log_variance="log_var")],
    )
    trainer = pl.Trainer(
        max_epochs=-1,
        callbacks=[callback],
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        log_every_n_steps=128 // 16,  # once per epoch of 128 samples in batches of 16, as the datamodule draws them
        default_root_dir=str(output_dir),
        logger=TensorBoardLogger(str(output_dir), name=heuristic) if logger else False,
    )
    trainer.fit(HeteroscedasticMLP(), datamodule=datamodule)
    last = callback.history[-1]
    return {key: float(value) for key, value in last.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heuristics", nargs="+", default=["gaussian_mi", "variance", "random"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--epochs-per-step", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="outputs/regression")
    args = parser.parse_args()
    rows = []
    for name in args.heuristics:
        figures = run(
            name,
            query_size=args.query_size,
            steps=args.steps,
            epochs_per_step=args.epochs_per_step,
            seed=args.seed,
            output_dir=args.output_dir,
        )
        rows.append({"heuristic": name, **figures})
        print(name, {k: round(v, 4) for k, v in figures.items() if "test" in k or "labelled" in k})
    path = Path(args.output_dir) / "final.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({key for row in rows for key in row}))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    # Lightning's own noise, not this run's: its logger advertisement on every fit, and the torch deprecation its
    # CombinedLoader triggers with recent torch. Set here, in the script: a library leaves the filters to its user.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
