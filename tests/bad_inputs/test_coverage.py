"""Every public entry point has bad inputs in this module (issue #27).

The public entry points are the names in the ``__all__`` of ``lightning_bal`` and of each public subpackage, with,
for classes, the constructor and each public method that takes arguments (Lightning and torch hooks aside: the
trainer calls those, not the user). Each must match an entry recorded by :func:`~tests.bad_inputs.harness.refuses`,
found by the default names below, by :data:`ENTRIES`, or be exempt in :data:`EXEMPT` with the reason.

The check reads :data:`~tests.bad_inputs.harness.RECORDS`, so it needs the whole module run in this process (the
conftest runs this file last): ``python -m tests.bad_inputs.count`` does that and reports the names left uncovered.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path

import pytest

from lightning_bal.heuristics import HEURISTICS
from tests.bad_inputs import harness

__all__ = ["PACKAGES", "public_entry_points", "uncovered"]

# `lightning_bal.utilities` has no `__all__`: its helpers are internal.
PACKAGES = (
    "lightning_bal",
    "lightning_bal.data",
    "lightning_bal.mc",
    "lightning_bal.functional",
    "lightning_bal.heuristics",
    "lightning_bal.callbacks",
    "lightning_bal.posteriors",
    "lightning_bal.annotation",
    "lightning_bal.experiments",
    "lightning_bal.tasks",
)

# Methods the trainer or torch call, with arguments the user does not pass.
_HOOKS = frozenset(
    {"setup", "forward", "training_step", "validation_step", "configure_optimizers", "extra_repr", "state_dict"}
)

_REGISTRY_NAMES = {cls.__name__: name for name, cls in HEURISTICS.items()}
_EMBEDDING = ("badge", "coreset", "probcover-delta", "probcover-purity", "typiclust")

# Public names whose recorded entries the default names (see `_candidates`) do not find.
ENTRIES: dict[str, tuple[str, ...]] = {
    "Heuristic()": ("get_heuristic",),
    "Heuristic.score": ("bald.score", "entropy.score"),
    "Heuristic.select_from_scores": ("bald.select_from_scores",),
    "Heuristic.select_sharded": ("bald.select_sharded", "power_bald.select_sharded"),
    "Heuristic.transform": ("bald.transform", "entropy.transform"),
    "StochasticHeuristic.score": ("power_bald.score", "softmax_entropy.score"),
    "StochasticHeuristic.select_from_scores": ("power_bald.select_from_scores",),
    "EmbeddingHeuristic()": ("heuristics.BADGE()", "heuristics.CoreSet()"),
    "EmbeddingHeuristic.select": tuple(f"EmbeddingHeuristic.select ({name})" for name in _EMBEDDING),
    "EmbeddingHeuristic.select_embeddings": tuple(
        f"EmbeddingHeuristic.select_embeddings ({name})" for name in _EMBEDDING
    ),
    "GaussianMI.score": ("gaussian_mi.score",),
    "MCDropConnect()": ("mc.mc_dropconnect", "MCDropout/MCDropConnect"),
    "Plateau()": ("Convergence()",),
    "LabelState()": ("lightning-bal status",),
    "LabelState.answer": ("lightning-bal import",),
    "LabelState.export": ("lightning-bal export",),
    "LabelState.relabel": ("lightning-bal relabel",),
    "LabelState.unlabel": ("lightning-bal unlabel",),
    "LabelState.status": ("lightning-bal status",),
    "LabelState.check_class_names": ("lightning-bal export", "lightning-bal sync"),
    "lightning_bal.annotation.load_label_state": ("lightning-bal status",),
    "lightning_bal.annotation.import_answers": ("answer files, CSV", "answer files, JSON"),
    "lightning_bal.annotation.read_label_studio_export": ("answer files, Label Studio",),
    "lightning_bal.annotation.write_label_studio_tasks": ("answer files, Label Studio tasks",),
    "lightning_bal.annotation.to_label_studio_tasks": ("answer files, Label Studio tasks",),
    "QueryFiles()": ("QueryFiles",),
    "StepEvaluation()": ("evaluations (TestCurve, ...)",),
    "TestCurve()": ("evaluations (TestCurve, ...)",),
    "MCTestCurve()": ("evaluations (TestCurve, ...)",),
    "Calibration()": ("evaluations (TestCurve, ...)",),
    "LabelledRisk()": ("evaluations (TestCurve, ...)",),
    "RegressionCurve()": ("evaluations (TestCurve, ...)",),
    "SegmentationIoU()": ("evaluations (TestCurve, ...)",),
    "EnsembleCNN.around": ("experiments.ensemble",),
    # `run` builds each seed's model and datamodule through `run_one`, which refuses what they built.
    "Experiment.run_one": ("experiments.Experiment.run",),
    "ExperimentResult.plot": ("experiments.ExperimentResult.plot / write_csv",),
    "lightning_bal.experiments.paired_table": ("experiments.paired_table / plot_paired",),
    "lightning_bal.experiments.plot_paired": ("experiments.paired_table / plot_paired",),
    "ExperimentResult.write_csv": ("experiments.ExperimentResult.plot / write_csv",),
    "ExperimentResult.labels_to_reach": ("experiments.ExperimentResult methods",),
    "ExperimentResult.area_under_curve": ("experiments.ExperimentResult methods",),
    "ExperimentResult.summary": ("experiments.ExperimentResult methods",),
    "ExperimentResult.merge": ("experiments.ExperimentResult methods",),
    "DropoutCNN()": ("experiments.DropoutCNN", "experiments.networks"),
    "lightning_bal.experiments.gal_cnn": ("experiments.networks",),
    "lightning_bal.experiments.kirsch_cnn": ("experiments.networks",),
    "lightning_bal.experiments.digits_cnn": ("experiments.networks",),
    "EnsembleCNN()": ("experiments.ensemble",),
    "lightning_bal.callbacks.initial_selection": ("experiments.cold_start_labels",),
}

_PROTOCOL = "the posterior protocol: `mc.mc_predict`, `mc.mc_batches` and the callback pass the model and loader"
_SETUP = "the base does nothing: each evaluation's own is covered"
_CANDIDATES = "the callback calls it with the query size and pool size it validated"

# Public names with nothing for a bad input to reach, each with the reason.
EXEMPT: dict[str, str] = {
    "Heuristic.shard_candidates": "called by `select_sharded` with the shard's own scores and query size",
    "StepContext.generator": "takes a `Stream` member from the callback, on the context the callback built",
    "MCPrediction()": "a NamedTuple of results",
    "Selection()": "a NamedTuple of results",
    "StepContext()": "a frozen record the callback builds for its evaluations",
    "StepView()": "a Protocol: what the stopping criteria read of the step's context, which the callback builds",
    "LabelStudioAnswers()": "a NamedTuple of results",
    "PairedComparison()": "a frozen record of results that `paired_comparison` builds",
    "PairedDifference()": "a frozen record of results that `confidence_interval` builds",
    "Posterior()": "abstract base: its subclasses' constructors are covered",
    "Posterior.check": "abstract: each posterior's check is reached through `mc.mc_predict`",
    "Posterior.batches": "abstract: each posterior's batches are reached through `mc.mc_batches`",
    "Posterior.fit": "abstract: SWAG and LastLayerLaplace fit on the callback's loaders",
    "Posterior.load_state_dict": "abstract: SWAG's and LastLayerLaplace's are covered",
    "StoppingCriterion()": "abstract base: its subclasses' constructors are covered",
    "StoppingCriterion.update": "abstract: each criterion's update is covered",
    "StoppingCriterion.load_state_dict": "each criterion's load_state_dict is covered",
    "lightning_bal.heuristics.available_heuristics": "its one argument is a flag",
    "MCDropout.batches": _PROTOCOL,
    "SWAG.batches": _PROTOCOL,
    "LastLayerLaplace.batches": _PROTOCOL,
    "EnsemblePosterior.batches": _PROTOCOL,
    "SWAG.fit": "a training hook: the callback calls it with its trainer, model and datamodule",
    "LastLayerLaplace.fit": "a training hook: the callback calls it with its trainer, model and datamodule",
    "EnsemblePosterior()": "takes no arguments",
    "FeatureTap.attach": "the MC engine's hook, with the split and runner it built",
    "FeatureTap.publish": "the MC engine's hook, with a row count it computed",
    "FeatureTap.finish": "the MC engine's hook, with a batch count it computed",
    "QueryFiles.folder_for": "the callback calls it with its trainer (QueryFiles' constructor is covered)",
    "QueryFiles.hand_over": "the callback calls it with its trainer, model, datamodule and selection",
    "QueryFiles.write": "the callback calls it with a path it chose and its datamodule",
    "StepEvaluation.check": _SETUP,
    "StepEvaluation.check_model": _SETUP,
    "Heuristic.num_candidates": _CANDIDATES,
    "BatchBALD.num_candidates": _CANDIDATES,
    "ICAL.num_candidates": _CANDIDATES,
    "SplitModule()": "a mixin of the user's LightningModule: its arguments are LightningModule's",
    "LabelState.save": "reached through `lightning-bal import`, which saves the checkpoint it loaded",
    "Task()": "takes no arguments",
    "Classification()": "takes no arguments",
    "Regression()": "takes no arguments",
    "MultiLabel()": "takes no arguments",
    "Task.stack_samples": "the MC engine calls it with the K outputs of the model it ran",
    "Task.cat_items": "the MC engine calls it with the runs of items it made of one batch",
    "Regression.metric": "`num_classes` does not apply to regression: the metric takes no setting",
}


def _public_classes() -> dict[type, str]:
    classes: dict[type, str] = {}
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                classes.setdefault(obj, obj.__name__)
    return classes


def _methods(cls: type, public: dict[type, str]) -> list[str]:
    names = []
    for attr in dir(cls):
        if attr.startswith(("_", "on_")) or attr in _HOOKS:
            continue
        raw = inspect.getattr_static(cls, attr)
        function = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
        if not inspect.isfunction(function) or not function.__module__.startswith("lightning_bal"):
            continue
        if len(inspect.signature(function).parameters) <= (0 if isinstance(raw, staticmethod) else 1):
            continue  # takes no arguments
        # A method is listed once, under the public class that defines it, else under the one that exposes it.
        owner = next((c for c in cls.__mro__ if attr in vars(c)), cls)
        names.append(f"{public.get(owner, cls.__name__)}.{attr}")
    return names


def public_entry_points() -> list[str]:
    """The public entry points: ``package.function``, ``Class()`` and ``Class.method``."""
    public = _public_classes()
    found: set[str] = set()
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                found.add(f"{obj.__name__}()")
                found.update(_methods(obj, public))
            elif inspect.isfunction(obj):
                found.add(f"{package}.{name}")
            # Anything else is a constant or a type alias: nothing to call.
    return sorted(found)


def _candidates(entry_point: str) -> tuple[str, ...]:
    if entry_point in ENTRIES:
        return ENTRIES[entry_point]
    if entry_point.startswith("lightning_bal."):
        package, name = entry_point.rsplit(".", 1)
        return (f"{package.removeprefix('lightning_bal.')}.{name}", name)
    head, _, method = entry_point.partition(".")
    if entry_point.endswith("()"):
        cls = entry_point[:-2]
        names = [entry_point, f"experiments.{entry_point}", f"heuristics.{entry_point}"]
        if cls in _REGISTRY_NAMES:
            names.append(f"heuristics.{_REGISTRY_NAMES[cls]}()")
        return tuple(names)
    names = [entry_point, f"experiments.{entry_point}"]
    if head in _REGISTRY_NAMES:
        names.append(f"{_REGISTRY_NAMES[head]}.{method}")
    return tuple(names)


def uncovered(records: list[tuple[str, str]]) -> list[str]:
    """The public entry points that neither match a recorded entry nor are exempt."""
    entries = {entry for entry, _ in records}
    stems = {entry.split(" (")[0] for entry in entries}
    return [
        name
        for name in public_entry_points()
        if name not in EXEMPT and not any(c in entries or c in stems for c in _candidates(name))
    ]


def test_entries_and_exemptions_name_public_entry_points():
    names = set(public_entry_points())
    stale = sorted((set(ENTRIES) | set(EXEMPT)) - names)
    assert not stale, f"ENTRIES or EXEMPT name what is not a public entry point: {stale}"
    assert not set(ENTRIES) & set(EXEMPT)
    assert all(reason.strip() for reason in EXEMPT.values())


def test_every_public_entry_point_has_bad_inputs(request):
    here = Path(__file__).parent
    modules = {path.name for path in here.glob("test_*.py")} - {Path(__file__).name}
    ran = {item.path.name for item in request.session.items if item.path.parent == here}
    if os.environ.get("PYTEST_XDIST_WORKER") or not modules <= ran:
        pytest.skip("needs the whole of tests/bad_inputs in this process: run `python -m tests.bad_inputs.count`")
    missing = uncovered(harness.RECORDS)
    assert not missing, (
        f"public entry points without bad inputs (add cases, or an exemption with its reason): {missing}"
    )
