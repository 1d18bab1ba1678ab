"""SWAG and last-layer Laplace: closed forms, BatchNorm refresh, errors, the callback and checkpoint round trips."""

import io

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.func import jacrev

from lightning_bal import ActiveLearningCallback
from lightning_bal.heuristics import BALD, BatchBALD
from lightning_bal.posteriors import SWAG, LastLayerLaplace, MCDropConnect
from tests.helpers.runs import make_datamodule, make_trainer
from tests.posteriors.models import PlainClassifier, mlp

# ------------------------------------------------------------------ SWAG


def test_swag_samples_have_the_swag_covariance():
    torch.manual_seed(0)
    net, swag = nn.Linear(3, 1), SWAG(rank=3, scale=0.5)
    for _ in range(6):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        swag.collect(net)
    variance = swag.sq_mean - swag.mean**2
    deviations = swag.deviations
    expected = 0.5 * (torch.diag(variance) / 2 + deviations.T @ deviations / (2 * (3 - 1)))
    samples = swag.sample_weights(40_000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(samples.mean(0), swag.mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(samples.T), expected, atol=0.03, rtol=0.05)


def test_swag_refreshes_batchnorm_on_the_labelled_set():
    torch.manual_seed(0)
    net = mlp(batchnorm=True)
    swag = SWAG()
    swag.collect(net)  # one snapshot: every sample is the collected weights
    labelled = torch.randn(40, 4) * 3 + 1
    swag._refresh_loader = lambda: [(labelled[:25], torch.arange(25)), (labelled[25:], torch.arange(25, 40))]
    pool = torch.randn(6, 4)
    [(_, out)] = list(swag.batches(net, [pool], 2, 0, None))
    # Reference by hand: D_L's mean, and its batches' unbiased variances weighted by their sizes.
    with torch.no_grad():
        first, second = net[0](labelled[:25]), net[0](labelled[25:])
        net[1].running_mean.copy_(torch.cat([first, second]).mean(0))
        net[1].running_var.copy_((25 * first.var(0) + 15 * second.var(0)) / 40)
        expected = net.eval()(pool)
    torch.testing.assert_close(out[:, 0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, 1], expected, atol=1e-5, rtol=1e-5)


def _swag_with_snapshots(net: nn.Module, rank: int = 3, snapshots: int = 5) -> SWAG:
    torch.manual_seed(0)
    swag = SWAG(rank=rank)
    for _ in range(snapshots):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
        swag.collect(net)
    return swag


def test_swag_sample_weights_are_the_formula_exactly():
    swag = _swag_with_snapshots(nn.Linear(3, 2))
    generator = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(7, 8, generator=generator), torch.randn(7, 3, generator=generator)
    noise = (
        z1 * (swag.sq_mean - swag.mean**2).clamp_min(0.0).sqrt() / 2**0.5 + z2 @ swag.deviations / (2 * (3 - 1)) ** 0.5
    )
    expected = swag.mean + 0.5**0.5 * noise
    assert torch.equal(swag.sample_weights(7, torch.Generator().manual_seed(4)), expected)


class _CountingLoader:
    def __init__(self, batches):
        self.batches, self.passes = batches, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.batches)


def test_swag_refreshes_every_samples_batchnorm_in_one_pass_over_the_labelled_set():
    net = mlp(batchnorm=True)
    swag = _swag_with_snapshots(net)
    labelled = torch.randn(40, 4) * 3 + 1
    loader = _CountingLoader([(labelled[:20], torch.arange(20)), (labelled[20:], torch.arange(20, 40))])
    swag._refresh_loader = lambda: loader
    pool = torch.randn(6, 4)
    [(_, out)] = list(swag.batches(net, [pool], 3, 0, None))
    assert loader.passes == 1
    # Reference: each sample's weights in a copy of the network, its statistics the mean over D_L's (equal) batches.
    for k, vector in enumerate(swag.sample_weights(3, torch.Generator().manual_seed(0))):
        copy = mlp(batchnorm=True)
        torch.nn.utils.vector_to_parameters(vector, copy.parameters())
        copy[1].reset_running_stats()
        copy[1].momentum = None  # a cumulative average over the batches
        with torch.no_grad():
            copy.train()(labelled[:20])
            copy(labelled[20:])
            expected = copy.eval()(pool)
        torch.testing.assert_close(out[:, k], expected, atol=1e-5, rtol=1e-5)
    assert net[1].momentum == 0.1  # the model's own BatchNorm is left as it was
    assert torch.equal(net[1].running_var, torch.ones(16))


