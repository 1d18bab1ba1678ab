"""Every posterior under DDP for real on CPU (gloo, 2 processes): the ranks hold the same posterior and label alike."""

from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import MCTestCurve
from lightning_bal.heuristics import BALD
from lightning_bal.posteriors import SWAG, EnsemblePosterior, LastLayerLaplace
from tests.callbacks.test_ddp import AssertRanksAgree, WriteResult
from tests.helpers.models import blobs
from tests.helpers.runs import make_datamodule
from tests.posteriors.models import EnsembleClassifier, PlainClassifier

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])]


class AssertPosteriorsAgree(Callback):
    """At each epoch start, every tensor of the posterior's state is the same on both ranks."""

    def on_train_epoch_start(self, trainer, pl_module):
        al = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
        for key, value in al.posterior.state_dict().items():
            if isinstance(value, torch.Tensor) and value.numel():
                gathered = trainer.strategy.all_gather(value.contiguous())
                assert torch.equal(gathered[0], gathered[1]), f"ranks disagree on the posterior's {key}"


@pytest.mark.parametrize(
    ("posterior", "model"),
    [
        (EnsemblePosterior(), EnsembleClassifier(members=3)),
        (SWAG(rank=4), PlainClassifier(batchnorm=True)),
        (LastLayerLaplace(), PlainClassifier()),
    ],
    ids=["ensemble", "swag", "laplace"],
)
def test_posterior_under_ddp(tmp_path, posterior, model):
    pl.seed_everything(0)
    dm = make_datamodule(n=91, batch_size=8, test_dataset=blobs(21, seed=2))
    callback = ActiveLearningCallback(
        BALD(), query_size=4, iterations=6, seed=7, posterior=posterior, evaluations=[MCTestCurve()]
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)),
        max_epochs=3,
        callbacks=[AssertRanksAgree(), AssertPosteriorsAgree(), callback, WriteResult(tmp_path / "acquired.pt")],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    acquired = torch.load(tmp_path / "acquired.pt", weights_only=True)
    assert int((acquired >= 0).sum()) == 6 + 3 * 4
