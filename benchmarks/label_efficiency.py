"""Label efficiency: test accuracy against labels for Random, Entropy, BALD, BatchBALD, PowerBALD, EPIG, ...

Run from the repository root (``-m`` makes ``benchmarks`` importable):

    python -m benchmarks.label_efficiency --data /path/to/mnist       # or set LIGHTNING_BAL_MNIST
    python -m benchmarks.label_efficiency --dataset digits --budget 100 --seeds 0   # no MNIST needed

Protocol of Gal et al. 2017 and Kirsch et al. 2019 (see ``examples/mnist.py``): 20 initial labels balanced over the
classes, 10 labels per step, the two-convolution CNN with dropout, K MC samples (``--iterations``; the papers used
100), weights reset after every step, test accuracy on the 10,000 test images after every step, several seeds. With
``--val-size`` each step trains to convergence on D_L (early stopping on validation accuracy with ``--patience``, best
weights restored), as the papers did; without it each step trains a fixed budget (``--epochs-per-step`` x
``--samples-per-epoch``). ``--max-pool-size`` scores a random subset of the pool per step to fit a CPU (0: the whole
pool). A GPU is used when present.

A heuristic written ``name+lure`` (e.g. ``power_bald+lure``) trains on the LURE-weighted loss of Farquhar et al. 2021;
it needs ``--initial random`` and the whole pool scored (``--max-pool-size 0``; ``--pool-size`` keeps that cheap).
A heuristic written ``name@posterior`` draws its K samples from another posterior (``mc_dropout``, ``ensemble``: a
5-member deep ensemble around the seed's CNN, ``swag``, ``laplace``: last-layer Laplace; see
:func:`lightning_bal.experiments.posterior_row`), in the same run as the other rows, e.g.
``--heuristics random bald@mc_dropout bald@ensemble bald@swag bald@laplace``.

Each heuristic x seed is a run of a study (docs/experiments.md#studies-that-run-for-days): its record is written to
``--out``/``records`` when it finishes (``records_lure`` for the ``+lure`` rows), so an interrupted benchmark
resumes where it stopped, ``--jobs N`` runs N at a time in worker processes and ``--shard I/M`` runs every M-th run
(then run the command once more without it to write the tables of all the records). ``--study FILE`` runs a study
file instead of the options (``benchmarks/studies/``).

Outputs in ``--out``, all generated from the records: ``results.csv`` (heuristic, seed, labelled, test accuracy and
NLL, plain and LURE NLL over D_L; 4 decimals), ``curves.png`` (mean over seeds with the min-max band) and
``table.md`` (labels needed to reach 90% and 95% test accuracy, next to the published numbers, and the risk
estimates against the test NLL), which is also printed. ``settings.json`` keeps the run's settings: ``--from-csv``
reads them back, so a table regenerated from the CSV of an older run states the settings of that run, not those of
the regenerating command. Every heuristic starts each seed from the same labels and weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from lightning_bal.experiments import (
    COLD_STARTS,
    MNIST_ENV,
    POSTERIORS,
    Curve,
    ExperimentResult,
    Study,
    add_protocol_arguments,
    area_under_curve,
    labels_to_reach,
    protocol_from_arguments,
    split_row_name,
)

__all__ = [
    "GAL_2017",
    "KIRSCH_2019",
    "KIRSCH_2019_RUNS",
    "SETTINGS_FILE",
    "THRESHOLDS",
    "Curve",
    "labels_to_reach",
    "main",
    "parse_args",
    "plot_curves",
    "read_results",
    "read_settings",
    "risk_table",
    "run_settings",
    "study_of_arguments",
    "summary_table",
]

THRESHOLDS = (0.90, 0.95)
# Gal et al. 2017, Table 1: labels to reach 10% / 5% test error on MNIST.
GAL_2017 = {"bald": (145, 335), "variation_ratios": (120, 295), "entropy": (165, 355), "random": (255, 835)}
# Kirsch et al. 2019, acquisition size 10, median over 6 runs: labels acquired beyond the initial set to reach
# 90% / 95% test accuracy.
KIRSCH_2019 = {"batchbald": (90, 200), "bald": (120, 250)}
# The same experiments run by run: (fewest, median, most) total labels at which each of the 6 runs first reached 90%,
# read from the paper's result files (BlackHC/BatchBALD, laaos_results/paper/mnist_{independent_bald,multibald_bald}
# _k100_b10_*.py; 20 initial labels + 10 per step).
KIRSCH_2019_RUNS = {"batchbald": (80, 105, 120), "bald": (130, 155, 200)}
SETTINGS_FILE = "settings.json"
# Where the data and the outputs live says nothing of the figures, and would name folders of the machine that ran.
_LOCATIONS = frozenset({"data", "out", "from_csv", "jobs", "shard", "threads", "study"})
_REPORTED = frozenset({"dataset", "query_size", "iterations", "initial_labels"})


def _median_labels(curves: list[Curve], threshold: float, offset: int = 0) -> str:
    """Median over seeds of the labels to reach ``threshold`` (minus ``offset``); unreached seeds count as infinite."""
    reached = [labels_to_reach(curve, threshold) for curve in curves]
    values = sorted(float("inf") if n is None else n - offset for n in reached)
    median = statistics.median(values)
    budget = max(labelled for curve in curves for labelled, _ in curve) - offset
    shown = f">{budget}" if median == float("inf") else f"{median:g}"
    return f"{shown} ({sum(n is not None for n in reached)}/{len(reached)})"


def _labels_per_seed(curves: list[Curve], threshold: float) -> str:
    """Each seed's labels to reach ``threshold``, fewest first (``-`` for a seed that never does)."""
    reached = sorted(
        (labels_to_reach(curve, threshold) for curve in curves), key=lambda n: float("inf") if n is None else n
    )
    return " / ".join("-" if n is None else str(n) for n in reached)


