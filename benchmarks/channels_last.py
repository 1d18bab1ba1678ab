"""The protocol's Kirsch CNN with its convolution weights in the default and in channels-last memory format.

Workload: ``DropoutCNN("kirsch")`` against ``DropoutCNN("kirsch", channels_last=True)`` (the same weights), one
thread: an Adam training step on a batch of 64 MNIST-sized images, an evaluation forward of 512, and a training step
of the protocol's 5-member ``EnsembleCNN`` (each member on its own 64). CPU milliseconds per call (process time, so
other jobs on the machine count less), median of ``--repeats`` rounds, and the ratio default / channels-last.

    python benchmarks/channels_last.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F  # noqa: N812

from lightning_bal.experiments import DropoutCNN, EnsembleCNN
from lightning_bal.posteriors import ensemble_cross_entropy, member_batches


def _cpu_ms(work: Callable[[], object], calls: int, repeats: int) -> float:
    work()  # oneDNN picks and caches its kernels on the first call
    rounds = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            work()
        rounds.append((time.process_time() - start) / calls * 1e3)
    return statistics.median(rounds)


def _training_step(
    model: torch.nn.Module, inputs: torch.Tensor, loss: Callable[..., torch.Tensor]
) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    targets = torch.randint(0, 10, inputs.shape[:-3])

    def step() -> None:
        optimizer.zero_grad()
        loss(model(inputs), targets).backward()
        optimizer.step()

    return step


def measure(channels_last: bool, calls: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = DropoutCNN("kirsch", channels_last=channels_last)
    ensemble = EnsembleCNN.around(model, num_members=5, seed=0)
    batch, evaluation = torch.rand(64, 1, 28, 28), torch.rand(512, 1, 28, 28)
    members = member_batches(torch.rand(5 * 64, 1, 28, 28), 5)

    def evaluate() -> None:
        with torch.inference_mode():
            model.eval()(evaluation)

    return {
        "training step, batch 64": _cpu_ms(_training_step(model.train(), batch, F.cross_entropy), calls, repeats),
        "evaluation, batch 512": _cpu_ms(evaluate, max(1, calls // 4), repeats),
        "5-member ensemble training step": _cpu_ms(
            _training_step(_Members(ensemble), members, ensemble_cross_entropy), max(1, calls // 4), repeats
        ),
    }


class _Members(torch.nn.Module):
    """The ensemble's training forward: member ``m`` on ``inputs[m]``."""

    def __init__(self, ensemble: EnsembleCNN) -> None:
        super().__init__()
        self.ensemble = ensemble.ensemble

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.ensemble.forward_members(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="training steps per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    default = measure(False, args.calls, args.repeats)
    fast = measure(True, args.calls, args.repeats)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CPU ms per call (median of {args.repeats} rounds)\n")
    print("| workload | default format | channels-last | ratio |")
    print("| --- | --- | --- | --- |")
    for name, value in default.items():
        print(f"| {name} | {value:.1f} | {fast[name]:.1f} | {value / fast[name]:.2f}x |")


if __name__ == "__main__":
    main()
