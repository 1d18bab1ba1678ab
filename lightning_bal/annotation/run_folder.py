"""One run, one place: a resumed annotation run logs into the logger version of the run it continues.

Lightning's loggers open a new ``version_N`` at every ``fit`` unless given ``version=``, which would scatter a run
stopped at each query over many folders. The annotator records the logger's version in the checkpoint and
:func:`keep_logger_version` points the resumed logger (and ``ModelCheckpoint``) back at it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

__all__ = ["keep_logger_version", "logger_version"]


def logger_version(trainer: pl.Trainer) -> dict[str, Any]:
    """The first logger's root folder and version, as plain values (``{}`` without a versioned logger).

    Example:
        >>> logger_version(pl.Trainer(logger=False))
        {}
    """
    logger = trainer.logger
    version = getattr(logger, "version", None)
    root = getattr(logger, "root_dir", None)
    if logger is None or root is None or not isinstance(version, (int, str)) or isinstance(version, bool):
        return {}
    return {"root_dir": str(root), "version": version}


def _records(path: Path) -> int:
    """The number of records of a TensorBoard event file (a fresh one holds one: the file version)."""
    data = path.read_bytes()
    count = offset = 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[offset : offset + 8])
        offset += 12 + length + 4  # length, its checksum, the record, its checksum
        count += 1
    return count


def _unused(folder: Path) -> bool:
    """Whether ``folder`` holds nothing a logger wrote beyond opening it (an empty event file at most)."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return all(path.name.startswith("events.out.tfevents.") and _records(path) <= 1 for path in files)


def keep_logger_version(trainer: pl.Trainer, recorded: dict[str, Any]) -> None:
    """Make the trainer's logger write into the ``recorded`` version (under another root: a warning only)."""
    logger: Any = trainer.logger  # a logger with a version: TensorBoardLogger, CSVLogger or alike
    root, version = recorded.get("root_dir"), recorded.get("version")
    if logger is None or root is None or version is None or not hasattr(logger, "_version"):
        return
    if Path(logger.root_dir).resolve() != Path(root).resolve():
        rank_zero_warn(
            f"The checkpoint was written by a run logging to {root!r} (version {version!r}), but this trainer's logger"
            f" writes to {str(logger.root_dir)!r}: the resumed run's metrics, queries and checkpoints go there."
            f" To keep the run in one place, log to the same folder (with `version={version!r}`)."
        )
        return
    if logger.version == version:
        return
    opened = Path(logger.log_dir)
    experiment = getattr(logger, "_experiment", None)
    if experiment is not None and hasattr(experiment, "close"):
        experiment.close()
    logger._experiment = None
    logger._version = version
    kept = Path(logger.log_dir)
    for callback in trainer.checkpoint_callbacks:
        # A `ModelCheckpoint` without `dirpath` resolved its folder inside the version opened for this fit.
        if isinstance(callback, ModelCheckpoint) and callback.dirpath == str(opened / "checkpoints"):
            callback.dirpath = str(kept / "checkpoints")
    if trainer.is_global_zero and opened.is_dir() and _unused(opened):
        for path in sorted(opened.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        opened.rmdir()
    rank_zero_info(f"Resuming the run logged in {str(kept)!r}: metrics, queries and checkpoints go there again.")
