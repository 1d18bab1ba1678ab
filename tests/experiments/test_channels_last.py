"""Channels-last convolutions: the same network and numbers up to rounding, kept by ensembles, chosen in a study."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from lightning_bal.experiments import DropoutCNN, EnsembleCNN, Study
from lightning_bal.posteriors import DeepEnsemble

CONVOLUTIONS = ["net.1.weight", "net.5.weight"]


def _pair(seed: int = 0) -> tuple[DropoutCNN, DropoutCNN]:
    torch.manual_seed(seed)
    default = DropoutCNN("kirsch")
    torch.manual_seed(seed)
    return default, DropoutCNN("kirsch", channels_last=True)


def _is_channels_last(weight: torch.Tensor) -> bool:
    return weight.stride() == torch.empty_like(weight, memory_format=torch.channels_last).stride()


def test_channels_last_holds_the_same_weights_in_another_layout():
    default, fast = _pair()
    for (name, a), (_, b) in zip(default.named_parameters(), fast.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    layouts = {name: _is_channels_last(weight) for name, weight in fast.named_parameters() if weight.dim() == 4}
    assert layouts == dict.fromkeys(CONVOLUTIONS, True)
    assert not _is_channels_last(dict(default.named_parameters())["net.5.weight"])


@pytest.mark.parametrize("seed", [0, 1])
def test_channels_last_changes_outputs_and_gradients_by_rounding_only(seed):
    default, fast = _pair(seed)
    inputs, targets = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    losses = []
    for model in (default, fast):
        torch.manual_seed(seed)  # the same dropout masks
        loss = F.cross_entropy(model(inputs), targets)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1])
    for (name, a), (_, b) in zip(default.named_parameters(), fast.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("channels_last", [False, True])
def test_ensemble_members_run_in_member_zeros_layout(channels_last):
    ensemble = EnsembleCNN.around(DropoutCNN("kirsch", channels_last=channels_last), num_members=3, seed=0).eval()
    inputs = torch.rand(5, 1, 28, 28)
    outputs = ensemble(inputs)
    for m in range(3):
        member = ensemble.ensemble.member(m)
        assert [_is_channels_last(w) for w in member.parameters() if w.dim() == 4] == [channels_last] * 2
        # Exactly: a member run alone takes the same convolution algorithm as inside the ensemble.
        assert torch.equal(outputs[m], member(inputs))


def test_ensemble_trains_members_in_channels_last_and_updates_the_stacked_weights():
    convolution = lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).to(memory_format=torch.channels_last)  # noqa: E731
    ensemble = DeepEnsemble(convolution, 2, seed=0, fused=False)
    stacked = ensemble.stacked.get_parameter("0-weight")
    ensemble(torch.rand(2, 3, 5, 5)).square().sum().backward()
    assert stacked.grad is not None
    assert stacked.grad.shape == stacked.shape
    assert [bool((grad != 0).any()) for grad in stacked.grad] == [True, True]


def test_a_study_builds_its_networks_in_the_layout_it_names():
    mapping = {
        "dataset": {"name": "digits"},
        "model": {"network": "digits", "channels_last": True},
        "protocol": {"budget": 30, "initial_labels": 10},
        "grid": {"heuristics": ["bald"], "seeds": [0]},
    }
    study = Study.from_mapping(mapping)
    model = study.experiment({}).model(0)
    assert model.hparams["channels_last"] is True
    assert _is_channels_last(model.net[2].weight)
    assert study.hash != Study.from_mapping({**mapping, "model": {"network": "digits"}}).hash
