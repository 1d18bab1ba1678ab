import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import Convergence
from tests.helpers.runs import SeededDropoutClassifier, make_datamodule, make_trainer

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, max_epochs, ckpt_path=None, val=True, reset_weights=False, **callback_kwargs):
    pl.seed_everything(0)
    dm = make_datamodule(val=val)
    callback = ActiveLearningCallback(
        "bald", query_size=4, iterations=5, seed=5, reset_weights=reset_weights, **callback_kwargs
    )
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer = make_trainer(tmp_path, [callback, checkpoint], max_epochs=max_epochs, enable_checkpointing=True)
    trainer.fit(SeededDropoutClassifier(), datamodule=dm, ckpt_path=ckpt_path)
    return dm, callback


@pytest.mark.parametrize(("val", "reset_weights"), [(True, False), (True, True), (False, False)])
def test_stopped_and_resumed_run_labels_like_an_uninterrupted_one(tmp_path, val, reset_weights):
    full, full_callback = _run(tmp_path / "full", 4, val=val, reset_weights=reset_weights)
    _run(tmp_path / "part", 2, val=val, reset_weights=reset_weights)
    ckpt = tmp_path / "part" / "ckpt" / "epoch=1.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert any(key.startswith("ActiveLearningCallback") for key in state["callbacks"])
    resumed, resumed_callback = _run(tmp_path / "part", 4, ckpt_path=ckpt, val=val, reset_weights=reset_weights)
    assert torch.equal(resumed.acquired_at, full.acquired_at)
    assert resumed_callback.steps_done == full_callback.steps_done == 4
    assert torch.equal(resumed_callback.last_selection, full_callback.last_selection)


@pytest.mark.parametrize("stop_after", [2, 3, 4])
def test_resumed_convergence_tracking_ends_steps_where_an_uninterrupted_run_does(tmp_path, stop_after):
    """With `monitor`, a checkpoint in the middle of a step keeps the best value, the wait and the best weights."""

    def converge():
        return {"convergence": Convergence("val_loss", patience=2, max_epochs=3), "reset_weights": True}

    full, full_callback = _run(tmp_path / "full", 8, **converge())
    _run(tmp_path / "part", stop_after, **converge())
    ckpt = tmp_path / "part" / "ckpt" / f"epoch={stop_after - 1}.ckpt"
    resumed, resumed_callback = _run(tmp_path / "part", 8, ckpt_path=ckpt, **converge())
    assert torch.equal(resumed.acquired_at, full.acquired_at)
    assert resumed_callback.steps_done == full_callback.steps_done >= 2
    resumed_figures, full_figures = resumed_callback.history[-1], full_callback.history[-1]
    del resumed_figures["active/pool_pass_seconds"], full_figures["active/pool_pass_seconds"]
    assert resumed_figures == pytest.approx(full_figures)


def _script(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tests.callbacks.resume_script", str(tmp_path), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_run_killed_during_a_pool_pass_resumes_without_losing_or_duplicating_labels(tmp_path):
    full = _script(tmp_path / "full", 4, tmp_path / "full.pt")
    assert full.returncode == 0, full.stderr[-3000:]
    # The first pool pass reads 84 items (+2 for the determinism check); die 40 reads into the second one.
    killed = _script(tmp_path / "run", 4, tmp_path / "never.pt", "--kill-after-pool-reads", 126)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "never.pt").exists()
    last = tmp_path / "run" / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=True)["ActiveDataModule"]["step"] == 1, "killed during step 2"
    resumed = _script(tmp_path / "run", 4, tmp_path / "resumed.pt", "--ckpt", last)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = torch.load(tmp_path / "full.pt", weights_only=True)
    got = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert torch.equal(got["acquired_at"], expected["acquired_at"])
    assert got["steps_done"] == expected["steps_done"] == 4


def _newest_loadable(folder):
    """The checkpoint a user would resume from: the newest that loads (a torn file does not)."""
    for path in sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001, S112 - a torn file fails in pickle or in zip, with several error types
            continue
        return path
    return None


# Kill moments drawn once from a seeded generator (the first training batch is 1; a 4-epoch run trains 1+2+2+2 = 7
# batches and writes 4 epoch checkpoints plus `last`).
_MOMENTS = torch.Generator().manual_seed(15)
TRAIN_KILLS = sorted(int(b) for b in torch.randint(2, 8, (2,), generator=_MOMENTS))
CHECKPOINT_KILLS = [2, 5]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill",
    [("--kill-at-train-batch", b) for b in TRAIN_KILLS] + [("--kill-in-checkpoint", n) for n in CHECKPOINT_KILLS],
    ids=str,
)
def test_run_killed_in_training_or_while_checkpointing_resumes_identically(tmp_path, kill):
    full = _script(tmp_path / "full", 4, tmp_path / "full.pt")
    assert full.returncode == 0, full.stderr[-3000:]
    killed = _script(tmp_path / "run", 4, tmp_path / "never.pt", *kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "never.pt").exists()
    path = _newest_loadable(tmp_path / "run" / "ckpt")
    args = ("--ckpt", path) if path is not None else ()
    resumed = _script(tmp_path / "run", 4, tmp_path / "resumed.pt", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = torch.load(tmp_path / "full.pt", weights_only=True)
    got = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert torch.equal(got["acquired_at"], expected["acquired_at"])
    assert got["steps_done"] == expected["steps_done"] == 4


@pytest.mark.parametrize(
    "key", ["ActiveLearningCallback{'heuristic': 'bald', 'query_size': 4}", "ActiveDataModule", "EarlyStopping"]
)
def test_checkpoint_without_the_callback_state_warns_and_loads_nothing(key):
    # Only the class name keys the state: 0.1.0 was never released, so no other key is read as the callback's.
    written = ActiveLearningCallback("bald", query_size=4)
    written.steps_done = 2
    callback = ActiveLearningCallback("bald", query_size=4)
    with pytest.warns(UserWarning, match=r"holds no state for `ActiveLearningCallback`.*from scratch"):
        callback.on_load_checkpoint(None, None, {"callbacks": {key: written.state_dict()}})
    assert callback.steps_done == 0
