"""MC-DropConnect and the shared prefix: declared features whose weights it masks cannot run once per batch."""

import pytest
import torch
from torch import nn

from lightning_bal.mc import mc_predict
from lightning_bal.mc.split import describe_split, split_module


class DeclaredLinearFeatures(nn.Module):
    """Declares `mc_split()` with a Linear in its features, and no dropout: MC-DropConnect masks both layers."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))

    def mc_split(self):
        return nn.Sequential(self.a, nn.ReLU()), nn.Sequential(self.b)


def test_declared_features_that_dropconnect_masks_run_whole():
    """They crashed inside the mask sampler (an IndexError) before: the features ran outside the K samples."""
    torch.manual_seed(0)
    net, x = DeclaredLinearFeatures(), torch.randn(5, 4)
    loader = [(x, torch.arange(5))]
    shared = mc_predict(net, loader, 6, seed=0, dropconnect=0.5).log_probs
    whole = mc_predict(net, loader, 6, seed=0, dropconnect=0.5, share_prefix=False).log_probs
    assert shared.shape == (5, 6, 3)
    torch.testing.assert_close(shared, whole)
    assert not torch.allclose(shared[:, 0], shared[:, 1]), "the samples differ: the features' weights are masked"
    assert split_module(net, dropconnect=True).features is None
    assert split_module(net).features is not None, "without DropConnect the declared split stands"
    assert describe_split(net, dropconnect=True).startswith("K full passes of the whole `DeclaredLinearFeatures`")


@pytest.mark.parametrize("dropconnect", [False, True])
def test_declared_features_without_maskable_layers_keep_their_split(dropconnect):
    head = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 2))

    class Declared(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, x):
            return self.head(torch.tanh(x))

        def mc_split(self):
            return nn.Tanh(), self.head

    assert isinstance(split_module(Declared(), dropconnect=dropconnect).features, nn.Tanh)
