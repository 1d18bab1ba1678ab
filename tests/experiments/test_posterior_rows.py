"""`heuristic@posterior` rows: the posteriors of issue 20 in one experiment of the papers' protocol, on the digits."""

import pytest
import torch
from torch.nn import functional as F  # noqa: N812

from lightning_bal.experiments import (
    DropoutCNN,
    EnsembleCNN,
    Experiment,
    PaperProtocol,
    Row,
    load_digits,
    posterior_row,
    split_row_name,
)
from lightning_bal.posteriors import SWAG, EnsemblePosterior, LastLayerLaplace, member_batches

ROWS = ["random", "bald@mc_dropout", "bald@ensemble", "bald@swag", "bald@laplace"]
MODELS: list[torch.nn.Module] = []


def _model(seed: int) -> DropoutCNN:
    MODELS.append(DropoutCNN("digits", image_size=8))
    return MODELS[-1]


@pytest.fixture(scope="module")
def result():
    # A module fixture runs before the autouse one-thread fixture: oversubscribed threads made it 60 s, not 2.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    MODELS.clear()
    digits = load_digits(seed=0)
    # A fixed 3 epochs per step (no early stopping), so SWAG's 2 burn-in epochs leave it one to collect in.
    protocol = PaperProtocol(
        budget=30, epochs_per_step=3, samples_per_epoch=64, batch_size=16, max_pool_size=60, iterations=4
    )
    experiment = protocol.experiment(
        ROWS, [0], model=_model, datasets=lambda seed: digits, trainer={"accelerator": "cpu"}
    )
    try:
        yield experiment, experiment.run()
    finally:
        torch.set_num_threads(threads)


def test_every_posterior_row_runs_one_step_on_the_digits(result):
    experiment, outcome = result
    assert {name: experiment.rows[name].heuristic for name in experiment.rows} == dict.fromkeys(ROWS[1:], "bald")
    for name in ROWS:
        history = outcome.histories[name][0]
        assert [int(step["active/num_labelled"]) for step in history] == [20, 30]
        for step in history:
            assert 0.0 <= step["active/test_acc"] <= 1.0
            assert step["active/test_nll"] > 0
            assert step["active/train_nll_mean"] > 0
    # Each run builds the seed's model from the seed alone (the runs train copies): the same initial weights, so the
    # rows that keep the CNN measure the same accuracy before any selection (the ensemble's prediction is another's).
    first = {name: outcome.histories[name][0][0]["active/test_acc"] for name in ROWS}
    assert len({first[name] for name in ROWS if name != "bald@ensemble"}) == 1
    assert len(MODELS) == len(ROWS)
    for model in MODELS[1:]:
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), MODELS[0].parameters(), strict=True))


def test_rows_select_different_labels_than_random(result):
    # Different posteriors score differently: the step's new labels differ between the rows.
    _, outcome = result
    accuracies = {outcome.histories[name][0][1]["active/test_acc"] for name in ROWS}
    assert len(accuracies) > 1


@pytest.mark.parametrize(
    ("name", "posterior"),
    [("bald@swag", SWAG), ("bald@laplace", LastLayerLaplace), ("bald@ensemble", EnsemblePosterior)],
)
def test_posterior_row_builds_the_posterior(name, posterior):
    row = posterior_row(name)
    assert isinstance(row.callback["posterior"], posterior)
    assert (row.model is not None) == (name == "bald@ensemble")


def test_ensemble_row_starts_from_the_seeds_network():
    torch.manual_seed(0)
    model = DropoutCNN("digits", image_size=8)
    state = torch.get_rng_state()
    ensemble = posterior_row("bald@ensemble").model(model, 3)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left as it was
    assert isinstance(ensemble, EnsembleCNN)
    assert ensemble.ensemble.num_members == 5
    member_zero = ensemble.ensemble.member(0)
    for (name, ours), theirs in zip(member_zero.state_dict().items(), model.net.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    # Its members differ from one another, and the same seed builds the same ensemble.
    weights = ensemble.ensemble.stacked.get_parameter("0-weight")
    assert not torch.equal(weights[1], weights[2])
    again = posterior_row("bald@ensemble").model(model, 3).ensemble.stacked.get_parameter("0-weight")
    assert torch.equal(weights, again)


@pytest.mark.parametrize(
    ("name", "match"),
    [("bald@hmc", "posterior in"), ("@swag", "posterior in")],
)
def test_bad_row_names(name, match):
    with pytest.raises(ValueError, match=match):
        split_row_name(name)


def test_experiment_rejects_rows_it_does_not_run():
    with pytest.raises(ValueError, match="`rows` to name rows of `heuristics`"):
        Experiment(["bald"], [0], model=_model, datamodule=lambda seed: None, rows={"bald@swag": Row("bald")})
    with pytest.raises(ValueError, match="without `seed`"):
        Experiment(
            ["x"], [0], model=_model, datamodule=lambda seed: None, rows={"x": Row("bald", callback={"seed": 1})}
        )


def _member_orders(seed: int) -> list[torch.Tensor]:
    """The items each member of a 5-member `EnsembleCNN` trains on in the first epoch, ``[M, items]``."""
    train, _ = load_digits(seed=0)
    datamodule = PaperProtocol(budget=40, samples_per_epoch=64, batch_size=16).datamodule(train, train, seed)
    datamodule = posterior_row("bald@ensemble").datamodule(datamodule)
    datamodule.setup("fit")
    # The items' own inputs identify them: the index of each input in the training set.
    lookup = {tuple(train.tensors[0][i].flatten().tolist()): i for i in datamodule.labelled_indices.tolist()}
    orders = [
        torch.tensor([lookup[tuple(x.flatten().tolist())] for x in member_batches(inputs, 5)[m]])
        for inputs, *_ in datamodule.train_dataloader()
        for m in range(5)
    ]
    return [torch.cat(orders[m::5]) for m in range(5)]


def test_ensemble_members_each_get_their_own_data_order_fixed_by_the_seed():
    orders = _member_orders(seed=0)
    # Each member gets the batch size and the steps one network gets: 64 items per epoch, in batches of 16.
    assert [len(order) for order in orders] == [64] * 5
    for m in range(1, 5):
        assert not torch.equal(orders[0], orders[m])
    # The orders follow the run's seed: the same again, another seed another.
    for ours, again in zip(orders, _member_orders(seed=0), strict=True):
        assert torch.equal(ours, again)
    assert not torch.equal(orders[0], _member_orders(seed=1)[0])


def test_ensemble_training_step_gives_each_member_its_part_of_the_batch():
    torch.manual_seed(0)
    model = EnsembleCNN.around(DropoutCNN("digits", image_size=8), num_members=2, seed=0).eval()  # dropout off
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    with torch.no_grad():
        loss = model.training_step((x, y), 0)
        members = [model.ensemble.member(m).eval() for m in range(2)]
        expected = sum(F.cross_entropy(members[m](x[3 * m : 3 * m + 3]), y[3 * m : 3 * m + 3]) for m in range(2))
    torch.testing.assert_close(loss, expected)
