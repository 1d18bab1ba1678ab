"""Files as harness state: a checkpoint and its folder, compared byte for byte before and after a refused call."""

from __future__ import annotations

import hashlib
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import torch

from lightning_bal import ActiveDataModule
from lightning_bal.annotation.cli import main
from tests.helpers.models import blobs

__all__ = ["CliError", "Folder", "lightning_bal", "make_checkpoint"]

IDS = [f"doc{i}" for i in range(15)]
PENDING = ["doc5", "doc9", "doc11"]


class Folder(dict):
    """A folder whose :meth:`items` are read afresh at each look: every file's name and the hash of its bytes.

    :func:`~tests.bad_inputs.harness.snapshot` reads a dict through ``items()``, so passing a ``Folder`` as state
    proves that a refused command changed no file, wrote no new one (an output, a stray temporary) and removed none.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def items(self) -> Any:  # type: ignore[override]
        return [
            (str(file.relative_to(self.path)), hashlib.sha256(file.read_bytes()).hexdigest())
            for file in sorted(self.path.rglob("*"))
            if file.is_file()
        ]


class CliError(Exception):
    """``lightning-bal`` exited non-zero; the message is ``exit <status>: <what it printed on stderr>``."""


def lightning_bal(*args: Any) -> str:
    """Run the command line as a user does (argument parsing included) and return its output; raise on failure."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse refuses a bad flag with exit status 2
            status = exit_.code
    if status != 0:
        raise CliError(f"exit {status}: {' '.join(err.getvalue().split())}")  # argparse wraps its usage lines
    return out.getvalue()


def make_checkpoint(folder: Path, **replace: Any) -> Path:
    """A stopped annotation run: 15 items, 3 classes, doc0..doc2 labelled, doc5, doc9, doc11 pending at step 1.

    ``replace`` overrides top-level entries of the checkpoint or, as ``datamodule_<key>``, entries of the
    datamodule's state (to build malformed checkpoints).
    """
    dm = ActiveDataModule(blobs(15), ids=IDS, task="classification", num_classes=3, seed=0)
    dm.label([0, 1, 2])
    dm.query([5, 9, 11], new_step=True)
    annotator = {
        "scores": {"doc5": 0.5, "doc9": 0.25, "doc11": 0.125},
        "predictions": {"doc5": [0, 0.75], "doc9": [2, 0.5], "doc11": [1, 0.625]},
    }
    state = dm.state_dict()
    state.update({key.removeprefix("datamodule_"): v for key, v in replace.items() if key.startswith("datamodule_")})
    checkpoint = {
        "ActiveDataModule": state,
        "callbacks": {"ActiveLearningCallback": {"steps_done": 1, "history": [], "annotator": annotator}},
    }
    checkpoint.update({key: v for key, v in replace.items() if not key.startswith("datamodule_")})
    path = folder / "run.ckpt"
    torch.save(checkpoint, path)
    return path
