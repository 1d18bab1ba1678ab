"""Annotator mode of the callback: hand each query to people through files, checkpoint, and end ``fit``."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from lightning_bal.annotation.agreement import log_agreement
from lightning_bal.annotation.checkpoint import FORMATS, load_label_state, write_query
from lightning_bal.annotation.checkpoint_entries import write_status
from lightning_bal.annotation.label_studio import check_data_key
from lightning_bal.annotation.predict import predict_classes
from lightning_bal.data import ActiveDataModule
from lightning_bal.functional.outputs import OutputKey
from lightning_bal.mc.posterior import StepFacts
from lightning_bal.utilities.checks import check_one_of

__all__ = ["QueryFiles", "QueryStep", "keep_logger_version", "logger_version"]

Format = Literal["csv", "json", "label_studio"]


class QueryStep(StepFacts, Protocol):
    """What :meth:`QueryFiles.hand_over` reads of the step: the callback hands it its step's context."""

    @property
    def output(self) -> OutputKey | None: ...  # noqa: D102


class QueryFiles:
    """Send each active learning query to a labelling team as a file, then stop the run until the answers are in.

    Passed to :class:`~lightning_bal.ActiveLearningCallback` as ``annotator=QueryFiles()``; the loop (files, import,
    resume) is in docs/annotators.md#the-loop, the Label Studio arguments in docs/annotators.md#label-studio.

    Args:
        folder: where queries and checkpoints go (default: ``<trainer.log_dir or default_root_dir>/annotation``).
        predictions: also record the model's guess (class and probability) for each queried item.

    Examples:
        >>> annotator = QueryFiles(format="csv")
        >>> annotator.format, annotator.suffix
        ('csv', '.csv')
    """

    def __init__(
        self,
        format: Format = "csv",
        folder: str | Path | None = None,
        predictions: bool = False,
        data_key: str = "image",
        data_prefix: str = "",
        label_names: list[str] | None = None,
    ) -> None:
        check_one_of("format", format, FORMATS)
        if predictions and format == "label_studio" and label_names is None:
            raise ValueError(
                "Expected argument `label_names` with `predictions=True` (Label Studio shows class names)."
            )
        self.format = format
        self.folder = None if folder is None else Path(folder)
        self.predictions = bool(predictions)
        self.data_key = check_data_key("data_key", data_key)
        self.data_prefix = data_prefix
        self.label_names = None if label_names is None else list(label_names)
        self.written: list[Path] = []
        self.recorded: dict[str, dict[str, Any]] = {}
        self.corrections: list[dict[str, Any]] = []
        self.run: dict[str, Any] = {}

    @property
    def suffix(self) -> str:
        """The query file's extension."""
        return ".csv" if self.format == "csv" else ".json"

    def folder_for(self, trainer: pl.Trainer) -> Path:
        """The folder this run's queries and checkpoints go to."""
        if self.folder is not None:
            return self.folder
        return Path(trainer.log_dir or trainer.default_root_dir) / "annotation"

    def hand_over(self, context: QueryStep, selection: Tensor, scores: Tensor | None) -> tuple[Path, Path]:
        """Record the query, write it, checkpoint and stop; returns the query file and the checkpoint.

        Every rank calls this and rank zero writes the files; ``scores`` are rank zero's, in selection order (``None``
        or empty when unknown).
        """
        trainer, datamodule = context.trainer, context.datamodule
        leftover = datamodule.ledger.pending_query
        indices = leftover + selection.tolist()
        datamodule.query(indices, new_step=True)
        step = datamodule.step
        folder = Path(trainer.strategy.broadcast(str(self.folder_for(trainer)), src=0))
        query_path = folder / f"query-step{step:03d}{self.suffix}"
        ckpt_path = folder / f"annotation-step{step:03d}.ckpt"
        ids = [str(item) for item in datamodule.ids]
        # Scores of items still unanswered come from the query that asked for them first.
        recorded = {**self.recorded.get("scores", {}), **self._scores(selection, scores, ids)}
        self.recorded = {"scores": {ids[i]: recorded[ids[i]] for i in indices if ids[i] in recorded}}
        if self.predictions:
            loader = datamodule.inputs_dataloader(datamodule.pool_dataset, torch.tensor(indices, dtype=torch.long))
            classes, confidences = predict_classes(context.pl_module, loader, context.output)
            self.recorded["predictions"] = {
                ids[i]: [int(c), float(p)]
                for i, c, p in zip(indices, classes.tolist(), confidences.tolist(), strict=True)
            }
        owner = [cb for cb in trainer.callbacks if getattr(cb, "annotator", None) is self]  # type: ignore[attr-defined]
        budget = getattr(owner[0], "label_budget", None) if owner else None
        # What `lightning-bal status` shows the team, and the place a resumed run logs into again.
        self.run = {
            **self.run,
            "query_file": str(query_path),
            "label_budget": budget,
            "logger": logger_version(trainer),
        }
        if trainer.is_global_zero:
            folder.mkdir(parents=True, exist_ok=True)
            self.write(query_path, datamodule)
        # The full checkpoint (callbacks, optimizers, loops): `fit(ckpt_path=...)` resumes the run from it.
        trainer.save_checkpoint(ckpt_path, weights_only=False)
        if trainer.is_global_zero:
            # What `lightning-bal status` reads without torch.
            saved = load_label_state(ckpt_path)
            write_status(ckpt_path, saved.status(), saved.annotator_state.get("label_names"))
        trainer.should_stop = True
        self.written.append(query_path)
        rank_zero_info(
            f"Active learning query of step {step}: {len(indices)} items ({len(leftover)} still unanswered from"
            f" before) written to {str(query_path)!r}; checkpoint {str(ckpt_path)!r}. Training stops here. Import the"
            f" answers with `lightning-bal import {ckpt_path} ANSWERS` and resume with"
            f" `trainer.fit(..., ckpt_path={str(ckpt_path)!r})`."
        )
        return query_path, ckpt_path

    @staticmethod
    def _scores(selection: Tensor, scores: Tensor | None, ids: list[str]) -> dict[str, float]:
        if scores is None or scores.numel() != selection.numel():
            return {}  # off rank zero, or a heuristic without scores
        return {ids[i]: float(s) for i, s in zip(selection.tolist(), scores.tolist(), strict=True)}

    def state_dict(self) -> dict[str, Any]:
        """The pending query's scores and model guesses by id, the label corrections, where the run writes."""
        return {
            **{key: dict(value) for key, value in self.recorded.items()},
            "corrections": [dict(row) for row in self.corrections],
            **({"label_names": list(self.label_names)} if self.label_names is not None else {}),
            **{key: value for key, value in self.run.items() if value is not None},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if not isinstance(state, Mapping):
            raise TypeError(f"Expected the `QueryFiles` state to be a mapping (its `state_dict()`), got {state!r:.80}.")
        self.recorded = {key: dict(value) for key, value in state.items() if key in ("scores", "predictions")}
        self.corrections = [dict(row) for row in state.get("corrections") or []]
        kept = ("query_file", "label_budget", "logger", "answers", "agreement")  # answers: several annotators
        self.run = {key: state[key] for key in kept if key in state}

    def on_load_checkpoint(self, trainer: pl.Trainer, callback_state: Any) -> None:
        """Before the checkpoint's states load: log into the logger version the checkpoint was written with."""
        state = callback_state.get("annotator") if isinstance(callback_state, dict) else None
        recorded = state.get("logger") if isinstance(state, dict) else None
        keep_logger_version(trainer, recorded if isinstance(recorded, dict) else {})
        log_agreement(trainer, state)

    def write(self, path: Path, datamodule: ActiveDataModule) -> Path:
        """Write the datamodule's pending query to ``path`` in this object's format, with the recorded scores."""
        studio = {"data_key": self.data_key, "data_prefix": self.data_prefix, "label_names": self.label_names}
        return write_query(path, self.format, datamodule.ledger, datamodule.ids, self.recorded, **studio)


def logger_version(trainer: pl.Trainer) -> dict[str, Any]:
    """The first logger's root folder and version, as plain values (``{}`` without a versioned logger)."""
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
    """Make the trainer's logger write into the ``recorded`` version, so that a resumed run stays in one folder.

    Under another root it only warns (docs/annotators.md#the-loop, "One run, one place").
    """
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
        shutil.rmtree(opened)
    rank_zero_info(f"Resuming the run logged in {str(kept)!r}: metrics, queries and checkpoints go there again.")
