import pytest
import torch
from torch import nn

from lightning_bal.mc import mark_stochastic, mc_dropconnect, mc_dropout
from lightning_bal.mc.dropconnect import check_dropconnect_layers
from lightning_bal.mc.layers import check_stochastic_layers, has_stochastic_layers, is_stochastic


def nested() -> nn.Module:
    inner = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.2))
    return nn.Sequential(nn.Sequential(inner, nn.AlphaDropout(0.1)), nn.LayerNorm(4), nn.Dropout2d(0.1))


def modes(module: nn.Module) -> list[bool]:
    return [m.training for m in module.modules()]


@pytest.mark.parametrize(
    "setup",
    [lambda m: m.train(), lambda m: m.eval(), lambda m: (m.eval(), m[0][0][1].train())],
    ids=["train", "eval", "mixed"],
)
def test_modes_switched_and_restored(setup):
    net = nested()
    setup(net)
    before = modes(net)
    with mc_dropout(net):
        for m in net.modules():
            assert m.training == is_stochastic(m), m
        assert not net[0][0][1].training  # BatchNorm uses running statistics
    assert modes(net) == before


def test_modes_restored_after_exception():
    net = nested().train()
    net[1].eval()
    before = modes(net)
    with pytest.raises(RuntimeError, match="boom"), mc_dropout(net):
        raise RuntimeError("boom")
    assert modes(net) == before


def test_marked_layer_switched_on():
    class Noise(nn.Module):
        def forward(self, x):
            return x + torch.randn_like(x) if self.training else x

    net = nn.Sequential(nn.Linear(2, 2), mark_stochastic(Noise())).eval()
    assert has_stochastic_layers(net)
    with mc_dropout(net):
        assert [m.training for m in net] == [False, True]
    assert [m.training for m in net] == [False, False]


@pytest.mark.parametrize("module", [nn.Linear(2, 2), nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))])
def test_no_stochastic_layer_raises(module):
    assert not has_stochastic_layers(module)
    with pytest.raises(ValueError, match="stochastic layer"):
        check_stochastic_layers(module)
    with pytest.raises(ValueError, match="all MC samples would be identical"), mc_dropout(module):
        pass


def test_wrong_types_raise():
    with pytest.raises(TypeError, match="Expected argument `layer`"):
        mark_stochastic("not a module")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Expected argument `module`"):
        check_stochastic_layers(3)  # type: ignore[arg-type]


def test_dropconnect_restores_weights_and_varies():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Conv1d(1, 1, 1))
    keys, weights = list(net.state_dict()), [net[0].weight, net[2].weight]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(3, 5)
    with mc_dropout(net, dropconnect=0.5):
        first = net[0](x)
        assert not torch.equal(first, net[0](x))
        assert type(net[0]) is not nn.Linear
    assert type(net[0]) is nn.Linear
    assert list(net.state_dict()) == keys
    assert net[0].weight is weights[0]
    assert net[2].weight is weights[1]
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])


def test_dropconnect_restored_after_exception():
    net = nn.Linear(3, 3)
    weight = net.weight
    with pytest.raises(KeyError), mc_dropconnect(net, 0.2):
        raise KeyError
    assert net.weight is weight
    assert type(net) is nn.Linear


@pytest.mark.parametrize("p", [-0.1, 1.0, "0.5", True])
def test_dropconnect_bad_p(p):
    with pytest.raises(ValueError, match="Expected argument `dropconnect`"), mc_dropout(nn.Linear(2, 2), dropconnect=p):
        pass


def test_dropconnect_refuses_a_model_without_a_layer_to_mask():
    net = nn.Sequential(nn.ReLU(), nn.Tanh())
    expected = r"layer MC-DropConnect can mask \(Linear, Conv1d, Conv2d, Conv3d\), but `Sequential` has none"
    with pytest.raises(ValueError, match=expected), mc_dropconnect(net, 0.5):
        pass
    with pytest.raises(TypeError, match="Expected argument `module` to be a `torch.nn.Module`"):
        check_dropconnect_layers("net")  # type: ignore[arg-type]
