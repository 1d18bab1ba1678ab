"""Bad inputs to the functional API: shapes, dtypes, NaN/inf, probabilities for log-probabilities, bad arguments."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal import functional as F  # noqa: N812
from lightning_bal.functional._validation import mass_tolerance
from tests.bad_inputs.harness import accepts, refuses

NAN, INF = float("nan"), float("inf")


def log_probs(n: int = 6, k: int = 4, c: int = 3, *trailing: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, c, *trailing, generator=generator).log_softmax(2)


def with_value(tensor: torch.Tensor, value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[1] = value
    return tensor


def with_row_masses(tensor: torch.Tensor, first: tuple[int, ...], second: tuple[int, ...]) -> torch.Tensor:
    """Make row ``first`` (an index with the class dim left out) sum to 2 and row ``second`` to 0: mean mass 1."""
    tensor = tensor.clone()
    tensor[first[:2] + (slice(None),) + first[2:]] += math.log(2.0)
    tensor[second[:2] + (slice(None),) + second[2:]] = -INF
    return tensor


POINTWISE = {
    "entropy": (F.entropy, False),
    "margin": (F.margin, False),
    "least_confidence": (F.least_confidence, False),
    "bald": (F.bald, True),
    "expected_entropy": (F.expected_entropy, False),
    "variation_ratios": (F.variation_ratios, True),
    "mean_std": (F.mean_std, True),
}
# (make the input, error, message pattern), for every pointwise heuristic of log-probabilities.
BAD_LOG_PROBS = [
    (lambda: log_probs().tolist(), TypeError, r"`log_probs`.*torch.Tensor.*list"),
    (lambda: log_probs().numpy(), TypeError, r"`log_probs`.*torch.Tensor.*ndarray"),
    (lambda: None, TypeError, r"`log_probs`.*torch.Tensor"),
    (lambda: torch.zeros(6, 4, 3, dtype=torch.long), TypeError, r"`log_probs`.*floating point.*int64"),
    (lambda: torch.zeros(6, 4, 3, dtype=torch.bool), TypeError, r"`log_probs`.*floating point.*bool"),
    (lambda: log_probs()[:, 0], ValueError, r"`log_probs`.*\[N, K, C, \.\.\.\].*\(6, 3\)"),
    (lambda: log_probs()[0, 0], ValueError, r"`log_probs`.*\[N, K, C, \.\.\.\].*\(3,\)"),
    (lambda: torch.tensor(0.0), ValueError, r"`log_probs`.*\[N, K, C, \.\.\.\].*\(\)"),
    (lambda: log_probs().exp(), ValueError, r"`log_probs`.*log-probabilities"),
    (lambda: log_probs() + 2.0, ValueError, r"`log_probs`.*log-probabilities.*probabilities or logits"),
    (lambda: torch.randn(6, 4, 3, generator=torch.Generator().manual_seed(1)), ValueError, r"`log_probs`.*log-prob"),
    (lambda: log_probs() - 1.0, ValueError, r"`log_probs`.*log-probabilities.*row mass"),
    (lambda: with_value(log_probs(), NAN), ValueError, r"`log_probs`.*(finite|NaN)"),
    (lambda: with_value(log_probs(), INF), ValueError, r"`log_probs`.*(finite|log-probabilities)"),
    (lambda: torch.full((6, 4, 3), NAN), ValueError, r"`log_probs`.*(finite|NaN)"),
    (lambda: log_probs().exp().log1p(), ValueError, r"`log_probs`.*log-probabilities"),
    (lambda: log_probs(6, 4, 3, 5).exp(), ValueError, r"`log_probs`.*log-probabilities"),
    # Rows summing to 2 and 0 in two items (or two positions) keep the pool's mean row mass at 1 but move each
    # item's: the first bad item is found and its bad row named.
    (
        lambda: with_row_masses(log_probs(), (2, 1), (4, 3)),
        ValueError,
        r"row mass of `log_probs\[2, 1, :\]` is 2 \(mean row mass of `log_probs\[2, :, :\]` is 1.25\)",
    ),
    (lambda: with_row_masses(log_probs(), (5, 0), (0, 2)), ValueError, r"row mass of `log_probs\[0, 2, :\]` is 0\b"),
    (
        lambda: with_row_masses(log_probs(6, 4, 3, 5), (1, 2, 4), (1, 2, 3)),
        ValueError,
        r"row mass of `log_probs\[1, 2, :, 3\]` is 0 \(mean row mass of `log_probs\[1, :, :, 3\]` is 0.75\)",
    ),
]


@pytest.mark.parametrize("name", sorted(POINTWISE))
@pytest.mark.parametrize(("make", "error", "match"), BAD_LOG_PROBS)
def test_pointwise_log_probs_refused(name, make, error, match):
    fn, _ = POINTWISE[name]
    value = make()
    refuses(f"functional.{name}", lambda: fn(value), error, match, value)


@pytest.mark.parametrize("name", sorted(n for n, (_, mc) in POINTWISE.items() if mc))
def test_single_mc_sample_refused_where_samples_are_compared(name):
    fn, _ = POINTWISE[name]
    value = log_probs(6, 1, 3)
    refuses(f"functional.{name}", lambda: fn(value), ValueError, r"`log_probs`.*K >= 2 MC samples.*K=1", value)


@pytest.mark.parametrize("name", sorted(POINTWISE))
@pytest.mark.parametrize(
    ("reduction", "match"),
    [
        ("median", r"`reduction`.*'mean', 'sum', 'max'.*'median'"),
        ("MEAN", r"`reduction`.*'mean', 'sum', 'max'"),
        (None, r"`reduction`.*'mean', 'sum', 'max'.*None"),
        (2, r"`reduction`.*'mean', 'sum', 'max'"),
        (lambda s: s.mean(), r"`reduction`.*return a tensor of shape \(6,\)"),
        (lambda s: s.flatten(1).tolist(), r"`reduction`.*return a tensor of shape \(6,\)"),
        (lambda s: s, r"`reduction`.*return a tensor of shape \(6,\)"),
    ],
)
def test_bad_reduction_refused(name, reduction, match):
    fn, _ = POINTWISE[name]
    value = log_probs(6, 4, 3, 5)
    refuses(f"functional.{name}", lambda: fn(value, reduction=reduction), ValueError, match, value)


@pytest.mark.parametrize("name", sorted(POINTWISE))
@pytest.mark.parametrize(
    "make",
    [
        lambda: log_probs(),
        lambda: log_probs(0, 4, 3),
        lambda: log_probs(6, 4, 3, 5),
        lambda: log_probs().double(),
        lambda: log_probs().clamp_min(-20).masked_fill(log_probs() < -2, -INF).log_softmax(2),
        lambda: log_probs(1, 2, 2),
        # What a bfloat16 model's log_softmax gives, upcast: every row's mass off by rounding (up to ~0.02 here).
        lambda: torch.randn(6, 4, 1000, generator=torch.Generator().manual_seed(3)).bfloat16().log_softmax(2).float(),
        lambda: log_probs(6, 4, 2).bfloat16(),
        # The documented limit of the per-item mass check: rows of one item whose errors offset each other.
        lambda: with_row_masses(log_probs(), (3, 0), (3, 1)),
    ],
    ids=[
        "plain",
        "empty-pool",
        "trailing",
        "float64",
        "exact-zeros",
        "smallest",
        "bf16-rounded-1000",
        "bf16",
        "offsetting-rows-of-one-item",
    ],
)
def test_pointwise_valid_neighbours_accepted(name, make):
    fn, _ = POINTWISE[name]
    value = make()
    for reduction in ("mean", "sum", "max", lambda s: s.flatten(1).amin(1)):
        scores = accepts(lambda r=reduction: fn(value, reduction=r))
        assert scores.shape == (value.shape[0],)
        assert torch.isfinite(scores).all()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: torch.zeros(6, 4, dtype=torch.long), TypeError, r"`predictions`.*floating point"),
        (lambda: torch.zeros(6), ValueError, r"`predictions`.*\[N, K, \.\.\.\]"),
        (lambda: torch.zeros(6, 1), ValueError, r"`predictions`.*K >= 2"),
        (lambda: with_value(torch.zeros(6, 4), NAN), ValueError, r"`predictions`.*finite"),
        (lambda: with_value(torch.zeros(6, 4), INF), ValueError, r"`predictions`.*finite"),
        (lambda: [[0.0, 1.0]], TypeError, r"`predictions`.*tensor.*list"),
    ],
)
def test_variance_refuses(make, error, match):
    value = make()
    refuses("functional.variance", lambda: F.variance(value), error, match, value)


def test_variance_accepts_valid_neighbours():
    assert accepts(lambda: F.variance(torch.zeros(6, 4))).tolist() == [0.0] * 6
    assert accepts(lambda: F.variance(torch.zeros(0, 4))).shape == (0,)
    assert accepts(lambda: F.variance(torch.randn(6, 4, 2, 2), reduction="max")).shape == (6,)


# ---------------------------------------------------------------------------------------------- batch selection
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"query_size": -1}, ValueError, r"`query_size`.*\[0, 6\].*-1"),
        ({"query_size": 7}, ValueError, r"`query_size`.*\[0, 6\].*7"),
        ({"query_size": 1.5}, ValueError, r"`query_size`.*\[0, 6\].*1.5"),
        ({"query_size": True}, ValueError, r"`query_size`.*\[0, 6\].*True"),
        ({"query_size": None}, ValueError, r"`query_size`.*\[0, 6\].*None"),
        ({"num_samples": 0}, ValueError, r"`num_samples`.*0"),
        ({"num_samples": 10.0}, ValueError, r"`num_samples`"),
        ({"generator": 3}, TypeError, r"`generator`.*torch.Generator"),
        ({"log_probs": log_probs(6, 4, 3, 2)}, ValueError, r"`log_probs`.*\[N, K, C\]"),
        ({"log_probs": log_probs(6, 1, 3)}, ValueError, r"`log_probs`.*K >= 2"),
        ({"log_probs": log_probs().exp()}, ValueError, r"`log_probs`.*log-probabilities"),
        ({"log_probs": with_value(log_probs(), NAN)}, ValueError, r"`log_probs`.*(NaN|finite)"),
        ({"log_probs": with_value(log_probs(), INF)}, ValueError, r"`log_probs`.*(\+inf|finite|log-prob)"),
        ({"log_probs": log_probs().long()}, TypeError, r"`log_probs`.*floating point"),
        ({"log_probs": log_probs().tolist()}, TypeError, r"`log_probs`.*torch.Tensor"),
        ({"log_probs": with_row_masses(log_probs(), (2, 1), (4, 3))}, ValueError, r"`log_probs\[2, 1, :\]` is 2\b"),
    ],
)
def test_batchbald_refuses(kwargs, error, match):
    args = {"log_probs": log_probs(), "query_size": 2, "num_samples": 100, "generator": generator(), **kwargs}
    refuses("functional.batchbald", lambda: F.batchbald(**args), error, match, args)


def test_batchbald_accepts_valid_neighbours():
    for query_size in (0, 1, 6):
        indices, scores = accepts(lambda q=query_size: F.batchbald(log_probs(), q, 100, generator()))
        assert indices.shape == scores.shape == (query_size,)
    exact_zeros = log_probs().masked_fill(log_probs() < -2.5, -INF).log_softmax(2)
    assert accepts(lambda: F.batchbald(exact_zeros, 3, 4, generator()))[1].isfinite().all()
    assert accepts(lambda: F.batchbald(log_probs(0, 4, 3), 0))[0].numel() == 0


@pytest.mark.parametrize(
    ("pool", "targets", "error", "match"),
    [
        (log_probs(), log_probs(0, 4, 3), ValueError, r"`log_probs_targets`.*T >= 1"),
        (log_probs(), log_probs(5, 3, 3), ValueError, r"`log_probs_targets`.*same K|K=3.*K=4|K"),
        (log_probs(), log_probs(5, 4, 3, 2), ValueError, r"`log_probs_targets`.*\[T, K, C\]"),
        (log_probs(6, 4, 3, 2), log_probs(5, 4, 3), ValueError, r"`log_probs_pool`.*\[N, K, C\]"),
        (log_probs(6, 1, 3), log_probs(5, 1, 3), ValueError, r"`log_probs_pool`.*K >= 2"),
        (log_probs().exp(), log_probs(5, 4, 3), ValueError, r"`log_probs_pool`.*log-probabilities"),
        (log_probs(), log_probs(5, 4, 3).exp(), ValueError, r"`log_probs_targets`.*log-probabilities"),
        (with_value(log_probs(), NAN), log_probs(5, 4, 3), ValueError, r"`log_probs_pool`.*(NaN|finite)"),
        (log_probs(), with_value(log_probs(5, 4, 3), NAN), ValueError, r"`log_probs_targets`.*(NaN|finite)"),
        (log_probs().tolist(), log_probs(5, 4, 3), TypeError, r"`log_probs_pool`.*torch.Tensor"),
        (log_probs(), log_probs(5, 4, 3).long(), TypeError, r"`log_probs_targets`.*floating point"),
        (with_row_masses(log_probs(), (1, 1), (2, 2)), log_probs(5, 4, 3), ValueError, r"`log_probs_pool\[1, 1, :\]`"),
        (
            log_probs(),
            with_row_masses(log_probs(5, 4, 3), (4, 0), (0, 3)),
            ValueError,
            r"`log_probs_targets\[0, 3, :\]",
        ),
    ],
)
def test_epig_refuses(pool, targets, error, match):
    refuses("functional.epig", lambda: F.epig(pool, targets), error, match, pool, targets)


def test_epig_accepts_valid_neighbours():
    assert accepts(lambda: F.epig(log_probs(), log_probs(5, 4, 3, seed=1))).shape == (6,)
    assert accepts(lambda: F.epig(log_probs(0, 4, 3), log_probs(1, 4, 2))).shape == (0,)
    assert accepts(lambda: F.epig(log_probs(2, 4, 3).double(), log_probs(1, 4, 5))).dtype == torch.float64


# ---------------------------------------------------------------------------------------------- stochastic sampling
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "linear"}, ValueError, r"`mode`.*'power', 'softmax', 'softrank'.*'linear'"),
        ({"mode": None}, ValueError, r"`mode`.*'power', 'softmax', 'softrank'"),
        ({"beta": -1.0}, ValueError, r"`beta`.*finite number >= 0.*-1"),
        ({"beta": NAN}, ValueError, r"`beta`.*finite number >= 0.*nan"),
        ({"beta": INF}, ValueError, r"`beta`.*finite number >= 0.*inf"),
        ({"beta": "1"}, ValueError, r"`beta`.*finite number >= 0"),
        ({"beta": True}, ValueError, r"`beta`.*finite number >= 0"),
        ({"scores": torch.ones(2, 3)}, ValueError, r"`scores`.*shape \[N\].*\(2, 3\)"),
        ({"scores": [1.0, 2.0]}, ValueError, r"`scores`.*shape \[N\]"),
        ({"scores": torch.tensor([1.0, NAN])}, ValueError, r"`scores`.*finite"),
        ({"scores": torch.tensor([1.0, INF])}, ValueError, r"`scores`.*finite"),
        ({"scores": torch.tensor([1.0, -0.5])}, ValueError, r"`scores`.*>= 0 for power"),
        ({"higher_is_better": False}, ValueError, r"`higher_is_better`.*True for power"),
    ],
)
def test_sampling_log_weights_refuses(kwargs, error, match):
    args = {"scores": torch.tensor([1.0, 2.0, 0.0]), "mode": "power", "beta": 1.0, **kwargs}
    refuses("functional.sampling_log_weights", lambda: F.sampling_log_weights(**args), error, match, args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"query_size": -1}, ValueError, r"`query_size`.*\[0, 4\].*-1"),
        ({"query_size": 5}, ValueError, r"`query_size`.*\[0, 4\].*5"),
        ({"query_size": 2.0}, ValueError, r"`query_size`.*\[0, 4\].*2.0"),
        ({"query_size": 4}, ValueError, r"`log_weights`.*at least `query_size`=4.*non-zero.*3"),
        ({"log_weights": torch.tensor([0.0, NAN, 1.0, 2.0])}, ValueError, r"`log_weights`.*no NaN or \+inf"),
        ({"log_weights": torch.tensor([0.0, INF, 1.0, 2.0])}, ValueError, r"`log_weights`.*no NaN or \+inf"),
        ({"log_weights": [0.0, 1.0, 2.0, 3.0]}, ValueError, r"`log_weights`.*tensor of shape \[N\]"),
        ({"log_weights": torch.zeros(2, 2)}, ValueError, r"`log_weights`.*tensor of shape \[N\].*\(2, 2\)"),
        ({"log_weights": torch.zeros(4, dtype=torch.long)}, TypeError, r"`log_weights`.*floating point"),
        ({"generator": 0}, TypeError, r"`generator`.*torch.Generator"),
    ],
)
def test_sample_without_replacement_refuses(kwargs, error, match):
    args = {"log_weights": torch.tensor([0.0, -INF, 1.0, 2.0]), "query_size": 2, "generator": generator(), **kwargs}
    refuses("functional.sample_without_replacement", lambda: F.sample_without_replacement(**args), error, match, args)


def test_sampling_accepts_valid_neighbours():
    weights = accepts(lambda: F.sampling_log_weights(torch.tensor([1.0, 2.0, 0.0]), "softrank", 0.0, False))
    assert accepts(lambda: F.sample_without_replacement(weights, 3, generator()))[0].numel() == 3
    log_weights = torch.tensor([0.0, -INF, 1.0, 2.0])
    indices, probabilities = accepts(lambda: F.sample_without_replacement(log_weights, 4, generator(), True))
    assert sorted(indices.tolist()) == [0, 1, 2, 3]
    assert probabilities[-1] == 1.0
    assert accepts(lambda: F.sample_without_replacement(torch.zeros(0), 0))[0].numel() == 0


# ---------------------------------------------------------------------------------------------- risk
@pytest.mark.parametrize("fn", [F.lure_weights, F.pure_weights], ids=["lure", "pure"])
@pytest.mark.parametrize(
    ("probabilities", "pool_size", "match"),
    [
        (torch.tensor([0.5]), 0, r"`pool_size`.*positive integer.*0"),
        (torch.tensor([0.5]), -3, r"`pool_size`.*positive integer"),
        (torch.tensor([0.5]), 2.0, r"`pool_size`.*positive integer"),
        (torch.tensor([0.5]), True, r"`pool_size`.*positive integer"),
        (torch.tensor([[0.5]]), 4, r"`probabilities`.*shape \[M\].*\(1, 1\)"),
        ([0.5], 4, r"`probabilities`.*shape \[M\]"),
        (torch.tensor([0.5, 0.5, 0.5]), 2, r"`probabilities`.*at most `pool_size`=2.*3"),
        (torch.tensor([0.0]), 4, r"`probabilities`.*\(0, 1\].*0.0"),
        (torch.tensor([1.5]), 4, r"`probabilities`.*\(0, 1\].*1.5"),
        (torch.tensor([NAN]), 4, r"`probabilities`.*\(0, 1\].*nan"),
        (torch.tensor([-INF]), 4, r"`probabilities`.*\(0, 1\]"),
    ],
)
def test_risk_weights_refuse(fn, probabilities, pool_size, match):
    refuses(f"functional.{fn.__name__}", lambda: fn(probabilities, pool_size), ValueError, match, probabilities)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((-1, 5), ValueError, r"`count`.*non-negative integer.*-1"),
        ((1.0, 5), ValueError, r"`count`.*non-negative integer"),
        ((2, 5, -1), ValueError, r"`num_acquired`.*non-negative integer"),
        ((4, 3), ValueError, r"`pool_size`.*>= `count` \+ `num_acquired` = 4.*3"),
        ((2, 3, 2), ValueError, r"`pool_size`.*>= `count` \+ `num_acquired` = 4.*3"),
        ((2, "5"), ValueError, r"`pool_size`.*integer"),
    ],
)
def test_uniform_probabilities_refuses(args, error, match):
    refuses("functional.uniform_probabilities", lambda: F.uniform_probabilities(*args), error, match)


@pytest.mark.parametrize(
    ("losses", "weights", "error", "match"),
    [
        (torch.ones(3), torch.ones(2), ValueError, r"`losses` and `weights`.*same non-empty shape.*\(3,\).*\(2,\)"),
        (torch.ones(0), torch.ones(0), ValueError, r"`losses` and `weights`.*non-empty"),
        (torch.ones(2, 2), torch.ones(2, 2), ValueError, r"`losses`.*shape \[M\]"),
        ([1.0], torch.ones(1), ValueError, r"`losses`.*shape \[M\]"),
        (torch.ones(1), [1.0], ValueError, r"`weights`.*shape \[M\]"),
        (torch.ones(2, dtype=torch.long), torch.ones(2), TypeError, r"`losses`.*floating point"),
    ],
)
def test_weighted_risk_refuses(losses, weights, error, match):
    refuses("functional.weighted_risk", lambda: F.weighted_risk(losses, weights), error, match, losses, weights)


def test_risk_accepts_valid_neighbours():
    uniform = accepts(lambda: F.uniform_probabilities(4, 4))
    assert accepts(lambda: F.lure_weights(uniform, 4)).tolist() == [1.0] * 4
    assert accepts(lambda: F.pure_weights(torch.zeros(0), 1)).numel() == 0
    assert accepts(lambda: F.weighted_risk(torch.ones(2), torch.ones(2, dtype=torch.float64))) == 1.0


# ---------------------------------------------------------------------------------------------- generated inputs
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.sampled_from(sorted(POINTWISE)),
    st.integers(1, 4),
    st.integers(2, 4),
    st.integers(2, 4),
    st.sampled_from(["probabilities", "logits", "shifted", "nan"]),
    st.integers(0, 2**16),
)
def test_generated_non_log_probabilities_refused(name, n, k, c, kind, seed):
    """Probabilities, logits, shifted log-probabilities or NaN in generated shapes: never scored as if valid."""
    fn, _ = POINTWISE[name]
    valid = log_probs(n, k, c, seed=seed)
    value = {
        "probabilities": valid.exp(),
        "logits": valid + 1.0 + torch.rand(()),
        "shifted": valid - 0.5,
        "nan": with_value(valid, NAN),
    }[kind]
    refuses(f"functional.{name}", lambda: fn(value), ValueError, r"`log_probs`.*(log-probabilities|NaN|finite)", value)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.sampled_from(sorted(POINTWISE)),
    st.integers(1, 5),
    st.integers(2, 4),
    st.integers(2, 50),
    st.integers(0, 2**16),
    st.data(),
)
def test_generated_row_masses_refused(name, n, k, c, seed, data):
    """One row's mass moved by over K times the tolerance, so that its item's mean moves out of it: that row named."""
    fn, _ = POINTWISE[name]
    value = log_probs(n, k, c, seed=seed)
    off = 2 * k * mass_tolerance(c)
    mass = data.draw(st.one_of(st.floats(0.0, 1.0 - off), st.floats(1.0 + off, 1.0 + 2 * off)), "mass")
    row = data.draw(st.tuples(st.integers(0, n - 1), st.integers(0, k - 1)), "row")
    value[row] += math.log(mass) if mass > 0 else -INF
    pattern = rf"`log_probs`.*log-probabilities.*row mass of `log_probs\[{row[0]}, {row[1]}, :\]`"
    refuses(f"functional.{name}", lambda: fn(value), ValueError, pattern, value)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(sorted(POINTWISE)), st.sampled_from([2, 10, 21, 100, 1000]), st.integers(0, 2**16))
def test_generated_bfloat16_log_probs_accepted(name, c, seed):
    """A bfloat16 model's log-probabilities pass the row check, however they reach the heuristic."""
    fn, _ = POINTWISE[name]
    logits = torch.randn(3, 4, c, generator=torch.Generator().manual_seed(seed)) * (1 + seed % 8)
    for value in (logits.bfloat16().log_softmax(2), logits.bfloat16().log_softmax(2).float(), logits.log_softmax(2)):
        assert accepts(lambda v=value: fn(v)).shape == (3,)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 5), st.one_of(st.integers(-100, -1), st.integers(6, 100), st.floats(0, 5), st.booleans()))
def test_generated_query_sizes_refused(n_items, query_size):
    query_size = query_size if not isinstance(query_size, int) or isinstance(query_size, bool) else query_size
    if isinstance(query_size, int) and not isinstance(query_size, bool) and 0 <= query_size <= n_items:
        query_size = n_items + 1
    value = log_probs(n_items, 3, 2)
    refuses(
        "functional.batchbald",
        lambda: F.batchbald(value, query_size, 10, generator()),
        ValueError,
        rf"`query_size`.*\[0, {n_items}\]",
        value,
    )
    weights = torch.zeros(n_items)
    refuses(
        "functional.sample_without_replacement",
        lambda: F.sample_without_replacement(weights, query_size, generator()),
        ValueError,
        rf"`query_size`.*\[0, {n_items}\]",
        weights,
    )
