"""Run a study, list its runs, or summarise its records (or a CSV of curves): a table, and a plot with ``--plot``.

    python -m lightning_bal.experiments run study.yaml --out results/study --jobs 4 [--shard 0/2]
    python -m lightning_bal.experiments status results/study
    python -m lightning_bal.experiments results/study --metric test_acc --thresholds 0.9 0.95 --plot curves.png
    python -m lightning_bal.experiments outputs/quickstart/curves.csv --metric test_accuracy --thresholds 0.9
    python -m lightning_bal.experiments results/study --paired random --paired-plot paired.png

``run`` runs the study's runs not yet recorded in ``--out`` (``--shard I/M``: those whose index, counted from 0, is I
modulo M); ``status`` lists the done, running (or interrupted) and missing runs. A summary runs nothing: its figures
come from the records (full precision) or from the CSV (4 decimals), so tables and plots can be remade at any time.
``--paired BASELINE`` adds the paired differences to that row, per step and for the area under the curve, with 95%
t intervals over seeds (``lightning_bal.experiments.paired_comparison``); labels to the first ``--thresholds``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightning_bal.experiments.curves import check_threshold
from lightning_bal.experiments.paired import paired_comparison, paired_table, plot_paired
from lightning_bal.experiments.records import load_study, study_status
from lightning_bal.experiments.result import ExperimentResult
from lightning_bal.experiments.runner import parse_shard
from lightning_bal.experiments.study import Study

__all__ = ["main"]


def _finite(text: str) -> float:
    """An argparse type: a finite number (``nan`` or ``inf`` is no accuracy to reach)."""
    try:
        return check_threshold("thresholds", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None


def _shard(text: str) -> str:
    """An argparse type: ``I/M`` with ``0 <= I < M``."""
    try:
        parse_shard(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/M with 0 <= I < M (counted from 0), got {text!r}") from None
    return text


def _positive(text: str) -> int:
    """An argparse type: a positive integer."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_bal.experiments run", description=__doc__)
    parser.add_argument("study", type=Path, help="a study file (YAML or JSON)")
    parser.add_argument("--out", type=Path, required=True, help="the folder of the run records")
    parser.add_argument("--jobs", type=_positive, default=1, help="runs at a time, each in a worker process")
    parser.add_argument("--shard", type=_shard, default=None, help="I/M: the runs whose index is I modulo M")
    parser.add_argument("--threads", type=_positive, default=None, help="torch threads per run (default: cores/jobs)")
    args = parser.parse_args(argv)
    try:
        study = Study.from_file(args.study)
    except (TypeError, ValueError, KeyError, FileNotFoundError) as err:
        parser.error(f"argument study: {err}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a file, expected a folder")

    def report(label: str, seed: int, partial: ExperimentResult, seconds: float) -> None:
        print(f"{label} seed {seed}: {'recorded before' if seconds == 0 else f'{seconds:.0f} s'}", flush=True)

    try:
        result = study.run(args.out, jobs=args.jobs, shard=args.shard, on_run=report, threads=args.threads)
    except ValueError as err:
        parser.error(f"argument --out: {err}")
    print(result.summary())
    return 0


def _status(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_bal.experiments status", description=__doc__)
    parser.add_argument("folder", type=Path, help="the --out folder of a study run")
    args = parser.parse_args(argv)
    try:
        status = study_status(args.folder)
    except (ValueError, KeyError, FileNotFoundError) as err:
        parser.error(f"argument folder: {err}")
    for state, runs in status.items():
        print(f"{state}: {len(runs)}")
        for run in runs:
            print(f"  {run}")
    return 0


def _select(
    parser: argparse.ArgumentParser, result: ExperimentResult, rows: list[str] | None, seeds: list[int] | None
) -> ExperimentResult:
    """The runs of ``rows`` and ``seeds`` only (``None``: all); a row or seed the result lacks is an error."""
    histories = result.histories
    if rows is not None:
        unknown = [row for row in rows if row not in histories]
        if unknown:
            parser.error(f"argument --rows: {unknown} are not rows of the result; its rows: {list(histories)}")
        histories = {row: by_seed for row, by_seed in histories.items() if row in rows}
    if seeds is not None:
        held = sorted({seed for by_seed in histories.values() for seed in by_seed})
        missing = sorted(set(seeds) - set(held))
        if missing:
            parser.error(f"argument --seeds: no run of seed {missing}; the runs hold seeds {held}")
        histories = {row: {s: h for s, h in by_seed.items() if s in seeds} for row, by_seed in histories.items()}
        empty = [row for row, by_seed in histories.items() if not by_seed]
        if empty:
            parser.error(
                f"argument --seeds: rows {empty} have no run of seeds {sorted(set(seeds))} (leave them out with --rows)"
            )
    return ExperimentResult(histories, metric=result.metric)


def main(argv: list[str] | None = None) -> int:
    """Run a study, list its runs, or print the summary table of records or a CSV; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "run":
        return _run(argv[1:])
    if argv and argv[0] == "status":
        return _status(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m lightning_bal.experiments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "csv", type=Path, help="a folder of run records, or a CSV written by ExperimentResult.write_csv"
    )
    parser.add_argument("--metric", default="test_acc", help="the CSV column of the curve (default: test_acc)")
    parser.add_argument("--thresholds", nargs="*", type=_finite, default=[0.9], help="labels to reach each of these")
    parser.add_argument("--plot", type=Path, default=None, help="write the mean and min-max band to this PNG")
    parser.add_argument("--title", default=None)
    parser.add_argument("--paired", metavar="BASELINE", default=None, help="paired differences to this row")
    parser.add_argument("--paired-plot", type=Path, default=None, help="with --paired: the differences, to this PNG")
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (heuristics), in the result's order")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="only these seeds (e.g. the first 5 of 10)")
    args = parser.parse_args(argv)
    if args.paired_plot is not None and args.paired is None:
        parser.error("argument --paired-plot: needs --paired BASELINE")
    if not args.csv.is_file() and not args.csv.is_dir():
        parser.error(f"argument csv: no such file: {args.csv}")
    if not args.metric:
        parser.error("argument --metric: expected a column name, got ''")
    try:
        if args.csv.is_dir():
            result = load_study(args.csv, metric=f"active/{args.metric}")
        else:
            result = ExperimentResult.read_csv(args.csv, metric=f"active/{args.metric}")
    except (ValueError, KeyError) as err:
        parser.error(f"argument csv: {err}")
    result = _select(parser, result, args.rows, args.seeds)
    if f"active/{args.metric}" not in result.metrics():
        columns = [key.removeprefix("active/") for key in result.metrics()]
        parser.error(f"argument --metric: the CSV has no column {args.metric!r} with values; its columns: {columns}")
    comparisons = None
    if args.paired is not None:
        try:
            target = args.thresholds[0] if args.thresholds else None
            comparisons = paired_comparison(result, args.paired, target=target)
        except ValueError as err:
            parser.error(f"argument --paired: {err}")
    print(result.summary(thresholds=args.thresholds))
    if comparisons is not None:
        print()
        print(paired_table(comparisons))
    if comparisons is not None and args.paired_plot is not None:
        plot_paired(comparisons, args.paired_plot, result=result, title=args.title)
        print(f"Wrote {args.paired_plot}")
    if args.plot is not None:
        result.plot(args.plot, title=args.title, thresholds=args.thresholds)
        print(f"Wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
