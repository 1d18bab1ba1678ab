"""Bad inputs to the stopping criteria: constructors, the step's figures they decide on, and corrupted states."""

from __future__ import annotations

import pytest
import torch

from lightning_bal.annotation import LowUncertainty, MetricPlateau, StablePredictions, TargetReached
from lightning_bal.annotation.stopping import cohen_kappa
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.steps import scripted_step as context

NAN, INF = float("nan"), float("inf")
ERRORS = (ValueError, TypeError, KeyError)


# ---------------------------------------------------------------------------------------------- constructors
CONSTRUCTORS = [
    # (entry, call, error, message pattern)
    ("MetricPlateau()", lambda: MetricPlateau(5), TypeError, r"`monitor`.*non-empty string.*5"),
    ("MetricPlateau()", lambda: MetricPlateau(None), TypeError, r"`monitor`.*non-empty string.*None"),
    ("MetricPlateau()", lambda: MetricPlateau(""), TypeError, r"`monitor`.*non-empty string.*''"),
    ("MetricPlateau()", lambda: MetricPlateau("val_acc", mode="up"), ValueError, r"`mode`.*'min' or 'max'.*'up'"),
    ("MetricPlateau()", lambda: MetricPlateau("val_score"), ValueError, r"`mode`.*'min' or 'max'.*'val_score'"),
    ("MetricPlateau()", lambda: MetricPlateau("val_acc", patience=0), ValueError, r"`patience`.*positive integer"),
    ("MetricPlateau()", lambda: MetricPlateau("val_acc", patience=1.5), TypeError, r"`patience`.*positive integer"),
    ("MetricPlateau()", lambda: MetricPlateau("val_acc", min_delta=NAN), ValueError, r"`min_delta`.*finite"),
    ("MetricPlateau()", lambda: MetricPlateau("val_acc", min_delta=-1), ValueError, r"`min_delta`.*>= 0"),
    ("TargetReached()", lambda: TargetReached(5, 0.9), TypeError, r"`monitor`.*non-empty string.*5"),
    ("TargetReached()", lambda: TargetReached("", 0.9), TypeError, r"`monitor`.*non-empty string"),
    ("TargetReached()", lambda: TargetReached("val_acc", NAN), ValueError, r"`target`.*finite number.*nan"),
    ("TargetReached()", lambda: TargetReached("val_acc", -INF), ValueError, r"`target`.*finite number.*inf"),
    ("TargetReached()", lambda: TargetReached("val_acc", "0.9"), ValueError, r"`target`.*finite number.*'0.9'"),
    ("TargetReached()", lambda: TargetReached("val_acc", True), ValueError, r"`target`.*finite number.*True"),
    ("TargetReached()", lambda: TargetReached("val_acc", 0.9, "above"), ValueError, r"`mode`.*'min' or 'max'"),
    ("TargetReached()", lambda: TargetReached("val_score", 0.9), ValueError, r"`mode`.*'val_score'"),
    ("LowUncertainty()", lambda: LowUncertainty(), ValueError, r"`mean_below` or `max_below`.*neither"),
    ("LowUncertainty()", lambda: LowUncertainty(NAN), ValueError, r"`mean_below`.*finite number.*nan"),
    ("LowUncertainty()", lambda: LowUncertainty(max_below=NAN), ValueError, r"`max_below`.*finite number.*nan"),
    ("LowUncertainty()", lambda: LowUncertainty(INF), ValueError, r"`mean_below`.*finite number.*inf"),
    ("LowUncertainty()", lambda: LowUncertainty(0.1, "0.2"), TypeError, r"`max_below`.*number.*'0.2'"),
    ("LowUncertainty()", lambda: LowUncertainty(True), TypeError, r"`mean_below`.*number.*True"),
    ("StablePredictions()", lambda: StablePredictions(None, threshold=NAN), ValueError, r"`threshold`.*\[-1, 1\]"),
    ("StablePredictions()", lambda: StablePredictions(None, threshold=1.5), ValueError, r"`threshold`.*\[-1, 1\]"),
    ("StablePredictions()", lambda: StablePredictions(None, patience=0), ValueError, r"`patience`.*positive"),
]


@pytest.mark.parametrize(("entry", "call", "error", "match"), CONSTRUCTORS)
def test_constructors_refuse(entry, call, error, match):
    refuses(entry, call, error, match)


def test_constructors_accept_valid_neighbours():
    assert accepts(lambda: MetricPlateau("val_acc")).plateau.mode == "max"
    assert accepts(lambda: MetricPlateau("val_score", mode="min", patience=1, min_delta=0)).plateau.mode == "min"
    assert accepts(lambda: TargetReached("val_loss", -1)).mode == "min"
    assert accepts(lambda: LowUncertainty(0, max_below=-0.5)).max_below == -0.5
    assert accepts(lambda: StablePredictions(None, threshold=-1, patience=1)).threshold == -1.0


