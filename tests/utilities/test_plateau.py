"""The one rule for a monitor's direction, used by every class that takes a monitor, and the layering of Plateau."""

import ast
from pathlib import Path

import pytest

import lightning_bal
from lightning_bal.annotation import MetricPlateau, TargetReached
from lightning_bal.callbacks import Convergence, Plateau
from lightning_bal.utilities.plateau import monitor_mode

ACCURACY_LIKE = ["val_acc", "test_acc", "val/accuracy", "valAcc", "val_f1", "val_auroc", "val_auc", "val_precision"]
ACCURACY_LIKE += ["val_recall", "val_iou", "val_jaccard", "val_map", "val_map50", "val_r2", "val_kappa", "train-acc5"]
LOSS_LIKE = ["val_loss", "train_loss", "val/loss", "valLoss", "val_error", "val_nll", "val_mse", "val_mae"]
LOSS_LIKE += ["val_rmse", "val_ece", "val_brier", "loss"]


@pytest.mark.parametrize(
    ("monitor", "mode"), [*((name, "max") for name in ACCURACY_LIKE), *((name, "min") for name in LOSS_LIKE)]
)
def test_every_monitor_taking_class_reads_the_mode_from_the_name(monitor, mode):
    assert monitor_mode(monitor) == mode
    assert Plateau(monitor=monitor).mode == mode
    assert Convergence(monitor).plateau.mode == mode
    assert MetricPlateau(monitor).plateau.mode == mode
    assert TargetReached(monitor, 0.5).mode == mode


@pytest.mark.parametrize("monitor", ["val_score", "val_acc_loss", "accumulated", "val_lossy", "val_mapping"])
def test_a_name_that_tells_nothing_or_both_directions_needs_a_mode(monitor):
    for make in (monitor_mode, lambda m: Plateau(monitor=m), Convergence, MetricPlateau, lambda m: TargetReached(m, 0)):
        with pytest.raises(ValueError, match=rf"`mode`.*'min' or 'max'.*{monitor!r}"):
            make(monitor)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_an_explicit_mode_wins_over_the_name(mode):
    assert monitor_mode("val_acc", mode) == monitor_mode("val_score", mode) == mode
    assert Convergence("val_loss", mode=mode).plateau.mode == mode
    assert MetricPlateau("val_acc", mode=mode).plateau.mode == mode
    assert TargetReached("val_acc", 0.5, mode=mode).mode == mode


def test_rising_accuracy_is_an_improvement_by_default():
    """The trap of issue #28: `Convergence("val_acc")` minimised accuracy, so a rising curve looked stalled."""
    convergence = Convergence("val_acc", patience=2)
    for value in (0.5, 0.7, 0.9):
        convergence.observe(value, {}, {"val_acc": value})
    assert not convergence.due(3)
    assert convergence.plateau.best == 0.9


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(module, at the top level)`` of every import in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, id(node) in top) for alias in node.names)
    return found


def test_plateau_sits_below_the_callbacks_and_annotation_layers():
    """Issue #28: `Plateau` lives in utilities, which import no layer above them; its users import it at the top."""
    package = Path(lightning_bal.__file__).parent
    for path in (package / "utilities").glob("*.py"):
        above = [m for m, _ in _imports(path) if m.startswith("lightning_bal.") and ".utilities" not in m]
        assert above == [], f"{path.name} imports {above}"
    for user in ("annotation/stopping.py", "callbacks/convergence.py"):
        imports = _imports(package / user)
        assert ("lightning_bal.utilities.plateau", True) in imports
        assert [m for m, top in imports if not top and m.startswith("lightning_bal")] == [], user
