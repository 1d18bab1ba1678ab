import math
import re

import pytest
import torch
from mc_models import CallCounter, Declared, Opaque, head_dropout_cnn, pool
from torch import nn

from lightning_bal.functional.outputs import _log_softmax
from lightning_bal.mc import mark_stochastic, mc_batches, mc_predict

K = 12


def early_dropout_cnn() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
        nn.AlphaDropout(0.1), nn.Linear(4 * 4 * 4, 3),
    )  # fmt: skip


def modes(module):
    return [m.training for m in module.modules()]


@pytest.mark.parametrize("consistent", [True, False])
@pytest.mark.parametrize("make", [head_dropout_cnn, early_dropout_cnn])
def test_samples_differ_and_are_log_probs(make, consistent):
    net = make().train()
    before = modes(net)
    pred = mc_predict(net, pool(), K, seed=0, consistent_masks=consistent)
    assert pred.log_probs.shape == (24, K, 3)
    assert pred.scores is None
    assert torch.equal(pred.indices, torch.arange(24))
    torch.testing.assert_close(pred.log_probs.exp().sum(-1), torch.ones(24, K))
    assert (pred.log_probs.std(dim=1) > 0).all()
    assert modes(net) == before


@pytest.mark.parametrize("consistent", [True, False])
def test_consistent_masks_are_shared_across_items(consistent):
    net = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.5), nn.Linear(32, 5))
    same = torch.ones(6, 4)
    pred = mc_predict(net, [(same, torch.arange(6))], K, seed=3, consistent_masks=consistent, output_transform=None)
    # Chunks of different row counts may round differently, hence allclose rather than equal.
    shared = [torch.allclose(pred.log_probs[0], pred.log_probs[i], atol=1e-6) for i in range(1, 6)]
    assert shared == [consistent] * 5


@pytest.mark.parametrize("consistent", [True, False])
@pytest.mark.parametrize("make", [head_dropout_cnn, early_dropout_cnn, Opaque])
def test_reproducible_across_batching_and_ranks(make, consistent):
    net = make()
    shape = (6,) if make is Opaque else (1, 8, 8)
    ref = mc_predict(net, pool(shape=shape, batch=8), K, seed=7, consistent_masks=consistent)
    # Two "ranks" scoring interleaved shards with other batch sizes, gathered and sorted back.
    x = torch.cat([b[0] for b in pool(shape=shape)])
    shards = [torch.arange(r, 24, 2) for r in range(2)]
    parts = [mc_predict(net, [(x[s[i : i + 5]], s[i : i + 5]) for i in range(0, 12, 5)], K, seed=7,
                        consistent_masks=consistent) for s in shards]  # fmt: skip
    idx = torch.cat([p.indices for p in parts])
    out = torch.cat([p.log_probs for p in parts])[idx.argsort()]
    torch.testing.assert_close(out, ref.log_probs)
    other = mc_predict(net, pool(shape=shape, batch=8), K, seed=8, consistent_masks=consistent)
    assert not torch.allclose(other.log_probs, ref.log_probs)


@pytest.mark.parametrize("consistent", [True, False])
@pytest.mark.parametrize("make", [head_dropout_cnn, early_dropout_cnn, Declared])
@pytest.mark.parametrize("chunk_rows", [None, 1, 50])
def test_prefix_sharing_equals_full_passes(make, consistent, chunk_rows):
    # Masks depend on (seed, layer, index, k) only, so sharing the prefix gives the very same samples.
    net = make()
    shape = (6,) if make is Declared else (1, 8, 8)
    kwargs = {"seed": 5, "consistent_masks": consistent}
    shared = mc_predict(net, pool(shape=shape), K, chunk_rows=chunk_rows, **kwargs)
    full = mc_predict(net, pool(shape=shape), K, share_prefix=False, **kwargs)
    torch.testing.assert_close(shared.log_probs, full.log_probs, atol=1e-5, rtol=1e-5)


def test_same_distribution_as_native_dropout():
    # Our hashed masks against torch's own dropout in 400 plain train-mode passes: the predictive mean and the
    # spread over samples agree within 0.02 (standard errors at this K are below 0.005).
    net = head_dropout_cnn()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
    data = pool(n=16, batch=16)
    ours = mc_predict(net, data, 400, seed=0, consistent_masks=False).log_probs.exp()
    torch.manual_seed(0)
    net.eval()
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    with torch.no_grad():
        native = torch.stack([net(data[0][0]).softmax(-1) for _ in range(400)], dim=1)
    torch.testing.assert_close(ours.mean(1), native.mean(1), atol=0.02, rtol=0)
    torch.testing.assert_close(ours.std(1), native.std(1), atol=0.02, rtol=0)


