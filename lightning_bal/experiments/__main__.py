"""Summarise a CSV of curves written by ``ExperimentResult.write_csv``: a table, and a plot with ``--plot``.

    python -m lightning_bal.experiments outputs/quickstart/curves.csv --metric test_accuracy --thresholds 0.9 0.95
    python -m lightning_bal.experiments results.csv --metric test_accuracy --plot curves.png --title "MNIST"
    python -m lightning_bal.experiments results.csv --paired random --paired-plot paired.png

``--paired BASELINE`` adds the paired differences to that row, per step and for the area under the curve, with 95%
t intervals over seeds (``lightning_bal.experiments.paired_comparison``); labels to the first ``--thresholds``.

Nothing is run: the figures come from the CSV (4 decimals), so tables and plots can be remade at any time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightning_bal.experiments.curves import check_threshold
from lightning_bal.experiments.paired import paired_comparison, paired_table, plot_paired
from lightning_bal.experiments.result import ExperimentResult

__all__ = ["main"]


def _finite(text: str) -> float:
    """An argparse type: a finite number (``nan`` or ``inf`` is no accuracy to reach)."""
    try:
        return check_threshold("thresholds", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    """Print the summary table of a CSV of curves (and write the plot with ``--plot``); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_bal.experiments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("csv", type=Path, help="a CSV written by ExperimentResult.write_csv")
    parser.add_argument("--metric", default="test_acc", help="the CSV column of the curve (default: test_acc)")
    parser.add_argument("--thresholds", nargs="*", type=_finite, default=[0.9], help="labels to reach each of these")
    parser.add_argument("--plot", type=Path, default=None, help="write the mean and min-max band to this PNG")
    parser.add_argument("--title", default=None)
    parser.add_argument("--paired", metavar="BASELINE", default=None, help="paired differences to this row")
    parser.add_argument("--paired-plot", type=Path, default=None, help="with --paired: the differences, to this PNG")
    args = parser.parse_args(argv)
    if args.paired_plot is not None and args.paired is None:
        parser.error("argument --paired-plot: needs --paired BASELINE")
    if not args.csv.is_file():
        parser.error(f"argument csv: no such file: {args.csv}")
    if not args.metric:
        parser.error("argument --metric: expected a column name, got ''")
    try:
        result = ExperimentResult.read_csv(args.csv, metric=f"active/{args.metric}")
    except ValueError as err:
        parser.error(f"argument csv: {err}")
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
