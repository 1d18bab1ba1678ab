"""Deep ensembles: one fused forward equals the members run alone, training, the callback, reset and resume."""

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import MCTestCurve
from lightning_bal.heuristics import BALD, BatchBALD
from lightning_bal.posteriors import DeepEnsemble, EnsemblePosterior, ensemble_cross_entropy, member_batches
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_datamodule, make_trainer
from tests.posteriors.models import EnsembleClassifier, mlp


def test_fused_forward_equals_each_member_alone():
    ensemble = DeepEnsemble(lambda: mlp(batchnorm=True), 4, seed=3).eval()
    x = torch.randn(7, 4)
    out = ensemble(x)
    assert out.shape == (4, 7, 3)
    for m in range(4):
        torch.testing.assert_close(out[m], ensemble.member(m)(x))
    # Each member has its own initialisation.
    weights = ensemble.stacked.get_parameter("0-weight")
    assert not torch.allclose(weights[0], weights[1])


def test_seed_makes_members_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = DeepEnsemble(mlp, 3, seed=5)
    after = torch.rand(1)
    b = DeepEnsemble(mlp, 3, seed=5)
    assert torch.equal(before, after)
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize("fused", [True, False, None])
def test_training_with_batchnorm_updates_each_members_statistics_and_gradients(fused):
    # vmapped (`fused=True`) or one member after another (`False`; `None` on the CPU): the same training step.
    torch.manual_seed(0)
    ensemble = DeepEnsemble(lambda: mlp(batchnorm=True), 3, seed=0, fused=fused).train()
    member = ensemble.member(0).train()
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    loss = ensemble_cross_entropy(ensemble(x), y)
    loss.backward()
    running_mean = ensemble.stacked.get_buffer("1-running_mean")
    assert running_mean.shape == (3, 16)
    assert running_mean.abs().sum() > 0
    assert not torch.allclose(running_mean[0], running_mean[1])
    # The summed loss gives member 0 the gradient and the statistics it gets alone.
    nn.functional.cross_entropy(member(x), y).backward()
    torch.testing.assert_close(ensemble.stacked.get_parameter("0-weight").grad[0], member[0].weight.grad)
    torch.testing.assert_close(running_mean[0], member[1].running_mean)


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([nn.Linear(3, 2), nn.Linear(3, 4)], r"member 1 has `weight` of shape \(4, 3\)"),
        ([nn.Linear(3, 2), nn.Linear(3, 2, bias=False)], r"member 1 lacks \['bias'\]"),
        ([nn.Linear(3, 2), nn.Bilinear(3, 3, 2)], "member 1 is a Bilinear"),
        ([mlp(), mlp(batchnorm=True)], "member 1 has a"),
        ([nn.Linear(3, 2)], "at least 2"),
    ],
)
def test_members_of_different_architectures_are_refused(members, match):
    with pytest.raises(ValueError, match=match):
        DeepEnsemble.from_members(members)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`num_members`"):
        DeepEnsemble(mlp, 1)
    with pytest.raises(TypeError, match="`make_member`"):
        DeepEnsemble(mlp(), 3)  # a module, not a factory
    with pytest.raises(ValueError, match="exactly one `DeepEnsemble`"):
        ActiveLearningCallback("bald", 2, posterior=EnsemblePosterior()).posterior.check(DropoutClassifier())


def test_posterior_yields_members_as_samples():
    ensemble = DeepEnsemble(mlp, 5, seed=0)
    loader = [(torch.randn(6, 4), torch.arange(6)), (torch.randn(3, 4), torch.arange(6, 9))]
    batches = list(EnsemblePosterior().batches(ensemble, loader, 20, 0, lambda t: t.log_softmax(-1)))
    assert [idx.tolist() for idx, _ in batches] == [list(range(6)), [6, 7, 8]]
    out = batches[0][1]
    assert out.shape == (6, 5, 3)
    torch.testing.assert_close(out[:, 2], ensemble.member(2).eval()(loader[0][0]).log_softmax(-1))
    assert ensemble.training  # the model's mode is restored


def test_posterior_refuses_a_forward_that_hides_the_members():
    class Averaged(nn.Module):
        def __init__(self):
            super().__init__()
            self.ensemble = DeepEnsemble(mlp, 3, seed=0)

        def forward(self, x):
            return self.ensemble(x).mean(0)

    with pytest.raises(ValueError, match=r"\[M=3, B, \.\.\.\]"):
        list(EnsemblePosterior().batches(Averaged(), [torch.randn(4, 4)], 3, 0, None))


