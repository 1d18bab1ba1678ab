"""Bad inputs to the public entry points the other modules left out (found by ``test_coverage.py``): regression and
ICAL functionals, the ensemble helpers, MC-dropout utilities, heuristic methods, the experiments' small helpers,
posterior sampling and the convergence tracking's state."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.annotation import QueryFiles
from lightning_bal.callbacks import (
    Calibration,
    Convergence,
    MCTestCurve,
    Plateau,
    RegressionCurve,
    SegmentationIoU,
    TestCurve,
)
from lightning_bal.experiments import (
    DropoutCNN,
    EnsembleCNN,
    EnsembleLabelledRisk,
    EnsembleTestCurve,
    PaperProtocol,
    Standardize,
    split_row_name,
)
from lightning_bal.functional import TopQ, gaussian_mutual_information, hsic, ical
from lightning_bal.heuristics import CombineHeuristics, StochasticHeuristic, get_heuristic
from lightning_bal.mc import FeatureTap, mark_stochastic, mc_dropout
from lightning_bal.posteriors import (
    SWAG,
    DeepEnsemble,
    EnsemblePosterior,
    LastLayerLaplace,
    MCDropout,
    ensemble_cross_entropy,
    ensemble_log_probs,
    member_batches,
)
from tests.bad_inputs.harness import accepts, refuses

NAN = float("nan")


def _log_probs(n: int = 4, k: int = 5, c: int = 3) -> torch.Tensor:
    return torch.randn(n, k, c, generator=torch.Generator().manual_seed(0)).log_softmax(-1)


def _enter(module, **kwargs):
    with mc_dropout(module, **kwargs):
        pass


LOG_PROBS = _log_probs()
EYE = torch.eye(3)
LOGITS = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(1))

# ------------------------------------------------------------------------------------------------- functions
FUNCTIONS = [
    # (entry, call, error, pattern)
    (
        "functional.gaussian_mutual_information",
        lambda: gaussian_mutual_information(torch.zeros(4), torch.zeros(4)),
        ValueError,
        r"`means`.*\[N, K, \.\.\.\].*\(4,\)",
    ),
    (
        "functional.gaussian_mutual_information",
        lambda: gaussian_mutual_information(torch.zeros(4, 5), torch.zeros(4, 6)),
        ValueError,
        r"`log_variances`.*shape of `means`",
    ),
    (
        "functional.gaussian_mutual_information",
        lambda: gaussian_mutual_information(torch.zeros(4, 5), torch.full((4, 5), NAN)),
        ValueError,
        r"`log_variances`.*finite",
    ),
    ("functional.hsic", lambda: hsic(EYE, torch.eye(4)), ValueError, r"`kernel_x` and `kernel_y`.*3 and 4"),
    ("functional.hsic", lambda: hsic(torch.ones(3), EYE), ValueError, r"`kernel_x`.*\[\.\.\., n, n\].*\(3,\)"),
    ("functional.hsic", lambda: hsic(EYE, torch.ones(3, 4)), ValueError, r"`kernel_y`.*\(3, 4\)"),
    ("functional.hsic", lambda: hsic(EYE.long(), EYE), TypeError, r"`kernel_x`.*floating point.*int64"),
    ("functional.hsic", lambda: hsic(EYE, EYE, normalized=1), TypeError, r"`normalized`.*bool"),
    ("functional.ical", lambda: ical(LOG_PROBS, 10), ValueError, r"`query_size`.*\[0, 4\].*10"),
    ("functional.ical", lambda: ical(LOG_PROBS, 2, num_targets=0), ValueError, r"`num_targets`.*>= 1"),
    ("functional.ical", lambda: ical(LOG_PROBS, 2, samples="x"), ValueError, r"`samples`.*'labels' or 'probs'"),
    ("functional.ical", lambda: ical(LOG_PROBS, 2, generator=3), TypeError, r"`generator`.*torch.Generator"),
    (
        "posteriors.ensemble_cross_entropy",
        lambda: ensemble_cross_entropy(LOGITS, torch.zeros(3, dtype=torch.long)),
        ValueError,
        r"`logits` \[M, B, C\] and `targets` \[B\].*\(3, 4, 5\) and \(3,\)",
    ),
    (
        "posteriors.ensemble_cross_entropy",
        lambda: ensemble_cross_entropy(LOGITS[0], torch.zeros(4, dtype=torch.long)),
        ValueError,
        r"`logits` \[M, B, C\]",
    ),
    ("posteriors.member_batches", lambda: member_batches(torch.ones(4, 2), 0), ValueError, r"`num_members`.*0"),
    ("posteriors.member_batches", lambda: member_batches(torch.ones(4, 2), 2.0), ValueError, r"`num_members`.*2\.0"),
    ("mc.mark_stochastic", lambda: mark_stochastic("dropout"), TypeError, r"`layer`.*nn.Module.*str"),
    ("mc.mc_dropout", lambda: _enter("net"), TypeError, r"`module`.*nn.Module.*str"),
    ("mc.mc_dropout", lambda: _enter(nn.Linear(2, 2)), ValueError, r"`module`.*stochastic layer"),
    ("mc.mc_dropout", lambda: _enter(nn.Linear(2, 2), dropconnect=1.5), ValueError, r"`dropconnect`.*\[0, 1\)"),
    ("FeatureTap()", lambda: FeatureTap(3), TypeError, r"`layer`.*submodule name or None.*3"),
    ("FeatureTap()", lambda: FeatureTap(inputs="yes"), TypeError, r"`inputs`.*bool.*'yes'"),
    ("TopQ()", lambda: TopQ(0.0), ValueError, r"`q`.*\(0, 1\].*0\.0"),
    ("TopQ()", lambda: TopQ(2), ValueError, r"`q`.*\(0, 1\].*2"),
    ("TopQ()", lambda: TopQ(NAN), ValueError, r"`q`.*nan"),
    ("experiments.split_row_name", lambda: split_row_name(3), TypeError, r"row name.*got 3"),
    ("experiments.split_row_name", lambda: split_row_name(""), ValueError, r"row name.*empty string"),
    ("experiments.split_row_name", lambda: split_row_name("bald@hmc"), ValueError, r"posterior in.*'bald@hmc'"),
    ("experiments.split_row_name", lambda: split_row_name("@swag"), ValueError, r"'@swag'"),
    ("experiments.Standardize()", lambda: Standardize(0.0, 0.0), ValueError, r"`std`.*positive.*0\.0"),
    ("experiments.Standardize()", lambda: Standardize(NAN, 1.0), ValueError, r"`mean`.*finite.*nan"),
    ("experiments.EnsembleCNN.around", lambda: EnsembleCNN.around(nn.Linear(2, 2)), TypeError, r"`model`.*DropoutCNN"),
    ("experiments.EnsembleTestCurve()", lambda: EnsembleTestCurve(output=1.5), TypeError, r"`output`.*1\.5"),
    ("experiments.EnsembleLabelledRisk()", lambda: EnsembleLabelledRisk(output=1.5), TypeError, r"`output`.*1\.5"),
]


@pytest.mark.parametrize(("entry", "call", "error", "match"), FUNCTIONS)
def test_functions_refuse_bad_arguments(entry, call, error, match):
    refuses(entry, call, error, match, LOG_PROBS, EYE, LOGITS)


def test_functions_accept_valid_neighbours():
    assert accepts(lambda: gaussian_mutual_information(torch.zeros(4, 5), torch.zeros(4, 5))).shape == (4,)
    assert accepts(lambda: hsic(EYE, EYE, normalized=True)) == pytest.approx(1.0)
    assert accepts(lambda: hsic(EYE.double(), EYE.double())).dtype == torch.float64
    selection = accepts(lambda: ical(LOG_PROBS, 2, num_targets=3, generator=torch.Generator().manual_seed(0)))
    assert len(selection[0]) == 2
    assert accepts(lambda: ensemble_cross_entropy(LOGITS, torch.zeros(4, dtype=torch.long))).ndim == 0
    assert accepts(lambda: ensemble_log_probs(LOGITS)).shape == (4, 5)
    assert accepts(lambda: member_batches(torch.ones(4, 2), 2)).shape[-1] == 2
    assert isinstance(accepts(lambda: mark_stochastic(nn.Linear(2, 2))), nn.Linear)
    accepts(lambda: _enter(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1))))
    accepts(lambda: _enter(nn.Sequential(nn.Linear(2, 2)), dropconnect=0.1))
    assert accepts(lambda: FeatureTap("0", inputs=True)).inputs
    assert accepts(lambda: TopQ(1)).q == 1
    assert accepts(lambda: split_row_name("bald@swag")) == ("bald", "swag")
    assert accepts(lambda: split_row_name("random")) == ("random", None)
    accepts(lambda: Standardize(0.5, 0.25))
    accepts(lambda: EnsembleCNN.around(DropoutCNN("digits", image_size=8), 2))
    accepts(lambda: EnsembleTestCurve(output=0))
    accepts(lambda: EnsembleLabelledRisk(output="logits"))


@pytest.mark.parametrize(
    ("targets", "match"),
    [(torch.full((4,), 7), r"`targets`.*\[0, 5\)|`targets`.*7"), (torch.zeros(4), r"`targets`.*integer")],
)
def test_ensemble_cross_entropy_refuses_bad_targets(targets, match):
    refuses("posteriors.ensemble_cross_entropy", lambda: ensemble_cross_entropy(LOGITS, targets), ValueError, match)


@pytest.mark.parametrize("logits", [torch.zeros(4), torch.zeros(4, 3)])
def test_ensemble_log_probs_refuses_logits_that_are_not_m_b_c(logits):
    refuses("posteriors.ensemble_log_probs", lambda: ensemble_log_probs(logits), ValueError, r"`logits`.*\[M, B, C\]")


# --------------------------------------------------------------------------------------------------- methods
def _heuristic_methods():
    bald, batchbald, ical_, epig = (get_heuristic(n) for n in ("bald", "batchbald", "ical", "epig"))
    variance, gaussian_mi = get_heuristic("variance"), get_heuristic("gaussian_mi")
    combined = CombineHeuristics([get_heuristic("bald"), get_heuristic("entropy")])
    coreset, badge, rnd = get_heuristic("coreset"), get_heuristic("badge"), get_heuristic("random")
    return [
        # (entry, heuristic, call, error, pattern)
        ("Heuristic.select (bald)", bald, lambda: bald.select(LOG_PROBS, 9), ValueError, r"`query_size`.*9"),
        ("Heuristic.select (bald)", bald, lambda: bald.select(LOG_PROBS[:, 0], 2), ValueError, r"`log_probs`"),
        ("batchbald.select", batchbald, lambda: batchbald.select(LOG_PROBS, -1), ValueError, r"`query_size`.*-1"),
        ("ical.select", ical_, lambda: ical_.select(LOG_PROBS, 9), ValueError, r"`query_size`.*9"),
        ("epig.select", epig, lambda: epig.select(LOG_PROBS, 2), ValueError, r"`targets=`"),
        ("variance.score", variance, lambda: variance.score("x"), TypeError, r"`predictions`.*floating point"),
        ("variance.score", variance, lambda: variance.score(torch.ones(4)), ValueError, r"`predictions`.*K >= 2"),
        ("gaussian_mi.transform", gaussian_mi, lambda: gaussian_mi.transform(torch.ones(4)), KeyError, r"`output=0`"),
        ("gaussian_mi.transform", gaussian_mi, lambda: gaussian_mi.transform(("x",)), TypeError, r"output 0.*str"),
        ("CombineHeuristics.transform", combined, lambda: combined.transform(("x",)), TypeError, r"output 0.*str"),
        ("EmbeddingHeuristic.embed", coreset, lambda: coreset.embed("x", None), ValueError, r"`features`.*str"),
        ("EmbeddingHeuristic.embed", coreset, lambda: coreset.embed(torch.ones(3), None), ValueError, r"\(3,\)"),
        ("badge.embed", badge, lambda: badge.embed(torch.ones(3), LOG_PROBS[:3, 0]), ValueError, r"`features`"),
        (
            "badge.embed",
            badge,
            lambda: badge.embed(torch.ones(4, 3), LOG_PROBS[:3, 0]),
            ValueError,
            r"`features`.*\[3, D\]",
        ),
        ("random.score", rnd, lambda: rnd.score("x"), ValueError, r"`log_probs`.*'x'"),
        ("EmbeddingHeuristic.score", coreset, lambda: coreset.score(LOG_PROBS), TypeError, r"`select_embeddings`"),
    ]


@pytest.mark.parametrize("case", range(len(_heuristic_methods())))
def test_heuristic_methods_refuse_bad_arguments(case):
    entry, heuristic, call, error, match = _heuristic_methods()[case]
    refuses(entry, call, error, match, heuristic, LOG_PROBS)


def test_heuristic_methods_accept_valid_neighbours():
    assert accepts(lambda: get_heuristic("bald").select(LOG_PROBS, 2)).indices.shape == (2,)
    assert accepts(lambda: get_heuristic("batchbald").select(LOG_PROBS, 0)).indices.numel() == 0
    assert accepts(lambda: get_heuristic("ical").select(LOG_PROBS, 2)).indices.shape == (2,)
    epig = get_heuristic("epig")
    assert accepts(lambda: epig.select(LOG_PROBS, 2, targets=_log_probs(2))).indices.shape == (2,)
    assert accepts(lambda: get_heuristic("random").score(LOG_PROBS)).shape == (4,)
    assert accepts(lambda: get_heuristic("variance").score(torch.ones(4, 3))).shape == (4,)
    outputs = (torch.zeros(4, 3), torch.zeros(4, 3))
    assert accepts(lambda: get_heuristic("gaussian_mi").transform(outputs)).shape == (4, 3, 2)
    assert accepts(lambda: get_heuristic("coreset").embed(torch.ones(4, 2, 3), None)).shape == (4, 6)
    assert accepts(lambda: get_heuristic("badge").embed(torch.ones(4, 3), LOG_PROBS[:, 0])).shape[0] == 4


def test_stochastic_heuristic_base_refuses_to_be_built():
    refuses("heuristics.StochasticHeuristic()", StochasticHeuristic, TypeError, r"StochasticHeuristic.*subclass")


# ------------------------------------------------------------------------------------ posteriors, convergence
def test_posterior_sampling_refuses_before_fitting():
    swag, laplace = SWAG(), LastLayerLaplace()
    generator = torch.Generator().manual_seed(0)
    refuses("SWAG.sample_weights", lambda: swag.sample_weights(2, generator), RuntimeError, r"no weights yet", swag)
    refuses(
        "LastLayerLaplace.sample_weights",
        lambda: laplace.sample_weights(2, generator),
        RuntimeError,
        r"before it was fitted",
        laplace,
    )


POSTERIOR_CHECKS = [
    # (entry, posterior, module, error, pattern)
    ("MCDropout.check", MCDropout(), "net", TypeError, r"`module`.*nn.Module.*str"),
    ("MCDropout.check", MCDropout(), nn.Linear(2, 2), ValueError, r"`module`.*stochastic layer"),
    ("SWAG.check", SWAG(), "net", TypeError, r"`module`.*nn.Module.*str"),
    ("SWAG.check", SWAG(), nn.Linear(2, 2).requires_grad_(False), ValueError, r"`module`.*trainable parameters"),
    ("SWAG.collect", SWAG(), "net", TypeError, r"`module`.*nn.Module.*str"),
    ("LastLayerLaplace.check", LastLayerLaplace(), "net", TypeError, r"`module`.*nn.Module.*str"),
    ("LastLayerLaplace.check", LastLayerLaplace(last_layer="head"), nn.Linear(2, 2), ValueError, r"`last_layer`"),
    ("EnsemblePosterior.check", EnsemblePosterior(), nn.Linear(2, 2), ValueError, r"exactly one `DeepEnsemble`"),
]


@pytest.mark.parametrize(("entry", "posterior", "module", "error", "match"), POSTERIOR_CHECKS)
def test_posterior_checks_refuse_a_model_they_cannot_sample(entry, posterior, module, error, match):
    refuses(entry, lambda: getattr(posterior, entry.split(".")[1])(module), error, match, posterior, module)


def test_posterior_checks_accept_a_model_they_can_sample():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 2))
    for posterior in (MCDropout(), SWAG(), LastLayerLaplace()):
        accepts(lambda posterior=posterior: posterior.check(net))
    accepts(lambda: EnsemblePosterior().check(DeepEnsemble(lambda: nn.Linear(2, 2), 2)))
    swag = SWAG()
    accepts(lambda: swag.collect(net))


def test_laplace_fit_loader_refuses_what_is_not_a_module():
    laplace = LastLayerLaplace()
    refuses("LastLayerLaplace.fit_loader", lambda: laplace.fit_loader("net", []), TypeError, r"`module`.*str", laplace)


def test_laplace_fit_loader_then_samples():
    laplace = LastLayerLaplace()
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    accepts(lambda: laplace.fit_loader(net, [torch.ones(2, 3)]))
    assert laplace.sample_weights(3, torch.Generator().manual_seed(0)).shape[0] == 3


def _convergence() -> Convergence:
    convergence = Convergence("val_loss", patience=2, max_epochs=4)
    convergence.observe(0.5, {"w": torch.ones(2)}, {"val_loss": 0.5})
    return convergence


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (-1, ValueError, r"`epochs_since_step`.*-1"),
        ("3", TypeError, r"`epochs_since_step`"),
        (True, TypeError, r"`epochs_since_step`"),
    ],
)
def test_convergence_due_refuses_a_bad_epoch_count(value, error, match):
    convergence = _convergence()
    refuses("Convergence.due", lambda: convergence.due(value), error, match, convergence)


def test_convergence_due_accepts_epoch_counts():
    convergence = _convergence()
    assert accepts(lambda: convergence.due(0)) is False
    assert accepts(lambda: convergence.due(4)) is True


CONVERGENCE_STATES = [
    (None, TypeError, r"Convergence state.*mapping.*NoneType"),
    ([("wait", 1)], TypeError, r"mapping.*list"),
    ({"best_score": NAN}, ValueError, r"`best_score`.*nan"),
    ({"wait": -1}, ValueError, r"`wait`.*-1"),
    ({"best_weights": "w"}, TypeError, r"`best_weights`"),
    ({"best_val_metrics": 3}, TypeError, r"`best_val_metrics`"),
]


@pytest.mark.parametrize(("state", "error", "match"), CONVERGENCE_STATES)
def test_convergence_load_state_dict_refuses_bad_states(state, error, match):
    convergence = _convergence()
    refuses("Convergence.load_state_dict", lambda: convergence.load_state_dict(state), error, match, convergence)


PLATEAU_STATES = [
    (None, TypeError, r"state.*mapping.*NoneType"),
    ({"best_score": "0.5"}, ValueError, r"`best_score`.*'0\.5'"),
    ({"best_score": float("inf")}, ValueError, r"`best_score`.*inf"),
    ({"wait": 1.5}, ValueError, r"`wait`.*1\.5"),
]


@pytest.mark.parametrize(("state", "error", "match"), PLATEAU_STATES)
def test_plateau_load_state_dict_refuses_bad_states(state, error, match):
    plateau = Plateau("min")
    plateau.update(1.0)
    refuses("Plateau.load_state_dict", lambda: plateau.load_state_dict(state), error, match, plateau)


def test_convergence_and_plateau_states_round_trip():
    source, target = _convergence(), Convergence("val_loss", patience=2, max_epochs=4)
    accepts(lambda: target.load_state_dict(source.state_dict()))
    assert target.plateau.best == 0.5
    plateau = Plateau("min")
    accepts(lambda: plateau.load_state_dict({"best_score": 0.25, "wait": 1}))
    assert (plateau.best, plateau.wait) == (0.25, 1)


@pytest.mark.parametrize("index", [2, -1, "0"])
def test_ensemble_member_refuses_a_bad_index(index):
    ensemble = DeepEnsemble(lambda: nn.Linear(2, 2), 2)
    refuses("DeepEnsemble.member", lambda: ensemble.member(index), ValueError, rf"`index`.*{index!r}", ensemble)


def test_ensemble_forward_members_refuses_what_is_not_a_tensor():
    ensemble = DeepEnsemble(lambda: nn.Linear(2, 2), 2)
    pattern = r"`forward_members`.*\[M=2, B, \.\.\.\].*argument 0 is str"
    refuses("DeepEnsemble.forward_members", lambda: ensemble.forward_members("x"), ValueError, pattern, ensemble)
    assert isinstance(accepts(lambda: ensemble.member(1)), nn.Linear)
    assert accepts(lambda: ensemble.forward_members(torch.ones(2, 3, 2))).shape == (2, 3, 2)


@pytest.mark.parametrize(
    ("named_train", "seed", "match"),
    [(False, "x", r"`seed`.*'x'"), (False, 1.0, r"`seed`.*1\.0"), (True, 0, r"`train_dataset`.*str")],
)
def test_protocol_datamodule_refuses_a_bad_seed_or_dataset(named_train, seed, match):
    protocol = PaperProtocol(budget=40, samples_per_epoch=64, batch_size=16, balanced_initial=False)
    generator = torch.Generator().manual_seed(0)
    train = TensorDataset(torch.rand(60, 1, 8, 8, generator=generator), torch.arange(60) % 10)
    entry = "experiments.PaperProtocol.datamodule"
    call = lambda: protocol.datamodule("train" if named_train else train, train, seed)  # noqa: E731
    refuses(entry, call, TypeError, match, protocol, train)
    assert accepts(lambda: protocol.datamodule(train, train, 1)).num_labelled > 0


@pytest.mark.parametrize("state", [None, ["written"]])
def test_query_files_load_state_dict_refuses_what_is_not_a_mapping(state, tmp_path):
    files = QueryFiles(folder=tmp_path)
    refuses("QueryFiles.load_state_dict", lambda: files.load_state_dict(state), TypeError, r"state.*mapping", files)


def test_check_answer_steps_refuses_steps_that_are_not_a_set():
    datamodule = ActiveDataModule(TensorDataset(torch.zeros(3, 1)), seed=0)
    datamodule.query([1], new_step=True)
    refuses(
        "ActiveDataModule.check_answer_steps",
        lambda: datamodule.check_answer_steps([1], source="a.csv"),
        TypeError,
        r"`steps`",
        datamodule,
    )


def test_check_answer_steps_refuses_a_stale_answer_file():
    datamodule = ActiveDataModule(TensorDataset(torch.zeros(3, 1)), seed=0)
    datamodule.query([1], new_step=True)
    refuses(
        "ActiveDataModule.check_answer_steps",
        lambda: datamodule.check_answer_steps({0}, source="old.csv"),
        ValueError,
        r"query of step 1.*old\.csv answers step\(s\) \[0\].*stale",
        datamodule,
    )
    accepts(lambda: datamodule.check_answer_steps({1}, source="new.csv"))


# ------------------------------------------------------------------------------------------ step evaluations
class _Net(pl.LightningModule):
    """A model whose outputs are logits ``[B, 2]``, or ``[B]`` when ``flat``."""

    def __init__(self, flat: bool) -> None:
        super().__init__()
        self.flat = flat
        self.layer = nn.Linear(3, 1 if flat else 2)

    def forward(self, x):
        return self.layer(x).flatten(0) if self.flat else self.layer(x)


def _datamodules() -> tuple[ActiveDataModule, ActiveDataModule]:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(10, 3, generator=generator), torch.arange(10) % 2)
    bare = ActiveDataModule(data, seed=0)
    return bare, ActiveDataModule(data, val_dataset=data, test_dataset=data, seed=0)


EVALUATIONS = [
    (TestCurve(), "test"),
    (MCTestCurve(), "test"),
    (Calibration(), "val"),
    (RegressionCurve(), "test"),
    (SegmentationIoU(3), "val"),
]


@pytest.mark.parametrize(("evaluation", "split"), EVALUATIONS, ids=lambda v: type(v).__name__)
def test_step_evaluations_refuse_a_datamodule_without_their_split(evaluation, split):
    bare, full = _datamodules()
    name = type(evaluation).__name__
    pattern = rf"`{name}` needs a `{split}_dataset`.*has none"
    refuses(f"{name}.check", lambda: evaluation.check(bare), ValueError, pattern, evaluation, bare)
    accepts(lambda: evaluation.check(full))


@pytest.mark.parametrize("evaluation", [TestCurve(), MCTestCurve(), Calibration()], ids=lambda v: type(v).__name__)
def test_step_evaluations_refuse_a_model_without_class_logits(evaluation):
    _, full = _datamodules()
    model = _Net(flat=True)
    entry = f"{type(evaluation).__name__}.check_model"
    refuses(entry, lambda: evaluation.check_model(model, full), ValueError, r"\[batch, classes\]", evaluation, model)
    accepts(lambda: evaluation.check_model(_Net(flat=False), full))
