"""Bad inputs to the heuristic classes: constructors, the registry, CombineHeuristics, EPIG, scoring and selection."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from lightning_bal.heuristics import (
    BALD,
    EPIG,
    HEURISTICS,
    ICAL,
    BatchBALD,
    CombineHeuristics,
    Entropy,
    Heuristic,
    Margin,
    PowerBALD,
    Random,
    Variance,
    get_heuristic,
    register_heuristic,
)
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.utilities.collective import Collective
from tests.bad_inputs.harness import accepts, refuses

NAN, INF = float("nan"), float("inf")
NAMES = sorted(HEURISTICS)
# Heuristics over embeddings (BADGE, Core-Set, TypiClust, ProbCover) select from features, not from scores.
SCORING = [name for name in NAMES if not getattr(HEURISTICS[name], "needs_embeddings", False)]
# Batch-aware heuristics (BatchBALD, ICAL) need the candidates' log-probabilities and EPIG needs targets: neither
# selects from scores alone.
FROM_SCORES = [name for name in SCORING if not (HEURISTICS[name].batch_aware or HEURISTICS[name].needs_targets)]


def log_probs(n: int = 6, k: int = 4, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, k, c, generator=torch.Generator().manual_seed(seed)).log_softmax(2)


def rows_of_mass_two_and_zero() -> torch.Tensor:
    """Log-probabilities whose mean row mass is 1 although rows [1, 0] and [4, 2] sum to 2 and 0."""
    value = log_probs()
    value[1, 0] += math.log(2.0)
    value[4, 2] = -INF
    return value


def takes(name: str, argument: str) -> bool:
    return argument in HEURISTICS[name].__init__.__code__.co_varnames


# ---------------------------------------------------------------------------------------------- constructors
COMMON = [
    ("reduction", "median", ValueError, r"`reduction`.*'mean', 'sum', 'max'.*'median'"),
    ("reduction", None, ValueError, r"`reduction`.*'mean', 'sum', 'max'"),
    ("output", 1.5, TypeError, r"`output`.*tuple position, a dict key or None.*1.5"),
    ("output", True, TypeError, r"`output`.*tuple position, a dict key or None"),
    ("output", [0], TypeError, r"`output`.*tuple position, a dict key or None"),
    ("validate_args", "yes", TypeError, r"`validate_args`.*bool.*'yes'"),
    ("validate_args", None, TypeError, r"`validate_args`.*bool"),
    ("mask", 2.5, TypeError, r"`mask`.*tuple position, a dict key or None.*2.5"),
    ("mask", [1], TypeError, r"`mask`.*tuple position, a dict key or None"),
]


def applicable(cases: list[tuple]) -> list[tuple]:
    """Each case with every heuristic that takes its argument."""
    return [(name, *case) for case in cases for name in NAMES if takes(name, case[0])]


@pytest.mark.parametrize(("name", "argument", "value", "error", "match"), applicable(COMMON))
def test_common_constructor_arguments_refused(name, argument, value, error, match):
    refuses(f"heuristics.{name}()", lambda: get_heuristic(name, **{argument: value}), error, match)


SPECIFIC = [
    ("beta", -1.0, ValueError, r"`beta`.*finite number >= 0"),
    ("beta", NAN, ValueError, r"`beta`.*finite number >= 0"),
    ("beta", INF, ValueError, r"`beta`.*finite number >= 0"),
    ("beta", "1", ValueError, r"`beta`.*finite number >= 0"),
    ("max_candidates", 0, ValueError, r"`max_candidates`.*positive integer"),
    ("max_candidates", 2.5, ValueError, r"`max_candidates`.*positive integer"),
    ("num_samples", 0, ValueError, r"`num_samples`.*positive integer"),
    ("num_samples", None, ValueError, r"`num_samples`.*positive integer"),
    ("num_targets", 0, ValueError, r"`num_targets`.*positive integer"),
    ("num_targets", 10.0, TypeError, r"`num_targets`.*positive integer"),
    ("target_dataset", 5, TypeError, r"`target_dataset`.*map-style dataset"),
    ("target_dataset", "abc", TypeError, r"`target_dataset`.*map-style dataset"),
]


@pytest.mark.parametrize(("name", "argument", "value", "error", "match"), applicable(SPECIFIC))
def test_specific_constructor_arguments_refused(name, argument, value, error, match):
    refuses(f"heuristics.{name}()", lambda: get_heuristic(name, **{argument: value}), error, match)


@pytest.mark.parametrize("name", NAMES)
def test_constructors_accept_valid_neighbours(name):
    options = {
        "reduction": "max",
        "output": "logits",
        "validate_args": False,
        "beta": 0.0,
        "max_candidates": None,
        "num_samples": 1,
        "num_targets": 1,
        "target_dataset": TensorDataset(torch.zeros(3, 2)),
        "delta": 0.5,
    }
    heuristic = accepts(lambda: get_heuristic(name, **{k: v for k, v in options.items() if takes(name, k)}))
    assert heuristic.name == name


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "match"),
    [
        ("bal", {}, ValueError, r"`name`.*registered heuristic.*'bal'.*Did you mean 'bald'"),
        ("", {}, ValueError, r"`name`.*registered heuristic.*''"),
        ("random sampling", {}, ValueError, r"`name`.*registered heuristic"),
        (5, {}, TypeError, r"`name`.*string"),
        (None, {}, TypeError, r"`name`.*string"),
        (BALD, {}, TypeError, r"`name`.*string"),
        ("bald", {"betta": 1.0}, TypeError, r"unexpected keyword argument 'betta'"),
        ("entropy", {"beta": 1.0}, TypeError, r"unexpected keyword argument 'beta'"),
    ],
)
def test_get_heuristic_refuses(name, kwargs, error, match):
    refuses("get_heuristic", lambda: get_heuristic(name, **kwargs), error, match)


@pytest.mark.parametrize("name", ["BALD", " bald ", "Power-BALD", "power_bald", "SOFTMAX_ENTROPY"])
def test_get_heuristic_accepts_valid_spellings(name):
    assert accepts(lambda: get_heuristic(name)).name in HEURISTICS


# ---------------------------------------------------------------------------------------------- CombineHeuristics
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"heuristics": []}, ValueError, r"`heuristics`.*non-empty sequence of pointwise heuristics"),
        ({"heuristics": [BALD(), "margin"]}, ValueError, r"`heuristics`.*pointwise heuristics"),
        ({"heuristics": [BALD(), BatchBALD()]}, ValueError, r"`heuristics`.*pointwise heuristics"),
        ({"heuristics": BALD()}, ValueError, r"`heuristics`.*non-empty sequence"),
        ({"weights": [1.0, NAN]}, ValueError, r"`weights`.*2 non-negative numbers.*nan"),
        ({"weights": [1.0, INF]}, ValueError, r"`weights`.*2 non-negative numbers.*inf"),
        ({"weights": [1.0, -1.0]}, ValueError, r"`weights`.*2 non-negative numbers"),
        ({"weights": [0.0, 0.0]}, ValueError, r"`weights`.*not all zero"),
        ({"weights": [1.0]}, ValueError, r"`weights`.*2 non-negative numbers"),
        ({"weights": [1.0, 1.0, 1.0]}, ValueError, r"`weights`.*2 non-negative numbers"),
        ({"weights": [True, 1.0]}, ValueError, r"`weights`.*2 non-negative numbers"),
        ({"weights": ["1", 1.0]}, ValueError, r"`weights`.*2 non-negative numbers"),
        ({"weights": 1.0}, ValueError, r"`weights`.*2 non-negative numbers"),
        # The message shows a sequence as the list it was read as, anything else as it came.
        ({"weights": (1.0, -1.0)}, ValueError, r"`weights`.*but got \[1.0, -1.0\]\.$"),
        ({"weights": 2.5}, ValueError, r"`weights`.*but got 2.5\.$"),
        ({"outputs": [0, None]}, ValueError, r"`outputs`.*None for every member.*or for none"),
        ({"outputs": [0]}, ValueError, r"`outputs`.*2 outputs, one per heuristic"),
        ({"outputs": [0, 1.5]}, TypeError, r"`outputs`.*tuple positions, dict keys or None.*1.5"),
        ({"outputs": [None, None], "mask": "valid"}, ValueError, r"no `mask` for a model returning one tensor"),
        ({"outputs": "ab"}, TypeError, r"`outputs`.*sequence"),
    ],
)
def test_combine_heuristics_refuses(kwargs, error, match):
    args = {"heuristics": [BALD(), Margin()], **kwargs}
    refuses("CombineHeuristics()", lambda: CombineHeuristics(**args), error, match, args)


def test_combine_heuristics_score_refuses_a_wrong_number_of_outputs():
    combined = CombineHeuristics([BALD(), Margin()])
    for value in (log_probs(), [log_probs()], [log_probs()] * 3):
        refuses(
            "CombineHeuristics.score",
            lambda v=value: combined.score(v),
            ValueError,
            r"`log_probs`.*sequence of 2 tensors",
            combined,
        )


def test_combine_heuristics_accepts_valid_neighbours():
    combined = accepts(lambda: CombineHeuristics([BALD(), Variance()], weights=[0.0, 2], outputs=["a", "b"]))
    scores = accepts(lambda: combined.score([log_probs(), torch.randn(6, 4)]))
    assert scores.shape == (6,)


# ---------------------------------------------------------------------------------------------- score and select
@pytest.mark.parametrize(
    "name", [n for n in SCORING if HEURISTICS[n].consumes == "log_probs" and n not in ("random", "epig")]
)
@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: log_probs().exp(), ValueError, r"`log_probs`.*log-probabilities"),
        (lambda: log_probs()[:, 0], ValueError, r"`log_probs`.*\[N, K, C"),
        (lambda: log_probs().long(), TypeError, r"`log_probs`.*floating point"),
        (lambda: log_probs().tolist(), TypeError, r"`log_probs`.*torch.Tensor"),
        (lambda: log_probs().index_fill(0, torch.tensor([2]), NAN), ValueError, r"`log_probs`.*(NaN|finite)"),
        (rows_of_mass_two_and_zero, ValueError, r"row mass of `log_probs\[1, 0, :\]` is 2\b"),
    ],
)
def test_score_refuses(name, make, error, match):
    heuristic, value = get_heuristic(name), make()
    refuses(f"{name}.score", lambda: heuristic.score(value), error, match, heuristic, value)


@pytest.mark.parametrize("name", FROM_SCORES)
@pytest.mark.parametrize(
    ("scores", "query_size", "match"),
    [
        (torch.ones(4), 5, r"`query_size`.*\[0, 4\].*5"),
        (torch.ones(4), -1, r"`query_size`.*\[0, 4\].*-1"),
        (torch.ones(4), 2.0, r"`query_size`.*\[0, 4\].*2.0"),
        (torch.ones(4), None, r"`query_size`.*\[0, 4\].*None"),
        (torch.ones(2, 2), 1, r"`scores`.*shape \[N\].*\(2, 2\)"),
        ([1.0, 2.0], 1, r"`scores`.*shape \[N\]"),
        (torch.tensor(1.0), 1, r"`scores`.*shape \[N\]"),
        # A NaN is neither better nor worse than any score: top-k would quietly return fewer items than asked.
        (torch.tensor([NAN, 0.5, 0.2, 0.1]), 3, r"`scores`.*NaN.*1 of 4"),
        (torch.tensor([0.5, NAN]), 0, r"`scores`.*NaN.*1 of 2"),
    ],
)
def test_select_from_scores_refuses(name, scores, query_size, match):
    heuristic, generator = get_heuristic(name), torch.Generator().manual_seed(0)
    refuses(
        f"{name}.select_from_scores",
        lambda: heuristic.select_from_scores(scores, query_size, generator),
        ValueError,
        match,
        heuristic,
        generator,
    )


@pytest.mark.parametrize("name", FROM_SCORES)
def test_select_from_scores_accepts_valid_neighbours(name):
    heuristic = get_heuristic(name)
    for scores, query_size in ((torch.rand(4) + 0.1, 4), (torch.rand(4) + 0.1, 0), (torch.zeros(0), 0)):
        selection = accepts(lambda s=scores, q=query_size: heuristic.select_from_scores(s, q, torch.Generator()))
        assert selection.indices.numel() == query_size


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: torch.zeros(6, 4, 3), ValueError, r"`log_probs`.*\[N, K, 2, \.\.\.\].*\(6, 4, 3\)"),
        (lambda: torch.zeros(6, 4), ValueError, r"`log_probs`.*\[N, K, 2, \.\.\.\].*\(6, 4\)"),
        (lambda: [[0.0, 1.0]], ValueError, r"`log_probs`.*\[N, K, 2, \.\.\.\].*list"),
        (lambda: torch.zeros(6, 4, 2).index_fill(0, torch.tensor([1]), NAN), ValueError, r"(NaN|finite)"),
        (lambda: torch.zeros(6, 1, 2), ValueError, r"K >= 2"),
    ],
)
def test_gaussian_mi_score_refuses(make, error, match):
    heuristic, value = get_heuristic("gaussian_mi"), make()
    refuses("gaussian_mi.score", lambda: heuristic.score(value), error, match, heuristic, value)


def test_gaussian_mi_refuses_one_output_for_both_moments():
    refuses(
        "heuristics.gaussian_mi()",
        lambda: get_heuristic("gaussian_mi", mean=1),
        ValueError,
        r"`mean` and `log_variance`.*two outputs",
    )


@pytest.mark.parametrize("heuristic", [BatchBALD(), ICAL()])
def test_batch_aware_heuristics_refuse_selection_from_scores_alone(heuristic):
    refuses(
        f"{heuristic.name}.select_from_scores",
        lambda: heuristic.select_from_scores(torch.ones(3), 1),
        TypeError,
        r"`select\(log_probs, \.\.\.\)`.*batch-aware",
        heuristic,
    )


@pytest.mark.parametrize(
    ("targets", "error", "match"),
    [
        (None, ValueError, r"EPIG needs target inputs.*`targets=`"),
        (log_probs(0, 4, 3), ValueError, r"`log_probs_targets`.*T >= 1"),
        (log_probs(3, 4, 3).exp(), ValueError, r"`log_probs_targets`.*log-probabilities"),
        (log_probs(3, 2, 3), ValueError, r"`log_probs_targets`.*K"),
        (log_probs(3, 4, 3).tolist(), TypeError, r"`log_probs_targets`.*torch.Tensor"),
    ],
)
def test_epig_score_refuses(targets, error, match):
    heuristic = EPIG(num_targets=3)
    refuses("epig.score", lambda: heuristic.score(log_probs(), targets), error, match, heuristic, targets)


def test_epig_accepts_valid_neighbours():
    heuristic = EPIG(num_targets=1, target_dataset=[torch.zeros(2)])
    assert accepts(lambda: heuristic.select(log_probs(), 2, targets=log_probs(1, 4, 2))).indices.numel() == 2


@pytest.mark.parametrize(
    ("heuristic", "outputs", "error", "match"),
    [
        (BALD(), (torch.zeros(2, 3, 4), torch.zeros(2, 3)), TypeError, r"one tensor.*tuple of 2.*`BALD\(output=0\)`"),
        (BALD(output=2), (torch.zeros(2, 3, 4),), KeyError, r"`output=2`.*positions 0\.\.0"),
        (BALD(output="logit"), {"logits": torch.zeros(2, 3, 4)}, KeyError, r"`output='logit'`.*\['logits'\]"),
        (BALD(output=0), torch.zeros(2, 3, 4), KeyError, r"tuple or dict.*`output=0`"),
        (BALD(), torch.zeros(2, 3, 1), ValueError, r"C >= 2.*regression output"),
        (BALD(), torch.zeros(2, 3), ValueError, r"C >= 2.*\(2, 3\)"),
        (Entropy(output="x"), {"x": [1, 2]}, TypeError, r"output 'x'.*tensor.*list"),
    ],
)
def test_transform_refuses(heuristic, outputs, error, match):
    refuses(f"{heuristic.name}.transform", lambda: heuristic.transform(outputs), error, match, heuristic, outputs)


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(
    st.sampled_from(FROM_SCORES),
    st.integers(0, 6),
    st.one_of(st.integers(-50, -1), st.integers(7, 50), st.floats(allow_nan=True), st.none(), st.text(max_size=2)),
)
def test_generated_query_sizes_refused(name, n_items, query_size):
    if isinstance(query_size, int) and query_size <= n_items and query_size >= 0:
        query_size = n_items + 1
    heuristic, scores = get_heuristic(name), torch.rand(n_items)
    refuses(
        f"{name}.select_from_scores",
        lambda: heuristic.select_from_scores(scores, query_size, torch.Generator()),
        ValueError,
        rf"`query_size`.*\[0, {n_items}\]",
        heuristic,
        scores,
    )


def test_random_and_power_bald_select_without_mc_inputs():
    assert accepts(lambda: Random().select_from_scores(torch.zeros(3), 2, torch.Generator())).indices.numel() == 2
    assert accepts(lambda: PowerBALD().select_from_scores(torch.zeros(3), 3, torch.Generator())).indices.numel() == 3


class _Costly(Heuristic):
    name = "test_costly"
    cost = "O(N)"


class _Nameless(Heuristic):
    cost = "O(N)"


class _Costless(Heuristic):
    name = "test_costless"


class _Taken(Heuristic):
    name = "bald"
    cost = "O(N)"


@pytest.mark.parametrize(
    ("cls", "error", "match"),
    [
        (BALD(), TypeError, r"`cls`.*`Heuristic` subclass.*BALD\(\)"),
        (int, TypeError, r"`cls`.*`Heuristic` subclass"),
        (_Nameless, TypeError, r"`_Nameless.name`.*non-empty string"),
        (_Costless, TypeError, r"`_Costless.cost`.*non-empty string.*None"),
        (_Taken, ValueError, r"`_Taken.name`.*free name.*'bald' is BALD's"),
    ],
)
def test_register_heuristic_refuses(cls, error, match):
    refuses("register_heuristic", lambda: register_heuristic(cls), error, match, HEURISTICS)


def test_register_heuristic_accepts_a_declared_class_once_or_again():
    try:
        assert accepts(lambda: register_heuristic(_Costly)) is _Costly
        assert accepts(lambda: register_heuristic(_Costly)) is _Costly  # the same class again: a no-op
        assert isinstance(get_heuristic("test_costly"), _Costly)
    finally:
        HEURISTICS.pop("test_costly", None)


@pytest.mark.parametrize("name", ["bald", "margin", "power_bald", "random"])
def test_select_sharded_refuses_nan_scores_that_no_rank_would_send(name):
    """The NaN is not among the shard's top 1: the pool pass must refuse it all the same."""
    heuristic, generator = get_heuristic(name), torch.Generator().manual_seed(0)
    shard = ScoredShard(torch.arange(4), torch.tensor([0.9, NAN, 0.2, 0.1]))
    collective = Collective()
    refuses(
        f"{name}.select_sharded",
        lambda: heuristic.select_sharded(shard, 1, generator, collective),
        ValueError,
        r"`scores`.*NaN.*1 of 4",
        heuristic,
        shard,
        generator,
    )
