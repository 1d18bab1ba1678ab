"""Bad inputs to multi-label classification: per-class logits of the wrong shape, probabilities, NaN, bad settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import MultiLabelF1
from lightning_bal.callbacks.evaluation import StepContext
from lightning_bal.functional import multilabel_bald, multilabel_entropy
from lightning_bal.heuristics import BALD, MultiLabelBALD, MultiLabelEntropy, Variance
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.runs import make_trainer
from tests.tasks.test_multilabel import MultiLabelNet, multilabel_data

NAN, INF = float("nan"), float("inf")


def logits(n: int = 8, k: int = 4, c: int = 3, seed: int = 0) -> torch.Tensor:
    return 3.0 * torch.randn(n, k, c, generator=torch.Generator().manual_seed(seed))


def with_value(tensor: torch.Tensor, value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[5] = value
    return tensor


FUNCTIONS = {"multilabel_bald": (multilabel_bald, True), "multilabel_entropy": (multilabel_entropy, False)}
# (make the input, error, message pattern), for both functions.
BAD_LOGITS = [
    (lambda: logits().tolist(), TypeError, r"`logits`.*torch.Tensor.*list"),
    (lambda: None, TypeError, r"`logits`.*torch.Tensor.*NoneType"),
    (lambda: torch.zeros(8, 4, 3, dtype=torch.long), TypeError, r"`logits`.*floating point.*int64"),
    (lambda: logits()[:, :, 0], ValueError, r"`logits`.*\[N, K, C\].*\(8, 4\)"),  # a regression output
    (lambda: logits().unsqueeze(3), ValueError, r"`logits`.*\[N, K, C\].*\(8, 4, 3, 1\)"),
    (lambda: torch.zeros(8, 4, 0), ValueError, r"`logits`.*C >= 1 classes.*\(8, 4, 0\)"),
    (lambda: with_value(logits(), NAN), ValueError, r"`logits`.*finite.*1 NaN or inf"),
    (lambda: with_value(logits(), INF), ValueError, r"`logits`.*finite.*1 NaN or inf"),
    (lambda: with_value(logits(), -INF), ValueError, r"`logits`.*finite"),
    (lambda: logits().sigmoid(), ValueError, r"`logits`.*all its 96 values lie in \[0, 1\]: sigmoid probabilities"),
    (lambda: torch.rand(16, 2, 2, dtype=torch.float64), ValueError, r"`logits`.*sigmoid probabilities"),
]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize(("make", "error", "match"), BAD_LOGITS)
def test_multilabel_functions_refuse(name, make, error, match):
    function, value = FUNCTIONS[name][0], make()
    refuses(f"functional.{name}", lambda: function(value), error, match, value)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize(
    ("reduction", "match"), [("median", r"`reduction`.*'mean', 'sum', 'max', 'topq'.*'median'"), (None, r"`reduction`")]
)
def test_multilabel_functions_refuse_reductions(name, reduction, match):
    function, value = FUNCTIONS[name][0], logits()
    refuses(f"functional.{name}", lambda: function(value, reduction), ValueError, match, value)


def test_multilabel_bald_refuses_one_sample():
    value = logits(k=1)
    refuses("functional.multilabel_bald", lambda: multilabel_bald(value), ValueError, r"K >= 2 MC samples.*K=1", value)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_multilabel_functions_accept_valid_neighbours(name):
    function, needs_samples = FUNCTIONS[name]
    assert accepts(lambda: function(logits())).shape == (8,)
    assert accepts(lambda: function(torch.zeros(0, 4, 3))).shape == (0,)
    assert accepts(lambda: function(logits(c=1), "max")).shape == (8,)
    # All in [0, 1] but too few values to tell sigmoid outputs from logits; exact 0s and 1s are logits.
    assert accepts(lambda: function(torch.rand(2, 2, 3))).shape == (2,)
    assert accepts(lambda: function(torch.randint(0, 2, (16, 4, 3)).float())).shape == (16,)
    assert accepts(lambda: function(logits().sigmoid(), validate_args=False)).shape == (8,)
    if not needs_samples:
        assert accepts(lambda: function(logits(k=1))).shape == (8,)


HEURISTICS = {"multilabel_bald": MultiLabelBALD, "multilabel_entropy": MultiLabelEntropy}


@pytest.mark.parametrize("name", sorted(HEURISTICS))
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"reduction": "median"}, ValueError, r"`reduction`.*'median'"),
        ({"output": 1.5}, TypeError, r"`output`.*tuple position, a dict key or None.*1.5"),
        ({"output": True}, TypeError, r"`output`.*True"),
        ({"validate_args": "yes"}, TypeError, r"`validate_args`"),
    ],
)
def test_multilabel_heuristics_refuse_settings(name, kwargs, error, match):
    refuses(f"{HEURISTICS[name].__name__}()", lambda: HEURISTICS[name](**kwargs), error, match)


@pytest.mark.parametrize("name", sorted(HEURISTICS))
@pytest.mark.parametrize(("make", "error", "match"), BAD_LOGITS[3:])
def test_multilabel_heuristics_refuse_scores(name, make, error, match):
    heuristic, value = HEURISTICS[name](), make()
    refuses(f"{HEURISTICS[name].__name__}.score", lambda: heuristic.score(value), error, match, heuristic, value)


@pytest.mark.parametrize("name", sorted(HEURISTICS))
def test_multilabel_heuristics_refuse_a_missing_output(name):
    heuristic, outputs = HEURISTICS[name](output="logits"), {"probs": logits()}
    refuses(
        f"{HEURISTICS[name].__name__}.transform",
        lambda: heuristic.transform(outputs),
        KeyError,
        r"`output='logits'`.*\['probs'\]",
        heuristic,
        outputs,
    )


def test_multilabel_heuristics_accept_valid_neighbours():
    for cls in HEURISTICS.values():
        heuristic = cls(reduction="topq", output="logits")
        assert accepts(lambda h=heuristic: h.transform({"logits": logits()})).shape == (8, 4, 3)
        assert accepts(lambda c=cls: c(reduction="mean").select(logits(), 2)).indices.shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_classes": 1}, ValueError, r"`num_classes` to be an integer >= 2, but got 1"),
        ({"num_classes": 3.0}, ValueError, r"`num_classes`.*3.0"),
        ({"num_classes": 3, "split": "train"}, ValueError, r"`split` to be 'val' or 'test', but got 'train'"),
        ({"num_classes": 3, "output": [0]}, TypeError, r"`output`.*\[0\]"),
    ],
)
def test_multilabel_f1_refuses_settings(kwargs, error, match):
    refuses("MultiLabelF1()", lambda: MultiLabelF1(**kwargs), error, match)


class Squeezed(MultiLabelNet):
    """Returns ``[B]``: one logit per item, not one per class."""

    def forward(self, x):
        return self.net(x)[:, 0]


def _datamodule(**kwargs):
    return ActiveDataModule(
        multilabel_data(20), task="multilabel", num_classes=3, initial_labels=4, seed=0, batch_size=8, **kwargs
    )


@pytest.mark.parametrize(
    ("model", "num_classes", "match"),
    [(Squeezed, 3, r"`MultiLabelF1` needs logits \[B, 3\].*shape \(5,\)"), (MultiLabelNet, 4, r"\[B, 4\].*\(5, 3\)")],
)
def test_multilabel_f1_refuses_logits_of_the_wrong_shape(model, num_classes, match):
    model = model()
    dm = _datamodule(test_dataset=multilabel_data(5, seed=1))
    trainer = SimpleNamespace(global_rank=0, world_size=1, strategy=None)
    context = StepContext(trainer, model, dm, 2, None, 0, 0, {})
    evaluation = MultiLabelF1(num_classes, split="test")
    refuses("MultiLabelF1", lambda: evaluation(context), ValueError, match, dm, model)


@pytest.mark.parametrize(
    ("heuristic", "model", "match"),
    [
        (BALD(), MultiLabelNet, r"multi-label heuristic \(e.g. 'multilabel_bald'\).*`task='multilabel'`.*BALD\(\)"),
        (MultiLabelBALD(), Squeezed, r"`logits` to have shape \[N, K, C\].*got shape \(\d+, 2\)"),
    ],
)
def test_the_callback_refuses_before_any_label(tmp_path, heuristic, model, match):
    dm = _datamodule()
    callback = ActiveLearningCallback(heuristic, query_size=3, iterations=3, seed=0)
    trainer = make_trainer(tmp_path, [callback], max_epochs=1)
    refuses(
        "multilabel through ActiveLearningCallback",
        lambda: trainer.fit(model(), datamodule=dm),
        ValueError,
        match,
        dm,
    )


def test_the_callback_accepts_the_heuristics_of_raw_outputs(tmp_path):
    for heuristic in (MultiLabelEntropy(), Variance()):
        dm = _datamodule()
        callback = ActiveLearningCallback(heuristic, query_size=3, iterations=3, seed=0)
        accepts(lambda c=callback, d=dm: make_trainer(tmp_path, [c], max_epochs=1).fit(MultiLabelNet(), datamodule=d))
        assert dm.num_labelled == 7


@pytest.mark.parametrize("split", ["val", "test"])
def test_multilabel_f1_refuses_a_datamodule_without_its_split(split):
    dm, evaluation = _datamodule(), MultiLabelF1(3, split=split)
    refuses("MultiLabelF1.check", lambda: evaluation.check(dm), ValueError, rf"needs a `{split}_dataset`", dm)
    accepts(lambda: evaluation.check(_datamodule(**{f"{split}_dataset": multilabel_data(3)})))
