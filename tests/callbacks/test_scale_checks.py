"""Bad input for the pool pass at scale fails at setup, before any training, with a message naming the argument."""

import lightning.pytorch as pl
import pytest
import torch

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks.checks import check_shardable
from lightning_bal.heuristics import Heuristic
from lightning_bal.mc import MCDropout
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule, make_trainer


class _Trains(DropoutClassifier):
    def training_step(self, batch, batch_idx):
        raise AssertionError("setup should have failed before training")


@pytest.mark.parametrize(
    ("posterior", "message"),
    [
        (MCDropout(memory_budget=64), r"memory_budget=\.\.\.\)` to hold at least one pool batch, but got 64 bytes"),
        (MCDropout(autocast_dtype=torch.float64), r"autocast supports on cpu, but got torch.float64"),
    ],
)
def test_bad_pool_pass_options_fail_at_setup(tmp_path, posterior, message):
    dm = make_datamodule(pool_batch_size=32)
    before = dm.acquired_at.clone()
    callback = ActiveLearningCallback("bald", query_size=2, iterations=3, posterior=posterior)
    with pytest.raises(ValueError, match=message):
        make_trainer(tmp_path, [callback]).fit(_Trains(), datamodule=dm)
    assert torch.equal(dm.acquired_at, before)


def test_a_strategy_with_collectives_in_the_forward_is_refused():
    class FSDPStrategy:
        world_size = 2

    with pytest.raises(ValueError, match=r"but the strategy FSDPStrategy runs collectives inside the model's forward"):
        check_shardable(FSDPStrategy(), make_datamodule(), Heuristic())
    check_shardable(type("DDPStrategy", (), {"world_size": 2})(), make_datamodule(), Heuristic())


def test_a_budget_that_holds_a_batch_is_accepted(tmp_path):
    dm = make_datamodule(pool_batch_size=32)  # 32 rows of 4 float32 inputs: 512 bytes
    callback = ActiveLearningCallback("bald", query_size=2, iterations=3, posterior=MCDropout(memory_budget=4096))
    make_trainer(tmp_path, [callback], max_epochs=1).fit(DropoutClassifier(), datamodule=dm)
    assert callback.steps_done == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_the_callback_scores_the_pool_on_a_gpu(tmp_path, dtype):
    dm = make_datamodule(pool_batch_size=32)
    callback = ActiveLearningCallback("bald", query_size=2, iterations=3, posterior=MCDropout(autocast_dtype=dtype))
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        max_epochs=2,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(DropoutClassifier(), datamodule=dm)
    assert dm.num_labelled == 6 + 2 * 2
