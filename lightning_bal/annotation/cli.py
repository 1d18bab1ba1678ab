"""``lightning-bal``: the command line a labelling team uses on a stopped run's checkpoint, without Python.

``status``, ``export``, ``import``, ``relabel``, ``unlabel``, ``sync`` and ``serve``
(docs/annotators.md#the-command-line): each validates everything before it changes anything; errors go to stderr
with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning_bal.annotation.checkpoint_entries import check_output, saved_status, serve_status, some_ids
from lightning_bal.annotation.label_studio_api import TOKEN_ENV

if TYPE_CHECKING:
    from lightning_bal.annotation.checkpoint import LabelState

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
    from lightning_bal.data.queries import read_text

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
    from lightning_bal.annotation.label_studio import check_data_key

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
    if args.labels is not None:
        extra["label_names"] = state.check_class_names(_class_names("--labels", args.labels))
    return extra


def _import(args: argparse.Namespace) -> str:
    from lightning_bal.annotation.answers import ANSWER_KINDS
    from lightning_bal.annotation.checkpoint import load_label_state
    from lightning_bal.annotation.sync import TASK_ANSWERS, answers_format, bring_in_answers, check_answer_kind

    label_map = _label_map(args)
    format = answers_format(args.answers, args.format, label_map)
    if args.answer is not None and args.answer not in ANSWER_KINDS:
        raise ValueError(f"Expected `--answer` to be one of {list(ANSWER_KINDS)}, but got {args.answer!r}.")
    state = load_label_state(args.checkpoint)
    kind = args.answer or TASK_ANSWERS.get(state.ledger.task_type.name, "choice")
    if format == "label_studio":
        check_answer_kind(state.ledger.task_type.name, kind)
    if format == "label_studio" and label_map is None and kind != "number":  # numbers have no class names
        raise ValueError(
            f"Expected `--labels` or `--label-map` (the project's class names) to read the Label Studio export"
            f" {args.answers!r}, but got neither."
        )
    if format != "label_studio" and (label_map is not None or args.answer is not None):
        raise ValueError(
            f"Expected `--labels`/`--label-map`/`--answer` only with Label Studio exports, but {args.answers!r} is"
            f" read as {format} (its labels are class indices already)."
        )
    check_output(args.output)
    if args.output is not None and Path(args.output).resolve() == Path(args.answers).resolve():
        raise ValueError(f"Expected `--output` to be another file than the answers, but got {args.output!r} for both.")
    before = state.ledger.pending_query
    done = bring_in_answers(
        args.checkpoint,
        args.answers,
        args.output,
        format,
        label_map,
        args.on_disagreement,
        args.by,
        requeue_disagreements=args.requeue_disagreements,
        answer=args.answer,
    )
    target = args.output or args.checkpoint
    lines = [
        f"Imported {done.labelled.numel()} answers into {target}; {len(before) - done.labelled.numel()} items of the"
        " query are still pending."
    ]
    if done.unchanged:
        lines.append(f"{done.unchanged} answers were imported before (unchanged, skipped).")
    if done.corrected:
        lines.append(f"{len(done.corrected)} corrections (changed answers) recorded: {some_ids(done.corrected, 10)}.")
    if done.kept:
        lines.append(
            f"{len(done.kept)} answers differ from a change made here later (relabel/unlabel), which is kept:"
            f" {some_ids(done.kept, 10)}."
        )
    if done.requeued:
        lines.append(
            f"{len(done.requeued)} items went back to the queue (their answers disagree):"
            f" {some_ids(list(done.requeued), 10)}."
        )
    return "\n".join(lines)


def _labels_given(args: argparse.Namespace) -> tuple[list[str], list[int | float]]:
    """The ``ID LABEL`` pairs of ``relabel``: labels as numbers, or as class names with ``--labels``."""
    from lightning_bal.data.queries import parse_label

    pairs = args.pairs
    if len(pairs) % 2:
        raise ValueError(f"Expected `ID LABEL` pairs, but got {len(pairs)} values: {pairs} (a label is missing).")
    ids, given = pairs[0::2], pairs[1::2]
    if args.labels is None:
        labels = []
        for item, text in zip(ids, given, strict=True):
            try:
                label = parse_label(text)
            except ValueError as err:
                raise ValueError(
                    f"Expected `LABEL` of id {item!r} to be a number (or a class name with `--labels`), but got"
                    f" {text!r}."
                ) from err
            if label is None:
                raise ValueError(f"Expected `LABEL` of id {item!r} to be a number, but got {text!r}.")
            labels.append(label)
        return ids, labels
    names = {name: index for index, name in enumerate(_class_names("--labels", args.labels))}
    unknown = [text for text in given if text not in names]
    if unknown:
        raise ValueError(f"Expected every `LABEL` to be one of `--labels` {list(names)}, but got {unknown}.")
    return ids, [names[text] for text in given]


def _change(args: argparse.Namespace) -> str:
    from lightning_bal.annotation.checkpoint import load_label_state

    ids, labels = _labels_given(args) if args.command == "relabel" else (args.ids, [])
    check_output(args.output)
    state = load_label_state(args.checkpoint)
    target = args.output or args.checkpoint
    if args.command == "relabel":
        changed = state.relabel(ids, labels, args.by)
        state.save(target)
        return f"Relabelled {len(changed)} items in {target} ({len(ids) - len(changed)} had that label already)."
    state.unlabel(ids, args.by)
    state.save(target)
    return f"Returned {len(ids)} items to the pool in {target}; they may be queried again."


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # `serve` ends as on Ctrl-C: the server closes and a running training is stopped


def _serve(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    from lightning_bal.annotation.label_studio_api import LabelStudioClient, check_url, token_from_env
    from lightning_bal.annotation.ml_backend import MLBackend
    from lightning_bal.annotation.ml_backend_checks import check_threshold, check_train_command
    from lightning_bal.annotation.serve import check_host, check_port, serve

    host, port, threshold = check_host(args.host), check_port(args.port), check_threshold(args.threshold)
    train = check_train_command(args.train)
    names = _class_names("--labels", args.labels)
    if (args.url is None) != (args.project is None):
        raise ValueError("Expected `--url` and `--project` together (the project each new query goes to), or neither.")
    client = None
    if args.url is not None:
        client = LabelStudioClient(check_url("--url", args.url), token_from_env(args.token_env))
    backend = MLBackend(
        args.checkpoint,
        names,
        train,
        threshold,
        client,
        args.project,
        data_key=args.data_key,
        data_prefix=args.data_prefix,
        token_env=args.token_env,
        on_disagreement=args.on_disagreement,
        requeue_disagreements=args.requeue_disagreements,
        command=shlex.join(["lightning-bal", *(sys.argv[1:] if argv is None else argv)]),
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    serve(backend, host, port)
    # Everything is on disk by now (journal, checkpoint, summary). Finalising the interpreter can abort the process
    # ("terminate called without an active exception") while torch's native threads wind down, so leave directly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-bal", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="sizes, step and pending query of a checkpoint")
    export = commands.add_parser("export", help="write the pending query (CSV, JSON or Label Studio tasks)")
    imported = commands.add_parser("import", help="record answers in the checkpoint (validated, atomic)")
    relabel = commands.add_parser("relabel", help="correct labelled items by id (kept in the history)")
    unlabel = commands.add_parser("unlabel", help="return labelled items to the pool by id (kept in the history)")
    sync = commands.add_parser("sync", help="push the pending query to a Label Studio server and pull its answers")
    serve = commands.add_parser("serve", help="a Label Studio ML backend: predictions, answers by webhook, training")
    for command in (status, export, imported, relabel, unlabel, sync, serve):
        command.add_argument("checkpoint")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    export.add_argument("output")
    export.add_argument("--format", choices=["csv", "json", "label_studio"])
    export.add_argument("--data-key", help="Label Studio: the task field of the data reference (default: image)")
    export.add_argument("--data-prefix", default="", help="Label Studio: prepended to each id (a URL or folder)")
    export.add_argument("--labels", help="Label Studio: comma-separated class names (adds the model's guesses)")
    imported.add_argument("answers")
    imported.add_argument(
        "--format",
        choices=["csv", "json", "label_studio"],
        help="how to read ANSWERS (default: a .csv file as CSV, Label Studio tasks as an export, other JSON as rows)",
    )
    imported.add_argument("--labels", help="comma-separated class names, in class order (Label Studio)")
    imported.add_argument("--label-map", help="a JSON file mapping class names to indices (Label Studio)")
    imported.add_argument(
        "--answer",
        help="Label Studio: the answer type, one of choice, multichoice, number, brush, polygon, spans"
        " (default: the run's task says: choice, multichoice, number or brush)",
    )
    imported.add_argument("--by", help="who gave answers that do not name their annotator (CSV, JSON), for the history")
    relabel.add_argument("pairs", nargs="+", metavar="ID LABEL", help="an item's id and its new label, repeated")
    relabel.add_argument("--labels", help="comma-separated class names, in class order: give LABEL as a name")
    unlabel.add_argument("ids", nargs="+", metavar="ID")
    for command in (relabel, unlabel):
        command.add_argument("--by", help="who makes the change, for the history (default: the login name)")
    sync.add_argument("--url", required=True, help="the server's base URL, e.g. http://127.0.0.1:8080")
    sync.add_argument("--project", required=True, help="the project's id or title")
    serve.add_argument("--url", help="Label Studio's base URL, to push each new query (needs --project)")
    serve.add_argument("--project", help="the project's id or title (with --url)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", default="9090", help="the port to listen on (default: 9090; 0: any free port)")
    serve.add_argument(
        "--train",
        required=True,
        help="the training command, with {checkpoint} (resume from) and {output} (write the new checkpoint)",
    )
    serve.add_argument("--threshold", default="10", help="new answers that start a training (default: 10)")
    for command in (sync, serve):
        command.add_argument("--labels", required=True, help="comma-separated class names, in class order")
        command.add_argument(
            "--token-env", default=TOKEN_ENV, help=f"the environment variable holding the token (default: {TOKEN_ENV})"
        )
        command.add_argument(
            "--data-key", default="image", help="the task field of the data reference (default: image)"
        )
        command.add_argument("--data-prefix", default="", help="prepended to each id (a URL or folder)")
    for command in (imported, sync, serve):
        command.add_argument(
            "--on-disagreement",
            choices=["first", "skip", "error", "majority", "dawid_skene"],
            default="first",
            help="how several annotators' answers to an item become its label (default: first)",
        )
        command.add_argument(
            "--requeue-disagreements",
            action="store_true",
            help="send labelled items whose answers are left undecided (a tie, skip) back to the queue",
        )
    for command in (imported, relabel, unlabel, sync):
        command.add_argument("--output", help="write the updated checkpoint here instead of in place")
    return parser


def _status_text(status: dict[str, Any]) -> str:
    lines = [
        f"{status['items']} items: {status['labelled']} labelled ({status['annotated']} by annotators),"
        f" {status['pool']} in the pool",
        f"step {status['step']}; pending query: {status['pending']} items {some_ids(status['pending_ids'], 10)}",
    ]
    lines.append(f"query file: {status['query_file'] or 'none recorded (write one with `lightning-bal export`)'}")
    if status["label_budget"] is not None:
        lines.append(
            f"label budget: {status['label_budget']}, {status['budget_left']} left (pending items count as bought)"
        )
    else:
        lines.append("label budget: not recorded by the run (the callback has no `label_budget`)")
    served = status.get("serve")
    if served is None:
        lines.append("answers waiting: none (no `lightning-bal serve` journal)")
    else:
        running = "a training is running" if served.get("training") else f"last training: {served.get('last_training')}"
        lines.append(
            f"answers waiting: {served['waiting']} since the last training (it starts at {served.get('threshold')}),"
            f" {served['answers']} in all in the journal {served['journal']}; {running}"
        )
        if served.get("push_due"):
            lines.append("push to Label Studio: due (the server was unreachable; serve retries)")
    if status["corrections"]:
        lines.append(f"corrections recorded: {status['corrections']}")
    lines.append(f"next: {status['next']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 1 with the error on stderr)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "status":
            status = saved_status(args.checkpoint)
            if status is None:
                from lightning_bal.annotation.checkpoint import load_label_state

                status = load_label_state(args.checkpoint).status(args.checkpoint)
            served = serve_status(args.checkpoint)
            status["serve"] = served
            if served is not None and served.get("command"):
                status["next"] = (
                    f"keep `{served['command']}` running (start it again if it stopped): it records the answers"
                    f" from Label Studio and trains after {served.get('threshold')} new ones ({served['waiting']}"
                    " waiting)"
                )
            print(json.dumps(status, indent=2) if args.json else _status_text(status))
        elif args.command == "serve":
            _serve(args, argv)
        elif args.command == "export":
            from lightning_bal.annotation.checkpoint import load_label_state

            state = load_label_state(args.checkpoint)
            path = state.export(args.output, args.format, **_export_names(args, state))
            print(f"Wrote the query of step {state.ledger.step} ({len(state.pending_ids())} items) to {path}.")
        elif args.command == "sync":
            from lightning_bal.annotation.sync import sync_command

            print(sync_command(args))
        elif args.command == "import":
            print(_import(args))
        else:
            print(_change(args))
    except (ValueError, TypeError, KeyError, OSError) as err:
        print(f"lightning-bal {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