def test_prefix_runs_once_per_batch_for_sequential():
    counter = CallCounter()
    net = head_dropout_cnn(counter)
    mc_predict(net, pool(), K, seed=0, chunk_rows=8 * K)
    assert counter.calls == 3 + 1  # once per batch, and once for the pass's one-item probe of the output size
    counter.calls = 0
    mc_predict(net, pool(), K, seed=0, share_prefix=False, chunk_rows=8)
    assert counter.calls == 3 * K + math.ceil(K / 8)  # the one-item probe runs 8 samples per forward


def test_prefix_runs_once_per_batch_for_declared_module():
    net = Declared()
    mc_predict(net, pool(shape=(6,)), K, seed=0)
    assert net.counter.calls == 3 + 1  # and the one-item probe of the output size
    opaque = Opaque()
    mc_predict(opaque, pool(shape=(6,)), K, seed=0, chunk_rows=8)
    assert opaque.counter.calls == 3 * K + math.ceil(K / 8)


def test_batched_replication_for_opaque_module():
    # Without a chunk limit the K samples of a batch run in few forwards (the first measures memory).
    opaque = Opaque()
    mc_predict(opaque, pool(shape=(6,)), K, seed=0)
    assert opaque.counter.calls < 3 * K / 2


def test_structured_inputs_and_lightning_module():
    lightning = pytest.importorskip("lightning")

    class Model(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5))
            self.out = nn.Linear(8, 2)

        def forward(self, a, b):
            return self.out(self.net(a) + b)

    model = Model()
    loader = [
        ((torch.randn(4, 3), torch.randn(4, 8)), torch.arange(4)),
        ({"a": torch.randn(2, 3), "b": torch.zeros(2, 8)}, torch.arange(4, 6)),
    ]
    pred = mc_predict(model, loader, K, seed=0)
    assert pred.log_probs.shape == (6, K, 2)
    assert model.training


def test_score_fn_keeps_only_scores():
    net = head_dropout_cnn()
    pred = mc_predict(net, pool(), K, seed=0, score_fn=lambda lp: lp.exp().mean(1).max(-1).values)
    assert pred.log_probs is None
    assert pred.scores.shape == (24,)
    with pytest.raises(ValueError, match="Expected `score_fn` to return"):
        mc_predict(net, pool(), K, seed=0, score_fn=lambda lp: lp)


def test_iterator_closed_early_restores_modes():
    net = head_dropout_cnn().train()
    it = mc_batches(net, pool(), K, seed=0)
    next(it)
    assert not net[0].training
    assert not net[5].training
    it.close()
    assert all(modes(net))


def test_marked_layer_runs_in_train_mode():
    class Noise(nn.Module):
        def forward(self, x):
            return x + torch.randn_like(x) if self.training else x

    net = nn.Sequential(nn.Linear(3, 4), mark_stochastic(Noise()), nn.Linear(4, 2))
    pred = mc_predict(net, [(torch.randn(3, 3), torch.arange(3))], K, seed=0)
    assert (pred.log_probs.std(1) > 0).all()


def test_dropconnect_engine():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    with pytest.raises(ValueError, match="stochastic layer"):
        mc_predict(net, pool(), K)
    first = mc_predict(net, pool(), K, seed=0, dropconnect=0.3)
    again = mc_predict(net, pool(batch=5), K, seed=0, dropconnect=0.3)
    torch.testing.assert_close(first.log_probs, again.log_probs)
    assert (first.log_probs.std(1) > 0).all()
    assert type(net[1]) is nn.Linear


def test_regression_outputs_and_raw_transform():
    net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 1))
    pred = mc_predict(net, [(torch.randn(4, 3), torch.arange(4))], K, seed=0, output_transform=None)
    assert pred.log_probs.shape == (4, K, 1)


