"""Summarise a CSV of curves written by ``ExperimentResult.write_csv``: a table, and a plot with ``--plot``.

    python -m lightning_bal.experiments outputs/quickstart/curves.csv --metric test_accuracy --thresholds 0.9 0.95
    python -m lightning_bal.experiments results.csv --metric test_accuracy --plot curves.png --title "MNIST"

Nothing is run: the figures come from the CSV (4 decimals), so tables and plots can be remade at any time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightning_bal.experiments.curves import check_threshold
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
    args = parser.parse_args(argv)
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
    print(result.summary(thresholds=args.thresholds))
    if args.plot is not None:
        result.plot(args.plot, title=args.title, thresholds=args.thresholds)
        print(f"Wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