def test_swag_with_batchnorm_needs_the_labelled_set():
    net = mlp(batchnorm=True)
    swag = _swag_with_snapshots(net)
    with pytest.raises(RuntimeError, match="needs D_L to refresh"):
        list(swag.batches(net, [torch.randn(2, 4)], 2, 0, None))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rank": 0}, "`rank`"),
        ({"every_n_batches": 0}, "`every_n_batches`"),
        ({"burn_in_epochs": -1}, "`burn_in_epochs`"),
        ({"scale": 0}, "`scale`"),
    ],
)
def test_swag_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SWAG(**kwargs)


def _fit(tmp_path, posterior, heuristic=None, max_epochs=3, model=None, ckpt_path=None):
    pl.seed_everything(0)
    dm = make_datamodule()
    callback = ActiveLearningCallback(heuristic or BALD(), query_size=5, iterations=8, posterior=posterior)
    trainer = make_trainer(tmp_path, [callback], max_epochs=max_epochs)
    trainer.fit(model or PlainClassifier(batchnorm=True), datamodule=dm, ckpt_path=ckpt_path)
    return callback, trainer, dm


def test_swag_in_the_callback_restarts_its_moments_each_step(tmp_path):
    swag = SWAG(rank=4)
    callback, trainer, dm = _fit(tmp_path, swag)
    assert callback.steps_done == 3
    # Moments of the last step only: its one epoch of 1 batch (6 + 10 labelled, batch size 16).
    assert swag.num_snapshots == 1
    assert callback.history[-1]["active/score_pool_max"] > 0


def test_mc_dropconnect_runs_a_model_without_dropout(tmp_path, caplog):
    """Issue #27: the callback's description of the MC path indexed past the layers of a model without dropout."""
    with caplog.at_level("INFO", logger="lightning.pytorch"):
        callback, _, dm = _fit(tmp_path, MCDropConnect(0.3), max_epochs=2, model=PlainClassifier())
    assert callback.steps_done == 2
    assert dm.num_labelled == 16
    described = [r.getMessage() for r in caplog.records if "Active learning MC pass" in r.getMessage()]
    assert described, "the MC path is logged at fit start"
    assert "no shared layers: the first layer is stochastic, all 3 run K times" in described[0]


def test_fit_receives_the_steps_context(tmp_path):
    """Issue #28: `Posterior.fit` takes the step's `StepContext`, as the pool pass and the evaluations do."""
    contexts = []

    class Recording(LastLayerLaplace):
        def fit(self, context):
            contexts.append((context.step, context.datamodule.num_labelled, context.pl_module))
            super().fit(context)

    callback, trainer, dm = _fit(tmp_path, Recording(), max_epochs=2, model=PlainClassifier())
    assert [(step, labelled) for step, labelled, _ in contexts] == [(0, 6), (1, 11)]
    assert all(module is trainer.lightning_module for _, _, module in contexts)


def test_swag_before_any_collection_fails_clearly(tmp_path):
    with pytest.raises(RuntimeError, match=r"SWAG has collected no weights yet.*`burn_in_epochs=1`"):
        _fit(tmp_path, SWAG(burn_in_epochs=1), max_epochs=1)


def test_swag_state_round_trips_with_weights_only(tmp_path):
    swag = SWAG(rank=4)
    callback, trainer, _ = _fit(tmp_path, swag, max_epochs=2)
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["callbacks"]["ActiveLearningCallback"]["posterior"]
    restored = SWAG(rank=4)
    restored.load_state_dict(state)
    for key in ("mean", "sq_mean", "deviations"):
        assert torch.equal(getattr(restored, key), getattr(swag, key))
    assert restored.num_snapshots == swag.num_snapshots > 0
    # And a resumed run goes on from it.
    resumed, _, dm = _fit(tmp_path, SWAG(rank=4), max_epochs=3, ckpt_path=path)
    assert resumed.steps_done == 3


# ------------------------------------------------------------------ last-layer Laplace