def test_bfloat16_autocast_on_cpu():
    pred = mc_predict(head_dropout_cnn(), pool(), K, seed=0, autocast_dtype=torch.bfloat16)
    assert pred.log_probs.dtype == torch.float32
    ref = mc_predict(head_dropout_cnn(), pool(), K, seed=0)
    torch.testing.assert_close(pred.log_probs, ref.log_probs, atol=0.1, rtol=0.1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iterations": 0}, ValueError, "`iterations`"),
        ({"chunk_rows": 0}, ValueError, "`chunk_rows`"),
        ({"memory_budget": -1}, ValueError, "`memory_budget`"),
        ({"seed": 1.5}, TypeError, "`seed`"),
    ],
)
def test_argument_errors(kwargs, error, match):
    args = {"iterations": K, **kwargs}
    with pytest.raises(error, match=match):
        mc_batches(head_dropout_cnn(), pool(), **args)


@pytest.mark.parametrize(
    "batch", [(torch.randn(3, 1, 8, 8), torch.rand(3)), (torch.randn(3, 1, 8, 8), torch.ones(3, 2))]
)
def test_bad_batches(batch):
    with pytest.raises((TypeError, ValueError), match="dataset_indices"):
        mc_predict(head_dropout_cnn(), [batch], K)


@pytest.mark.parametrize("wrap", [lambda x: x, lambda x: (x,), lambda x: [x]])
def test_a_loader_of_inputs_alone_is_numbered_in_loader_order(wrap):
    inputs = torch.randn(7, 1, 8, 8)
    loader = [wrap(inputs[:4]), wrap(inputs[4:])]
    pred = mc_predict(head_dropout_cnn(), loader, K, seed=0)
    assert pred.indices.tolist() == list(range(7))
    ref = mc_predict(head_dropout_cnn(), [(inputs, torch.arange(7))], K, seed=0)
    torch.testing.assert_close(pred.log_probs, ref.log_probs)


@pytest.mark.parametrize("consistent_masks", [True, False])
def test_a_loader_of_inputs_and_labels_is_refused(consistent_masks):
    """The trap: `(x, y)` with integer class labels looks like `(inputs, dataset_indices)`; labels repeat."""
    inputs, labels = torch.randn(8, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=r"came again.*\(inputs, targets\)"):
        mc_predict(head_dropout_cnn(), [(inputs, labels)], K, seed=0, consistent_masks=consistent_masks)
    with pytest.raises(ValueError, match="came again"):
        mc_predict(head_dropout_cnn(), [(inputs[:4], torch.arange(4)), (inputs[4:], torch.arange(3, 7))], K, seed=0)


class TwoHeads(nn.Module):
    """A trunk with two heads, returned as a tuple or a dict."""

    def __init__(self, as_dict: bool):
        super().__init__()
        self.as_dict = as_dict
        self.trunk = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5))
        self.classes, self.value = nn.Linear(16, 3), nn.Linear(16, 1)

    def forward(self, x):
        h = self.trunk(x)
        out = (self.classes(h), self.value(h))
        return {"classes": out[0], "value": out[1]} if self.as_dict else out


@pytest.mark.parametrize("as_dict", [False, True])
def test_models_with_several_outputs_keep_their_structure(as_dict):
    torch.manual_seed(0)
    net, x = TwoHeads(as_dict), torch.randn(5, 4)
    pred = mc_predict(net, [x[:3], x[3:]], K, seed=0, output_transform=None)
    classes, value = (pred.log_probs["classes"], pred.log_probs["value"]) if as_dict else pred.log_probs
    assert classes.shape == (5, K, 3)
    assert value.shape == (5, K, 1)
    assert classes.std(1).sum() > 0, "the K samples differ"
    with pytest.raises(TypeError, match="returned a (tuple|dict)"):
        mc_predict(net, [x], K, seed=0)


def test_single_unit_output_is_not_log_softmaxed_to_zeros():
    net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    with pytest.raises(ValueError, match="regression"):
        mc_predict(net, [torch.randn(3, 4)], K, seed=0)
    raw = mc_predict(net, [torch.randn(3, 4)], K, seed=0, output_transform=None).log_probs
    assert raw.shape == (3, K, 1)
    assert raw.std(1).sum() > 0


