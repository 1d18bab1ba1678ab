"""Label-efficiency curves of the regression and segmentation examples, read back from their TensorBoard logs.

Run the examples once per seed into folders ``<root><seed>`` (each writes ``<heuristic>/version_0`` event files),
then aggregate a metric over seeds, per heuristic and number of labelled samples:

    for s in 0 1 2; do python examples/regression.py --seed $s --output-dir runs/reg$s; done
    python -m benchmarks.task_curves runs/reg --seeds 0 1 2 --metric active/test_rmse

    python examples/segmentation.py --seeds 0 1 2 --threads 1 --output-dir runs/seg
    python -m benchmarks.task_curves runs/seg/seed --seeds 0 1 2 --metric active/val_miou --baseline random

It prints a Markdown table (mean and spread over the seeds at each labelled-set size) and writes it beside a CSV.
With ``--baseline NAME`` it adds, for every other heuristic, the per-seed difference from the baseline (same seed,
same initial set and model initialisation), mean (min-max), and how many seeds it is above the baseline.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_curve(run_dir: Path, metric: str) -> dict[int, float]:
    """``{labelled samples: value}`` of ``metric`` in the event files under ``run_dir``."""
    curve: dict[int, float] = {}
    for events_dir in sorted({path.parent for path in run_dir.rglob("events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
        accumulator.Reload()
        if metric in accumulator.Tags()["scalars"]:
            curve.update({int(event.step): float(event.value) for event in accumulator.Scalars(metric)})
    return curve


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder prefix: the runs of seed s are in <root><s>")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--metric", required=True)
    parser.add_argument("--baseline", default=None, help="a heuristic's folder name: add per-seed differences")
    args = parser.parse_args(argv)
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_seed: dict[tuple[str, int, int], float] = {}
    for seed in args.seeds:
        for run_dir in sorted(Path(f"{args.root}{seed}").iterdir()):
            if run_dir.is_dir():
                for labelled, value in read_curve(run_dir, args.metric).items():
                    values[run_dir.name][labelled].append(value)
                    by_seed[run_dir.name, seed, labelled] = value
    names = sorted(values)
    if args.baseline is not None and args.baseline not in names:
        parser.error(f"--baseline {args.baseline!r} is none of the heuristics found: {names}")
    others = [] if args.baseline is None else [name for name in names if name != args.baseline]
    headers = names + [f"{name} - {args.baseline}" for name in others]
    sizes = sorted({n for curves in values.values() for n in curves})
    lines = [f"| labelled | {' | '.join(headers)} |", f"| --- | {' | '.join('---' for _ in headers)} |"]
    rows = []
    for size in sizes:
        cells = []
        for name in names:
            seen = values[name].get(size, [])
            spread = f" ({min(seen):.3f}-{max(seen):.3f})" if len(seen) > 1 else ""
            cells.append(f"{statistics.fmean(seen):.3f}{spread}" if seen else "")
            rows.append({"heuristic": name, "labelled": size, "values": " ".join(f"{v:.4f}" for v in seen)})
        for name in others:
            paired = [
                by_seed[name, seed, size] - by_seed[args.baseline, seed, size]
                for seed in args.seeds
                if (name, seed, size) in by_seed and (args.baseline, seed, size) in by_seed
            ]
            above = sum(d > 0 for d in paired)
            spread = f" ({min(paired):+.3f} to {max(paired):+.3f})" if len(paired) > 1 else ""
            cells.append(f"{statistics.fmean(paired):+.3f}{spread}, {above}/{len(paired)} above" if paired else "")
        lines.append(f"| {size} | {' | '.join(cells)} |")
    table = "\n".join([f"{args.metric}, mean (min-max) over seeds {args.seeds}", "", *lines])
    out = Path(f"{args.root}_curves.csv")
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["heuristic", "labelled", "values"])
        writer.writeheader()
        writer.writerows(rows)
    print(table)
    return table


if __name__ == "__main__":
    main()
