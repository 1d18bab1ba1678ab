"""Bad inputs to the posteriors: ensemble members that compute different things, SWAG and Laplace options and
corrupted states, and MC-DropConnect on a model it cannot mask."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_bal.mc.dropconnect import mc_dropconnect
from lightning_bal.mc.split import describe_split
from lightning_bal.posteriors import SWAG, DeepEnsemble, LastLayerLaplace, MCDropConnect
from tests.bad_inputs.harness import accepts, refuses

NAN, INF = float("nan"), float("inf")
ERRORS = (ValueError, TypeError, KeyError)


def net(activation: nn.Module | None = None, p: float = 0.1) -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), activation or nn.ReLU(), nn.Dropout(p), nn.Linear(4, 2))


class Shifted(nn.Linear):
    """A Linear with the same weights and another forward."""

    def forward(self, x):
        return super().forward(x) + 1


def own_forward() -> nn.Linear:
    layer = nn.Linear(3, 2)
    layer.forward = lambda x: x  # an instance's own forward, which the ensemble's calls would skip
    return layer


# ---------------------------------------------------------------------------------------------- DeepEnsemble
MEMBERS = [
    # (members, message pattern)
    ([net(), net(nn.Tanh())], r"member 1's `1` is a Tanh \(member 0: ReLU\)"),
    ([net(), net(p=0.5)], r"member 1's `2` has p=0.5 \(member 0: p=0.1\)"),
    ([net(nn.LeakyReLU(0.1)), net(nn.LeakyReLU(0.3))], r"member 1's `1` has negative_slope=0.3"),
    ([nn.Linear(3, 2), own_forward()], r"member 1's top module has its own `forward`"),
    ([nn.Linear(3, 2), Shifted(3, 2)], r"member 1 is a Shifted \(member 0: Linear\)"),
    ([net(), net(), nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Identity(), nn.Linear(4, 2))], r"member 2's `2`"),
    ([nn.Linear(3, 2), nn.Linear(3, 4)], r"member 1 has `weight` of shape \(4, 3\)"),
    ([nn.Linear(3, 2)], r"`members`.*at least 2"),
    ([nn.Linear(3, 2), "net"], r"member 1 is 'net'"),
]


@pytest.mark.parametrize(("members", "match"), MEMBERS)
def test_ensemble_members_that_compute_different_things_are_refused(members, match):
    before = [m.state_dict() for m in members if isinstance(m, nn.Module)]
    refuses("DeepEnsemble.from_members", lambda: DeepEnsemble.from_members(members), ERRORS, match, members, before)


def test_ensemble_built_from_differing_members_is_refused():
    rates = iter([0.1, 0.2])
    refuses("DeepEnsemble()", lambda: DeepEnsemble(lambda: net(p=next(rates)), 2), ValueError, r"`2` has p=0.2")


def test_ensemble_members_in_different_modes_are_refused():
    members = [net(), net().eval()]
    call = lambda: DeepEnsemble.from_members(members)  # noqa: E731
    refuses("DeepEnsemble.from_members", call, ValueError, r"member 1's top module has training=False", members)


def test_ensemble_accepts_members_that_differ_only_in_weights():
    members = [net(), net(), net()]
    ensemble = accepts(lambda: DeepEnsemble.from_members(members))
    assert ensemble.num_members == 3
    assert accepts(lambda: DeepEnsemble(lambda: net(nn.LeakyReLU(0.2)), 2, seed=0)).num_members == 2


# ---------------------------------------------------------------------------------------------- SWAG, Laplace options
OPTIONS = [
    ("SWAG()", lambda: SWAG(scale=INF), ValueError, r"`scale`.*finite positive number.*inf"),
    ("SWAG()", lambda: SWAG(scale=NAN), ValueError, r"`scale`.*finite positive number.*nan"),
    ("SWAG()", lambda: SWAG(scale=0), ValueError, r"`scale`.*finite positive number.*0"),
    ("SWAG()", lambda: SWAG(scale="0.5"), ValueError, r"`scale`.*finite positive number"),
    ("SWAG()", lambda: SWAG(rank=0), ValueError, r"`rank`.*positive integer"),
    ("SWAG()", lambda: SWAG(every_n_batches=1.0), ValueError, r"`every_n_batches`.*positive integer"),
    ("SWAG()", lambda: SWAG(burn_in_epochs=-1), ValueError, r"`burn_in_epochs`.*non-negative integer"),
    ("LastLayerLaplace()", lambda: LastLayerLaplace(prior_precision=INF), ValueError, r"`prior_precision`.*finite"),
    ("LastLayerLaplace()", lambda: LastLayerLaplace(prior_precision=NAN), ValueError, r"`prior_precision`.*nan"),
    ("LastLayerLaplace()", lambda: LastLayerLaplace(prior_precision=-1), ValueError, r"`prior_precision`.*-1"),
    ("LastLayerLaplace()", lambda: LastLayerLaplace(prior_precision=True), ValueError, r"`prior_precision`"),
    ("LastLayerLaplace()", lambda: LastLayerLaplace(hessian_structure="kron"), ValueError, r"`hessian_structure`"),
    ("LastLayerLaplace()", lambda: LastLayerLaplace(last_layer=3), TypeError, r"`last_layer`.*module name"),
]


@pytest.mark.parametrize(("entry", "call", "error", "match"), OPTIONS)
def test_swag_and_laplace_options_are_refused(entry, call, error, match):
    refuses(entry, call, error, match)


def test_swag_and_laplace_accept_valid_neighbours():
    assert accepts(lambda: SWAG(scale=1e6)).scale == 1e6
    assert accepts(lambda: LastLayerLaplace(prior_precision=1e-8)).prior_precision == 1e-8


# ---------------------------------------------------------------------------------------------- SWAG state
def collected_swag() -> SWAG:
    swag, layer = SWAG(rank=2), nn.Linear(2, 1)
    for value in (1.0, 2.0, 4.0):
        layer.weight.data.fill_(value)
        swag.collect(layer)
    return swag


SWAG_STATE = [
    # (key, value, message pattern); `...` removes the entry.
    ("num_snapshots", -1, r"`num_snapshots`.*integer >= 0.*-1"),
    ("num_snapshots", 2.5, r"`num_snapshots`.*integer >= 0.*2.5"),
    ("num_snapshots", NAN, r"`num_snapshots`.*integer >= 0.*nan"),
    ("num_snapshots", 0, r"`num_snapshots`.*count the collected weights.*0"),
    ("num_snapshots", 1, r"`num_snapshots`.*count the collected weights.*1 with 3 mean weights and 2 deviations"),
    ("num_snapshots", ..., r"`num_snapshots`.*missing"),
    ("mean", torch.tensor([NAN, 1.0, 0.0]), r"`mean`.*finite.*1 values"),
    ("mean", torch.tensor([1, 2, 3]), r"`mean`.*floating-point tensor.*int64"),
    ("mean", [1.0, 2.0, 3.0], r"`mean`.*floating-point tensor"),
    ("mean", None, r"`mean`.*floating-point tensor.*None"),
    ("mean", torch.ones(2), r"matching shapes.*`mean` \(2,\)"),
    ("mean", torch.ones(1, 3), r"`mean`.*1 dimension.*\(1, 3\)"),
    ("mean", ..., r"`mean`.*missing"),
    ("sq_mean", torch.tensor([1.0, INF, 1.0]), r"`sq_mean`.*finite"),
    ("sq_mean", torch.tensor([-1.0, 1.0, 1.0]), r"`sq_mean`.*>= 0"),
    ("sq_mean", ..., r"`sq_mean`.*missing"),
    ("deviations", torch.full((2, 3), NAN), r"`deviations`.*finite.*6 values"),
    ("deviations", torch.ones(2, 4), r"matching shapes.*`deviations` \(2, 4\)"),
    ("deviations", torch.ones(4, 3), r"`num_snapshots`.*4 deviations"),
    ("deviations", torch.ones(3), r"`deviations`.*2 dimension"),
    ("deviations", ..., r"`deviations`.*missing"),
    ("stale", "no", r"`stale`.*bool.*'no'"),
    ("stale", ..., r"`stale`.*missing"),
    ("step_start_epoch", -2, r"`step_start_epoch`.*integer >= -1.*-2"),
    ("step_start_epoch", ..., r"`step_start_epoch`.*missing"),
    ("batches_seen", -1, r"`batches_seen`.*integer >= 0.*-1"),
    ("batches_seen", "3", r"`batches_seen`.*integer >= 0.*'3'"),
    ("batches_seen", ..., r"`batches_seen`.*missing"),
]


@pytest.mark.parametrize(("key", "value", "match"), SWAG_STATE)
def test_corrupted_swag_states_are_refused_and_change_nothing(key, value, match):
    state = {k: v for k, v in collected_swag().state_dict().items() if k != key}
    if value is not ...:
        state[key] = value
    target = collected_swag()
    target.collect(nn.Linear(2, 1))  # differs from the saved state: a half-load would show
    refuses("SWAG.load_state_dict", lambda: target.load_state_dict(state), ERRORS, match, target)


@pytest.mark.parametrize("state", [None, [("mean", torch.ones(3))], "state"])
def test_swag_state_that_is_not_a_mapping_is_refused(state):
    target = collected_swag()
    refuses(
        "SWAG.load_state_dict", lambda: target.load_state_dict(state), TypeError, r"state of `SWAG`.*mapping", target
    )


def test_swag_valid_states_load():
    saved, target = collected_swag(), SWAG(rank=2)
    accepts(lambda: target.load_state_dict(saved.state_dict()))
    assert torch.equal(target.mean, saved.mean)
    assert target.num_snapshots == 3
    accepts(lambda: target.load_state_dict(SWAG().state_dict()))
    assert target.num_snapshots == 0
    accepts(lambda: target.load_state_dict({}))


# ---------------------------------------------------------------------------------------------- Laplace state
def fitted_laplace(structure: str = "full") -> LastLayerLaplace:
    laplace = LastLayerLaplace(hessian_structure=structure)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    laplace.fit_loader(model, [(torch.randn(10, 3, generator=torch.Generator().manual_seed(0)), torch.arange(10))])
    return laplace


def _upper(factor: torch.Tensor) -> torch.Tensor:
    corrupted = factor.clone()
    corrupted[0, -1] = 1.0
    return corrupted


LAPLACE_STATE = [
    # (structure, key, corruption of the saved value, message pattern); `...` removes the entry.
    ("full", "mean", lambda v: v.clone().fill_(NAN), r"`mean`.*finite.*10 values"),
    ("full", "mean", lambda v: v.long(), r"`mean`.*floating-point tensor.*int64"),
    ("full", "mean", lambda v: None, r"`mean`.*floating-point tensor.*None"),
    ("full", "mean", lambda v: v[:5], r"`factor`.*shape \(5, 5\).*\(10, 10\)"),
    ("full", "mean", ..., r"`mean`.*missing"),
    ("full", "factor", lambda v: v.clone().fill_(NAN), r"`factor`.*finite"),
    ("full", "factor", lambda v: -v, r"`factor`.*lower-triangular with a positive diagonal"),
    ("full", "factor", _upper, r"`factor`.*lower-triangular"),
    ("full", "factor", lambda v: v.diagonal().clone(), r"`factor`.*2 dimension"),
    ("full", "factor", lambda v: v[:4, :4], r"`factor`.*shape \(10, 10\).*\(4, 4\)"),
    ("full", "factor", lambda v: [1.0], r"`factor`.*floating-point tensor"),
    ("full", "factor", ..., r"`factor`.*missing"),
    ("diag", "factor", lambda v: v.clone().fill_(INF), r"`factor`.*finite"),
    ("diag", "factor", lambda v: v - v.max(), r"`factor`.*positive"),
    ("diag", "factor", lambda v: v.diag(), r"`factor`.*1 dimension"),
    ("diag", "factor", ..., r"`factor`.*missing"),
]


@pytest.mark.parametrize(("structure", "key", "corrupt", "match"), LAPLACE_STATE)
def test_corrupted_laplace_states_are_refused_and_change_nothing(structure, key, corrupt, match):
    state = fitted_laplace(structure).state_dict()
    if corrupt is ...:
        del state[key]
    else:
        state[key] = corrupt(state[key])
    target = LastLayerLaplace(hessian_structure=structure)
    target.fit_loader(nn.Sequential(nn.Linear(3, 2)), [(torch.ones(2, 3), torch.arange(2))])
    refuses("LastLayerLaplace.load_state_dict", lambda: target.load_state_dict(state), ERRORS, match, target)


@pytest.mark.parametrize("state", [None, ["mean"], "state"])
def test_laplace_state_that_is_not_a_mapping_is_refused(state):
    target = fitted_laplace()
    call = lambda: target.load_state_dict(state)  # noqa: E731
    refuses("LastLayerLaplace.load_state_dict", call, TypeError, r"state of `LastLayerLaplace`.*mapping", target)


@pytest.mark.parametrize("structure", ["full", "diag"])
def test_laplace_valid_states_load(structure):
    saved, target = fitted_laplace(structure), LastLayerLaplace(hessian_structure=structure)
    accepts(lambda: target.load_state_dict(saved.state_dict()))
    assert torch.equal(target.factor, saved.factor)
    accepts(lambda: target.load_state_dict(LastLayerLaplace().state_dict()))
    assert target.mean.numel() == 0
    accepts(lambda: target.load_state_dict({}))


# ---------------------------------------------------------------------------------------------- MC-DropConnect
NOTHING_TO_MASK = nn.Sequential(nn.ReLU(), nn.Tanh())
NO_DROPOUT = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _open_dropconnect(module: nn.Module) -> None:
    with mc_dropconnect(module, 0.3):
        pass


@pytest.mark.parametrize(
    ("entry", "call", "error", "match"),
    [
        ("MCDropout/MCDropConnect", lambda: MCDropConnect(0.3).check(NOTHING_TO_MASK), ValueError, r"`module`.*mask"),
        ("MCDropout/MCDropConnect", lambda: MCDropConnect(0.3).check("net"), TypeError, r"`module`.*nn.Module"),
        ("mc.mc_dropconnect", lambda: _open_dropconnect(NOTHING_TO_MASK), ValueError, r"`module`.*Linear, Conv1d"),
        ("mc.describe_split", lambda: describe_split(NOTHING_TO_MASK, dropconnect=True), ValueError, r"`module`.*mask"),
        ("mc.describe_split", lambda: describe_split(NO_DROPOUT), ValueError, r"`module`.*stochastic layer"),
    ],
)
def test_mc_dropconnect_without_anything_to_mask_is_refused(entry, call, error, match):
    refuses(entry, call, error, match, NOTHING_TO_MASK, NO_DROPOUT)


def test_mc_dropconnect_describes_a_model_without_dropout():
    described = accepts(lambda: describe_split(NO_DROPOUT, dropconnect=True))
    assert described == "no shared layers: the first layer is stochastic, all 3 run K times"
    head = nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(3, 2))
    assert accepts(lambda: describe_split(head, dropconnect=True)).startswith("shared prefix: layers 0-1 of 3")
    accepts(lambda: MCDropConnect(0.3).check(NO_DROPOUT))