def test_automatic_chunks_grow_after_the_first():
    # The first chunk is a small probe; the rest of the batch then fits the memory budget in one forward.
    counter = CallCounter()
    net = nn.Sequential(counter, nn.Linear(64, 8), nn.Dropout(0.5))
    mc_predict(net, [(torch.randn(24, 64), torch.arange(24))], K, seed=0)
    assert counter.calls == 2
    counter.calls = 0
    mc_predict(net, [(torch.randn(24, 64), torch.arange(24))], K, seed=0, memory_budget=1)
    assert counter.calls == 24  # a budget below one item's outputs: one item per run


class RowCounter(nn.Module):
    """Identity that counts the rows (items x samples) it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return x


class Wrapper(nn.Module):
    """The usual LightningModule shape: `self.net` is a Sequential and `forward` calls it."""

    def __init__(self, scale: float, counter: nn.Module) -> None:
        super().__init__()
        self.net = head_dropout_cnn(counter)
        self.scale = scale

    def forward(self, x):
        return self.net(x) * self.scale


@pytest.mark.parametrize(("scale", "shared"), [(1.0, True), (2.0, False)])
def test_wrapped_sequential_shares_its_prefix_only_when_forward_matches(scale, shared):
    """A wrapper whose forward is `self.net(x)` gets the shared prefix; one that does more runs whole K times.
    Either way the samples equal those of full passes with the same seed."""
    counter = RowCounter()
    wrapper = Wrapper(scale, counter)
    fast = mc_predict(wrapper, pool(), K, seed=3)
    # 24 items: about 24 trunk rows when shared (plus the first batch's check), at least 24 * K when not.
    assert (counter.rows < 24 * 3) == shared, counter.rows
    full = mc_predict(wrapper, pool(), K, seed=3, share_prefix=False)
    torch.testing.assert_close(fast.log_probs, full.log_probs, atol=1e-5, rtol=1e-5)
    assert all(modes(wrapper)), "modes restored after the check"


class CustomForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.drop, self.b = nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2)

    def forward(self, x):
        return self.b(self.drop(torch.relu(self.a(x))))


class DeclaredSplit(CustomForward):
    def mc_split(self):
        return nn.Sequential(self.a, nn.ReLU()), nn.Sequential(self.drop, self.b)


class _Head(nn.Module):
    def __init__(self, drop, b):
        super().__init__()
        self.drop, self.b = drop, b

    def forward(self, x):
        return self.b(self.drop(x))


class DeclaredCustomHead(CustomForward):
    def mc_split(self):
        return nn.Sequential(self.a, nn.ReLU()), _Head(self.drop, self.b)


class WrapsSequential(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (CustomForward(), r"K full passes of the whole `CustomForward`: its `forward` is custom.*mc_split\(\)"),
        (DeclaredSplit(), r"declared `mc_split\(\)`: its features run once per batch; in its head, no shared layers"),
        (
            DeclaredCustomHead(),
            r"^declared `mc_split\(\)`: its features run once per batch, its head \(not a plain nn.Sequential\)"
            r" K times$",
        ),
        (WrapsSequential(), r"layers 0-1 of 4 \(up to Linear, ReLU\).*checked against `forward`"),
        (nn.Sequential(nn.Dropout(0.2), nn.Linear(4, 2)), "no shared layers"),
        (
            nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)),
            r"^shared prefix: layers 0-1 of 4 \(up to Linear, ReLU\) run once per batch, the 2 from Dropout on run K"
            r" times$",
        ),
    ],
)
def test_the_mc_path_is_described(module, expected):
    from lightning_bal.mc.split import describe_split

    assert re.search(expected, describe_split(module))


def test_the_mc_path_with_dropconnect_counts_maskable_layers_as_stochastic():
    from lightning_bal.mc.split import describe_split, flatten_sequential

    net = nn.Sequential(nn.ReLU(), nn.Sequential(nn.Linear(4, 2), nn.Identity()))
    assert flatten_sequential(net) == [net[0], net[1][0], net[1][1]]
    assert describe_split(net, dropconnect=True) == (
        "shared prefix: layers 0-0 of 3 (up to ReLU) run once per batch, the 2 from Linear on run K times"
    )


@pytest.mark.parametrize("dim", [0, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 1000.0])  # 1000: exp overflows, and the shifted form must take over
def test_fast_cpu_log_softmax_equals_torchs(dim, scale):
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(dim)) * scale
    torch.testing.assert_close(_log_softmax(x, dim), x.log_softmax(dim), atol=1e-5, rtol=1e-6)
    assert torch.isfinite(_log_softmax(x, dim)).all()
