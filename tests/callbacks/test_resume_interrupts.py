"""A run interrupted inside an active learning step resumes identically from Lightning's exception checkpoint (#27).

An exception (or Ctrl-C) raised in any phase of the step makes ``OnExceptionCheckpoint`` save the run as it stands.
The step must count as not done in that checkpoint, whatever it had done in memory: resumed from it, the run redoes
the step with the same seeds and ends with the uninterrupted run's labelled set, step count and history. The model
reseeds the global RNG at every batch, so training depends only on the data it sees.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import OnExceptionCheckpoint

from lightning_bal import ActiveLearningCallback
from lightning_bal.annotation import QueryFiles
from lightning_bal.callbacks import Convergence
from lightning_bal.callbacks.evaluation import TestCurve
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.heuristics import BALD
from lightning_bal.mc.posterior import MCDropout
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_datamodule, make_trainer

MAX_EPOCHS = {False: 4, True: 6}  # without and with `Convergence`: 4 and 3 steps
STEP = 1  # the step interrupted: the second, so that a step is already recorded before it
INITIAL, QUERY = 6, 4


class BatchSeeded(DropoutClassifier):
    def on_train_batch_start(self, batch, batch_idx):
        torch.manual_seed(10_000 * self.current_epoch + batch_idx)


class Interrupted(Exception):
    """Raised by a patched phase of the step."""


class Interrupt:
    """Makes the ``calls``-th call of a patched function during step ``step`` raise ``error``, once.

    ``partial``, if given, runs with the call's arguments first: the phase is left half done.
    """

    running: ActiveLearningCallback | None = None  # the callback of the run being interrupted

    def __init__(
        self, step: int, calls: int = 1, error: type[BaseException] = Interrupted, partial: Any = None
    ) -> None:
        self.step, self.calls, self.error, self.partial = step, calls, error, partial

    def patch(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[None]:
        """Patch ``owner.name``; returns the list of the calls counted (the interrupt came if it holds ``calls``)."""
        original, seen = getattr(owner, name), []

        def interrupted(*args: Any, **kwargs: Any) -> Any:
            if Interrupt.running is not None and Interrupt.running.steps_done == self.step:
                seen.append(None)
                if len(seen) == self.calls:
                    if self.partial is not None:
                        self.partial(original, *args, **kwargs)
                    raise self.error(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, interrupted)
        return seen


def _label_half(record: Callable[..., None], ledger: LabelLedger, indices, values, drawn) -> None:
    half = indices.numel() // 2
    record(ledger, indices[:half], None if values is None else values[:half], None if drawn is None else drawn[:half])


PHASES: dict[str, tuple[Any, str, Interrupt]] = {
    "posterior-fit": (MCDropout, "fit", Interrupt(STEP)),
    "evaluation": (TestCurve, "__call__", Interrupt(STEP)),
    # The second pool batch: the model is in MC mode and half the pool is scored.
    "pool-pass": (BALD, "score", Interrupt(STEP, calls=2)),
    "pool-pass-ctrl-c": (BALD, "score", Interrupt(STEP, calls=2, error=KeyboardInterrupt)),
    "selection": (BALD, "select_sharded", Interrupt(STEP)),
    # Half of the selection is labelled when the interrupt comes: the checkpoint must not keep that half.
    "labelling": (LabelLedger, "_record", Interrupt(STEP, partial=_label_half)),
}


def _run(
    root: Path,
    reset_weights: bool,
    converge: bool,
    ckpt_path: Path | None = None,
    annotator: QueryFiles | None = None,
) -> tuple[torch.Tensor, int, list[dict[str, float]], ActiveLearningCallback, Any]:
    pl.seed_everything(0)
    dm = make_datamodule(n=60, initial=INITIAL, batch_size=8, test_dataset=blobs(30, seed=2))
    callback = ActiveLearningCallback(
        "bald",
        query_size=QUERY,
        iterations=4,
        reset_weights=reset_weights,
        convergence=Convergence("val_loss", patience=1, max_epochs=2) if converge else None,
        evaluations=[TestCurve()],
        annotator=annotator,
    )
    Interrupt.running = callback
    on_exception = OnExceptionCheckpoint(dirpath=root, filename="interrupted")
    trainer = make_trainer(root, [callback, on_exception], max_epochs=MAX_EPOCHS[converge], enable_checkpointing=True)
    try:
        trainer.fit(BatchSeeded(), datamodule=dm, ckpt_path=ckpt_path)
    finally:
        Interrupt.running = None
    figures = [{k: v for k, v in h.items() if k != "active/pool_pass_seconds"} for h in callback.history]
    return dm.acquired_at.clone(), callback.steps_done, figures, callback, dm


_FULL: dict[tuple[bool, bool], tuple[torch.Tensor, int, list[dict[str, float]]]] = {}


def _uninterrupted(root: Path, reset_weights: bool, converge: bool) -> tuple[Any, ...]:
    key = (reset_weights, converge)
    if key not in _FULL:
        _FULL[key] = _run(root, reset_weights, converge)[:3]
    return _FULL[key]


def _interrupt(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, at: Interrupt, run: Callable[[], Any]) -> None:
    with monkeypatch.context() as patch:
        seen = at.patch(patch, owner, name)
        handler = signal.getsignal(signal.SIGINT)
        try:
            run()
        except (Interrupted, SystemExit):
            pass
        else:
            # After Ctrl-C and the callbacks' `on_exception`, Lightning 2.2 ends `fit` quietly; 2.6 raises
            # `SystemExit`. Both leave SIGINT ignored.
            assert at.error is KeyboardInterrupt, "the interrupt must end `fit`"
        finally:
            signal.signal(signal.SIGINT, handler)
    assert len(seen) == at.calls, "the interrupt must come"


@pytest.mark.slow
@pytest.mark.parametrize("converge", [False, True], ids=["every-epoch", "convergence"])
@pytest.mark.parametrize("reset_weights", [False, True], ids=["keep-weights", "reset-weights"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_interrupt_in_each_phase_resumes_like_an_uninterrupted_run(
    tmp_path, monkeypatch, phase, reset_weights, converge
):
    full = _uninterrupted(tmp_path / "full", reset_weights, converge)
    assert full[1] > STEP + 1, "the run must go on after the interrupted step"
    owner, name, at = PHASES[phase]
    _interrupt(monkeypatch, owner, name, at, lambda: _run(tmp_path / "part", reset_weights, converge))
    ckpt = tmp_path / "part" / "interrupted.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    # The labelled set of the checkpoint is the one before the step: never part of the step's selection.
    assert int((saved["ActiveDataModule"]["acquired_at"] >= 0).sum()) == INITIAL + STEP * QUERY
    assert saved["callbacks"]["ActiveLearningCallback"]["steps_done"] == STEP
    resumed = _run(tmp_path / "resumed", reset_weights, converge, ckpt_path=ckpt)
    assert torch.equal(resumed[0], full[0]), "labelled set differs"
    assert resumed[1] == full[1]
    assert len(resumed[2]) == len(full[2])
    for got, expected in zip(resumed[2], full[2], strict=True):
        assert got == pytest.approx(expected)


def _query(root: Path) -> tuple[str, ...]:
    return tuple(path.read_text() for path in sorted((root / "annotation").glob("query-step*.csv")))


@pytest.mark.slow
@pytest.mark.parametrize("reset_weights", [False, True], ids=["keep-weights", "reset-weights"])
def test_interrupt_while_writing_the_query_file_resumes_like_an_uninterrupted_run(tmp_path, monkeypatch, reset_weights):
    # With an annotator the first step hands its query over and ends `fit`.
    full = _run(tmp_path / "full", reset_weights, False, annotator=QueryFiles("csv"))
    assert _query(tmp_path / "full")
    full_state = full[3].state_dict()
    assert len(full[2]) == 1

    part = tmp_path / "part"
    run = lambda: _run(part, reset_weights, False, annotator=QueryFiles("csv"))  # noqa: E731
    _interrupt(monkeypatch, QueryFiles, "write", Interrupt(1), run)  # the step is counted before the hand-over
    saved = torch.load(part / "interrupted.ckpt", weights_only=True)
    assert saved["ActiveDataModule"]["pending_query"].numel() == 0, "the query must not be recorded"
    assert saved["callbacks"]["ActiveLearningCallback"]["steps_done"] == 0
    resumed = _run(tmp_path / "resumed", reset_weights, False, part / "interrupted.ckpt", QueryFiles("csv"))
    assert _query(tmp_path / "resumed") == _query(tmp_path / "full")
    assert resumed[4].ledger.pending_query == full[4].ledger.pending_query
    assert resumed[1] == full[1] == 1
    for got, expected in zip(resumed[2], full[2], strict=True):
        assert got == pytest.approx(expected)
    state = resumed[3].state_dict()
    assert torch.equal(state["last_selection"], full_state["last_selection"])
    assert state["last_step_epoch"] == full_state["last_step_epoch"]
    # The same query file, each in its own run's folder.
    query_files = [Path(s["annotator"].pop("query_file")) for s in (state, full_state)]
    assert query_files[0].relative_to(tmp_path / "resumed") == query_files[1].relative_to(tmp_path / "full")
    assert state["annotator"] == full_state["annotator"]