def summary_table(results: dict[str, dict[int, Curve]], initial_labels: int) -> str:
    """A markdown table: labels to reach 90% and 95% test accuracy per heuristic, beside the published numbers.

    Each of our cells is the median over seeds (a seed that never reaches the threshold counts as infinite; the
    parenthesis says how many seeds reached it), in total labels and in labels acquired beyond the initial set; each
    seed's labels to 90% sit beside the spread of the published runs.

    Example:
        >>> curves = {"random": {0: [(20, 0.8), (30, 0.9), (40, 0.95)]}}
        >>> print(summary_table(curves, 20).splitlines()[2])
        | random | 30 (1/1) | 30 | 40 (1/1) | 10 (1/1) | 20 (1/1) | 255 / 835 | - | - | 0.8875 | 0.9500 |
    """
    header = (
        "| heuristic | labels to 90% | to 90%, each seed | labels to 95% | acquired to 90% | acquired to 95% |"
        " Gal 2017 (10% / 5% error) | Kirsch 2019 acquired (90% / 95%) | Kirsch 2019 runs to 90% (fewest-most,"
        " median) | mean accuracy over the curve | final accuracy |\n|" + " --- |" * 11
    )
    rows = [header]
    for name, by_seed in results.items():
        curves = list(by_seed.values())
        gal, kirsch, runs = GAL_2017.get(name), KIRSCH_2019.get(name), KIRSCH_2019_RUNS.get(name)
        cells = [
            name,
            _median_labels(curves, THRESHOLDS[0]),
            _labels_per_seed(curves, THRESHOLDS[0]),
            _median_labels(curves, THRESHOLDS[1]),
            *(_median_labels(curves, t, initial_labels) for t in THRESHOLDS),
            f"{gal[0]} / {gal[1]}" if gal else "-",
            f"{kirsch[0]} / {kirsch[1]}" if kirsch else "-",
            f"{runs[0]}-{runs[2]}, {runs[1]}" if runs else "-",
            f"{statistics.mean(area_under_curve(c) for c in curves):.4f}",
            f"{statistics.mean(c[-1][1] for c in curves):.4f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def risk_table(histories: dict[str, dict[int, list[dict[str, float]]]]) -> str:
    """A markdown table: the plain and LURE-weighted mean NLL over D_L against the test NLL, averaged over steps.

    The means run over the steps of every seed at which every label had been drawn with a known probability (random
    initial labels, then a stochastic heuristic over the whole pool), so the three columns describe the same models;
    a heuristic with no such step is averaged over all its steps, without the LURE columns. The gaps say how far
    each estimate of the risk over D_L lies below the model's risk on the test set.

    Example:
        >>> steps = [{"active/train_nll_mean": 0.1, "active/train_nll_lure": 0.3, "active/test_nll": 0.5},
        ...          {"active/train_nll_mean": 0.2, "active/test_nll": 0.4}]
        >>> print(risk_table({"power_bald": {0: steps}}).splitlines()[2])
        | power_bald | 1 / 2 | 0.1000 | 0.3000 | 0.5000 | 0.4000 | 0.2000 |
    """
    rows = [
        "| heuristic | steps with LURE / all | plain NLL over D_L | LURE NLL over D_L | test NLL | test - plain |"
        " test - LURE |\n|" + " --- |" * 7
    ]
    for name, by_seed in histories.items():
        steps = [step for history in by_seed.values() for step in history]
        weighted = [step for step in steps if "active/train_nll_lure" in step]
        used = weighted or steps
        plain = statistics.mean(step["active/train_nll_mean"] for step in used)
        test = statistics.mean(step["active/test_nll"] for step in used)
        lure = statistics.mean(step["active/train_nll_lure"] for step in weighted) if weighted else None
        cells = [
            name,
            f"{len(weighted)} / {len(steps)}",
            f"{plain:.4f}",
            "-" if lure is None else f"{lure:.4f}",
            f"{test:.4f}",
            f"{test - plain:.4f}",
            "-" if lure is None else f"{test - lure:.4f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def read_results(path: Path) -> dict[str, dict[int, list[dict[str, float]]]]:
    """The per-step figures of a ``results.csv`` written by :func:`main`, by heuristic and seed."""
    return ExperimentResult.read_csv(path, columns=_CSV_COLUMNS).histories


def plot_curves(histories: dict[str, dict[int, list[dict[str, float]]]], path: Path, title: str) -> None:
    """Test accuracy against labels: the mean over seeds as a line, the min-max over seeds as a band."""
    ExperimentResult(histories).plot(path, title=title, thresholds=THRESHOLDS, ylabel="test accuracy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["mnist", "digits"], default="mnist")
    parser.add_argument("--data", type=Path, default=None, help="MNIST folder (default: $LIGHTNING_BAL_MNIST)")
    parser.add_argument(
        "--heuristics",
        nargs="+",
        default=["random", "entropy", "bald", "batchbald", "power_bald"],
        help="registry names; `name+lure` trains on the LURE-weighted loss; `name@posterior` samples another posterior"
        f" ({', '.join(POSTERIORS)})",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    add_protocol_arguments(parser)
    parser.add_argument(
        "--initial",
        choices=["balanced", "random", "typiclust", "probcover"],
        default="balanced",
        help="how D_L starts: balanced over the classes, a uniform draw, or a cold start on PCA embeddings",
    )
    parser.add_argument(
        "--pool-size", type=int, default=None, help="D_L and D_U: a fixed random subset of the training split"
    )
    parser.add_argument("--weight-decay", type=float, default=0.0, help="MNIST: L2 of c / |D_L| on dense weights")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads with --jobs 1 (default: torch's)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in a worker process")
    parser.add_argument("--shard", default=None, help="I/M: only the runs whose index is I modulo M (from 0)")
    parser.add_argument("--study", type=Path, default=None, help="run this study file instead of the options")
    parser.add_argument("--out", type=Path, default=Path("outputs/label_efficiency"))
    parser.add_argument(
        "--from-csv",
        type=Path,
        default=None,
        help="write the plot and tables of an earlier results.csv (and the settings.json beside it); run nothing",
    )
    return parser.parse_args(argv)


_CSV_COLUMNS = {
    "test_accuracy": "active/test_acc",
    "test_nll": "active/test_nll",
    "train_nll_mean": "active/train_nll_mean",
    "train_nll_lure": "active/train_nll_lure",
}


def study_of_arguments(args: argparse.Namespace, weighting: str = "") -> dict[str, Any]:
    """The study file (as a mapping) of the options, for the heuristics written with ``+weighting`` (or without)."""
    protocol = protocol_from_arguments(
        args,
        balanced_initial=args.initial == "balanced",
        cold_start=args.initial if args.initial in COLD_STARTS else None,
        pool_size=args.pool_size,
        risk_weights="lure" if weighting else None,
    )
    names = [spec.partition("+")[0] for spec in args.heuristics if spec.partition("+")[2] == weighting]
    digits = args.dataset == "digits"
    return {
        "dataset": {"name": "digits", "test_size": 500} if digits else {"name": "mnist"},
        "model": {"network": "digits"} if digits else {"network": args.network, "weight_decay": args.weight_decay},
        "protocol": dataclasses.asdict(protocol),
        "grid": {"heuristics": names, "seeds": list(args.seeds)},
    }


def _settings_of_study(study: Study) -> dict[str, Any]:
    """What the report states of a study file's runs: the dataset, the rows, the seeds and the protocol."""
    return {
        "dataset": study.dataset["name"],
        "heuristics": study.grid["heuristics"],
        "seeds": study.grid["seeds"],
        **dataclasses.asdict(study.check_fits({})),
        **study.model,
    }


def main(argv: list[str] | None = None) -> dict[str, dict[int, Curve]]:
    """Run (or resume) the study of the options, write the CSV, the plot and the table; returns the curves."""
    args = parse_args(argv)
    for spec in args.heuristics:
        if spec.partition("+")[2] not in ("", "lure"):
            raise ValueError(f"Expected a heuristic name, optionally with `+lure`, but got {spec!r}.")
        split_row_name(spec.partition("+")[0])
        if spec.endswith("+lure") and (args.initial != "random" or args.max_pool_size):
            raise ValueError(
                f"{spec!r} needs every label drawn with a known probability: `--initial random --max-pool-size 0`."
            )
    if (args.weight_decay or args.network != "gal") and args.dataset != "mnist":
        raise ValueError("`--weight-decay` and `--network` apply to the MNIST model only.")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_csv is not None:
        settings = read_settings(args.from_csv)
        histories = read_results(args.from_csv)
        return _report(args.out, settings, histories, f"Figures read from {args.from_csv.name}.")
    if args.data is not None:
        # The worker processes read MNIST from the environment they inherit.
        os.environ[MNIST_ENV] = str(args.data)
    if args.study is not None:
        studies = {"": Study.from_file(args.study)}
        settings = _settings_of_study(studies[""])
        names = {"": list(studies[""].grid["heuristics"])}
    else:
        groups: dict[str, list[str]] = {}
        for spec in args.heuristics:
            groups.setdefault(spec.partition("+")[2], []).append(spec)
        studies = {weighting: Study.from_mapping(study_of_arguments(args, weighting)) for weighting in groups}
        settings = run_settings(args)
        names = groups
    _write_settings(args.out / SETTINGS_FILE, settings)
    # The rows in the order asked for, whichever study (plain or `+lure`) runs them.
    done = ExperimentResult({spec: {} for spec in (names[""] if args.study is not None else args.heuristics)})
    start = time.perf_counter()
    for weighting, study in studies.items():

        def on_run(name: str, seed: int, result: ExperimentResult, seconds: float, weighting: str = weighting) -> None:
            spec = f"{name}+{weighting}" if weighting else name
            curve = _curve(result.histories[name][seed])
            took = "recorded before" if seconds == 0 else f"{seconds:.0f} s"
            print(
                f"{spec:>10} seed {seed}: accuracy {curve[-1][1]:.4f} at {curve[-1][0]} labels, mean over the curve"
                f" {area_under_curve(curve):.4f} ({took})",
                flush=True,
            )

        folder = args.out / ("records_" + weighting if weighting else "records")
        result = study.run(folder, jobs=args.jobs, shard=args.shard, on_run=on_run)
        for name, by_seed in result.histories.items():
            done.histories[f"{name}+{weighting}" if weighting else name] = by_seed
    elapsed = time.perf_counter() - start
    done.write_csv(args.out / "results.csv", columns=_CSV_COLUMNS)
    return _report(args.out, settings, done.histories, f"Time of this call {elapsed:.0f} s on {_device_name()}.")


def _curve(history: list[dict[str, float]]) -> Curve:
    return [(int(h["active/num_labelled"]), float(h["active/test_acc"])) for h in history]


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options that shape a run's figures, as JSON values: every option but the folders of data and outputs."""
    settings = {key: value for key, value in vars(args).items() if key not in _LOCATIONS}
    return json.loads(json.dumps(settings, default=str))


def read_settings(csv_path: Path) -> dict[str, Any]:
    """The settings a run wrote beside ``csv_path`` (see :func:`run_settings`)."""
    path = csv_path.with_name(SETTINGS_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected `--from-csv` {csv_path} to have the run's {SETTINGS_FILE} beside it, but {path} does not exist."
        )
    settings = json.loads(path.read_text())
    missing = sorted(_REPORTED - set(settings)) if isinstance(settings, dict) else sorted(_REPORTED)
    if missing:
        raise KeyError(f"Expected {path} to record the run's settings, but it lacks {', '.join(missing)}.")
    return settings


def _write_settings(path: Path, settings: dict[str, Any]) -> None:
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(json.dumps(settings, indent=1) + "\n")
    os.replace(staged, path)


def _report(
    out: Path, settings: dict[str, Any], histories: dict[str, dict[int, list[dict[str, float]]]], footer: str
) -> dict[str, dict[int, Curve]]:
    """Write ``curves.png`` and ``table.md`` into ``out`` and print the tables; returns the curves."""
    results = {
        name: {seed: _curve(history) for seed, history in by_seed.items()} for name, by_seed in histories.items()
    }
    seeds = len({seed for by_seed in histories.values() for seed in by_seed})
    title = f"{settings['dataset']}: query size {settings['query_size']}, K={settings['iterations']}, {seeds} seeds"
    plot_curves(histories, out / "curves.png", title)
    table = f"{summary_table(results, int(settings['initial_labels']))}\n\n{risk_table(histories)}"
    described = ", ".join(f"{key}={value}" for key, value in settings.items())
    (out / "table.md").write_text(f"{table}\n\nSettings of the run: {described}.\n\n{footer}\n")
    print(table)
    print(f"Wrote {out / 'curves.png'} and {out / 'table.md'}. {footer}")
    return results


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU, {torch.get_num_threads()} torch threads"


if __name__ == "__main__":
    main()
