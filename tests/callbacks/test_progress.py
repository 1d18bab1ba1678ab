"""The pool pass draws one bar, on stdout, at the trainer's TQDM refresh rate, like Lightning's own bars."""

import lightning.pytorch as pl
import pytest
from lightning.pytorch.callbacks import TQDMProgressBar

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks.pool_pass import _progress
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule, make_trainer


def _trainer(tmp_path, callbacks, **kwargs):
    return pl.Trainer(
        callbacks=callbacks,
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        **kwargs,
    )


def _pool_lines(text: str) -> int:
    return text.count("Pool pass (MC-Dropout)")


@pytest.mark.parametrize(("refresh_rate", "draws"), [(1, 11), (4, 3), (20, 1)])
def test_the_bar_redraws_every_refresh_rate_batches_and_at_the_end(capsys, refresh_rate, draws):
    assert list(_progress(iter(range(11)), 11, refresh_rate)) == list(range(11))
    out, err = capsys.readouterr()
    assert err == ""
    # One draw when the bar opens, one per refresh (batches 4, 8 and 11 at rate 4), none at close (leave=False).
    assert _pool_lines(out) == 1 + draws


def test_no_bar_at_refresh_rate_zero(capsys):
    assert list(_progress(iter(range(5)), 5, 0)) == list(range(5))
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("refresh_rate", "expected"), [(1, 1), (25, 25)])
def test_the_callback_passes_the_trainers_refresh_rate(tmp_path, refresh_rate, expected):
    callback = ActiveLearningCallback("bald", query_size=2, iterations=2)
    trainer = _trainer(tmp_path, [callback, TQDMProgressBar(refresh_rate=refresh_rate)])
    assert callback._show_progress(trainer) == expected
    trainer = make_trainer(tmp_path, [callback])  # enable_progress_bar=False
    assert callback._show_progress(trainer) == 0


def test_a_run_with_a_throttled_bar_prints_few_pool_lines(tmp_path, capsys):
    callback = ActiveLearningCallback("bald", query_size=4, iterations=2, label_budget=10)
    datamodule = make_datamodule(pool_batch_size=8)
    trainer = _trainer(tmp_path, [callback, TQDMProgressBar(refresh_rate=100)], max_epochs=-1, log_every_n_steps=1)
    trainer.fit(DropoutClassifier(), datamodule=datamodule)
    out = capsys.readouterr().out
    # One pool pass (6 -> 10 labels) of 11 batches: the opening draw and the last batch, nothing in between.
    assert _pool_lines(out) == 2
