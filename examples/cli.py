"""The digits quick start configured from a YAML file through Lightning's ``LightningCLI``: no training code to write.

    python -m examples.cli fit --config examples/configs/digits.yaml
    python -m examples.cli fit --config examples/configs/digits.yaml --trainer.callbacks.init_args.heuristic=random

Run it from the repository root. The heuristic, query size, MC iterations and label budget are the init arguments of
the :class:`~lightning_bal.ActiveLearningCallback` listed under ``trainer.callbacks``; the datamodule options sit
under ``data``. ``python -m examples.cli fit --help`` lists every option.
"""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.cli import LightningCLI

from examples.digits_quickstart import DigitsCNN
from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.experiments import load_digits

__all__ = ["DigitsActiveDataModule", "main"]


class DigitsActiveDataModule(ActiveDataModule):
    """An :class:`~lightning_bal.ActiveDataModule` over scikit-learn's digits, built from plain arguments.

    The 1,797 digits are split with ``split_seed`` into a held-out test set of ``test_size`` images (the validation
    set, so ``val_acc`` is the active learning curve) and the training set of D_L and D_U. The other arguments are
    those of :class:`~lightning_bal.ActiveDataModule`.
    """

    def __init__(
        self,
        split_seed: int = 0,
        test_size: int = 500,
        initial_labels: int = 20,
        balanced_initial: bool = True,
        batch_size: int = 64,
        train_samples_per_epoch: int | None = 2048,
        max_pool_size: int | None = None,
        seed: int | None = 0,
    ) -> None:
        train_set, test_set = load_digits(split_seed, test_size)
        super().__init__(
            train_set,
            val_dataset=test_set,
            initial_labels=initial_labels,
            balanced_initial=balanced_initial,
            batch_size=batch_size,
            train_samples_per_epoch=train_samples_per_epoch,
            max_pool_size=max_pool_size,
            seed=seed,
        )


def main(argv: list[str] | None = None) -> list[tuple[int, float]]:
    """Run ``LightningCLI`` on ``argv`` (default: the command line); returns ``(labelled, val_acc)`` per step."""
    cli = LightningCLI(DigitsCNN, DigitsActiveDataModule, args=argv, save_config_kwargs={"overwrite": True})
    callbacks = [c for c in cli.trainer.callbacks if isinstance(c, ActiveLearningCallback)]  # type: ignore[attr-defined]
    if not callbacks:
        return []
    curve = [(int(h["active/num_labelled"]), float(h["active/val_acc"])) for h in callbacks[0].history]
    if cli.trainer.is_global_zero:
        print("labelled, val_acc:", ", ".join(f"({n}, {acc:.3f})" for n, acc in curve))
    return curve


if __name__ == "__main__":
    # Lightning's own noise, not this run's: its logger advertisement on every fit, and the torch deprecation its
    # CombinedLoader triggers with recent torch. Set here, in the script: a library leaves the filters to its user.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
