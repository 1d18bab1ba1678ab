"""``lightning-bal``: the command line a labelling team uses on a stopped run's checkpoint, without Python.

Commands::

    lightning-bal status CKPT [--json]
    lightning-bal export CKPT OUT [--format csv|json|label_studio] [--data-key image] [--data-prefix P] [--labels a,b]
    lightning-bal import CKPT ANSWERS [--format csv|json|label_studio] [--labels a,b | --label-map map.json]
                         [--on-disagreement first|skip|error] [--output NEW_CKPT]
    lightning-bal sync CKPT --url URL --project ID_OR_TITLE --labels a,b [--token-env VAR] [--data-key image]
                       [--data-prefix P] [--on-disagreement first|skip|error] [--output NEW_CKPT]

``import`` validates every answer before it changes anything and replaces the checkpoint atomically; errors go to
stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lightning_bal.annotation.checkpoint import LabelState, answers_format, import_answers, load_label_state
from lightning_bal.annotation.label_studio import check_data_key
from lightning_bal.annotation.sync import add_sync_parser, sync_command
from lightning_bal.data.queries import read_text

__all__ = ["main"]


def _class_names(flag: str, text: str) -> list[str]:
    names = text.split(",")
    if not all(names):
        raise ValueError(f"Expected `{flag}` to be comma-separated class names, but got an empty name in {text!r}.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        # A repeated name would make every answer of the first class read as the later one.
        raise ValueError(f"Expected `{flag}` to name each class once, but got {repeated} more than once in {text!r}.")
    return names


def _label_map(args: argparse.Namespace) -> dict[str, int] | None:
    if args.labels is not None and args.label_map is not None:
        raise ValueError("Expected `--labels` or `--label-map`, but got both.")
    if args.labels is not None:
        return {name: index for index, name in enumerate(_class_names("--labels", args.labels))}
    if args.label_map is None:
        return None
    try:
        mapping = json.loads(read_text(args.label_map))
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"Expected `--label-map` to name a JSON file, but {args.label_map!r} does not exist."
        ) from err
    except json.JSONDecodeError as err:
        raise ValueError(
            f"Expected `--label-map` {args.label_map!r} to hold JSON, but it does not parse: {err}"
        ) from err
    if (
        not isinstance(mapping, dict)
        or not mapping
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in mapping.values())
    ):
        # `true` is an int to Python and would silently stand for class 1.
        raise ValueError(
            "Expected `--label-map` to hold a JSON object of class names to class indices (integers >= 0), but got"
            f" {mapping!r}."
        )
    return mapping


def _export_names(args: argparse.Namespace, state: LabelState) -> dict[str, object]:
    """The Label Studio options of ``export``, checked against the checkpoint."""
    if args.format != "label_studio":
        flags = (("--labels", args.labels), ("--data-key", args.data_key))
        given = [flag for flag, value in flags if value is not None]
        if given or args.data_prefix:
            raise ValueError(
                f"Expected {given or ['--data-prefix']} only with `--format label_studio`, but the format is"
                f" {args.format or 'taken from the suffix'}."
            )
        return {}
    extra: dict[str, object] = {
        "data_key": check_data_key("--data-key", "image" if args.data_key is None else args.data_key),
        "data_prefix": args.data_prefix,
    }
    if args.labels is None:
        return extra
    names = _class_names("--labels", args.labels)
    guesses = state.annotator_state.get("predictions") or {}
    guessed = 1 + max((int(guess[0]) for guess in guesses.values()), default=-1)
    classes = state.ledger.num_classes
    if (classes is not None and len(names) != classes) or len(names) < guessed:
        raise ValueError(
            f"Expected `--labels` to name every class of the model ({classes or f'at least {guessed}'}), in class"
            f" order, but got {len(names)} names: {names}."
        )
    extra["label_names"] = names
    return extra


def _import(args: argparse.Namespace) -> str:
    label_map = _label_map(args)
    format = answers_format(args.answers, args.format, label_map)
    if format == "label_studio" and label_map is None:
        raise ValueError(
            f"Expected `--labels` or `--label-map` (the project's class names) to read the Label Studio export"
            f" {args.answers!r}, but got neither."
        )
    if format != "label_studio" and label_map is not None:
        raise ValueError(
            f"Expected `--labels`/`--label-map` only with Label Studio exports, but {args.answers!r} is read as"
            f" {format} (its labels are class indices already)."
        )
    if args.output is not None and not Path(args.output).parent.is_dir():
        raise FileNotFoundError(
            f"Expected `--output` to be a file in an existing folder, but {str(Path(args.output).parent)!r} is not one."
        )
    if args.output is not None and Path(args.output).resolve() == Path(args.answers).resolve():
        raise ValueError(f"Expected `--output` to be another file than the answers, but got {args.output!r} for both.")
    before = load_label_state(args.checkpoint).ledger.pending_query
    labelled = import_answers(args.checkpoint, args.answers, args.output, format, label_map, args.on_disagreement)
    target = args.output or args.checkpoint
    return (
        f"Imported {labelled.numel()} answers into {target}; {len(before) - labelled.numel()} items of the"
        " query are still pending."
    )


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
    export.add_argument("--data-key", help="Label Studio: the task field of the data reference (default: image)")
    export.add_argument("--data-prefix", default="", help="Label Studio: prepended to each id (a URL or folder)")
    export.add_argument("--labels", help="Label Studio: comma-separated class names (adds the model's guesses)")
    imported = commands.add_parser("import", help="record answers in the checkpoint (validated, atomic)")
    imported.add_argument("checkpoint")
    imported.add_argument("answers")
    imported.add_argument(
        "--format",
        choices=["csv", "json", "label_studio"],
        help="how to read ANSWERS (default: a .csv file as CSV, Label Studio tasks as an export, other JSON as rows)",
    )
    imported.add_argument("--labels", help="comma-separated class names, in class order (Label Studio)")
    imported.add_argument("--label-map", help="a JSON file mapping class names to indices (Label Studio)")
    imported.add_argument("--on-disagreement", choices=["first", "skip", "error"], default="first")
    imported.add_argument("--output", help="write the updated checkpoint here instead of in place")
    add_sync_parser(commands)
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
            path = state.export(args.output, args.format, **_export_names(args, state))
            print(f"Wrote the query of step {state.ledger.step} ({len(state.pending_ids())} items) to {path}.")
        elif args.command == "sync":
            print(sync_command(args))
        else:
            print(_import(args))
    except (ValueError, TypeError, KeyError, OSError) as err:
        print(f"lightning-bal {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
