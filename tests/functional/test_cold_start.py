"""TypiClust and ProbCover: k-means, typicality, purity and greedy coverage against naive references."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional.cold_start import coverage, kmeans, probcover, purity, typicality, typiclust
from tests.helpers.thread_ranks import ThreadRanks


def _blobs(sizes, seed=0, spread=0.3, dim=2):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.arange(len(sizes)).float().unsqueeze(1) * torch.tensor([[6.0] + [0.0] * (dim - 1)])
    return torch.cat(
        [c + spread * torch.randn(n, dim, generator=generator) for c, n in zip(centres, sizes, strict=True)]
    )


def test_kmeans_finds_separated_blobs_and_is_seeded():
    x = _blobs([20, 30, 40])
    labels, centres = kmeans(x, 3, seed=1)
    truth = torch.repeat_interleave(torch.arange(3), torch.tensor([20, 30, 40]))
    for blob in range(3):
        assert labels[truth == blob].unique().numel() == 1
    assert labels.unique().numel() == 3
    assert torch.equal(labels, kmeans(x, 3, seed=1)[0])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(2, 30), k=st.integers(1, 6))
def test_typicality_is_the_inverse_mean_knn_distance(seed, n, k):
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    d = torch.cdist(x.double(), x.double())
    kk = min(k, n - 1)
    expected = 1.0 / (d.sort(1).values[:, 1 : kk + 1].mean(1) + 1e-7)
    assert torch.allclose(typicality(x, k).double(), expected, rtol=1e-4)


def test_typiclust_picks_the_most_typical_item_of_the_largest_uncovered_clusters():
    x = _blobs([10, 50, 30, 20])
    # One labelled item in the 50-blob: the picks come from the 30-blob, then the 20-blob, then the 10-blob.
    picks = typiclust(x, 3, labelled=x[15:16], k=5).indices
    assert [_blob_of(p) for p in picks] == [2, 3, 0]
    for p in picks:
        members = torch.nonzero(_blob_ids() == _blob_of(p)).squeeze(1)
        assert int(p) == int(members[typicality(x[members], 5).argmax()])


@pytest.mark.parametrize(("world_size", "labelled"), [(2, 0), (3, 1), (3, 4)])
def test_typiclust_on_shards_selects_what_one_process_selects(world_size, labelled):
    """No rank holds the pool: k-means sums clusters over ranks, and each pick gathers one cluster's rows."""
    x = _blobs([10, 50, 30, 20, 25], spread=1.0, dim=3)
    indices = torch.randperm(len(x), generator=torch.Generator().manual_seed(1)) + 500
    known = x[:labelled] + 0.1
    expected = typiclust(x, 6, labelled=known, k=5, seed=4, indices=indices)
    shards = [torch.arange(rank, len(x), world_size) for rank in range(world_size)]

    def select(rank, collective):
        shard = shards[rank]
        return typiclust(x[shard], 6, labelled=known, k=5, seed=4, indices=indices[shard], collective=collective)

    for got in ThreadRanks(world_size).run(select):
        assert torch.equal(got.indices, expected.indices)
        torch.testing.assert_close(got.scores, expected.scores)


@pytest.mark.parametrize(("world_size", "labelled", "delta"), [(2, 0, 1.0), (3, 2, 1.5), (3, 1, None)])
def test_probcover_on_shards_selects_what_one_process_selects(world_size, labelled, delta):
    """Counts travel shard by shard and each pick gathers only its ball: the same picks and newly covered counts."""
    x = _blobs([10, 50, 30, 20, 25], spread=1.0, dim=3)
    indices = torch.randperm(len(x), generator=torch.Generator().manual_seed(2)) + 100
    known = x[:labelled] + 0.1
    kwargs = {"labelled": known, "delta": delta, "num_classes": 5, "seed": 3}
    expected = probcover(x, 7, indices=indices, **kwargs)
    shards = [torch.arange(rank, len(x), world_size) for rank in range(world_size)]

    def select(rank, collective):
        return probcover(x[shards[rank]], 7, indices=indices[shards[rank]], collective=collective, **kwargs)

    for got in ThreadRanks(world_size).run(select):
        assert torch.equal(got.indices, expected.indices)
        assert torch.equal(got.scores, expected.scores)


