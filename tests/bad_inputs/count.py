"""Count the bad inputs tried by tests/bad_inputs and how many got a clear error with the state unchanged.

Run from the repository root: ``python -m tests.bad_inputs.count`` (add ``--markdown`` for the table in
docs/reliability.md). It runs the module's tests in this process, then reads what :func:`refuses` recorded.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.bad_inputs import harness

# The experiments' entry points (tests/bad_inputs/test_experiments.py) in a few rows.
_EXPERIMENTS = {
    **dict.fromkeys(("Experiment", "Row"), "experiments: Experiment, Row"),
    **dict.fromkeys(
        ("ExperimentResult", "labels_to_reach", "area_under_curve", "mean_and_spread"),
        "experiments: ExperimentResult (curves, read_csv, write_csv, plot), curve helpers",
    ),
    **dict.fromkeys(
        ("PaperProtocol", "add_protocol_arguments", "protocol_from_arguments"),
        "experiments: PaperProtocol and its command-line options",
    ),
    "__main__": "python -m lightning_bal.experiments",
    **dict.fromkeys(
        ("Study", "RunSpec", "parse_shard", "load_study", "read_records", "study_status", "execute", "settings_hash"),
        "experiments: studies (study files, shards, jobs, run records)",
    ),
    **dict.fromkeys(
        ("paired_comparison", "confidence_interval", "t_quantile", "paired_table / plot_paired"),
        "experiments: paired comparisons (paired_comparison, confidence_interval, t_quantile, table, figure)",
    ),
    **dict.fromkeys(
        ("long_tailed_pool", "duplicated_pool", "check_pool", "make_pool", "IndexedPool"),
        "experiments: long-tailed and duplicated pools",
    ),
}


def family(entry: str) -> str:
    """Group entry points for the table: methods by their class, functions by their module."""
    entry = entry.split(" (")[0]
    if entry.startswith("ActiveDataModule.import_labels"):
        return "ActiveDataModule.import_labels / export_queries (JSON, CSV, paths)"
    if entry.startswith("ActiveDataModule.export_queries"):
        return "ActiveDataModule.import_labels / export_queries (JSON, CSV, paths)"
    if entry.endswith("load_state_dict"):
        return entry
    if entry.startswith(("lightning-bal ", "answer files", "QueryFiles", "LabelStudioClient")):
        return entry
    if entry.startswith(("data.check_boxes", "data.read_boxes", "data.write_boxes")):
        return "answer files: boxes (read_boxes, write_boxes, check_boxes)"
    if entry.startswith(
        ("annotation.check_rectangle_config", "annotation.read_label_studio_boxes", "annotation.to_label_studio_box")
    ):
        return "answer files: Label Studio rectangles"
    if entry.startswith("annotation."):
        return "annotation: majority_vote, dawid_skene, cohen_kappa, fleiss_kappa"
    if entry.startswith("load_label_state"):
        return "load_label_state (a checkpoint's label state, tampered entries)"
    if entry.startswith("LabelState."):
        return "LabelState: check_answers, record_answers, requeue"
    if entry.startswith("heuristics.") or entry == "get_heuristic":
        return "heuristic constructors, get_heuristic"
    if entry.startswith("experiments"):
        return _EXPERIMENTS.get(
            entry.removeprefix("experiments.").split(".")[0].split("(")[0],
            "experiments: cold start, datasets, CNNs, posterior rows",
        )
    if entry.startswith("EmbeddingHeuristic"):
        return "BADGE, CoreSet, TypiClust, ProbCover: select_embeddings / select"
    if entry.startswith("CombineHeuristics"):
        return "CombineHeuristics"
    if entry.startswith(("detection.", "Detection", "BoxExistence", "Localization")):
        return "detection (labels, model outputs, heuristics, DetectionMAP)"
    if entry.startswith(("functional.multilabel", "MultiLabelBALD", "MultiLabelEntropy", "MultiLabelF1", "multilabel")):
        return "heuristics for multi-label (multilabel_bald, multilabel_entropy, MultiLabelF1, through the callback)"
    if entry.startswith("functional."):
        return entry
    if entry.startswith(("StreamedDataset", "chunk_shard")):
        return "streamed pools (StreamedDataset, chunk_shard)"
    if entry.startswith(
        ("ActiveDataModule", "LabelLedger", "ActiveLearningCallback", "mc.", "register_heuristic", "FeatureTap", "TopQ")
    ):
        return entry
    if entry.startswith("gaussian_mi"):
        return "heuristic score / select / transform"
    if entry.startswith(("Convergence", "Plateau")):
        return "Convergence, Plateau"
    if entry.startswith(
        ("evaluations", "TestCurve", "MCTestCurve", "Calibration", "RegressionCurve", "SegmentationIoU")
    ):
        return "step evaluations (TestCurve, RegressionCurve, ...)"
    if entry.startswith("MCDropout"):
        return "MCDropout, MCDropConnect"
    if entry.startswith(("MetricPlateau", "TargetReached", "LowUncertainty", "StablePredictions", "cohen_kappa")):
        return "stopping criteria (constructors, update, cohen_kappa)"
    if entry.startswith(("DeepEnsemble", "SWAG", "LastLayerLaplace", "EnsemblePosterior", "posteriors.")):
        return "posteriors (DeepEnsemble, SWAG, LastLayerLaplace)"
    if entry.startswith(
        ("read_answer", "AnswerFormat", "check_label_config", "bring_in_answers", "to_label_studio_tasks")
    ) or entry.endswith("code_brush_rle"):
        return "answer files, Label Studio answer types (read_answer, AnswerFormat, label config, bring_in_answers)"
    if entry.startswith(("tasks.", "Task.", "Classification.", "PerPosition", "Regression.", "MultiLabel.")):
        return "tasks (Task, Classification, PerPosition, Regression, resolve_task)"
    if entry.startswith("heuristic selection a chunk at a time") or entry in (
        "StochasticHeuristic.select_sharded",  # the streamed draws
        "Random.select_sharded",
    ):
        return "heuristic selection a chunk at a time (streaming_top_k, draw_sharded, select_sharded)"
    return "heuristic score / select / transform"


_DIVERSITY = (
    "BADGE",
    "functional.k_center_greedy",
    "functional.kmeans",
    "functional.typi",
    "functional.probcover",
    "functional.purity",
    "functional.coverage",
    "functional.covering_radius",
    "functional.min_sq_distances",
    "functional.item_uniforms",
)
# The surfaces of docs/reliability.md, first match wins: (surface, prefixes of the families above).
_SURFACES = (
    ("command line (`lightning-bal` subcommands)", ("lightning-bal",)),
    ("Label Studio server client (`lightning-bal sync`)", ("LabelStudioClient",)),
    ("answer and query files (CSV, JSON, Label Studio)", ("answer files", "QueryFiles", "ActiveDataModule.import")),
    ("growing pool (`add_items`)", ("ActiveDataModule.add_items",)),
    ("datamodule and label ledger (state included)", ("ActiveDataModule", "LabelLedger")),
    ("diversity heuristics", _DIVERSITY),
    ("experiments API", ("experiments", "python -m lightning_bal.experiments")),
    (
        "stopping criteria (state included)",
        ("stopping criteria", "MetricPlateau", "TargetReached", "LowUncertainty", "StablePredictions"),
    ),
    ("posteriors (state included)", ("posteriors", "SWAG", "LastLayerLaplace")),
    ("MC engine (MC-Dropout, DropConnect, feature taps)", ("mc.", "MCDropout", "FeatureTap")),
    (
        "callback, convergence, step evaluations (state included)",
        ("ActiveLearningCallback", "Convergence", "Plateau", "step"),
    ),
    ("functional heuristics (uncertainty, sampling, LURE)", ("functional.",)),
    ("heuristic classes, registry, combinations", ("heuristic", "CombineHeuristics", "register_heuristic", "TopQ")),
)


def surface(name: str) -> str:
    """The surface of docs/reliability.md that a :func:`family` belongs to."""
    return next((title for title, prefixes in _SURFACES if name.startswith(prefixes)), name)


def _table(tried: Counter[str], clear: Counter[str], header: str, markdown: bool, quote: str = "`") -> None:
    print()
    print(f"| {header} | Bad inputs tried | Clear error, state unchanged |" if markdown else f"Bad inputs by {header}:")
    if markdown:
        print("|---|---:|---:|")
    for name in sorted(tried):
        print(
            f"| {quote}{name}{quote} | {tried[name]} | {clear[name]} |"
            if markdown
            else f"  {name}: {clear[name]}/{tried[name]}"
        )
    total, ok = sum(tried.values()), sum(clear.values())
    print(
        f"| **all** | **{total}** | **{ok}** |" if markdown else f"Total: {ok} of {total} bad inputs got a clear error"
    )


def main() -> int:
    """Run the module quietly and print the figures; exit non-zero unless every bad input got a clear error."""
    here = Path(__file__).parent
    code = pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", str(here)])
    tried, clear = Counter(), Counter()
    problems = Counter()
    for entry, outcome in harness.RECORDS:
        tried[family(entry)] += 1
        if outcome == "clear":
            clear[family(entry)] += 1
        else:
            problems[(family(entry), outcome)] += 1
    markdown = "--markdown" in sys.argv
    by_surface, clear_by_surface = Counter[str](), Counter[str]()
    for name, count in tried.items():
        by_surface[surface(name)] += count
        clear_by_surface[surface(name)] += clear[name]
    _table(by_surface, clear_by_surface, "Surface", markdown, quote="")
    _table(tried, clear, "Entry point", markdown)
    total, ok = sum(tried.values()), sum(clear.values())
    for (name, outcome), count in sorted(problems.items()):
        print(f"  NOT CLEAR: {name}: {outcome} x{count}")
    return int(code != 0 or ok != total)


if __name__ == "__main__":
    sys.exit(main())
