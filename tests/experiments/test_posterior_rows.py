"""`heuristic@posterior` rows: the posteriors of issue 20 in one experiment of the papers' protocol, on the digits."""

import pytest
import torch

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
from lightning_bal.posteriors import SWAG, EnsemblePosterior, LastLayerLaplace

ROWS = ["random", "bald@mc_dropout", "bald@ensemble", "bald@swag", "bald@laplace"]
MODELS: list[torch.nn.Module] = []


def _model(seed: int) -> DropoutCNN:
    MODELS.append(DropoutCNN("digits", image_size=8))
    return MODELS[-1]


@pytest.fixture(scope="module")
def result():
    MODELS.clear()
    digits = load_digits(seed=0)
    # A fixed 3 epochs per step (no early stopping), so SWAG's 2 burn-in epochs leave it one to collect in.
    protocol = PaperProtocol(
        budget=30, epochs_per_step=3, samples_per_epoch=64, batch_size=16, max_pool_size=60, iterations=4
    )
    experiment = protocol.experiment(
        ROWS, [0], model=_model, datasets=lambda seed: digits, trainer={"accelerator": "cpu"}
    )
    return experiment, experiment.run()


@pytest.mark.slow  # five short runs: ~15 s on an idle core
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
    # One initial model for the seed: the rows that keep the CNN start from the same point, so they measure the same
    # accuracy before any selection (the ensemble's prediction is another model's).
    first = {name: outcome.histories[name][0][0]["active/test_acc"] for name in ROWS}
    assert len({first[name] for name in ROWS if name != "bald@ensemble"}) == 1
    assert len(MODELS) == 1


@pytest.mark.slow
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
