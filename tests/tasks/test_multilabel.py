"""Multi-label classification: the per-class Bernoulli heuristics, and the task end to end through the callback."""

import math
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset
from torchmetrics.classification import MultilabelF1Score

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import MultiLabelF1
from lightning_bal.callbacks.evaluation import StepContext
from lightning_bal.functional import bald, multilabel_bald, multilabel_entropy
from lightning_bal.heuristics import BALD, MultiLabelBALD, MultiLabelEntropy, get_heuristic
from lightning_bal.mc import mc_batches
from lightning_bal.utilities.seeding import Stream, derive_seed
from tests.helpers.runs import make_trainer

NUM_CLASSES = 3


class MultiLabelNet(pl.LightningModule):
    """``[B, 4]`` features to ``[B, 3]`` per-class logits, Dropout in the middle; trained with per-class BCE."""

    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, NUM_CLASSES))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self(x), y.float())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def multilabel_data(n: int, seed: int = 0) -> TensorDataset:
    """Generated: class c is present where feature c is positive (multi-hot ``LongTensor[3]`` labels)."""
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, (x[:, :NUM_CLASSES] > 0).long())


def _logits(draw_shape, data):
    n, k, c = draw_shape
    values = data.draw(st.lists(st.floats(-30, 30, width=32), min_size=n * k * c, max_size=n * k * c))
    return torch.tensor(values, dtype=torch.float64).reshape(n, k, c)


shapes = st.tuples(st.integers(1, 4), st.integers(2, 5), st.integers(1, 5))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data())
def test_identical_samples_carry_no_information(shape, data):
    one_sample = _logits((shape[0], 1, shape[2]), data)
    logits = one_sample.expand(-1, shape[1], -1)
    # Zero up to the rounding of the log-space mean over K (float64).
    torch.testing.assert_close(multilabel_bald(logits), torch.zeros(shape[0], dtype=torch.float64), atol=1e-12, rtol=0)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data(), reduction=st.sampled_from(["sum", "mean", "max"]))
def test_bald_is_between_zero_and_the_entropy(shape, data, reduction):
    logits = _logits(shape, data)
    scores = multilabel_bald(logits, reduction)
    assert bool((scores >= 0).all())
    assert bool((scores <= multilabel_entropy(logits, reduction) + 1e-12).all())


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data())
def test_one_class_is_the_binary_case_of_classification_bald(shape, data):
    logits = _logits((shape[0], shape[1], 1), data)
    # The two-class log-probabilities [log(1 - p), log p] of p = sigmoid(z).
    log_probs = torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=2)
    torch.testing.assert_close(multilabel_bald(logits), bald(log_probs), atol=1e-10, rtol=1e-8)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data(), reduction=st.sampled_from(["sum", "mean", "max"]), seed=st.integers(0, 99))
def test_scores_do_not_depend_on_the_order_of_the_classes(shape, data, reduction, seed):
    logits = _logits(shape, data)
    order = torch.randperm(shape[2], generator=torch.Generator().manual_seed(seed))
    for function in (multilabel_bald, multilabel_entropy):
        torch.testing.assert_close(function(logits[:, :, order], reduction), function(logits, reduction))


@pytest.mark.parametrize(
    ("reduction", "combine"),
    [("sum", lambda s: s.sum(1)), ("mean", lambda s: s.mean(1)), ("max", lambda s: s.amax(1))],
)
def test_reductions_over_the_classes_match_a_class_at_a_time(reduction, combine):
    logits = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for function in (multilabel_bald, multilabel_entropy):
        per_class = torch.stack([function(logits[:, :, c : c + 1]) for c in range(3)], dim=1)
        torch.testing.assert_close(function(logits, reduction), combine(per_class))


def test_entropy_is_the_binary_entropy_of_the_mean_probability_by_hand():
    logits = torch.tensor([[[2.0, -1.0], [0.0, -3.0]]], dtype=torch.float64)  # [N=1, K=2, C=2]
    mean = torch.sigmoid(logits).mean(1)
    expected = -(mean * mean.log() + (1 - mean) * (1 - mean).log()).sum(1)
    torch.testing.assert_close(multilabel_entropy(logits), expected)


@pytest.mark.parametrize("logit", [40.0, 100.0, 1e4])
def test_saturated_logits_give_finite_scores(logit):
    """A naive ``sigmoid`` then ``log`` gives log(0) = -inf and NaN entropies; logsigmoid stays exact."""
    logits = torch.tensor([[[logit, -logit], [-logit, logit]]])
    torch.testing.assert_close(multilabel_bald(logits), torch.tensor([2 * math.log(2)]))
    assert multilabel_entropy(logits[:, :1]).tolist() == pytest.approx([0.0], abs=1e-6)


