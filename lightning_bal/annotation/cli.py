"""``lightning-bal``: the command line a labelling team uses on a stopped run's checkpoint, without Python.

Commands::

    lightning-bal status CKPT [--json]
    lightning-bal export CKPT OUT [--format csv|json|label_studio] [--data-key image] [--data-prefix P] [--labels a,b]
    lightning-bal import CKPT ANSWERS [--format csv|json|label_studio] [--labels a,b | --label-map map.json]
                         [--on-disagreement first|skip|error] [--output NEW_CKPT]

``import`` validates every answer before it changes anything and replaces the checkpoint atomically; errors go to
stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lightning_bal.annotation.checkpoint import import_answers, load_label_state

__all__ = ["main"]


def _label_map(args: argparse.Namespace) -> dict[str, int] | None:
    if args.labels and args.label_map:
        raise ValueError("Expected `--labels` or `--label-map`, but got both.")
    if args.labels:
        return {name: index for index, name in enumerate(args.labels.split(","))}
    if args.label_map:
        mapping = json.loads(Path(args.label_map).read_text())
        if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
            raise ValueError(f"Expected `--label-map` to hold a JSON object of class indices, but got {mapping!r}.")
        return mapping
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-bal", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="sizes, step and pending query of a checkpoint")
    status.add_argument("checkpoint")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    export = commands.add_parser("export", help="write the pending query (CSV, JSON or Label Studio tasks)")
    export.add_argument("checkpoint")
    export.add_argument("output")
    export.add_argument("--format", choices=["csv", "json", "label_studio"])
    export.add_argument("--data-key", default="image", help="Label Studio: the task field of the data reference")
    export.add_argument("--data-prefix", default="", help="Label Studio: prepended to each id (a URL or folder)")
    export.add_argument("--labels", help="Label Studio: comma-separated class names (adds the model's guesses)")
    imported = commands.add_parser("import", help="record answers in the checkpoint (validated, atomic)")
    imported.add_argument("checkpoint")
    imported.add_argument("answers")
    imported.add_argument("--format", choices=["csv", "json", "label_studio"])
    imported.add_argument("--labels", help="comma-separated class names, in class order (Label Studio)")
    imported.add_argument("--label-map", help="a JSON file mapping class names to indices (Label Studio)")
    imported.add_argument("--on-disagreement", choices=["first", "skip", "error"], default="first")
    imported.add_argument("--output", help="write the updated checkpoint here instead of in place")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 1 with the error on stderr).

    Example:
        >>> main(["status", "/no/such.ckpt"])
        1
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "status":
            status = load_label_state(args.checkpoint).status()
            if args.json:
                print(json.dumps(status, indent=2))
            else:
                shown = status["pending_ids"][:10]
                more = " ..." if len(status["pending_ids"]) > 10 else ""
                print(
                    f"{status['items']} items: {status['labelled']} labelled ({status['annotated']} by annotators),"
                    f" {status['pool']} in the pool\nstep {status['step']}; pending query: {status['pending']} items"
                    f" {shown}{more}"
                )
        elif args.command == "export":
            state = load_label_state(args.checkpoint)
            extra = {}
            if args.format == "label_studio":
                extra = {"data_key": args.data_key, "data_prefix": args.data_prefix}
                if args.labels:
                    extra["label_names"] = args.labels.split(",")
            path = state.export(args.output, args.format, **extra)
            print(f"Wrote the query of step {state.ledger.step} ({len(state.pending_ids())} items) to {path}.")
        else:
            before = load_label_state(args.checkpoint).ledger.pending_query
            labelled = import_answers(
                args.checkpoint, args.answers, args.output, args.format, _label_map(args), args.on_disagreement
            )
            target = args.output or args.checkpoint
            print(
                f"Imported {labelled.numel()} answers into {target}; {len(before) - labelled.numel()} items of the"
                " query are still pending."
            )
    except (ValueError, TypeError, KeyError, OSError) as err:
        print(f"lightning-bal {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
