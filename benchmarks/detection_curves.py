"""Label-efficiency curves for object detection: test mAP against images and against boxes labelled.

    PYTHONPATH=.:/path/to/torchvision python -m benchmarks.detection_curves --seeds 0 1 2 --threads 1 --shim

Runs ``examples/detection.py``'s ``run`` for every heuristic and seed (max-aggregated detection entropy and BALD,
localization stability, detection BADGE, Random; each seed's runs start from the same initial images and weights),
appends every step's figures to ``records.csv`` as it goes (a run already there is not run again, so an interrupted
study resumes), then writes ``table.md`` (mean and min-max over the seeds at each step, and each heuristic's
per-seed difference from Random) and ``curves.png`` into ``--output``. mAP needs torchmetrics'
``MeanAveragePrecision``, hence torchvision: ``--shim`` loads the test-only shim that makes a CUDA-linked torchvision
wheel importable on a CPU-only torch (docs/detection.md); without mAP the study measures ``test_recall_50``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

FIELDS = ("heuristic", "seed", "step", "images", "boxes", "test_map", "test_map_50", "test_recall_50", "seconds")


def read_records(path: Path) -> list[dict[str, str]]:
    """The rows of ``records.csv`` (none when it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def append_run(path: Path, heuristic: str, seed: int, history: list[dict[str, float]], seconds: float) -> None:
    """Add one run's steps to ``records.csv`` (its header first when the file is new)."""
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        if new:
            writer.writeheader()
        for step, figures in enumerate(history):
            writer.writerow(
                {
                    "heuristic": heuristic,
                    "seed": seed,
                    "step": step,
                    "images": int(figures["active/num_labelled"]),
                    "boxes": int(figures["active/num_boxes_labelled"]),
                    "test_map": f"{figures.get('active/test_map', float('nan')):.4f}",
                    "test_map_50": f"{figures.get('active/test_map_50', float('nan')):.4f}",
                    "test_recall_50": f"{figures['active/test_recall_50']:.4f}",
                    "seconds": f"{seconds:.0f}",
                }
            )


def table(records: list[dict[str, str]], measure: str, baseline: str = "random") -> str:
    """Markdown: per step, images and boxes labelled and ``measure`` (mean, min-max over seeds) per heuristic,
    then each heuristic's per-seed difference from ``baseline``: mean (min-max) and the seeds above it."""
    value: dict[tuple[str, int, int], float] = {}
    boxes: dict[tuple[str, int], list[int]] = defaultdict(list)
    images: dict[int, int] = {}
    for row in records:
        key = (row["heuristic"], int(row["seed"]), int(row["step"]))
        value[key] = float(row[measure])
        boxes[row["heuristic"], int(row["step"])].append(int(row["boxes"]))
        images[int(row["step"])] = int(row["images"])
    names = sorted({h for h, _, _ in value}, key=lambda h: (h == baseline, h))
    seeds = sorted({s for _, s, _ in value})
    lines = [
        f"{measure}: mean (min-max) over seeds {seeds}; boxes labelled: mean over the seeds.",
        "",
        f"| step | images | {' | '.join(f'{n} (boxes)' for n in names)} |",
        f"| --- | --- | {' | '.join('---' for _ in names)} |",
    ]
    for step in sorted(images):
        cells = []
        for name in names:
            got = [value[name, s, step] for s in seeds if (name, s, step) in value]
            if not got:
                cells.append("")
                continue
            mean_boxes = statistics.fmean(boxes[name, step])
            cells.append(f"{statistics.fmean(got):.3f} ({min(got):.3f}-{max(got):.3f}) ({mean_boxes:.0f})")
        lines.append(f"| {step} | {images[step]} | {' | '.join(cells)} |")
    others = [n for n in names if n != baseline]
    if baseline in names and others:
        lines += [
            "",
            f"Difference from {baseline} (same seed): mean (min-max), seeds above {baseline}.",
            "",
            f"| step | images | {' | '.join(others)} |",
            f"| --- | --- | {' | '.join('---' for _ in others)} |",
        ]
        for step in sorted(images):
            cells = []
            for name in others:
                deltas = [
                    value[name, s, step] - value[baseline, s, step]
                    for s in seeds
                    if (name, s, step) in value and (baseline, s, step) in value
                ]
                above = sum(d > 0 for d in deltas)
                cells.append(
                    f"{statistics.fmean(deltas):+.3f} ({min(deltas):+.3f}..{max(deltas):+.3f}) {above}/{len(deltas)}"
                    if deltas
                    else ""
                )
            lines.append(f"| {step} | {images[step]} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict[str, str]], measure: str, path: Path) -> None:
    """``measure`` against images and against boxes labelled: the mean over seeds, the band from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs: dict[str, dict[int, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for row in records:
        runs[row["heuristic"]][int(row["step"])].append(row)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for name in sorted(runs):
        steps = sorted(runs[name])
        y = [[float(r[measure]) for r in runs[name][s]] for s in steps]
        for axis, x_key in zip(axes, ("images", "boxes"), strict=True):
            x = [statistics.fmean(float(r[x_key]) for r in runs[name][s]) for s in steps]
            (line,) = axis.plot(x, [statistics.fmean(v) for v in y], marker="o", label=name)
            axis.fill_between(x, [min(v) for v in y], [max(v) for v in y], color=line.get_color(), alpha=0.15)
    axes[0].set_xlabel("images labelled")
    axes[1].set_xlabel("boxes labelled (mean over seeds)")
    axes[0].set_ylabel(f"{measure} (mean; band: min-max over seeds)")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> str:
    """Run what ``records.csv`` lacks, then write the table and the figure; returns the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heuristics", nargs="+", default=None, help="default: all five of examples/detection.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default="benchmarks/results/detection_curves")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shim", action="store_true", help="load tests/detection/torchvision_cpu.py first (CPU torch)")
    # The shim must come before anything imports torchmetrics, the example (and its run flags) included.
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--shim", action="store_true")
    if first.parse_known_args(argv)[0].shim:
        from tests.detection.torchvision_cpu import install

        install()
    from examples.detection import HEURISTICS, add_run_arguments, map_or_reason, run, run_settings

    add_run_arguments(parser, pool_size=300, test_size=100)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    reason = map_or_reason()
    if reason:
        print(f"mAP is not measured (test recall@0.5 is): {reason}", flush=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "records.csv"
    done = {(row["heuristic"], int(row["seed"])) for row in read_records(path)}
    for seed in args.seeds:
        for name in args.heuristics or HEURISTICS:
            if (name, seed) in done:
                continue
            start = time.perf_counter()
            history = run(name, seed, **run_settings(args), with_map=not reason)
            append_run(path, name, seed, history, time.perf_counter() - start)
            print(f"seed {seed} {name}: {time.perf_counter() - start:.0f} s", flush=True)
    records = read_records(path)
    measure = "test_recall_50" if reason else "test_map"
    text = table(records, measure)
    if not reason:
        text += "\n" + table(records, "test_map_50")
    text += "\n" + table(records, "test_recall_50")
    (output / "table.md").write_text(text)
    plot(records, measure, output / "curves.png")
    print(text, flush=True)
    return text


if __name__ == "__main__":
    import logging
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