def test_heuristics_are_registered_and_score_raw_logits():
    logits = torch.randn(6, 4, 3, generator=torch.Generator().manual_seed(1))
    for name, cls, function in (
        ("multilabel_bald", MultiLabelBALD, multilabel_bald),
        ("multilabel_entropy", MultiLabelEntropy, multilabel_entropy),
    ):
        heuristic = get_heuristic(name, reduction="max")
        assert isinstance(heuristic, cls)
        assert heuristic.consumes == "outputs"
        assert torch.equal(heuristic.transform(logits), logits)  # no softmax over independent classes
        assert torch.equal(heuristic.score(logits), function(logits, "max"))
        assert torch.equal(cls().score(logits), function(logits, "sum"))
    named = MultiLabelBALD(output="logits").transform({"logits": logits, "other": torch.zeros(1)})
    assert torch.equal(named, logits)


def _datamodule(**kwargs):
    return ActiveDataModule(
        multilabel_data(40),
        task="multilabel",
        num_classes=NUM_CLASSES,
        initial_labels=4,
        seed=0,
        batch_size=8,
        pool_batch_size=16,
        **kwargs,
    )


@pytest.mark.parametrize("heuristic", [MultiLabelBALD(), MultiLabelEntropy(reduction="max")])
def test_end_to_end_labels_the_highest_scores_and_logs_the_f1(tmp_path, heuristic):
    data = multilabel_data(40)
    dm = _datamodule(val_dataset=multilabel_data(12, seed=1))
    callback = ActiveLearningCallback(
        heuristic, query_size=3, iterations=5, seed=3, evaluations=[MultiLabelF1(NUM_CLASSES)]
    )
    # lr=0: the model the callback scored the pool with is the one left after fit, so its scores can be recomputed.
    model = MultiLabelNet(lr=0.0)
    make_trainer(tmp_path, [callback], max_epochs=2).fit(model, datamodule=dm)
    assert dm.num_labelled == 4 + 2 * 3
    assert len(callback.history) == 2
    assert all(0.0 <= step["active/val_f1"] <= 1.0 for step in callback.history)
    # Rescored by hand with the first step's mask seed: its picks are the pool's three best raw-logit scores.
    pool = torch.nonzero(dm.acquired_at != 0).squeeze(1)
    loader = [(data.tensors[0][i : i + 1], torch.tensor([i])) for i in pool.tolist()]
    seed = derive_seed(3, 0, Stream.MASKS)
    batches = mc_batches(model, loader, 5, seed=seed, output_transform=heuristic.transform)
    scores = torch.cat([heuristic.score(outputs) for _, outputs in batches])
    assert sorted(pool[scores.topk(3).indices].tolist()) == torch.nonzero(dm.acquired_at == 1).squeeze(1).tolist()
    assert callback.history[0]["active/score_pool_max"] == pytest.approx(float(scores.max()), rel=1e-5)


def test_the_f1_is_torchmetrics_macro_f1_over_the_whole_split():
    x, targets = multilabel_data(11, seed=2).tensors
    dm = _datamodule(test_dataset=TensorDataset(x, targets), eval_batch_size=4)
    model = MultiLabelNet()
    trainer = SimpleNamespace(global_rank=0, world_size=1, strategy=None)
    figures = MultiLabelF1(NUM_CLASSES, split="test")(StepContext(trainer, model, dm, 4, None, 0, 0, {}))
    model.eval()
    with torch.no_grad():
        predicted = (model(x) > 0).long()
    expected = MultilabelF1Score(NUM_CLASSES, average="macro")(predicted, targets)
    assert figures == {"test_f1": pytest.approx(float(expected), abs=1e-7)}


def test_a_softmax_heuristic_is_refused_for_the_multilabel_task(tmp_path):
    dm = _datamodule()
    callback = ActiveLearningCallback(BALD(), query_size=3, iterations=3, seed=0)
    with pytest.raises(ValueError, match=r"multi-label heuristic \(e.g. 'multilabel_bald'\) .* `task='multilabel'`"):
        make_trainer(tmp_path, [callback], max_epochs=1).fit(MultiLabelNet(), datamodule=dm)
    assert dm.num_labelled == 4
