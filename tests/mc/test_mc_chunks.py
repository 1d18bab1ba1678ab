"""Bounded outputs: a batch whose K-sample outputs exceed the memory budget is run and yielded in runs of items."""

import torch
from torch import nn

from lightning_bal.heuristics import BALD
from lightning_bal.mc import mc_batches


def segmenter():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.3), nn.Conv2d(4, 5, 1))


def test_runs_fit_the_budget_and_scores_do_not_change():
    net, images = segmenter(), torch.randn(6, 3, 16, 16)
    loader = [(images, torch.arange(6))]
    heuristic = BALD()
    one_item = 8 * 5 * 16 * 16 * 4  # [1, K=8, C=5, 16, 16] float32
    whole = list(mc_batches(net, loader, 8, seed=3, output_transform=heuristic.transform))
    bounded = list(mc_batches(net, loader, 8, seed=3, output_transform=heuristic.transform, memory_budget=2 * one_item))
    assert [len(i) for i, _ in whole] == [6]
    assert [i.tolist() for i, _ in bounded] == [[0], [1, 2], [3, 4], [5]]
    assert max(out.numel() * out.element_size() for _, out in bounded) <= 2 * one_item
    torch.testing.assert_close(torch.cat([heuristic.score(out) for _, out in bounded]), heuristic.score(whole[0][1]))


def test_a_batch_that_fits_is_yielded_whole():
    net = segmenter()
    loader = [(torch.randn(4, 3, 8, 8), torch.arange(4)), (torch.randn(3, 3, 8, 8), torch.arange(4, 7))]
    runs = [indices.tolist() for indices, _ in mc_batches(net, loader, 4, seed=0)]
    assert runs == [[0, 1, 2, 3], [4, 5, 6]]


def test_samples_are_written_in_place_across_chunks():
    """K split over several forwards (chunk_rows) gives the same outputs as K in one forward."""
    net, loader = segmenter(), [(torch.randn(2, 3, 8, 8), torch.arange(2))]
    one = next(mc_batches(net, loader, 6, seed=1, share_prefix=False, output_transform=None))[1]
    chunked = next(mc_batches(net, loader, 6, seed=1, share_prefix=False, output_transform=None, chunk_rows=2))[1]
    torch.testing.assert_close(chunked, one)


def test_cpu_default_chunks_forwards_by_activations_and_runs_by_outputs(monkeypatch):
    """Without a budget on CPU, forwards take a few items (activations near the cache's size) while the batch is
    still yielded whole (its outputs fit the larger output budget); the outputs do not change."""
    from lightning_bal.mc import engine

    torch.manual_seed(0)
    counted = nn.Conv2d(8, 8, 3, padding=1)
    rows: list[int] = []
    counted.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[0]))
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), counted, nn.ReLU(), nn.Flatten(), nn.Linear(2048, 3)
    )
    loader = [(torch.randn(10, 3, 16, 16), torch.arange(10))]
    k, row_bytes = 4, 2 * 8 * 16 * 16 * 4  # a layer's input and output of one (item, sample) row are alive together
    monkeypatch.setattr(engine, "CPU_CHUNK_BUDGET", 2 * k * row_bytes)  # two items' K samples per forward
    chunked = list(mc_batches(net, loader, k, seed=0))
    assert [len(indices) for indices, _ in chunked] == [10]  # one run: the outputs fit CPU_MEMORY_BUDGET
    assert rows[0] == k  # the first item runs alone, to measure its outputs
    assert max(rows[1:], default=0) == 2 * k
    rows.clear()
    whole = list(mc_batches(net, loader, k, seed=0, memory_budget=engine.CPU_MEMORY_BUDGET))
    assert rows == [k, (10 - 1) * k]  # the old default: the rest of the batch in one forward
    torch.testing.assert_close(chunked[0][1], whole[0][1])
