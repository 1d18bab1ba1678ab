"""TensorBoard: a custom-scalars layout of the active learning curves, and a headless render (docs/experiments.md)."""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CURVE_CHARTS", "add_layout", "layout", "plot_curves_from_events", "read_scalars", "write_layout"]

# Chart title -> regular expression over the tags. The first group holds the active learning curves.
CURVE_CHARTS: dict[str, str] = {
    "accuracy against labelled samples": r"active/\w*acc\w*",
    "loss and NLL against labelled samples": r"active/\w*(loss|nll)\w*",
    "calibration error against labelled samples": r"active/\w*ece\w*",
}
_OTHER_CHARTS: dict[str, dict[str, str]] = {
    "active learning: pool": {
        "labelled, pool and scored samples": r"active/num_(labelled|pool|scored)",
        "scores of the pool and of the selection": r"active/score_\w+",
        "labelled samples per class": r"active/labelled_class_\d+",
        "pool pass seconds and epochs per step": r"active/(pool_pass_seconds|epochs_trained)",
    }
}
_WITH_LAYOUT: weakref.WeakSet[Any] = weakref.WeakSet()


def layout(prefix: str = "active") -> dict[str, dict[str, list[Any]]]:
    """The custom-scalars layout: ``{category: {chart title: ["Multiline", [tag regex]]}}``."""
    groups = {"active learning curves (x: labelled samples)": CURVE_CHARTS, **_OTHER_CHARTS}
    return {
        category: {title: ["Multiline", [regex.replace("active/", f"{prefix}/", 1)]] for title, regex in charts.items()}
        for category, charts in groups.items()
    }


def add_layout(writer: Any, prefix: str = "active") -> bool:
    """Add :func:`layout` to a ``SummaryWriter`` once (later calls do nothing); returns whether it was added."""
    if writer in _WITH_LAYOUT:
        return False
    writer.add_custom_scalars(layout(prefix))
    _WITH_LAYOUT.add(writer)
    return True


def write_layout(log_dir: str | Path, prefix: str = "active") -> Path:
    """Write :func:`layout` into ``log_dir`` as its own event file, for every run under it; returns the folder."""
    from torch.utils.tensorboard import SummaryWriter

    folder = Path(log_dir)
    writer = SummaryWriter(str(folder))
    add_layout(writer, prefix)
    writer.close()
    return folder


def read_scalars(log_dir: str | Path, pattern: str = r"active/.*") -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The scalars whose tag matches ``pattern``, of every run under ``log_dir``: ``{run: {tag: [(step, value)]}}``.

    A run is a folder holding event files, named by its path relative to ``log_dir`` (``bald/seed_0``).

    Examples:
        >>> import tempfile
        >>> from torch.utils.tensorboard import SummaryWriter
        >>> folder = Path(tempfile.mkdtemp())
        >>> with SummaryWriter(str(folder / "bald")) as writer:
        ...     writer.add_scalar("active/val_acc", 0.5, 20)
        ...     writer.add_scalar("train_loss", 1.0, 7)
        >>> read_scalars(folder)
        {'bald': {'active/val_acc': [(20, 0.5)]}}
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = Path(log_dir)
    matcher = re.compile(pattern)
    runs: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for folder in sorted({path.parent for path in root.rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags = [tag for tag in accumulator.Tags()["scalars"] if matcher.fullmatch(tag)]
        if tags:
            runs[folder.relative_to(root).as_posix()] = {
                tag: [(int(event.step), float(event.value)) for event in accumulator.Scalars(tag)] for tag in tags
            }
    return runs


def plot_curves_from_events(
    log_dir: str | Path, path: str | Path, charts: Mapping[str, str] | None = None, runs: Sequence[str] | None = None
) -> Path:
    """Render the custom-scalars charts of ``log_dir`` to a PNG, as the Custom Scalars tab draws them.

    One panel per chart that has data (``charts``: ``{title: tag regex}``, default :data:`CURVE_CHARTS`), one line per
    run (default: all) and matching tag. Needs matplotlib (``pip install 'lightning-bal[examples]'``).
    """
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("Rendering the curves needs matplotlib: `pip install 'lightning-bal[examples]'`.") from err
    charts = dict(CURVE_CHARTS if charts is None else charts)
    scalars = read_scalars(log_dir)
    if runs is not None:
        scalars = {run: tags for run, tags in scalars.items() if run in runs}
    panels = {
        title: [
            (run, tag, points)
            for run, tags in scalars.items()
            for tag, points in tags.items()
            if re.fullmatch(regex, tag)
        ]
        for title, regex in charts.items()
    }
    panels = {title: lines for title, lines in panels.items() if lines}
    if not panels:
        raise ValueError(
            f"Expected scalars matching {sorted(charts.values())} under `log_dir={log_dir}`, but found none."
        )
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items(), strict=True):
        for run, tag, points in lines:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values, marker="o", markersize=2.5, label=f"{run} {tag.split('/', 1)[-1]}")
        ax.set_title(title)
        ax.set_xlabel("labelled samples (TensorBoard's step)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