def test_purity_on_shards_is_the_purity_of_the_pool():
    x = _blobs([20, 30, 40], spread=1.2)
    labels = torch.arange(len(x)) % 3
    deltas = torch.tensor([0.1, 0.5, 1.0, 3.0])
    shards = [torch.arange(rank, len(x), 2) for rank in range(2)]
    results = ThreadRanks(2).run(lambda rank, c: purity(x[shards[rank]], labels[shards[rank]], deltas, collective=c))
    for got in results:
        torch.testing.assert_close(got, purity(x, labels, deltas))


def test_kmeans_on_shards_gives_each_rank_its_rows_labels_and_the_same_centres():
    x = _blobs([20, 30, 40], spread=0.8)
    labels, centres = kmeans(x, 3, seed=2)
    shards = [torch.arange(rank, len(x), 2) for rank in range(2)]
    results = ThreadRanks(2).run(lambda rank, c: kmeans(x[shards[rank]], 3, seed=2, indices=shards[rank], collective=c))
    for shard, (got_labels, got_centres) in zip(shards, results, strict=True):
        assert torch.equal(got_labels, labels[shard])
        torch.testing.assert_close(got_centres, centres)


def _blob_ids():
    return torch.repeat_interleave(torch.arange(4), torch.tensor([10, 50, 30, 20]))


def _blob_of(p):
    return int(_blob_ids()[int(p)])


def _naive_probcover(x, q, delta, labelled):
    everything = torch.cat([x, labelled])
    adj = torch.cdist(everything.double(), everything.double()) <= delta
    covered = adj[len(x) :].any(0) if len(labelled) else torch.zeros(len(everything), dtype=torch.bool)
    picks = []
    for _ in range(q):
        counts = (adj[: len(x)] & ~covered).sum(1).double()
        counts[picks] = -1
        p = int(counts.argmax())
        picks.append(p)
        covered |= adj[p]
    return picks


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(3, 40), m=st.integers(0, 3), delta=st.floats(0.1, 1.5))
def test_probcover_matches_the_naive_greedy(seed, n, m, delta):
    generator = torch.Generator().manual_seed(seed)
    x, labelled = torch.randn(n, 2, generator=generator), torch.randn(m, 2, generator=generator)
    q = min(n, 4)
    got = probcover(x, q, labelled=labelled, delta=delta)
    assert got.indices.tolist() == _naive_probcover(x.double(), q, delta, labelled.double())


def test_probcover_chooses_the_largest_pure_radius():
    x = _blobs([30, 30, 30], spread=0.2)
    labels, _ = kmeans(x, 3, seed=0)
    deltas = torch.tensor([0.2, 0.5, 1.0, 3.0, 8.0])
    pure = purity(x, labels, deltas)
    assert pure[:3].min() >= 0.95
    assert pure[4] < 0.95
    picks = probcover(x, 3, num_classes=3, deltas=deltas)
    # The largest pure radius covers each blob with one ball: one pick per blob, covering everything.
    assert sorted(int(p) // 30 for p in picks.indices) == [0, 1, 2]
    assert float(coverage(x, x[picks.indices], float(deltas[3]))) == 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: kmeans(torch.zeros(3, 2), 4), "`num_clusters`"),
        (lambda: typicality(torch.zeros(3, 2), 0), "`k`"),
        (lambda: typiclust(torch.zeros(3, 2), 4), "`query_size`"),
        (lambda: probcover(torch.zeros(3, 2), 1), "`num_classes`"),
        (lambda: probcover(torch.zeros(3), 1, delta=1.0), "`points`"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