def _reference_ggn(net, inputs):
    """sum_i J_i^T (diag p_i - p_i p_i^T) J_i, the Jacobians of the logits in vec([W b]) by autograd."""
    layer = net[-1]
    features = net[:-1](inputs).detach()
    theta = torch.cat([layer.weight, layer.bias[:, None]], 1).detach().double()

    def logits(vec, x):
        wb = vec.reshape(theta.shape)
        return wb[:, :-1] @ x + wb[:, -1]

    total = 0
    for x in features.double():
        jac = jacrev(logits)(theta.reshape(-1), x)
        p = logits(theta.reshape(-1), x).softmax(-1)
        total = total + jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac
    return total


def test_laplace_precision_is_the_softmax_ggn_plus_prior():
    torch.manual_seed(0)
    net, inputs = mlp(hidden=5), torch.randn(30, 4)
    laplace = LastLayerLaplace(prior_precision=2.0)
    laplace.fit_loader(net, [inputs[:20], inputs[20:]])
    precision = laplace.factor @ laplace.factor.T
    expected = _reference_ggn(net, inputs) + 2.0 * torch.eye(precision.shape[0], dtype=torch.float64)
    torch.testing.assert_close(precision, expected)
    diag = LastLayerLaplace(hessian_structure="diag", prior_precision=2.0)
    diag.fit_loader(net, [inputs])
    torch.testing.assert_close(diag.factor**2, torch.diagonal(expected))


def test_laplace_samples_have_the_posterior_covariance():
    torch.manual_seed(0)
    net, inputs = mlp(hidden=3, num_classes=2), torch.randn(20, 4)
    laplace = LastLayerLaplace(prior_precision=1.0)
    laplace.fit_loader(net, [inputs])
    samples = laplace.sample_weights(40_000, torch.Generator().manual_seed(0)).double()
    covariance = torch.cholesky_inverse(laplace.factor)
    torch.testing.assert_close(torch.cov(samples.T), covariance, atol=0.02, rtol=0.05)
    # Sample k's logits are the features times sample k's weights.
    pool = torch.randn(5, 4)
    [(_, out)] = list(laplace.batches(net, [pool], 3, 7, None))
    weights = laplace.sample_weights(3, torch.Generator().manual_seed(7)).reshape(3, 2, 4)
    features = torch.cat([net[:-1](pool), torch.ones(5, 1)], 1)
    torch.testing.assert_close(out, torch.einsum("bh,kch->bkc", features, weights).detach())


class LogitsThenReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize(
    ("laplace", "module", "match"),
    [
        (LastLayerLaplace(), nn.Sequential(nn.Conv1d(1, 1, 3)), "holds no `nn.Linear`"),
        (LastLayerLaplace("head"), mlp(), "'head' is no such module"),
        (LastLayerLaplace("1"), mlp(), "'1' is a ReLU"),
        (LastLayerLaplace(), LogitsThenReLU(), "its output is not that of `net.0`"),
    ],
)
def test_laplace_refuses_a_model_whose_last_layer_it_cannot_find(laplace, module, match):
    def setup_then_fit():
        laplace.check(module)  # structural: at the callback's setup
        laplace.fit_loader(module, [torch.randn(4, 4)])  # the forward: at the first fit

    with pytest.raises(ValueError, match=match):
        setup_then_fit()


def test_laplace_before_fit_and_bad_arguments():
    with pytest.raises(RuntimeError, match="before it was fitted"):
        list(LastLayerLaplace().batches(mlp(), [torch.randn(2, 4)], 3, 0, None))
    with pytest.raises(ValueError, match="`hessian_structure`"):
        LastLayerLaplace(hessian_structure="kron")
    with pytest.raises(ValueError, match="`prior_precision`"):
        LastLayerLaplace(prior_precision=0.0)


def test_laplace_in_the_callback_with_batchbald_and_weights_only_state(tmp_path):
    laplace = LastLayerLaplace()
    callback, trainer, dm = _fit(tmp_path, laplace, heuristic=BatchBALD(), max_epochs=2, model=PlainClassifier())
    assert callback.steps_done == 2
    assert dm.num_labelled == 16
    buffer = io.BytesIO()
    torch.save(callback.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = LastLayerLaplace()
    restored.load_state_dict(state["posterior"])
    assert torch.equal(restored.factor, laplace.factor)
    assert restored.mean.numel() == 3 * 17
