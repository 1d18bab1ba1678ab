"""The math of several annotators per item: majority vote, Dawid-Skene, Cohen's and Fleiss' kappa."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from lightning_bal.annotation import stopping
from lightning_bal.annotation.consensus import cohen_kappa, dawid_skene, fleiss_kappa, majority_vote

CELL = st.one_of(st.none(), st.integers(0, 3))


@st.composite
def tables(draw: st.DrawFn, min_annotators: int = 1) -> list[list[int | None]]:
    annotators = draw(st.integers(min_annotators, 5))
    return draw(st.lists(st.lists(CELL, min_size=annotators, max_size=annotators), min_size=1, max_size=25))


@st.composite
def two_columns(draw: st.DrawFn) -> tuple[list[int | None], list[int | None]]:
    """Two annotators who share at least one answered item."""
    size = draw(st.integers(1, 30))
    first = draw(st.lists(CELL, min_size=size, max_size=size))
    second = draw(st.lists(CELL, min_size=size, max_size=size))
    shared = draw(st.integers(0, size - 1))
    first[shared] = draw(st.integers(0, 3)) if first[shared] is None else first[shared]
    second[shared] = draw(st.integers(0, 3)) if second[shared] is None else second[shared]
    return first, second


def with_two_answers(table: list[list[int | None]]) -> bool:
    return any(sum(cell is not None for cell in row) >= 2 for row in table)


# ---------------------------------------------------------------- Cohen's kappa


@settings(max_examples=200, deadline=None)
@given(two_columns())
def test_cohen_kappa_is_symmetric_bounded_and_sklearns(columns):
    first, second = columns
    kappa = cohen_kappa(first, second)
    assert kappa == pytest.approx(cohen_kappa(second, first), abs=1e-12)
    assert -1.0 - 1e-12 <= kappa <= 1.0 + 1e-12
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if a is not None and b is not None]
    left, right = [a for a, _ in pairs], [b for _, b in pairs]
    if len(set(left) | set(right)) > 1:  # sklearn's kappa is 0 / 0 (nan) for one class throughout
        assert kappa == pytest.approx(cohen_kappa_score(left, right), abs=1e-9)
        assert kappa == pytest.approx(stopping.cohen_kappa(torch.tensor(left), torch.tensor(right)), abs=1e-5)


@settings(max_examples=100, deadline=None)
@given(two_columns())
def test_cohen_kappa_is_one_on_identical_answers(columns):
    first, _ = columns
    if all(cell is None for cell in first):
        first = [0, *first[1:]]
    assert cohen_kappa(first, first) == 1.0


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # Hand-computed: p_o = 3/4, p_e = (2*3 + 2*1) / 16 = 1/2.
        ([0, 1, 1, 0], [0, 1, 0, 0], 0.5),
        # Opposite answers on two balanced classes: p_o = 0, p_e = 1/2.
        ([0, 1, 0, 1], [1, 0, 1, 0], -1.0),
        # The unpaired items (None on either side) are left out.
        ([0, 1, None, 1, 0], [0, 1, 1, None, 0], 1.0),
        ([2, 2, 2], [2, 2, 2], 1.0),
    ],
)
def test_cohen_kappa_worked_numbers(first, second, expected):
    assert cohen_kappa(first, second) == pytest.approx(expected)


# ---------------------------------------------------------------- Fleiss' kappa

# The 10 subjects x 5 categories table of 14 raters in the Fleiss' kappa article of Wikipedia, whose worked numbers
# are P-bar = 0.378, P_e = 0.213, kappa = 0.210 (each row: how many raters chose each category).
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example():
    table = [[k for k, n in enumerate(counts) for _ in range(n)] for counts in FLEISS_COUNTS]
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_kappa_hand_computed_with_missing_answers():
    # P_i = 1, 1/3, 1, 0 -> P-bar = 7/12; shares 5/11 and 6/11 -> P_e = 61/121.
    table = [[0, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, None], [None, 1, None]]
    expected = (7 / 12 - 61 / 121) / (1 - 61 / 121)
    assert fleiss_kappa(table) == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(tables(min_annotators=2), st.randoms(use_true_random=False))
def test_fleiss_kappa_is_bounded_and_ignores_annotator_order(table, random):
    if not with_two_answers(table):
        with pytest.raises(ValueError, match="at least one item with two or more answers"):
            fleiss_kappa(table)
        return
    kappa = fleiss_kappa(table)
    assert -1.0 - 1e-12 <= kappa <= 1.0 + 1e-12
    order = list(range(len(table[0])))
    random.shuffle(order)
    assert fleiss_kappa([[row[a] for a in order] for row in table]) == pytest.approx(kappa, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=20), st.integers(2, 5))
def test_fleiss_kappa_is_one_when_every_annotator_agrees(labels, annotators):
    assert fleiss_kappa([[label] * annotators for label in labels]) == 1.0


# ---------------------------------------------------------------- majority vote


@settings(max_examples=200, deadline=None)
@given(tables(), st.randoms(use_true_random=False))
def test_majority_vote_ignores_annotator_order(table, random):
    order = list(range(len(table[0])))
    random.shuffle(order)
    assert majority_vote([[row[a] for a in order] for row in table]) == majority_vote(table)


@pytest.mark.parametrize(
    ("row", "expected"),
    [([0, 0, 1], 0), ([2, None, 2], 2), ([0, 1, None], None), ([0, 1, 1, 0], None), ([None, None], None), ([3], 3)],
)
def test_majority_vote_leaves_ties_undecided(row, expected):
    assert majority_vote([row]) == [expected]


# ---------------------------------------------------------------- Dawid-Skene


def simulate(
    confusions: torch.Tensor, items: int, answer_rate: float, seed: int
) -> tuple[list[int], list[list[int | None]]]:
    """True classes and the answers of annotators with known ``confusions`` [A, C, C] (each answers some items)."""
    generator = torch.Generator().manual_seed(seed)
    classes = confusions.shape[1]
    truth = torch.randint(classes, (items,), generator=generator)
    table: list[list[int | None]] = []
    for item in range(items):
        row: list[int | None] = []
        for confusion in confusions:
            answers = bool(torch.rand((), generator=generator) < answer_rate)
            said = int(torch.multinomial(confusion[truth[item]], 1, generator=generator))
            row.append(said if answers else None)
        table.append(row)
    return truth.tolist(), table


def noisy_confusions() -> torch.Tensor:
    good = torch.full((3, 3), 0.05).fill_diagonal_(0.9)
    # Sloppy annotators who mostly answer class 0 whatever the item.
    sloppy = torch.tensor([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.6, 0.1, 0.3]])
    return torch.stack([good, good, sloppy, sloppy, sloppy])


def accuracy(labels: list[int | None], truth: list[int]) -> float:
    return sum(label == true for label, true in zip(labels, truth, strict=True)) / len(truth)


def counted_confusions(table: list[list[int | None]], labels: list[int | None], classes: int) -> torch.Tensor:
    """Each annotator's confusion counted against ``labels`` taken as the truth (rows of unseen classes uniform)."""
    counts = torch.zeros(len(table[0]), classes, classes, dtype=torch.float64)
    for row, label in zip(table, labels, strict=True):
        for annotator, said in enumerate(row):
            if said is not None and label is not None:
                counts[annotator, label, said] += 1
    return (counts + 1e-9) / (counts + 1e-9).sum(2, keepdim=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_dawid_skene_recovers_known_confusions_better_than_majority_vote(seed):
    confusions = noisy_confusions()
    truth, table = simulate(confusions, items=400, answer_rate=0.8, seed=seed)
    result = dawid_skene(table, num_classes=3)
    voted = majority_vote(table, num_classes=3)
    assert result.converged
    assert accuracy(result.labels, truth) >= accuracy(voted, truth) + 0.15
    assert accuracy(result.labels, truth) > 0.85
    error = (result.confusions - confusions.double()).abs().amax(dim=(1, 2))
    error_voted = (counted_confusions(table, voted, 3) - confusions.double()).abs().amax(dim=(1, 2))
    assert error.max() < 0.15
    assert error.mean() < error_voted.mean() - 0.1
    assert torch.allclose(result.posteriors.sum(1), torch.ones(400, dtype=torch.float64))


def test_dawid_skene_handles_an_annotator_who_labels_few_items_and_items_nobody_answered():
    confusions = noisy_confusions()[:3]
    truth, table = simulate(confusions, items=200, answer_rate=1.0, seed=1)
    for row in table[3:]:
        row[2] = None  # the third annotator answered three items only
    table.append([None, None, None])
    result = dawid_skene(table, num_classes=3)
    assert result.labels[-1] is None
    assert torch.allclose(result.posteriors[-1], result.priors, atol=1e-4)
    # Three answers say little: the few-item annotator's confusion stays near uniform where nothing was seen.
    assert accuracy(result.labels[:-1], truth) > 0.85
    assert result.confusions.shape == (3, 3, 3)
    assert torch.allclose(result.confusions.sum(2), torch.ones(3, 3, dtype=torch.float64))


def test_dawid_skene_with_one_annotator_keeps_their_answers():
    answers = [[0], [1], [2], [1], [None]]
    result = dawid_skene(answers)
    assert result.labels == [0, 1, 2, 1, None]
    assert (result.iterations, result.converged) == (0, True)
    # Two annotators who never answer the same item: nothing to compare either.
    assert dawid_skene([[0, None], [None, 1], [2, None]]).labels == [0, 1, 2]


def test_dawid_skene_is_deterministic_and_stops_at_the_cap():
    _, table = simulate(noisy_confusions(), items=100, answer_rate=0.7, seed=2)
    first, second = dawid_skene(table, max_iterations=2), dawid_skene(table, max_iterations=2)
    assert first.iterations == 2
    assert not first.converged
    assert torch.equal(first.posteriors, second.posteriors)
    assert first.labels == second.labels


def test_dawid_skene_leaves_a_symmetric_tie_undecided():
    # Two annotators of equal standing who disagree on every item they share: nothing breaks the tie.
    assert dawid_skene([[0, 1], [1, 0]]).labels == [None, None]


@settings(max_examples=50, deadline=None)
@given(tables())
def test_dawid_skene_posteriors_are_distributions(table):
    result = dawid_skene(table)
    assert torch.isfinite(result.posteriors).all()
    assert torch.allclose(result.posteriors.sum(1), torch.ones(len(table), dtype=torch.float64))
    assert math.isclose(float(result.priors.sum()), 1.0)
    assert all(label is None or 0 <= label < result.posteriors.shape[1] for label in result.labels)
    unanswered = [all(cell is None for cell in row) for row in table]
    assert all(label is None for label, empty in zip(result.labels, unanswered, strict=True) if empty)
