"""Bad inputs to the callback's constructor and state, Convergence/Plateau, MCDropout and the MC engine."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import (
    Calibration,
    Convergence,
    LabelledRisk,
    MCTestCurve,
    Plateau,
    RegressionCurve,
    SegmentationIoU,
    TestCurve,
)
from lightning_bal.heuristics import BALD, BatchBALD, Random
from lightning_bal.mc import MCDropConnect, MCDropout, mc_batches, mc_predict
from tests.bad_inputs.harness import accepts, refuses

NAN, INF = float("nan"), float("inf")
ERRORS = (ValueError, TypeError, KeyError)


# ---------------------------------------------------------------------------------------------- callback constructor
CALLBACK = [
    ({"heuristic": 5}, TypeError, r"`heuristic`.*Heuristic.*registry name.*int"),
    ({"heuristic": None}, TypeError, r"`heuristic`.*Heuristic.*registry name"),
    ({"heuristic": BALD}, TypeError, r"`heuristic`.*Heuristic.*registry name.*type"),
    ({"heuristic": "bal"}, ValueError, r"`name`.*registered heuristic.*'bal'"),
    ({"query_size": 0}, ValueError, r"`query_size`.*positive integer.*0"),
    ({"query_size": -5}, ValueError, r"`query_size`.*positive integer"),
    ({"query_size": 2.5}, TypeError, r"`query_size`.*positive integer"),
    ({"query_size": True}, TypeError, r"`query_size`.*positive integer"),
    ({"query_size": "10"}, TypeError, r"`query_size`.*positive integer"),
    ({"iterations": 0}, ValueError, r"`iterations`.*(positive integer|at least 2).*0"),
    ({"iterations": 1}, ValueError, r"`iterations`.*at least 2 for BALD"),
    ({"iterations": 20.0}, TypeError, r"`iterations`.*positive integer"),
    ({"every_n_epochs": 0}, ValueError, r"`every_n_epochs`.*positive integer"),
    ({"every_n_epochs": None}, TypeError, r"`every_n_epochs`.*positive integer"),
    ({"every_n_epochs": 2, "convergence": Convergence("val_loss")}, ValueError, r"either `every_n_epochs` or"),
    ({"convergence": "val_loss"}, TypeError, r"`convergence`.*`Convergence`.*'val_loss'"),
    ({"reset_weights": "yes"}, TypeError, r"`reset_weights`.*bool.*'yes'"),
    ({"reset_weights": None}, TypeError, r"`reset_weights`.*bool"),
    ({"label_budget": 0}, ValueError, r"`label_budget`.*positive integer"),
    ({"label_budget": 100.0}, TypeError, r"`label_budget`.*positive integer"),
    ({"posterior": "mc_dropout"}, TypeError, r"`posterior`.*`Posterior`"),
    ({"posterior": MCDropout}, TypeError, r"`posterior`.*`Posterior`"),
    ({"heuristic": BatchBALD(), "posterior": MCDropout(consistent_masks=False)}, ValueError, r"BatchBALD.*K fixed"),
    ({"evaluations": [5]}, TypeError, r"`evaluations`.*`StepEvaluation`.*5"),
    ({"evaluations": TestCurve()}, TypeError, r"`evaluations`.*sequence"),
    ({"evaluations": [TestCurve, Calibration()]}, TypeError, r"`evaluations`.*`StepEvaluation`"),
    ({"seed": "abc"}, TypeError, r"`seed`.*integer or None"),
    ({"seed": 0.5}, TypeError, r"`seed`.*integer or None"),
    ({"monitor": "val_loss"}, TypeError, r"unexpected keyword argument 'monitor'"),
    ({"max_pool_size": 10}, TypeError, r"unexpected keyword argument 'max_pool_size'"),
    ({"querysize": 10}, TypeError, r"unexpected keyword argument 'querysize'"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), CALLBACK, ids=[repr(c[0])[:50] for c in CALLBACK])
def test_callback_constructor_refuses(kwargs, error, match):
    args = {"heuristic": BALD(), "query_size": 10, **kwargs}
    refuses("ActiveLearningCallback()", lambda: ActiveLearningCallback(**args), error, match, args)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heuristic": "bald", "query_size": 1, "iterations": 2},
        {"heuristic": Random(), "query_size": 5, "iterations": 1},
        {"heuristic": BALD(), "query_size": 5, "convergence": Convergence("val_acc", mode="max"), "seed": 0},
        {"heuristic": "batchbald", "query_size": 5, "reset_weights": True, "label_budget": 5, "evaluations": ()},
        {"heuristic": "entropy", "query_size": 5, "posterior": MCDropConnect(0.1), "evaluations": [TestCurve()]},
        # numpy integers, as `np.argmax` or a config read with numpy hands them over
        {"heuristic": "bald", "query_size": np.int64(5), "iterations": np.int32(3), "label_budget": np.int64(50)},
    ],
)
def test_callback_constructor_accepts_valid_neighbours(kwargs):
    callback = accepts(lambda: ActiveLearningCallback(**kwargs))
    assert callback.query_size == kwargs["query_size"]
    assert type(callback.query_size) is int
    assert type(callback.iterations) is int


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        *[
            (lambda cls=cls, v=v: cls(output=v), TypeError, r"`output`.*tuple position, a dict key or None")
            for cls in (TestCurve, MCTestCurve, Calibration, LabelledRisk, RegressionCurve)
            for v in (1.5, True, ["logits"])
        ],
        (lambda: RegressionCurve(split="train"), ValueError, r"`split`.*'val' or 'test'|`split`"),
        (lambda: RegressionCurve(log_variance="log_var"), ValueError, r"`output`.*mean output.*`log_variance`"),
        (lambda: RegressionCurve(output=0, noise_variance=-1.0), ValueError, r"`noise_variance`"),
        (lambda: SegmentationIoU(1), ValueError, r"`num_classes`.*integer >= 2.*1"),
        (lambda: SegmentationIoU(3.0), ValueError, r"`num_classes`.*integer >= 2"),
        (lambda: SegmentationIoU(3, split="train"), ValueError, r"`split`"),
        (lambda: SegmentationIoU(3, output=0.5), TypeError, r"`output`.*tuple position"),
    ],
)
def test_evaluation_constructors_refuse(call, error, match):
    refuses("evaluations (TestCurve, ...)", call, error, match)


def test_evaluation_constructors_accept_valid_neighbours():
    for evaluation in (TestCurve(output="logits"), MCTestCurve(output=0), RegressionCurve("val", 0, 1, None)):
        assert accepts(lambda e=evaluation: ActiveLearningCallback("bald", 5, evaluations=[e])).evaluations


# ---------------------------------------------------------------------------------------------- callback state
def callback_state() -> tuple[ActiveLearningCallback, dict]:
    callback = ActiveLearningCallback(BALD(), 5, convergence=Convergence("val_loss"))
    state = callback.state_dict()
    state.update(
        seed=7,
        steps_done=2,
        last_selection=torch.tensor([3, 4]),
        last_step_epoch=3,
        trained_epoch=4,
        initial_weights={"w": torch.ones(2)},
        history=[{"labelled": 10.0}],
        val_metrics={"val_loss": 0.5},
        best_score=0.4,
        wait=1,
    )
    callback.load_state_dict(state)
    return callback, callback.state_dict()


DELETE = object()
CALLBACK_STATE = [
    ("seed", DELETE, r"hold \['seed'\]"),
    ("steps_done", DELETE, r"hold \['steps_done'\]"),
    ("last_selection", DELETE, r"hold \['last_selection'\]"),
    # Version 0.1.0 was never released: there are no older checkpoints without the later keys.
    ("pending_step", DELETE, r"hold \['pending_step'\]"),
    ("initial_weights", DELETE, r"hold \['initial_weights'\]"),
    ("history", DELETE, r"hold \['history'\]"),
    ("val_metrics", DELETE, r"hold \['val_metrics'\]"),
    ("posterior", DELETE, r"hold \['posterior'\]"),
    ("stopping", DELETE, r"hold \['stopping'\]"),
    ("annotator", DELETE, r"hold \['annotator'\]"),
    ("seed", "abc", r"`seed`.*integer"),
    ("seed", 1.5, r"`seed`.*integer"),
    ("seed", None, r"`seed`.*integer"),
    ("steps_done", -1, r"`steps_done`.*non-negative integer"),
    ("steps_done", "2", r"`steps_done`.*non-negative integer"),
    ("steps_done", 2.5, r"`steps_done`.*non-negative integer"),
    ("last_selection", [3, 4], r"`last_selection`.*integer tensor"),
    ("last_selection", torch.tensor([0.5]), r"`last_selection`.*integer tensor"),
    ("last_selection", torch.zeros(2, 2, dtype=torch.long), r"`last_selection`.*shape \[q\]"),
    ("last_step_epoch", -2, r"`last_step_epoch`.*integer >= -1"),
    ("last_step_epoch", None, r"`last_step_epoch`.*integer >= -1"),
    ("trained_epoch", "4", r"`trained_epoch`.*integer >= -1"),
    ("trained_epoch", -7, r"`trained_epoch`.*integer >= -1"),
    ("pending_step", "yes", r"`pending_step`.*bool"),
    ("initial_weights", [1, 2], r"`initial_weights`.*dict of tensors"),
    ("initial_weights", {"w": [1.0]}, r"`initial_weights`.*dict of tensors"),
    ("history", {"labelled": 10.0}, r"`history`.*list of dicts"),
    ("history", [5], r"`history`.*list of dicts"),
    ("val_metrics", [0.5], r"`val_metrics`.*dict"),
    ("posterior", [1], r"`posterior`.*dict"),
    ("stopping", {"best": 1.0}, r"`stopping`.*list of dicts"),
    ("stopping", [1.0], r"`stopping`.*list of dicts"),
    ("annotator", [], r"`annotator`.*dict"),
    ("best_score", "low", r"`best_score`.*finite number or None"),
    ("best_score", NAN, r"`best_score`.*finite number or None"),
    ("wait", -1, r"`wait`.*non-negative integer"),
    ("wait", 1.5, r"`wait`.*non-negative integer"),
    ("best_weights", 5, r"`best_weights`.*dict of tensors"),
    ("best_val_metrics", "x", r"`best_val_metrics`.*dict"),
]


@pytest.mark.parametrize(("key", "value", "match"), CALLBACK_STATE, ids=[c[0] for c in CALLBACK_STATE])
def test_callback_state_refused(key, value, match):
    callback, state = callback_state()
    bad = copy.deepcopy(state)
    if value is DELETE:
        del bad[key]
    else:
        bad[key] = value
    refuses("ActiveLearningCallback.load_state_dict", lambda: callback.load_state_dict(bad), ERRORS, match, callback)


def test_callback_state_round_trip_and_convergence_keys_optional():
    callback, state = callback_state()
    other = ActiveLearningCallback(BALD(), 5, convergence=Convergence("val_loss"))
    accepts(lambda: other.load_state_dict(state))
    assert other.steps_done == 2
    assert other.convergence.plateau.best == 0.4
    # A run that resumes with a `Convergence` it did not have starts tracking afresh.
    plain = ActiveLearningCallback(BALD(), 5).state_dict()
    accepts(lambda: other.load_state_dict({**plain, "steps_done": 3}))
    assert other.steps_done == 3
    assert other.convergence.plateau.best is None


# ---------------------------------------------------------------------------------------------- Convergence, Plateau
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"monitor": ""}, TypeError, r"`monitor`.*metric name"),
        ({"monitor": 5}, TypeError, r"`monitor`.*metric name"),
        ({"monitor": None}, TypeError, r"`monitor`.*metric name"),
        ({"mode": "minimize"}, ValueError, r"`mode`.*'min' or 'max'.*'minimize'"),
        ({"mode": None, "monitor": "val_score"}, ValueError, r"`mode`.*'min' or 'max'.*'val_score'"),
        ({"monitor": "val_acc_loss"}, ValueError, r"`mode`.*'val_acc_loss'.*both"),
        ({"patience": 0}, ValueError, r"`patience`.*positive integer"),
        ({"patience": 2.5}, TypeError, r"`patience`.*positive integer"),
        ({"min_delta": -0.1}, ValueError, r"`min_delta`.*finite number >= 0"),
        ({"min_delta": NAN}, ValueError, r"`min_delta`.*finite number >= 0"),
        ({"min_delta": INF}, ValueError, r"`min_delta`.*finite number >= 0"),
        ({"min_delta": "0"}, ValueError, r"`min_delta`.*finite number >= 0"),
        ({"max_epochs": 0}, ValueError, r"`max_epochs`.*positive integer"),
        ({"max_epochs": 3.0}, TypeError, r"`max_epochs`.*positive integer"),
        ({"restore_best_weights": "no"}, TypeError, r"`restore_best_weights`.*bool.*'no'"),
    ],
)
def test_convergence_constructor_refuses(kwargs, error, match):
    refuses("Convergence()", lambda: Convergence(**{"monitor": "val_loss", **kwargs}), error, match)


def test_convergence_and_plateau_refuse_non_finite_values_and_change_nothing():
    convergence = Convergence("val_loss")
    convergence.observe(1.0, {"w": torch.ones(2)}, {"val_loss": 1.0})
    for value in (NAN, INF, -INF):
        refuses(
            "Convergence.observe",
            lambda v=value: convergence.observe(v, {"w": torch.zeros(2)}, {"val_loss": v}),
            ValueError,
            r"`val_loss`.*diverged",
            convergence,
        )
        plateau = Plateau("max", patience=2)
        plateau.update(0.5)
        refuses(
            "Plateau.update", lambda v=value, p=plateau: p.update(v), ValueError, r"finite monitored value", plateau
        )
    refuses("Plateau.update", lambda: plateau.update("high"), ValueError, r"`value`.*number.*'high'", plateau)


def test_convergence_accepts_valid_neighbours():
    convergence = accepts(lambda: Convergence("val_acc", "max", 1, 0, 1, False))
    convergence.observe(0.5, {}, {})
    assert convergence.due(1)
    assert accepts(lambda: Plateau("min", 1, 0.0)).update(-1e300)


# ------------------------------------------------------------------------------------- MCDropout, MCDropConnect
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"consistent_masks": "yes"}, TypeError, r"`consistent_masks`.*bool"),
        ({"consistent_masks": 1}, TypeError, r"`consistent_masks`.*bool"),
        ({"share_prefix": None}, TypeError, r"`share_prefix`.*bool"),
        ({"chunk_rows": 0}, ValueError, r"`chunk_rows`.*positive integer or None"),
        ({"chunk_rows": 8.0}, ValueError, r"`chunk_rows`.*positive integer or None"),
        ({"chunk_rows": True}, ValueError, r"`chunk_rows`.*positive integer or None"),
        ({"memory_budget": -1}, ValueError, r"`memory_budget`.*positive integer or None"),
        ({"memory_budget": True}, ValueError, r"`memory_budget`.*positive integer or None"),
        ({"autocast_dtype": "bfloat16"}, TypeError, r"`autocast_dtype`.*torch.dtype"),
        ({"dropconnect": 0.0}, ValueError, r"`dropconnect`.*\(0, 1\)"),
        ({"dropconnect": 1.0}, ValueError, r"`dropconnect`.*\(0, 1\)"),
        ({"dropconnect": NAN}, ValueError, r"`dropconnect`.*\(0, 1\)"),
        ({"dropconnect": "0.5"}, ValueError, r"`dropconnect`.*\(0, 1\)"),
        ({"dropconnect": True}, ValueError, r"`dropconnect`.*\(0, 1\)"),
    ],
)
def test_mc_dropout_constructor_refuses(kwargs, error, match):
    refuses("MCDropout()", lambda: MCDropout(**kwargs), error, match)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: MCDropConnect(0.0), ValueError, r"`dropconnect`.*\(0, 1\)"),
        (lambda: MCDropConnect(-0.2), ValueError, r"`dropconnect`.*\(0, 1\)"),
        (lambda: MCDropConnect(0.2, dropconnect=0.3), TypeError, r"`p`, not `dropconnect`"),
        (lambda: MCDropConnect(0.2, chunk_rows=0), ValueError, r"`chunk_rows`"),
        (lambda: MCDropout().check(nn.Linear(3, 2)), ValueError, r"`module`.*stochastic layer"),
        (lambda: MCDropout().check("net"), TypeError, r"`module`.*torch.nn.Module"),
    ],
)
def test_mc_posteriors_refuse(call, error, match):
    refuses("MCDropout/MCDropConnect", call, error, match)


def test_mc_posteriors_accept_valid_neighbours():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    accepts(lambda: MCDropout(chunk_rows=1, memory_budget=1, autocast_dtype=torch.bfloat16).check(net))
    accepts(lambda: MCDropConnect(0.999).check(nn.Linear(3, 2)))


# ---------------------------------------------------------------------------------------------- the MC engine
def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4)).train()


def batches(*second):
    first = [(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.arange(4))]
    return first + list(second)


ENGINE = [
    ({"iterations": 0}, ValueError, r"`iterations`.*(positive integer|at least 2).*0"),
    ({"iterations": 2.0}, ValueError, r"`iterations`.*positive integer"),
    ({"iterations": True}, ValueError, r"`iterations`.*positive integer"),
    ({"chunk_rows": 0}, ValueError, r"`chunk_rows`.*positive integer"),
    ({"memory_budget": 0}, ValueError, r"`memory_budget`.*positive integer"),
    ({"memory_budget": True}, ValueError, r"`memory_budget`.*positive integer"),
    ({"seed": "0"}, TypeError, r"`seed`.*int or None"),
    ({"seed": 1.0}, TypeError, r"`seed`.*int or None"),
    ({"dropconnect": 1.5}, ValueError, r"`dropconnect`"),
    ({"dropconnect": -0.1}, ValueError, r"`dropconnect`"),
    ({"module": nn.Linear(3, 4)}, ValueError, r"`module`.*stochastic layer"),
    ({"module": "net"}, TypeError, r"`module`.*torch.nn.Module"),
    ({"dataloader": batches((torch.ones(2, 3), torch.tensor([0.0, 1.0])))}, TypeError, r"`\(inputs, targets\)`"),
    ({"dataloader": batches((torch.ones(2, 3), torch.tensor([3, 5])))}, ValueError, r"dataset index.*once per pass"),
    ({"dataloader": batches((torch.ones(2, 3), torch.tensor([7, 7])))}, ValueError, r"dataset index.*once per pass"),
    ({"dataloader": batches((torch.ones(2, 3), torch.tensor([-1, 9])))}, ValueError, r"non-negative dataset indices"),
    ({"dataloader": batches("text")}, TypeError, r"pool batch.*tensor of inputs"),
    ({"dataloader": batches((torch.ones(2, 1, 3),))}, ValueError, r"class logits.*C >= 2"),
    ({"dataloader": 5}, TypeError, r"`dataloader`.*iterable"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), ENGINE, ids=[repr(c[0])[:50] for c in ENGINE])
@pytest.mark.parametrize("engine", ["mc_batches", "mc_predict"])
def test_engine_refuses_and_restores_the_model(engine, kwargs, error, match):
    kwargs = dict(kwargs)
    module = kwargs.pop("module", None) or net()
    args = {"module": module, "dataloader": batches(), "iterations": 3, "seed": 0, **kwargs}
    if args["dataloader"] and isinstance(args["dataloader"], list) and len(args["dataloader"]) > 1:
        last = args["dataloader"][-1]
        if isinstance(last, tuple) and len(last) == 1 and last[0].dim() == 3:  # a single-class output: C = 1
            args["module"] = nn.Sequential(nn.Flatten(0, 0), nn.Dropout(0.5), nn.Linear(3, 1))
            args["dataloader"] = [last]
    call = (lambda: list(mc_batches(**args))) if engine == "mc_batches" else (lambda: mc_predict(**args))
    refuses(f"mc.{engine}", call, error, match, args["module"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dataloader": []}, ValueError, r"`dataloader`.*at least one batch"),
        ({"score_fn": lambda x: x.mean(1)}, ValueError, r"`score_fn`.*shape \(4,\)"),
        ({"score_fn": lambda x: x.sum().item()}, ValueError, r"`score_fn`.*shape \(4,\).*float"),
    ],
)
def test_mc_predict_refuses(kwargs, error, match):
    module = net()
    args = {"module": module, "dataloader": batches(), "iterations": 3, "seed": 0, **kwargs}
    refuses("mc.mc_predict", lambda: mc_predict(**args), error, match, module)


def test_engine_accepts_valid_neighbours():
    module = net()
    prediction = accepts(lambda: mc_predict(module, batches((torch.randn(2, 3), torch.tensor([9, 4]))), 2, seed=0))
    assert prediction.indices.tolist() == [0, 1, 2, 3, 9, 4]
    inputs_alone = [torch.randn(3, 3), torch.randn(2, 3)]
    assert accepts(lambda: mc_predict(module, inputs_alone, 1, seed=None)).log_probs.shape == (5, 1, 4)
    assert module.training


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=4).filter(lambda v: len(set(v)) < len(v))
    | st.lists(st.integers(-50, -1), min_size=1, max_size=3),
)
def test_generated_bad_batch_indices_refused_and_the_model_restored(indices):
    """A repeated or negative index in a later batch: a clear error, and every submodule back in its mode."""
    module = net()
    loader = batches((torch.randn(len(indices), 3), torch.tensor(indices)))
    refuses(
        "mc.mc_batches",
        lambda: list(mc_batches(module, loader, 2, seed=0)),
        ValueError,
        r"(once per pass|non-negative dataset indices)",
        module,
    )