class TrainsOnTheMean(EnsembleClassifier):
    """Returns the members' mean logits from ``forward``, which hides the members from the posterior."""

    def forward(self, x):
        return self.ensemble(x).mean(0)

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self(batch[0]), batch[1])


def test_an_ensemble_that_hides_its_members_fails_at_fit_start(tmp_path):
    callback = ActiveLearningCallback(BALD(), query_size=5, posterior=EnsemblePosterior())
    trainer = make_trainer(tmp_path, [callback], max_epochs=2)
    with pytest.raises(ValueError, match=r"\[M=3, B, \.\.\.\]"):
        trainer.fit(TrainsOnTheMean(members=3), datamodule=make_datamodule())
    # The probe met the bad outputs before a round of training was spent.
    assert trainer.global_step == 0


def _run(tmp_path, reset_weights, max_epochs=3, heuristic=None, **kwargs):
    pl.seed_everything(0)
    dm = make_datamodule(test_dataset=blobs(20, seed=2))
    callback = ActiveLearningCallback(
        heuristic or BALD(),
        query_size=5,
        posterior=EnsemblePosterior(),
        reset_weights=reset_weights,
        evaluations=[MCTestCurve()],
        **kwargs,
    )
    model = EnsembleClassifier(members=3)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = make_trainer(tmp_path, [callback], max_epochs=max_epochs)
    trainer.fit(model, datamodule=dm)
    return callback, model, initial, dm


def test_callback_runs_on_an_ensemble_and_reset_restores_every_member(tmp_path):
    callback, model, initial, dm = _run(tmp_path, reset_weights=True)
    assert callback.steps_done == 3
    assert dm.num_labelled == 6 + 15
    assert {"active/test_mc_acc", "active/score_pool_mean"} <= set(callback.history[-1])
    # The last step reset all members to their own initial weights (different from each other).
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, initial[name])
    stacked = model.ensemble.stacked.get_parameter("0-weight")
    assert not torch.allclose(stacked[0], stacked[1])


def test_batchbald_accepts_ensemble_samples(tmp_path):
    callback, _, _, dm = _run(tmp_path, reset_weights=False, max_epochs=1, heuristic=BatchBALD())
    assert callback.steps_done == 1
    assert dm.num_labelled == 11


def test_member_batches_gives_each_member_its_own_run_of_items():
    torch.testing.assert_close(member_batches(torch.arange(6), 3), torch.tensor([[0, 1], [2, 3], [4, 5]]))
    # An epoch's last batch that M does not divide is completed from its start.
    torch.testing.assert_close(member_batches(torch.arange(7), 3), torch.tensor([[0, 1, 2], [3, 4, 5], [6, 0, 1]]))
    assert member_batches(torch.zeros(8, 2, 5), 4).shape == (4, 2, 2, 5)
    with pytest.raises(ValueError, match="at least `num_members=3` items"):
        member_batches(torch.arange(2), 3)
    with pytest.raises(ValueError, match="`num_members`"):
        member_batches(torch.arange(4), 0)


@pytest.mark.parametrize("fused", [True, False])
def test_forward_members_trains_each_member_on_its_own_batch(fused):
    torch.manual_seed(0)
    ensemble = DeepEnsemble(lambda: mlp(batchnorm=True), 3, seed=0, fused=fused).train()
    alone = [ensemble.member(m).train() for m in range(3)]
    x, y = torch.randn(3, 8, 4), torch.randint(0, 3, (3, 8))
    ensemble_cross_entropy(ensemble.forward_members(x), y).backward()
    for m, member in enumerate(alone):
        nn.functional.cross_entropy(member(x[m]), y[m]).backward()
        torch.testing.assert_close(ensemble.stacked.get_parameter("0-weight").grad[m], member[0].weight.grad)
        torch.testing.assert_close(ensemble.stacked.get_buffer("1-running_mean")[m], member[1].running_mean)
    with pytest.raises(ValueError, match=r"\[M=3, B, \.\.\.\], but argument 0 is \(4, 4\)"):
        ensemble.forward_members(torch.randn(4, 4))