# ---------------------------------------------------------------------------------------------- the step's figures
def stepped_plateau() -> MetricPlateau:
    criterion = MetricPlateau("val_acc", patience=2)
    for value in (0.5, 0.7, 0.6):
        criterion.update(context(val={"val_acc": value}))
    return criterion


def stepped_stable() -> StablePredictions:
    criterion = StablePredictions(None, threshold=0.5, patience=2)
    for _ in range(2):
        criterion.update(context(predict=lambda _: torch.tensor([0, 1, 2, 1])))
    return criterion


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (NAN, ValueError, r"`MetricPlateau`.*`val_acc`.*finite.*nan"),
        (INF, ValueError, r"`MetricPlateau`.*`val_acc`.*finite.*inf"),
        ("0.8", TypeError, r"`MetricPlateau`.*`val_acc`.*number.*'0.8'"),
        (None, TypeError, r"`MetricPlateau`.*`val_acc`.*number.*None"),
        (torch.tensor([0.5, 0.6]), TypeError, r"`MetricPlateau`.*`val_acc`.*number"),
    ],
)
def test_metric_plateau_refuses_a_bad_figure(value, error, match):
    criterion = stepped_plateau()
    refuses("MetricPlateau.update", lambda: criterion.update(context(val={"val_acc": value})), error, match, criterion)
    refuses(
        "MetricPlateau.update",
        lambda: criterion.update(context(val={"val_loss": 0.1})),
        RuntimeError,
        r"val_acc",
        criterion,
    )
    accepts(lambda: criterion.update(context(val={"val_acc": torch.tensor(0.65)})))
    assert criterion.plateau.wait == 2
    assert criterion.stop


@pytest.mark.parametrize(
    ("figures", "error", "match"),
    [
        ({"test_acc": NAN}, ValueError, r"`TargetReached`.*`test_acc`.*finite.*nan"),
        ({"test_acc": -INF}, ValueError, r"`TargetReached`.*`test_acc`.*finite.*-inf"),
        ({"test_acc": "high"}, TypeError, r"`TargetReached`.*`test_acc`.*number.*'high'"),
        ({"test_acc": True}, TypeError, r"`TargetReached`.*`test_acc`.*number.*True"),
        ({"val_acc": 0.99}, RuntimeError, r"monitor='test_acc'.*val_acc"),
    ],
)
def test_target_reached_refuses_a_bad_figure(figures, error, match):
    criterion = TargetReached("test_acc", 0.9)
    refuses("TargetReached.update", lambda: criterion.update(context(figures=figures)), error, match, criterion)
    accepts(lambda: criterion.update(context(figures={"test_acc": 0.95})))
    assert criterion.stop


@pytest.mark.parametrize(
    ("scores", "error", "match"),
    [
        (torch.tensor([0.01, NAN]), ValueError, r"`LowUncertainty`.*finite `pool_scores`.*1 of 2"),
        (torch.tensor([INF, 0.0, 0.1]), ValueError, r"`LowUncertainty`.*finite `pool_scores`.*1 of 3"),
        ([0.01, 0.02], TypeError, r"`LowUncertainty`.*`pool_scores`.*real tensor"),
        (torch.tensor([True, False]), TypeError, r"`LowUncertainty`.*`pool_scores`.*real tensor"),
    ],
)
def test_low_uncertainty_refuses_bad_scores(scores, error, match):
    criterion = LowUncertainty(mean_below=0.05)
    refuses("LowUncertainty.update", lambda: criterion.update(context(scores=scores)), error, match, criterion)
    assert accepts(lambda: criterion.update(context(scores=torch.zeros(0)))) == {}
    accepts(lambda: criterion.update(context(scores=torch.tensor([0.01, 0.02]))))
    assert criterion.stop


@pytest.mark.parametrize(
    ("predicted", "error", "match"),
    [
        (torch.tensor([0.0, 1.0, 2.0, 1.0]), TypeError, r"`predict\(stop_set\)`.*integer class indices.*float"),
        (torch.tensor([0, -1, 2, 1]), ValueError, r"`predict\(stop_set\)`.*>= 0.*-1"),
        (torch.tensor([0, 1, 2]), ValueError, r"`StablePredictions`.*4 predictions.*got 3"),
        ([0, 1, 2, 1], TypeError, r"`StablePredictions`.*`predict`.*tensor"),
    ],
)
def test_stable_predictions_refuses_bad_predictions(predicted, error, match):
    criterion = stepped_stable()
    call = lambda: criterion.update(context(predict=lambda _: predicted))  # noqa: E731
    refuses("StablePredictions.update", call, error, match, criterion)
    refuses("StablePredictions.update", lambda: criterion.update(context()), RuntimeError, r"`predict`", criterion)
    accepts(lambda: criterion.update(context(predict=lambda _: torch.tensor([[0, 1], [2, 1]]))))
    assert criterion.stop


