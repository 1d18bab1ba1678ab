"""BADGE's gradient embeddings, k-means++ seeding and greedy k-center, against closed forms and naive references."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional.diversity import (
    covering_radius,
    item_uniforms,
    k_center_greedy,
    kmeans_potential,
    kmeans_pp,
    min_sq_distances,
)
from lightning_bal.functional.gradient_embeddings import gradient_embedding, gradient_embedding_dense
from tests.helpers.thread_ranks import ThreadRanks


def _points(seed, n, d):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _naive_k_center(x, centres, q):
    picks = []
    for _ in range(q):
        chosen = torch.cat([centres, x[picks]]) if picks else centres
        d = torch.cdist(x.double(), chosen.double()).min(1).values
        d[picks] = -1
        picks.append(int(d.argmax()))
    return picks


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), d=st.integers(1, 6), m=st.integers(1, 5))
def test_k_center_matches_the_naive_greedy(seed, n, d, m):
    x, centres = _points(seed, n, d), _points(seed + 1, m, d)
    q = min(n, 5)
    got = k_center_greedy(x, q, centres=centres)
    assert got.indices.tolist() == _naive_k_center(x, centres, q)
    # Each score is the pick's distance to its nearest centre at the time, hence non-increasing.
    assert torch.all(got.scores[1:] <= got.scores[:-1] + 1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), c=st.integers(2, 5), d=st.integers(1, 5))
def test_factored_gradient_distances_equal_the_dense_ones(seed, n, c, d):
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(n, 3, c, generator=generator).log_softmax(-1)
    embeddings = gradient_embedding(log_probs, torch.randn(n, d, generator=generator))
    dense = gradient_embedding_dense(embeddings, c).double()
    from lightning_bal.functional.diversity import _Points

    points = _Points(embeddings, c)
    assert torch.allclose(points.x2.double(), dense.square().sum(1), atol=1e-4)
    for i in range(min(n, 3)):
        expected = (dense - dense[i]).square().sum(1)
        assert torch.allclose(points.sq_dist(embeddings[i]).double(), expected, atol=1e-4)


def test_gradient_embedding_is_the_cross_entropy_gradient_of_the_last_layer():
    """Against autograd: d CE(W h + b, argmax) / dW equals (p - e_y) h^T."""
    torch.manual_seed(0)
    layer, h = torch.nn.Linear(4, 3), torch.randn(5, 4)
    logits = layer(h)
    for i in range(5):
        layer.zero_grad()
        label = logits[i].argmax().reshape(1)
        torch.nn.functional.cross_entropy(layer(h[i : i + 1]), label).backward()
        ours = gradient_embedding_dense(gradient_embedding(logits[i : i + 1].log_softmax(-1).detach(), h[i : i + 1]), 3)
        assert torch.allclose(ours.reshape(3, 4), layer.weight.grad, atol=1e-6)


def test_kmeans_pp_starts_at_the_largest_norm_and_never_repeats():
    x = _points(0, 50, 4)
    got = kmeans_pp(x, 50, seed=3)
    assert int(got.indices[0]) == int(x.square().sum(1).argmax())
    assert sorted(got.indices.tolist()) == list(range(50))


def test_kmeans_pp_draws_in_proportion_to_squared_distance():
    """Over 4000 seeds the second pick's frequencies approach D^2 / sum D^2 (a seeded, deterministic check)."""
    x = torch.tensor([[10.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    d2 = (x - x[0]).square().sum(1)[1:]
    expected = d2 / d2.sum()
    counts = torch.zeros(3)
    for seed in range(4000):
        counts[int(kmeans_pp(x, 2, seed=seed).indices[1]) - 1] += 1
    assert torch.allclose(counts / 4000, expected, atol=0.025)


@pytest.mark.parametrize("factored", [False, True])
def test_selections_do_not_depend_on_the_order_of_the_rows(factored):
    """What makes sharding irrelevant: draws and ties are keyed on dataset indices, never on positions."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=generator)
    if factored:
        x = gradient_embedding(torch.randn(40, 3, generator=generator).log_softmax(-1), x)
    indices = torch.arange(100, 140)
    perm = torch.randperm(40, generator=generator)
    c = 3 if factored else None
    a = kmeans_pp(x, 10, seed=5, indices=indices, num_classes=c)
    b = kmeans_pp(x[perm], 10, seed=5, indices=indices[perm], num_classes=c)
    assert torch.equal(a.indices, b.indices)
    a = k_center_greedy(x, 10, seed=5, indices=indices)
    b = k_center_greedy(x[perm], 10, seed=5, indices=indices[perm])
    assert torch.equal(a.indices, b.indices)


def test_k_center_without_centres_starts_anywhere_but_is_seeded():
    x = _points(1, 30, 3)
    first = {int(k_center_greedy(x, 1, seed=s).indices[0]) for s in range(20)}
    assert len(first) > 5
    assert torch.equal(k_center_greedy(x, 5, seed=2).indices, k_center_greedy(x, 5, seed=2).indices)


def test_k_center_reduces_the_covering_radius_more_than_random_picks():
    x = _points(2, 300, 2)
    centres = x[:3]
    picks = k_center_greedy(x, 20, centres=centres).indices
    greedy = covering_radius(x, torch.cat([centres, x[picks]]))
    random = covering_radius(x, torch.cat([centres, x[3:23]]))
    assert greedy < random
    # The last pick was the farthest point then: once it is a centre, no point is farther than that distance.
    assert greedy <= k_center_greedy(x, 20, centres=centres).scores[-1] + 1e-6


def test_objectives_and_distances_on_closed_forms():
    points, centres = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]), torch.tensor([[0.0, 0.0], [6.0, 8.0]])
    assert min_sq_distances(points, centres).tolist() == [0.0, 25.0, 0.0]
    assert float(covering_radius(points, centres)) == 5.0
    assert float(kmeans_potential(points, centres)) == 25.0
    assert torch.isinf(min_sq_distances(points, centres[:0])).all()


def test_item_uniforms_depend_on_seed_counter_and_index_only():
    u = item_uniforms(1, 2, torch.arange(1000))
    assert torch.equal(u[500:], item_uniforms(1, 2, torch.arange(500, 1000)))
    assert not torch.equal(u, item_uniforms(1, 3, torch.arange(1000)))
    assert not torch.equal(u, item_uniforms(2, 2, torch.arange(1000)))
    assert abs(float(u.mean()) - 0.5) < 0.05


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kmeans_pp(torch.zeros(3, 2), 4), "at most the pool size"),
        (lambda: k_center_greedy(torch.zeros(3, 2), -1), "non-negative integer"),
        (lambda: kmeans_pp(torch.zeros(3, 2), 1, indices=torch.arange(2)), "shape \\[3\\]"),
        (lambda: kmeans_pp(torch.zeros(3, 4), 1, num_classes=4), "`num_classes`"),
        (lambda: gradient_embedding(torch.zeros(3), torch.zeros(3, 2)), "`log_probs`"),
        (lambda: gradient_embedding(torch.zeros(3, 2), torch.zeros(2, 2)), "`features`"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _naive_k_center_by_index(x, centres, q, indices):
    """The eager greedy in float64, ties to the lower dataset index."""
    picks = []
    for _ in range(q):
        chosen = torch.cat([centres, x[picks]]) if picks else centres
        d = torch.cdist(x.double(), chosen.double()).min(1).values
        d[picks] = -1
        tied = torch.nonzero(d == d.max()).squeeze(1)
        picks.append(int(tied[indices[tied].argmin()]))
    return indices[picks].tolist()


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(70, 400),
    d=st.integers(1, 8),
    m=st.integers(1, 6),
    grid=st.booleans(),
    duplicates=st.booleans(),
)
def test_lazy_k_center_matches_the_eager_greedy_beyond_the_first_block(seed, n, d, m, grid, duplicates):
    """Pools larger than the lazily updated block, with ties (integer grids) and duplicate rows, in shuffled order."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (n, d), generator=generator).float() if grid else torch.randn(n, d, generator=generator)
    if duplicates:
        x[n // 2 :] = x[: n - n // 2].clone()
    centres = x[torch.randperm(n, generator=generator)[:m]] + (0.0 if grid else 0.01)
    indices = torch.randperm(10 * n, generator=generator)[:n]
    q = min(n, 30)
    got = k_center_greedy(x, q, centres=centres, indices=indices)
    expected = _naive_k_center_by_index(x, centres, q, indices)
    if grid or not duplicates:
        # Integer grids are exact in float32, so exact ties go to the lower index; random points have no ties.
        assert got.indices.tolist() == expected
    else:
        # Duplicates of random points tie only up to the rounding of the GEMM that computed each copy's distance:
        # either copy may be picked, at the same distance.
        rows = {int(i): r for r, i in enumerate(indices.tolist())}

        def radii(picks):
            chosen = [rows[i] for i in picks]
            return torch.stack([covering_radius(x, torch.cat([centres, x[chosen[:k]]])) for k in range(q)])

        torch.testing.assert_close(radii(got.indices.tolist()), radii(expected))


def test_lazy_k_center_reads_few_rows_per_pick_on_spread_out_embeddings(monkeypatch):
    from lightning_bal.functional import diversity

    rows = []
    original = diversity._LazyDistances.refresh

    def count(self, block):
        rows.append(block.numel())
        return original(self, block)

    monkeypatch.setattr(diversity._LazyDistances, "refresh", count)
    x = _points(3, 5000, 32)
    got = k_center_greedy(x, 50, centres=x[:20] + 0.5)
    assert got.indices.tolist() == _naive_k_center(x, x[:20] + 0.5, 50)
    assert sum(rows) < 5000 * 50 / 10  # the eager update reads all 5000 rows at each of the 50 picks


@pytest.mark.parametrize("with_centres", [True, False])
def test_lazy_k_center_on_shards_selects_what_one_process_selects(with_centres):
    """Shards larger than the lazily updated block: each rank brings its own shard up to date, a pick at a time."""
    x = _points(4, 700, 6)
    centres = _points(5, 3, 6) if with_centres else None
    indices = torch.randperm(700, generator=torch.Generator().manual_seed(0)) + 1000
    expected = k_center_greedy(x, 40, centres=centres, seed=3, indices=indices)

    def select(rank, collective):
        shard = torch.arange(rank, 700, 3)
        return k_center_greedy(x[shard], 40, centres=centres, seed=3, indices=indices[shard], collective=collective)

    results = ThreadRanks(3).run(select)
    for rank in range(3):
        assert torch.equal(results[rank].indices, expected.indices)
        torch.testing.assert_close(results[rank].scores, expected.scores)
