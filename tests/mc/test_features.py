"""Features taken from the MC pass by a FeatureTap: the split's output, or a named layer's, at no extra forward."""

import pytest
import torch
from torch import nn

from lightning_bal.mc import FeatureTap, MCDropout, mc_batches
from tests.mc.mc_models import CallCounter


class Wrapper(nn.Module):
    """The usual LightningModule shape: forward calls one nn.Sequential."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


class Declared(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 6), nn.Tanh())
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 2))

    def forward(self, x):
        return self.head(self.body(x))

    def mc_split(self):
        return self.body, self.head


class Custom(nn.Module):
    """A custom forward: the engine runs it whole K times."""

    def __init__(self):
        super().__init__()
        self.body, self.drop, self.out = nn.Linear(3, 6), nn.Dropout(0.5), nn.Linear(6, 2)

    def forward(self, x):
        return self.out(self.drop(torch.relu(self.body(x))))


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 2))


def _collect(module, loader, tap, **kwargs):
    features, outputs = [], []
    for _, out in mc_batches(module, loader, iterations=5, seed=0, features=tap, **kwargs):
        features.append(tap.latest)
        outputs.append(out)
    return torch.cat(features), torch.cat(outputs)


LOADER = [torch.randn(7, 3, generator=torch.Generator().manual_seed(1)), torch.randn(4, 3)]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (_net, lambda m, x: m[1](m[0](x))),
        (lambda: Wrapper(_net()), lambda m, x: m.net[1](m.net[0](x))),
        (Declared, lambda m, x: m.body(x)),
    ],
)
def test_split_features_are_the_deterministic_prefix_and_outputs_are_unchanged(make, expected):
    module = make()
    features, outputs = _collect(module, LOADER, FeatureTap())
    with torch.no_grad():
        assert torch.allclose(features, expected(module, torch.cat(LOADER)), atol=1e-6)
    plain = torch.cat([out for _, out in mc_batches(module, LOADER, iterations=5, seed=0)])
    assert torch.equal(outputs, plain)


@pytest.mark.parametrize("chunk_rows", [None, 5])
def test_named_layer_before_dropout_and_small_chunks(chunk_rows):
    module = _net()
    features, _ = _collect(module, LOADER, FeatureTap(layer="0"), chunk_rows=chunk_rows)
    with torch.no_grad():
        assert torch.allclose(features, module[0](torch.cat(LOADER)), atol=1e-6)


def test_a_model_run_whole_k_times_gives_its_named_layer_once_per_item():
    torch.manual_seed(0)
    module = Custom()
    features, _ = _collect(module, LOADER, FeatureTap(layer="body"))
    with torch.no_grad():
        assert torch.allclose(features, module.body(torch.cat(LOADER)), atol=1e-6)


def test_the_tap_costs_no_extra_forward():
    counter = CallCounter()
    module = nn.Sequential(nn.Linear(3, 6), counter, nn.Dropout(0.5), nn.Linear(6, 2))
    list(mc_batches(module, LOADER, iterations=5, seed=0))
    without, counter.calls = counter.calls, 0
    _collect(module, LOADER, FeatureTap())
    assert counter.calls == without  # the prefix runs once per item (in chunks), with or without the tap


@pytest.mark.parametrize(
    ("module", "tap", "error", "match"),
    [
        (Custom(), FeatureTap(), ValueError, "no split found"),
        (_net(), FeatureTap(layer="3"), RuntimeError, "did not run"),
        (_net(), FeatureTap(layer="nope"), ValueError, "to name a submodule"),
        (nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 2)), FeatureTap(), ValueError, "first layer is stochastic"),
    ],
)
def test_errors_name_the_problem(module, tap, error, match):
    with pytest.raises(error, match=match):
        _collect(module, LOADER, tap)


def test_layer_must_be_a_name():
    with pytest.raises(TypeError, match="`layer`"):
        FeatureTap(layer=3)


def test_posterior_passes_the_tap_on():
    module, tap = _net(), FeatureTap()
    batches = MCDropout().batches(module, LOADER, 4, 0, None, features=tap)
    _, out = next(iter(batches))
    assert out.shape == (7, 4, 2)
    assert tap.latest.shape == (7, 6)


def test_features_follow_the_runs_of_items_that_a_small_memory_budget_makes():
    """A batch whose K-sample outputs exceed the budget is yielded in runs: each run gets its own items' features."""
    module = _net()
    tap, seen = FeatureTap(), []
    for indices, out in mc_batches(module, LOADER, iterations=5, seed=0, features=tap, memory_budget=64):
        assert tap.latest.shape[0] == indices.numel() == out.shape[0]
        seen.append(tap.latest)
    assert len(seen) > len(LOADER)  # the budget did split the batches
    with torch.no_grad():
        assert torch.allclose(torch.cat(seen), module[1](module[0](torch.cat(LOADER))), atol=1e-6)


def _deep():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 6), nn.ReLU(), nn.Dropout(0.3), nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 2)
    )


@pytest.mark.parametrize("consistent_masks", [True, False])
def test_a_layer_after_dropout_gives_its_mc_mean(consistent_masks):
    """The same seed gives the same masks to the model truncated at the layer: its K outputs, averaged."""
    module = _deep()
    features, _ = _collect(module, LOADER, FeatureTap(layer="4"), consistent_masks=consistent_masks)
    truncated = nn.Sequential(*module[:5])
    samples = torch.cat(
        [
            o
            for _, o in mc_batches(
                truncated, LOADER, 5, seed=0, output_transform=None, consistent_masks=consistent_masks
            )
        ]
    )
    assert torch.allclose(features, samples.mean(1), atol=1e-6)


def test_last_linear_input_is_its_mc_mean_or_the_split_when_folded():
    module = _deep()
    features, _ = _collect(module, LOADER, FeatureTap(FeatureTap.LAST_LINEAR))
    truncated = nn.Sequential(*module[:6])
    samples = torch.cat([o for _, o in mc_batches(truncated, LOADER, 5, seed=0, output_transform=None)])
    assert torch.allclose(features, samples.mean(1), atol=1e-6)
    folded = _net()  # Linear, ReLU, Dropout, Linear: the last Linear is folded with the only dropout
    features, _ = _collect(folded, LOADER, FeatureTap(FeatureTap.LAST_LINEAR))
    with torch.no_grad():
        assert torch.allclose(features, folded[1](folded[0](torch.cat(LOADER))), atol=1e-6)


def test_a_model_run_whole_k_times_gives_the_mc_mean_of_a_layer_after_dropout():
    torch.manual_seed(0)
    module = Custom()
    features, _ = _collect(module, LOADER, FeatureTap(layer="out", inputs=True))
    # The input of `out` is dropout(relu(body(x))): its MC mean is close to relu(body(x)), not equal.
    with torch.no_grad():
        plain = torch.relu(module.body(torch.cat(LOADER)))
    assert features.shape == plain.shape
    assert not torch.allclose(features, plain)
    assert (features - plain).abs().mean() < plain.abs().mean()
