"""Bad inputs to the diversity heuristics (BADGE, Core-Set, TypiClust, ProbCover) and their functional entry points."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from lightning_bal.functional.cold_start import (
    coverage,
    kmeans,
    probcover,
    purity,
    purity_radius,
    typicality,
    typiclust,
)
from lightning_bal.functional.diversity import (
    covering_radius,
    item_uniforms,
    k_center_greedy,
    kmeans_potential,
    kmeans_pp,
    min_sq_distances,
)
from lightning_bal.heuristics import BADGE, CoreSet, ProbCover, TypiClust
from lightning_bal.heuristics.diversity import EmbeddingHeuristic
from lightning_bal.utilities.collective import Collective
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.thread_ranks import ThreadRanks

NAN, INF = float("nan"), float("inf")
N, D = 12, 3
LABELS, DELTAS = torch.arange(N) % 2, torch.tensor([0.5, 1.0])


def points(seed: int = 0, n: int = N, d: int = D) -> Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def spoilt(value: float, row: int = 4, x: Tensor | None = None) -> Tensor:
    x = points() if x is None else x.clone()
    x[row, 1] = value
    return x


def badge() -> BADGE:
    """A BADGE whose `embed` ran (it learns the class count there)."""
    heuristic = BADGE()
    heuristic.embed(points(1, N, 2), torch.randn(N, 3, generator=torch.Generator().manual_seed(2)).log_softmax(1))
    return heuristic


# Each heuristic with embeddings [N, E] of its kind (BADGE's are factored gradient embeddings).
MAKERS: dict[str, Callable[[], EmbeddingHeuristic]] = {
    "badge": badge,
    "coreset": CoreSet,
    "typiclust": lambda: TypiClust(k=2),
    "probcover-delta": lambda: ProbCover(delta=0.8),
    "probcover-purity": lambda: ProbCover(num_classes=2),
}
NAMES = sorted(MAKERS)
WIDTH = {"badge": 5}  # C + D of BADGE's factored embeddings


def embeddings(name: str) -> Tensor:
    return points(3, N, WIDTH.get(name, D))


def select(heuristic: EmbeddingHeuristic, x: Tensor, query_size: int = 3, **kwargs) -> object:
    return heuristic.select_embeddings(x, query_size, **{"seed": 0, **kwargs})


# ---------------------------------------------------------------------------------------------- NaN and inf rows
@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_embeddings_refused_naming_the_first_bad_row(name, value):
    heuristic = MAKERS[name]()
    x = spoilt(value, 4, embeddings(name))
    x[9, 0] = value
    match = r"`(embeddings|points)`.*finite.*row 4 holds NaN or inf \(2 such rows\)"
    refuses(f"EmbeddingHeuristic.select_embeddings ({name})", lambda: select(heuristic, x), ValueError, match, x)
    refuses(f"EmbeddingHeuristic.select ({name})", lambda: heuristic.select(x, 3), ValueError, match, x)
    generator = torch.Generator().manual_seed(5)
    refuses(
        f"EmbeddingHeuristic.select ({name})",
        lambda: heuristic.select(x, 3, generator=generator),
        ValueError,
        match,
        x,
        generator,
    )


@pytest.mark.parametrize("name", NAMES)
def test_select_refuses_a_generator_that_is_not_one(name):
    heuristic, x = MAKERS[name](), embeddings(name)
    refuses(
        f"EmbeddingHeuristic.select ({name})",
        lambda: heuristic.select(x, 3, generator=5),
        TypeError,
        r"`generator`.*torch.Generator or None.*5",
        x,
    )
    picks = accepts(lambda: heuristic.select(x, 3, generator=torch.Generator().manual_seed(1)))
    assert picks.indices.unique().numel() == 3


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_rows_are_named_by_their_dataset_index(name):
    heuristic = MAKERS[name]()
    x, indices = spoilt(NAN, 6, embeddings(name)), torch.arange(100, 100 + N)
    refuses(
        f"EmbeddingHeuristic.select_embeddings ({name})",
        lambda: select(heuristic, x, indices=indices),
        ValueError,
        r"`(embeddings|points)`.*finite.*dataset index 106",
        x,
        indices,
    )


@pytest.mark.parametrize("name", ["coreset", "typiclust", "probcover-delta", "probcover-purity"])
def test_non_finite_labelled_embeddings_refused(name):
    heuristic, labelled = MAKERS[name](), spoilt(INF, 1, points(4, 3, D))
    refuses(
        f"EmbeddingHeuristic.select_embeddings ({name})",
        lambda: select(heuristic, embeddings(name), labelled=labelled),
        ValueError,
        r"`(centres|labelled)`.*finite.*row 1",
        labelled,
    )


@pytest.mark.parametrize("name", ["coreset", "typiclust", "probcover-delta", "probcover-purity"])
def test_labelled_embeddings_of_another_width_refused(name):
    heuristic, labelled = MAKERS[name](), points(4, 3, D + 1)
    refuses(
        f"EmbeddingHeuristic.select_embeddings ({name})",
        lambda: select(heuristic, embeddings(name), labelled=labelled),
        ValueError,
        rf"`(centres|labelled)`.*{D} columns.*got {D + 1}",
        labelled,
    )


def test_every_rank_refuses_a_nan_row_held_by_one_rank():
    # Rank 1 alone holds the NaN row: every rank must raise the same error, none may be left waiting for the others.
    # Each rank runs to its own end (ThreadRanks.run would abort the barrier on the first error); a rank left waiting
    # fails at the barrier's timeout.
    x, indices = spoilt(NAN, 7), torch.arange(N)
    ranks = ThreadRanks(2)
    ranks.barrier = threading.Barrier(2, timeout=10)
    outcomes: list[BaseException | None] = [None, None]

    def rank(number: int) -> None:
        mine = slice(0, 6) if number == 0 else slice(6, N)
        try:
            collective = Collective(ranks.strategy(number), number, 2)
            k_center_greedy(x[mine], 3, indices=indices[mine], collective=collective)
        except BaseException as err:  # noqa: BLE001 - each rank's outcome is compared below
            outcomes[number] = err

    def both() -> None:
        threads = [threading.Thread(target=rank, args=(number,)) for number in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        raise next((err for err in outcomes if not isinstance(err, ValueError)), outcomes[0]) or AssertionError

    refuses("functional.k_center_greedy", both, ValueError, r"`embeddings`.*dataset index 7 holds NaN", x)
    assert str(outcomes[0]) == str(outcomes[1])


# ---------------------------------------------------------------------------------------------- select_embeddings
BAD_SELECT = [
    # (keyword arguments, error, message pattern)
    ({"indices": torch.tensor([0, 1, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11])}, ValueError, r"`indices`.*distinct.*\[1\]"),
    ({"indices": torch.arange(N) - 2}, ValueError, r"`indices`.*non-negative.*-2"),
    ({"indices": torch.arange(N).float()}, TypeError, r"`indices`.*integer tensor.*float32"),
    ({"indices": torch.arange(N) > 5}, TypeError, r"`indices`.*integer tensor.*bool"),
    ({"indices": list(range(N))}, TypeError, r"`indices`.*integer tensor.*list"),
    ({"indices": torch.arange(N - 1)}, ValueError, rf"`indices`.*shape \[{N}\]"),
    ({"indices": torch.arange(N).reshape(3, 4)}, ValueError, rf"`indices`.*shape \[{N}\]"),
    ({"query_size": -1}, ValueError, r"`query_size`"),
    ({"query_size": 1.5}, ValueError, r"`query_size`"),
    ({"query_size": True}, ValueError, r"`query_size`"),
    ({"query_size": N + 1}, ValueError, r"`query_size`"),
    ({"seed": 1.5}, TypeError, r"`seed`.*integer.*1.5"),
    ({"seed": "0"}, TypeError, r"`seed`.*integer"),
    ({"seed": None}, TypeError, r"`seed`.*integer"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_SELECT, ids=[repr(c[0])[:50] for c in BAD_SELECT])
@pytest.mark.parametrize("name", NAMES)
def test_select_embeddings_refuses(name, kwargs, error, match):
    heuristic, x = MAKERS[name](), embeddings(name)
    query_size = kwargs.get("query_size", 3)
    options = {"seed": 0, **{key: value for key, value in kwargs.items() if key != "query_size"}}
    refuses(
        f"EmbeddingHeuristic.select_embeddings ({name})",
        lambda: heuristic.select_embeddings(x, query_size, **options),
        error,
        match,
        x,
        heuristic,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"indices": torch.tensor([11, 3, 7, 0, 1, 2, 4, 5, 6, 8, 9, 10])},
        {"indices": torch.arange(N, dtype=torch.int32) + 2**31 - N},
        {"query_size": 0},
        {"query_size": N},
        {"seed": -5},
        {"seed": 2**62},
    ],
    ids=repr,
)
@pytest.mark.parametrize("name", NAMES)
def test_select_embeddings_accepts_valid_neighbours(name, kwargs):
    heuristic, x = MAKERS[name](), embeddings(name)
    query_size = kwargs.get("query_size", 3)
    options = {"seed": 0, **{key: value for key, value in kwargs.items() if key != "query_size"}}
    picks = accepts(lambda: heuristic.select_embeddings(x, query_size, **options))
    assert picks.indices.numel() == query_size
    indices = kwargs.get("indices", torch.arange(N)).long()
    assert picks.indices.unique().numel() == picks.indices.numel()
    assert torch.isin(picks.indices, indices).all()


# ---------------------------------------------------------------------------------------------- constructors
BAD_CONSTRUCTORS = [
    # (class, keyword arguments, error, message pattern)
    (ProbCover, {"delta": NAN}, ValueError, r"`delta`.*finite positive.*nan"),
    (ProbCover, {"delta": INF}, ValueError, r"`delta`.*finite positive.*inf"),
    (ProbCover, {"delta": -INF}, ValueError, r"`delta`.*finite positive"),
    (ProbCover, {"delta": 0.0}, ValueError, r"`delta`.*finite positive.*0.0"),
    (ProbCover, {"delta": -0.5}, ValueError, r"`delta`.*finite positive.*-0.5"),
    (ProbCover, {"delta": "0.5"}, ValueError, r"`delta`.*finite positive"),
    (ProbCover, {"delta": True}, ValueError, r"`delta`.*finite positive"),
    (ProbCover, {}, ValueError, r"`num_classes`.*>= 2 when `delta` is None"),
    (ProbCover, {"num_classes": 1}, ValueError, r"`num_classes`.*>= 2"),
    (ProbCover, {"num_classes": 2.5}, ValueError, r"`num_classes`.*>= 2"),
    (ProbCover, {"delta": 0.5, "num_classes": "3"}, ValueError, r"`num_classes`.*>= 2 or None"),
    (ProbCover, {"delta": 0.5, "num_classes": 1}, ValueError, r"`num_classes`.*>= 2 or None"),
    (ProbCover, {"num_classes": 2, "alpha": 0.0}, ValueError, r"`alpha`.*\(0, 1\)"),
    (ProbCover, {"num_classes": 2, "alpha": 1.0}, ValueError, r"`alpha`.*\(0, 1\)"),
    (ProbCover, {"num_classes": 2, "alpha": NAN}, ValueError, r"`alpha`.*\(0, 1\)"),
    (ProbCover, {"num_classes": 2, "alpha": "high"}, ValueError, r"`alpha`.*\(0, 1\)"),
    (TypiClust, {"k": 0}, ValueError, r"`k`.*positive integer"),
    (TypiClust, {"k": -3}, ValueError, r"`k`.*positive integer"),
    (TypiClust, {"k": 2.5}, ValueError, r"`k`.*positive integer"),
    (TypiClust, {"k": True}, ValueError, r"`k`.*positive integer"),
]
for cls in (BADGE, CoreSet, TypiClust, ProbCover):
    extra = {"delta": 0.5} if cls is ProbCover else {}
    BAD_CONSTRUCTORS += [
        (cls, {**extra, "embeddings": spoilt(NAN, 5)}, ValueError, r"`embeddings`.*finite.*row 5 holds NaN"),
        (cls, {**extra, "embeddings": spoilt(-INF, 0)}, ValueError, r"`embeddings`.*finite.*row 0 holds NaN or inf"),
        (cls, {**extra, "embeddings": torch.zeros(5)}, ValueError, r"`embeddings`.*\[len\(dataset\), E\].*\(5,\)"),
        (cls, {**extra, "embeddings": [[0.0, 1.0]]}, ValueError, r"`embeddings`.*\[len\(dataset\), E\].*list"),
        (cls, {**extra, "layer": 5}, TypeError, r"`layer`.*submodule name or None.*5"),
        (cls, {**extra, "layer": "net.0", "embeddings": points()}, ValueError, r"either `layer` or `embeddings`"),
    ]


@pytest.mark.parametrize(
    ("cls", "kwargs", "error", "match"),
    BAD_CONSTRUCTORS,
    ids=[f"{c[0].__name__}-{list(c[1])}-{i}" for i, c in enumerate(BAD_CONSTRUCTORS)],
)
def test_constructors_refuse(cls, kwargs, error, match):
    refuses(f"heuristics.{cls.__name__}()", lambda: cls(**kwargs), error, match, kwargs)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (ProbCover, {"delta": 1e-6}),
        (ProbCover, {"delta": 3}),
        (ProbCover, {"delta": 0.5, "num_classes": 2}),
        (ProbCover, {"num_classes": 2, "alpha": 0.5, "embeddings": points()}),
        (TypiClust, {"k": 1, "embeddings": points().double()}),
        (BADGE, {"layer": "net.0"}),
        (CoreSet, {"embeddings": torch.arange(24).reshape(N, 2)}),
    ],
    ids=repr,
)
def test_constructors_accept_valid_neighbours(cls, kwargs):
    heuristic = accepts(lambda: cls(**kwargs))
    assert isinstance(heuristic, EmbeddingHeuristic)


def test_a_small_delta_still_selects_distinct_items():
    # The smallest valid radius covers each pick alone: every pick then covers one new point.
    picks = ProbCover(delta=1e-6).select(points(), 4)
    assert picks.indices.unique().numel() == 4
    assert picks.scores.tolist() == [1.0] * 4


# ---------------------------------------------------------------------------------------------- functional entries
BAD_FUNCTIONAL = [
    # (entry, call, error, message pattern)
    ("kmeans_pp", lambda x: kmeans_pp(x, 2, first="median"), ValueError, r"`first`.*'largest' or 'random'"),
    ("kmeans_pp", lambda x: kmeans_pp(x, 2, include_origin="yes"), TypeError, r"`include_origin`.*bool"),
    ("kmeans_pp", lambda x: kmeans_pp(x, 2, num_classes=2.5), TypeError, r"`num_classes`.*integer or None"),
    ("kmeans_pp", lambda x: kmeans_pp(x, 2, num_classes=D), ValueError, r"`num_classes`.*\[1, 2\]"),
    ("kmeans_pp", lambda x: kmeans_pp(x, 2, seed=0.5), TypeError, r"`seed`.*integer"),
    ("kmeans_pp", lambda x: kmeans_pp(spoilt(NAN, 2, x), 2), ValueError, r"`embeddings`.*finite.*row 2"),
    ("kmeans_pp", lambda x: kmeans_pp("x", 2), ValueError, r"`embeddings`.*tensor"),
    ("k_center_greedy", lambda x: k_center_greedy(x, 2, centres="x"), TypeError, r"`centres`.*tensor"),
    ("k_center_greedy", lambda x: k_center_greedy(x, 2, centres=spoilt(NAN, 3)), ValueError, r"`centres`.*row 3"),
    ("k_center_greedy", lambda x: k_center_greedy(x, 2, centres=points(1, 2, 5)), ValueError, r"`centres`.*3 col"),
    ("k_center_greedy", lambda x: k_center_greedy(x, 2, seed="1"), TypeError, r"`seed`.*integer"),
    ("typiclust", lambda x: typiclust(x, 2, k=0), ValueError, r"`k`.*positive integer"),
    ("typiclust", lambda x: typiclust(x, 2, seed=1.0), TypeError, r"`seed`.*integer"),
    ("typiclust", lambda x: typiclust(x, 2, labelled=[[0.0] * D]), TypeError, r"`labelled`.*tensor"),
    ("typiclust", lambda x: typiclust(x[:, 0], 2), ValueError, r"`points`.*\[N, D\]"),
    ("probcover", lambda x: probcover(x, 2, delta=NAN), ValueError, r"`delta`.*finite positive.*nan"),
    ("probcover", lambda x: probcover(x, 2, delta=INF), ValueError, r"`delta`.*finite positive.*inf"),
    ("probcover", lambda x: probcover(x, 2, delta=0), ValueError, r"`delta`.*finite positive.*0"),
    ("probcover", lambda x: probcover(x, 2, delta=-1.0), ValueError, r"`delta`.*finite positive"),
    ("probcover", lambda x: probcover(x, 2, delta="1"), ValueError, r"`delta`.*finite positive"),
    ("probcover", lambda x: probcover(x, 2), ValueError, r"`num_classes`.*when `delta` is None"),
    ("probcover", lambda x: probcover(x, 2, num_classes=2, alpha=0.0), ValueError, r"`alpha`.*\(0, 1\]"),
    ("probcover", lambda x: probcover(x, 2, num_classes=2, alpha=NAN), ValueError, r"`alpha`.*\(0, 1\]"),
    ("probcover", lambda x: probcover(x, 2, num_classes=2, deltas=torch.tensor([])), ValueError, r"`deltas`.*empty"),
    ("probcover", lambda x: probcover(x, 2, num_classes=2, deltas=torch.tensor([0.5, NAN])), ValueError, r"`deltas`"),
    ("probcover", lambda x: probcover(x, 2, num_classes=2, deltas=torch.tensor([-0.5])), ValueError, r"`deltas`"),
    ("probcover", lambda x: probcover(x, 2, num_classes=2, deltas=torch.ones(2, 2)), ValueError, r"`deltas`.*\[R\]"),
    ("probcover", lambda x: probcover(x, 2, delta=1.0, seed=None), TypeError, r"`seed`.*integer"),
    ("kmeans", lambda x: kmeans(x, 0), ValueError, r"`num_clusters`.*\[1, 12\]"),
    ("kmeans", lambda x: kmeans(x, 2, max_iter=0), ValueError, r"`max_iter`.*positive integer"),
    ("kmeans", lambda x: kmeans(x, 2, seed="a"), TypeError, r"`seed`.*integer"),
    ("kmeans", lambda x: kmeans(spoilt(INF, 8, x), 2), ValueError, r"`points`.*finite.*row 8"),
    ("kmeans", lambda x: kmeans(x, 2, indices=torch.zeros(N, dtype=torch.long)), ValueError, r"`indices`.*distinct"),
    ("typicality", lambda x: typicality(spoilt(NAN, 0, x)), ValueError, r"`points`.*finite.*row 0"),
    ("typicality", lambda x: typicality(x, k=0), ValueError, r"`k`.*positive integer"),
    ("purity_radius", lambda x: purity_radius(x, 1), ValueError, r"`num_classes`.*>= 2"),
    ("purity_radius", lambda x: purity_radius(x, 2, alpha=1.5), ValueError, r"`alpha`.*\(0, 1\]"),
    ("purity_radius", lambda x: purity_radius(x, 2, deltas=torch.tensor([INF])), ValueError, r"`deltas`.*finite"),
    ("purity_radius", lambda x: purity_radius(spoilt(NAN, 5, x), 2), ValueError, r"`points`.*finite.*row 5"),
    (
        "purity",
        lambda x: purity(x, torch.zeros(N - 1, dtype=torch.long), DELTAS),
        ValueError,
        r"`pseudo_labels`.*\[12\]",
    ),
    ("purity", lambda x: purity(x, torch.zeros(N), DELTAS), ValueError, r"`pseudo_labels`.*integer tensor"),
    ("purity", lambda x: purity(x, LABELS, torch.tensor([0.5, -1.0])), ValueError, r"`deltas`.*finite positive"),
    ("purity", lambda x: purity(x, LABELS, [0.5]), ValueError, r"`deltas`.*tensor \[R\].*list"),
    ("coverage", lambda x: coverage(x, x[:2], NAN), ValueError, r"`delta`.*finite positive.*nan"),
    ("coverage", lambda x: coverage(x, x[:2], -1.0), ValueError, r"`delta`.*finite positive"),
    ("coverage", lambda x: coverage(spoilt(INF, 2, x), x[:2], 1.0), ValueError, r"`points`.*finite.*row 2"),
    ("coverage", lambda x: coverage(x, spoilt(NAN, 1, x)[:2], 1.0), ValueError, r"`centres`.*finite.*row 1"),
    ("coverage", lambda x: coverage(x, x[0], 1.0), ValueError, r"`centres`.*\[N, D\]"),
    ("covering_radius", lambda x: covering_radius(spoilt(NAN, 7, x), x[:2]), ValueError, r"`points`.*row 7"),
    ("covering_radius", lambda x: covering_radius(x, x[0]), ValueError, r"`centres`.*\[N, D\]"),
    ("kmeans_potential", lambda x: kmeans_potential(x, spoilt(INF, 0, x)), ValueError, r"`centres`.*row 0"),
    ("kmeans_potential", lambda x: kmeans_potential(x[0], x), ValueError, r"`points`.*\[N, D\]"),
    ("min_sq_distances", lambda x: min_sq_distances(x, x[:, :2]), ValueError, r"`centres`.*\[M, 3\].*\(12, 2\)"),
    ("min_sq_distances", lambda x: min_sq_distances(x, "c"), TypeError, r"`centres`.*tensor"),
    ("min_sq_distances", lambda x: min_sq_distances(x[0], x), ValueError, r"`points`.*\[N, D\]"),
    ("item_uniforms", lambda x: item_uniforms(0.5, 1, torch.arange(3)), TypeError, r"`seed`.*integer.*0.5"),
    ("item_uniforms", lambda x: item_uniforms(0, "1", torch.arange(3)), TypeError, r"`counter`.*integer"),
    ("item_uniforms", lambda x: item_uniforms(0, 1, torch.rand(3)), TypeError, r"`indices`.*integer.*float32"),
]


@pytest.mark.parametrize(
    ("entry", "call", "error", "match"),
    BAD_FUNCTIONAL,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_FUNCTIONAL)],
)
def test_functional_entries_refuse(entry, call, error, match):
    x = points()
    refuses(f"functional.{entry}", lambda: call(x), error, match, x)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: kmeans_pp(x, 2, first="random", include_origin=True, seed=-1),
        lambda x: kmeans_pp(x, 2, num_classes=2),
        lambda x: k_center_greedy(x, 2, centres=torch.empty(0, 7)),
        lambda x: k_center_greedy(x, 2, centres=x[:2].double()),
        lambda x: typiclust(x, 2, k=1, labelled=torch.empty(0, D)),
        lambda x: probcover(x, 2, delta=2),
        lambda x: probcover(x, 2, num_classes=2, alpha=1.0, deltas=torch.tensor([3.0, 0.5])),
        lambda x: kmeans(x, N, max_iter=1, indices=torch.arange(N).flip(0)),
        lambda x: typicality(x, k=N + 5),
        lambda x: purity_radius(x, 2, deltas=torch.tensor([0.1])),
        lambda x: purity(x, LABELS.int(), torch.tensor([2.0, 0.5])),
        lambda x: coverage(x, x[:1].double(), 3),
        lambda x: covering_radius(x, x),
        lambda x: kmeans_potential(x.double(), x[:1]),
        lambda x: min_sq_distances(x, torch.empty(0)),
        lambda x: item_uniforms(-7, 0, torch.arange(3, dtype=torch.int32)),
    ],
)
def test_functional_entries_accept_valid_neighbours(call):
    accepts(lambda: call(points()))
