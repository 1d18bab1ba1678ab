import torch
from torch import nn


class CallCounter(nn.Module):
    """Identity that counts its forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def head_dropout_cnn(counter: nn.Module | None = None) -> nn.Sequential:
    """A small Gal et al. style CNN with dropout only in the head."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        counter or nn.Identity(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 16),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(16, 3),
    )


class Declared(nn.Module):
    """Not a Sequential: declares its split through `mc_split`."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.counter = CallCounter()
        self.features = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), self.counter)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(12, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        return self.features, self.head


class Opaque(Declared):
    """Same network, no declared split: must run whole K times."""

    mc_split = None  # type: ignore[assignment]


def pool(n: int = 24, shape: tuple[int, ...] = (1, 8, 8), batch: int = 8, seed: int = 0) -> list:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen)
    idx = torch.arange(n)
    return [(x[i : i + batch], idx[i : i + batch]) for i in range(0, n, batch)]
