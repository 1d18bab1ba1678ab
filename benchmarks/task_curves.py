"""Label-efficiency curves of the regression and segmentation examples, read back from their TensorBoard logs.

Run the examples once per seed into folders ``<root><seed>`` (each writes ``<heuristic>/version_0`` event files),
then aggregate a metric over seeds, per heuristic and number of labelled samples:

    for s in 0 1 2; do python examples/regression.py --seed $s --output-dir runs/reg$s; done
    python -m benchmarks.task_curves runs/reg --seeds 0 1 2 --metric active/test_rmse

    for s in 0 1 2; do python examples/segmentation.py --seed $s --output-dir runs/seg$s; done
    python -m benchmarks.task_curves runs/seg --seeds 0 1 2 --metric active/val_miou

It prints a Markdown table (mean and spread over the seeds at each labelled-set size) and writes it beside a CSV.
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
    args = parser.parse_args(argv)
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for seed in args.seeds:
        for run_dir in sorted(Path(f"{args.root}{seed}").iterdir()):
            if run_dir.is_dir():
                for labelled, value in read_curve(run_dir, args.metric).items():
                    values[run_dir.name][labelled].append(value)
    names = sorted(values)
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
    out = Path(f"{args.root}_curves.csv")
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["heuristic", "labelled", "values"])
        writer.writeheader()
        writer.writerows(rows)
    print(table)
    return table


if __name__ == "__main__":
    main()
