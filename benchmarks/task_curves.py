"""Label-efficiency curves of the regression and segmentation examples, read back from their TensorBoard logs.

Run the examples once per seed into folders ``<root><seed>`` (each writes ``<heuristic>/version_0`` event files),
then aggregate a metric over seeds, per heuristic and number of labelled samples:

    for s in 0 1 2; do python examples/regression.py --seed $s --output-dir runs/reg$s; done
    python -m benchmarks.task_curves runs/reg --seeds 0 1 2 --metric active/test_rmse

    python examples/segmentation.py --seeds 0 1 2 --threads 1 --output-dir runs/seg
    python -m benchmarks.task_curves runs/seg/seed --seeds 0 1 2 --metric active/val_miou --baseline random

It prints a Markdown table (mean and spread over the seeds at each labelled-set size) and writes it beside a CSV.
With ``--baseline NAME`` it adds, for every other heuristic, the paired differences to the baseline (same seed, same
initial set and model initialisation) from :func:`lightning_bal.experiments.paired_comparison`: the area under the
curve and each step, mean with a 95% t interval over the seeds, and how many seeds are above the baseline (for a
figure where lower is better, such as RMSE, a negative difference favours the heuristic). ``--paired-plot PNG`` draws
them beside the curves.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_bal.experiments import ExperimentResult, paired_comparison, paired_table, plot_paired


def read_curve(run_dir: Path, metric: str) -> dict[int, float]:
    """``{labelled samples: value}`` of ``metric`` in the event files under ``run_dir``."""
    curve: dict[int, float] = {}
    for events_dir in sorted({path.parent for path in run_dir.rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        if metric in accumulator.Tags()["scalars"]:
            curve.update({int(event.step): float(event.value) for event in accumulator.Scalars(metric)})
    return curve


def read_result(root: str, seeds: list[int], metric: str) -> ExperimentResult:
    """The runs under ``<root><seed>/<heuristic>`` as an :class:`ExperimentResult` of ``metric``."""
    histories: dict[str, dict[int, list[dict[str, float]]]] = defaultdict(dict)
    for seed in seeds:
        for run_dir in sorted(Path(f"{root}{seed}").iterdir()):
            curve = read_curve(run_dir, metric) if run_dir.is_dir() else {}
            if curve:
                histories[run_dir.name][seed] = [
                    {"active/num_labelled": labelled, metric: value} for labelled, value in sorted(curve.items())
                ]
    return ExperimentResult(dict(histories), metric=metric)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder prefix: the runs of seed s are in <root><s>")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--metric", required=True)
    parser.add_argument("--baseline", default=None, help="a heuristic's folder name: add the paired differences")
    parser.add_argument("--paired-plot", default=None, help="with --baseline: draw the differences (PNG) here")
    args = parser.parse_args(argv)
    result = read_result(args.root, args.seeds, args.metric)
    names = sorted(result.histories)
    if args.baseline is not None and args.baseline not in names:
        parser.error(f"--baseline {args.baseline!r} is none of the heuristics found: {names}")
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, by_seed in result.curves().items():
        for _, curve in sorted(by_seed.items()):
            for labelled, value in curve:
                values[name][labelled].append(value)
    sizes = sorted({n for curves in values.values() for n in curves})
    lines = [f"| labelled | {' | '.join(names)} |", f"| --- | {' | '.join('---' for _ in names)} |"]
    rows = []
    for size in sizes:
        cells = []
        for name in names:
            seen = values[name].get(size, [])
            spread = f" ({min(seen):.3f}-{max(seen):.3f})" if len(seen) > 1 else ""
            cells.append(f"{statistics.fmean(seen):.3f}{spread}" if seen else "")
            rows.append({"heuristic": name, "labelled": size, "values": " ".join(f"{v:.4f}" for v in seen)})
        lines.append(f"| {size} | {' | '.join(cells)} |")
    table = "\n".join([f"{args.metric}, mean (min-max) over seeds {args.seeds}", "", *lines])
    if args.baseline is not None:
        # The same paired statistic as the classification tables: differences within a seed, t interval over seeds.
        comparisons = paired_comparison(result, args.baseline, target=None)
        table += "\n\n" + paired_table(comparisons)
        if args.paired_plot:
            plot_paired(comparisons, args.paired_plot, result=result)
    out = Path(f"{args.root}_curves.csv")
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["heuristic", "labelled", "values"])
        writer.writeheader()
        writer.writerows(rows)
    print(table)
    return table


if __name__ == "__main__":
    main()