@pytest.mark.parametrize(
    ("first", "second", "error", "match"),
    [
        (torch.tensor([0, 1]), torch.tensor([0, 1, 1]), ValueError, r"non-empty \[N\] labelings.*\(2,\).*\(3,\)"),
        (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), ValueError, r"non-empty"),
        (torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), ValueError, r"`first`.*labeling \[N\].*\(1, 2\)"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), TypeError, r"`first`.*integer class indices"),
        (torch.tensor([0, 1]), torch.tensor([0, -2]), ValueError, r"`second`.*>= 0.*-2"),
        ([0, 1], torch.tensor([0, 1]), ValueError, r"`first`.*labeling \[N\].*list"),
    ],
)
def test_cohen_kappa_refuses(first, second, error, match):
    refuses("cohen_kappa", lambda: cohen_kappa(first, second), error, match)


# ---------------------------------------------------------------------------------------------- states
def stepped_target() -> TargetReached:
    criterion = TargetReached("test_acc", 0.9)
    criterion.update(context(figures={"test_acc": 0.95}))
    return criterion


def stepped_low() -> LowUncertainty:
    criterion = LowUncertainty(max_below=0.5)
    criterion.update(context(scores=torch.tensor([0.1, 0.2])))
    return criterion


MAKERS = {
    "MetricPlateau": stepped_plateau,
    "TargetReached": stepped_target,
    "LowUncertainty": stepped_low,
    "StablePredictions": stepped_stable,
}
# Corruptions of the entries every criterion saves: (key, value, message pattern); `...` removes the entry.
COMMON = [
    ("stop", "no", r"`stop`.*bool.*'no'"),
    ("stop", 1, r"`stop`.*bool.*1"),
    ("stop", NAN, r"`stop`.*bool.*nan"),
    ("stop", None, r"`stop`.*bool.*None"),
    ("stop", ..., r"`stop`.*missing"),
    ("reason", 5, r"`reason`.*string.*5"),
    ("reason", None, r"`reason`.*string.*None"),
    ("reason", ..., r"`reason`.*missing"),
]
OWN = {
    "MetricPlateau": [
        ("best", "abc", r"`best`.*finite number or None.*'abc'"),
        ("best", NAN, r"`best`.*finite number or None.*nan"),
        ("best", -INF, r"`best`.*finite number or None.*-inf"),
        ("best", True, r"`best`.*finite number or None.*True"),
        ("best", ..., r"`best`.*missing"),
        ("wait", -1, r"`wait`.*integer >= 0.*-1"),
        ("wait", 1.5, r"`wait`.*integer >= 0.*1.5"),
        ("wait", NAN, r"`wait`.*integer >= 0.*nan"),
        ("wait", "2", r"`wait`.*integer >= 0.*'2'"),
        ("wait", ..., r"`wait`.*missing"),
    ],
    "StablePredictions": [
        ("previous", [0, 1, 2, 1], r"`previous`.*tensor of class indices"),
        ("previous", None, r"`previous`.*tensor of class indices.*None"),
        ("previous", torch.tensor([0.0, 1.0]), r"`previous`.*integer class indices.*float"),
        ("previous", torch.tensor([0, -1]), r"`previous`.*>= 0.*-1"),
        ("previous", torch.zeros(2, 2, dtype=torch.long), r"`previous`.*labeling \[N\].*\(2, 2\)"),
        ("previous", ..., r"`previous`.*missing"),
        ("stable_steps", -1, r"`stable_steps`.*integer >= 0.*-1"),
        ("stable_steps", NAN, r"`stable_steps`.*integer >= 0.*nan"),
        ("stable_steps", "1", r"`stable_steps`.*integer >= 0.*'1'"),
        ("stable_steps", ..., r"`stable_steps`.*missing"),
    ],
}
STATE_CASES = [(name, *case) for name in MAKERS for case in [*COMMON, *OWN.get(name, [])]]


@pytest.mark.parametrize(("name", "key", "value", "match"), STATE_CASES)
def test_corrupted_states_are_refused_and_change_nothing(name, key, value, match):
    criterion = MAKERS[name]()
    state = {k: v for k, v in criterion.state_dict().items() if k != key}
    if value is not ...:
        state[key] = value
    target = MAKERS[name]()
    target.stop, target.reason = False, "not stopped"  # differs from the saved state: a half-load would show
    refuses(f"{name}.load_state_dict", lambda: target.load_state_dict(state), ERRORS, match, target)


@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("state", [None, [("stop", True)], "stop"])
def test_a_state_that_is_not_a_mapping_is_refused(name, state):
    criterion = MAKERS[name]()
    refuses(f"{name}.load_state_dict", lambda: criterion.load_state_dict(state), TypeError, r"mapping", criterion)


@pytest.mark.parametrize("name", MAKERS)
def test_valid_states_load(name):
    saved, restored = MAKERS[name](), MAKERS[name]()
    restored.load_state_dict({})  # the callback's reset: a fresh criterion
    assert not restored.stop
    assert restored.reason == ""
    accepts(lambda: restored.load_state_dict(saved.state_dict()))
    assert restored.state_dict().keys() == saved.state_dict().keys()
    for key, value in saved.state_dict().items():
        got = restored.state_dict()[key]
        assert torch.equal(got, value) if isinstance(value, torch.Tensor) else got == value
