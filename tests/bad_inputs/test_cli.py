"""`lightning-bal status | export | import` with bad flags, files and checkpoints: exit 1 (argparse: 2) with a message
naming the flag or the checkpoint entry, and every file of the folder, the checkpoint first, bit-identical."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lightning_bal.annotation.checkpoint import load_label_state
from tests.bad_inputs.files import PENDING, CliError, Folder, lightning_bal, make_checkpoint
from tests.bad_inputs.harness import accepts, refuses, snapshot


def write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def studio_export(folder: Path, choice: str = "dog") -> Path:
    tasks = [
        {
            "id": 100 + number,
            "data": {"image": item, "lbal_id": item, "lbal_step": 1, "lbal_score": None},
            "annotations": [{"id": number, "result": [{"type": "choices", "value": {"choices": [choice]}}]}],
        }
        for number, item in enumerate(PENDING)
    ]
    return write(folder / "export.json", tasks)


def answers_csv(folder: Path, label: str = "1", item: str = "doc5") -> Path:
    return write(folder / "answers.csv", f"id,index,step,score,label\n{item},5,1,,{label}\n")


# A malformed checkpoint for each entry the command line reads.
LABEL_STUDIO = ["--format", "label_studio"]
MALFORMED = [
    ({"callbacks": ["ActiveLearningCallback"]}, r"entry `callbacks` of .* dict, but got list"),
    ({"callbacks": {"ActiveLearningCallback": []}}, r"entry `callbacks.ActiveLearningCallback` .* dict, but got list"),
    ({"datamodule_acquired_at": [-1] * 15}, r"entry `ActiveDataModule.acquired_at` .* 1-D tensor, but got list"),
    (
        {"datamodule_acquired_at": torch.full((3, 5), -1)},
        r"entry `ActiveDataModule.acquired_at` .* 1-D tensor, but got \(3, 5\)",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"scores": [0.5, 0.25]}}}},
        r"entry `callbacks.ActiveLearningCallback.annotator.scores` .* dict, but got list",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"scores": {"doc5": "high"}}}}},
        r"every score in the entry `callbacks.ActiveLearningCallback.annotator.scores` .* 'doc5' has 'high'",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"predictions": {"doc5": 2}}}}},
        r"every guess in the entry `callbacks.ActiveLearningCallback.annotator.predictions` .* 'doc5' has 2",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"predictions": {"doc5": [-1, 0.5]}}}}},
        r"`callbacks.ActiveLearningCallback.annotator.predictions` .* \[class, probability\].* \[-1, 0.5\]",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": [["doc5", 0.5]]}}},
        r"entry `callbacks.ActiveLearningCallback.annotator` .* dict, but got list",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"history": {"val_acc": 0.5}}}},
        r"entry `callbacks.ActiveLearningCallback.history` .* list of dicts",
    ),
    ({"datamodule_ids": ["doc0"] * 15}, r"`ActiveDataModule.ids`.*distinct"),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"corrections": {"doc5": 1}}}}},
        r"entry `callbacks.ActiveLearningCallback.annotator.corrections` .* list of dicts with an `id`",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"corrections": [{"label": 1}]}}}},
        r"entry `callbacks.ActiveLearningCallback.annotator.corrections` .* list of dicts with an `id`",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"query_file": 3}}}},
        r"entry `callbacks.ActiveLearningCallback.annotator.query_file` .* path, but got 3",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"label_names": "cat,dog"}}}},
        r"entry `callbacks.ActiveLearningCallback.annotator.label_names` .* list of names, but got 'cat,dog'",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"label_budget": 0}}}},
        r"entry `callbacks.ActiveLearningCallback.annotator.label_budget` .* positive integer, but got 0",
    ),
    (
        {"callbacks": {"ActiveLearningCallback": {"annotator": {"label_budget": True}}}},
        r"entry `callbacks.ActiveLearningCallback.annotator.label_budget` .* positive integer, but got True",
    ),
]

COMMANDS: list[Callable[[Path], list[object]]] = [
    lambda folder: ["status", folder / "run.ckpt"],
    lambda folder: [
        "export",
        folder / "run.ckpt",
        folder / "tasks.json",
        "--format",
        "label_studio",
        "--labels",
        "a,b,c",
    ],
    lambda folder: ["import", folder / "run.ckpt", answers_csv(folder)],
    lambda folder: ["relabel", folder / "run.ckpt", "doc1", "2"],
    lambda folder: ["unlabel", folder / "run.ckpt", "doc1"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=["status", "export", "import", "relabel", "unlabel"])
@pytest.mark.parametrize(("replace", "match"), MALFORMED)
def test_malformed_checkpoints_are_refused_by_every_command(tmp_path, command, replace, match):
    make_checkpoint(tmp_path, **replace)
    args = command(tmp_path)
    refuses(f"lightning-bal {args[0]}", lambda: lightning_bal(*args), CliError, rf"exit 1: .*{match}", Folder(tmp_path))


STATUS_CASES = [
    (lambda folder: [folder / "missing.ckpt"], r"exit 1: .*missing.ckpt.* readable checkpoint"),
    (lambda folder: [write(folder / "notes.ckpt", "not a checkpoint")], r"exit 1: .*notes.ckpt.* readable checkpoint"),
    (lambda folder: [], r"exit 2: .*required: checkpoint"),
    (lambda folder: [folder / "run.ckpt", "--format", "csv"], r"exit 2: .*unrecognized arguments: --format"),
]


@pytest.mark.parametrize(("make", "match"), STATUS_CASES)
def test_status_refuses(tmp_path, make, match):
    make_checkpoint(tmp_path)
    args = make(tmp_path)
    refuses("lightning-bal status", lambda: lightning_bal("status", *args), CliError, match, Folder(tmp_path))
    assert "step 1; pending query: 3 items ['doc5', 'doc9', 'doc11']" in accepts(
        lambda: lightning_bal("status", tmp_path / "run.ckpt")
    )


def _link(folder: Path) -> Path:
    link = folder / "link.json"
    link.symlink_to(folder / "run.ckpt")
    return link


EXPORT_CASES = [
    (lambda f: [f / "run.ckpt", *LABEL_STUDIO], r"another file than the checkpoint.*would destroy"),
    (lambda f: [f / "sub" / ".." / "run.ckpt", *LABEL_STUDIO], r"another file than the checkpoint"),
    (lambda f: [_link(f), *LABEL_STUDIO], r"another file than the checkpoint"),
    (lambda f: [f / "run.ckpt", "--format", "json"], r"another file than the checkpoint"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--labels", "cat,dog"], r"`--labels` .* every class .* \(3\).* 2 names"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--labels", "a,b,c,d"], r"`--labels` .* every class .* \(3\).* 4 names"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--labels", "cat,dog,dog"], r"`--labels` .* once.*\['dog'\]"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--labels", "cat,,dog"], r"`--labels` .* empty name"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--data-key", "lbal_id"], r"`--data-key` .* lightning_bal's own"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--data-key", "lbal_step"], r"`--data-key` .* lightning_bal's own"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--data-key", "lbal_score"], r"`--data-key` .* lightning_bal's own"),
    (lambda f: [f / "t.json", *LABEL_STUDIO, "--data-key", ""], r"`--data-key` .* non-empty string"),
    (lambda f: [f / "t.json", "--labels", "cat,dog,bird"], r"\['--labels'\] only with `--format label_studio`"),
    (lambda f: [f / "t.csv", "--data-key", "text"], r"\['--data-key'\] only with `--format label_studio`"),
    (lambda f: [f / "t.csv", "--data-prefix", "s3://x/"], r"\['--data-prefix'\] only with `--format label_studio`"),
    (lambda f: [f / "t.json", "--format", "xml"], r"exit 2: .*--format: invalid choice: 'xml'"),
    (lambda f: [f / "t.txt", "--format", "csv"], r"`path` to end in `.csv`"),
    (lambda f: [f / "no" / "such" / "t.csv"], r"No such file or directory.*t.csv"),
    (lambda f: [], r"exit 2: .*required: output"),
]


@pytest.mark.parametrize(("make", "match"), EXPORT_CASES)
def test_export_refuses(tmp_path, make, match):
    make_checkpoint(tmp_path)
    (tmp_path / "sub").mkdir()
    args = make(tmp_path)
    refuses(
        "lightning-bal export",
        lambda: lightning_bal("export", tmp_path / "run.ckpt", *args),
        CliError,
        match,
        Folder(tmp_path),
    )


@pytest.mark.parametrize(
    "extra",
    [[*LABEL_STUDIO, "--labels", "cat,dog,bird"], [*LABEL_STUDIO, "--data-key", "text"], ["--format", "json"], []],
)
def test_export_accepts(tmp_path, extra):
    make_checkpoint(tmp_path)
    accepts(lambda: lightning_bal("export", tmp_path / "run.ckpt", tmp_path / "out.json", *extra))
    assert len(json.loads((tmp_path / "out.json").read_text())) == 3


def _label_map(folder: Path, content: object) -> Path:
    return write(folder / "map.json", content)


IMPORT_CASES = [
    (lambda f: [studio_export(f), "--labels", "cat,dog,dog,bird"], r"`--labels` .* once.*\['dog'\]"),
    (lambda f: [studio_export(f), "--labels", "cat,,dog"], r"`--labels` .* empty name"),
    (lambda f: [studio_export(f), "--label-map", _label_map(f, {"dog": True})], r"`--label-map` .*integers.*True"),
    (lambda f: [studio_export(f), "--label-map", _label_map(f, {"dog": -1})], r"`--label-map` .*integers >= 0.*-1"),
    (lambda f: [studio_export(f), "--label-map", _label_map(f, {"dog": 1.0})], r"`--label-map` .*integers.*1\.0"),
    (lambda f: [studio_export(f), "--label-map", _label_map(f, ["cat", "dog"])], r"`--label-map` .* JSON object"),
    (lambda f: [studio_export(f), "--label-map", _label_map(f, {})], r"`--label-map` .* JSON object"),
    (lambda f: [studio_export(f), "--label-map", _label_map(f, "{cat: 0")], r"`--label-map` .* hold JSON"),
    (lambda f: [studio_export(f), "--label-map", f / "absent.json"], r"`--label-map` .* does not exist"),
    (
        lambda f: [studio_export(f), "--labels", "cat", "--label-map", _label_map(f, {"cat": 0})],
        r"`--labels` or `--label-map`, but got both",
    ),
    (lambda f: [studio_export(f)], r"`--labels` or `--label-map` .* Label Studio export .* neither"),
    (lambda f: [studio_export(f), "--format", "label_studio"], r"`--labels` or `--label-map` .* neither"),
    (lambda f: [answers_csv(f), "--labels", "cat,dog,bird"], r"`--labels`/`--label-map`/`--answer` only with Label"),
    (lambda f: [answers_csv(f), "--answer", "spans"], r"`--labels`/`--label-map`/`--answer` only with Label Studio"),
    (
        lambda f: [studio_export(f), "--labels", "cat,dog,bird", "--answer", "lines"],
        r"`--answer` to be one of \['choice', 'multichoice', 'number', 'brush', 'polygon', 'spans'\], but got 'lines'",
    ),
    (lambda f: [studio_export(f), "--answer", "choice"], r"`--labels` or `--label-map` .* neither"),
    (
        lambda f: [studio_export(f), "--labels", "cat,dog,bird", "--answer", "number"],
        r"`--answer` to be an answer type of a classification run \(choice\), but got 'number'",
    ),
    (lambda f: [studio_export(f), "--format", "json"], r"query rows .* holds Label Studio tasks"),
    (lambda f: [studio_export(f), "--format", "csv"], r"header `id,index,step,score,label`.* looks like JSON"),
    (lambda f: [answers_csv(f), "--format", "json"], r"hold JSON, but it does not parse"),
    (lambda f: [answers_csv(f), "--format", "label_studio", "--labels", "a,b,c"], r"hold JSON, but it does not parse"),
    (
        lambda f: [write(f / "rows.json", [{"id": "doc5", "step": 1, "label": 1}]), *LABEL_STUDIO, "--labels", "a,b"],
        r"`data.lbal_id`",
    ),
    (lambda f: [answers_csv(f, label="1_0")], r"every `label` .* number or empty, but got '1_0'"),
    (lambda f: [answers_csv(f, item="doc1")], r"ids \['doc1'\] that are already labelled"),
    (lambda f: [answers_csv(f, item="doc3")], r"pending query only.*\['doc3'\], which were\s+not queried"),
    (lambda f: [answers_csv(f), "--output", f / "no" / "out.ckpt"], r"`--output` .* existing folder"),
    (lambda f: [answers_csv(f), "--output", f / "answers.csv"], r"`--output` .* another file than the answers"),
    (
        lambda f: [studio_export(f), "--labels", "cat,dog", "--on-disagreement", "maybe"],
        r"exit 2: .*--on-disagreement: invalid choice",
    ),
    (lambda f: [answers_csv(f), "--format", "xml"], r"exit 2: .*--format: invalid choice"),
    (lambda f: [f / "absent.csv"], r"No such file or directory.*absent.csv"),
]


@pytest.mark.parametrize(("make", "match"), IMPORT_CASES)
def test_import_refuses(tmp_path, make, match):
    make_checkpoint(tmp_path)
    args = make(tmp_path)
    refuses(
        "lightning-bal import",
        lambda: lightning_bal("import", tmp_path / "run.ckpt", *args),
        CliError,
        match,
        Folder(tmp_path),
    )


def test_a_second_import_of_the_same_export_is_recognised_and_changes_nothing(tmp_path):
    make_checkpoint(tmp_path)
    export = studio_export(tmp_path)
    accepts(lambda: lightning_bal("import", tmp_path / "run.ckpt", export, "--labels", "cat,dog,bird"))
    before = snapshot(load_label_state(tmp_path / "run.ckpt").checkpoint)
    out = accepts(lambda: lightning_bal("import", tmp_path / "run.ckpt", export, "--labels", "cat,dog,bird"))
    assert "Imported 0 answers" in out
    assert "3 answers were imported before (unchanged, skipped)" in out
    assert snapshot(load_label_state(tmp_path / "run.ckpt").checkpoint) == before


@pytest.mark.parametrize(
    ("make", "imported"),
    [
        (lambda f: [studio_export(f), "--labels", "cat,dog,bird"], 3),
        (lambda f: [studio_export(f), "--label-map", _label_map(f, {"dog": 1, "Dog": 1})], 3),
        (lambda f: [studio_export(f, "bird"), "--format", "label_studio", "--labels", "cat,dog,bird"], 3),
        (lambda f: [answers_csv(f)], 1),
        (lambda f: [answers_csv(f), "--format", "csv"], 1),
        (lambda f: [write(f / "answers.txt", '[{"id": "doc9", "step": 1, "label": 2}]'), "--format", "json"], 1),
        (lambda f: [answers_csv(f), "--output", f / "next.ckpt"], 1),
    ],
)
def test_import_accepts(tmp_path, make, imported):
    make_checkpoint(tmp_path)
    args = make(tmp_path)
    assert f"Imported {imported} answers" in accepts(lambda: lightning_bal("import", tmp_path / "run.ckpt", *args))


def _answered(folder: Path) -> Path:
    """The checkpoint after doc5 and doc9 were answered (dog, bird), so that they can be corrected."""
    make_checkpoint(folder)
    path = write(
        folder / "answers.json", [{"id": "doc5", "step": 1, "label": 1}, {"id": "doc9", "step": 1, "label": 2}]
    )
    lightning_bal("import", folder / "run.ckpt", path)
    return folder / "run.ckpt"


RELABEL_CASES = [
    (["doc99", "1"], r"exit 1: .*relabel.* unknown ids \['doc99'\]"),
    (["doc3", "1"], r"exit 1: .*ids of labelled items.*\['doc3'\] that are in the pool; nothing"),
    (
        ["doc11", "1"],
        r"exit 1: .*\['doc11'\] that are in the pool \(pending: answer them with `lightning-bal import`\)",
    ),
    (["doc5", "7"], r"exit 1: .*`labels` to hold classes in \[0, 3\), but got 7"),
    (["doc5", "-1"], r"exit 1: .*`labels` to hold classes in \[0, 3\), but got -1"),
    (["doc5", "1.5"], r"exit 1: .*`labels`.*1.5"),
    (["doc5", "dog"], r"exit 1: .*`LABEL` of id 'doc5' to be a number .* got 'dog'"),
    (["doc5", "1_0"], r"exit 1: .*`LABEL` of id 'doc5' to be a number .* got '1_0'"),
    (["doc5", ""], r"exit 1: .*`LABEL` of id 'doc5' to be a number, but got ''"),
    (["doc5"], r"exit 1: .*`ID LABEL` pairs, but got 1 values"),
    (["doc5", "1", "doc9"], r"exit 1: .*`ID LABEL` pairs, but got 3 values"),
    (["doc5", "1", "doc5", "2"], r"exit 1: .*ids \['doc5'\] more than once"),
    (["doc5", "zebra", "--labels", "cat,dog,bird"], r"exit 1: .*`LABEL` to be one of `--labels`.*\['zebra'\]"),
    (["doc5", "dog", "--labels", "cat,dog,dog"], r"exit 1: .*`--labels` .* once.*\['dog'\]"),
    (["doc5", "1", "--output", "{f}/no/out.ckpt"], r"exit 1: .*`--output` .* existing folder"),
    ([], r"exit 2: .*required: ID LABEL"),
]


@pytest.mark.parametrize(("args", "match"), RELABEL_CASES)
def test_relabel_refuses(tmp_path, args, match):
    checkpoint = _answered(tmp_path)
    args = [arg.format(f=tmp_path) for arg in args]
    refuses(
        "lightning-bal relabel",
        lambda: lightning_bal("relabel", checkpoint, *args),
        CliError,
        match,
        Folder(tmp_path),
    )


UNLABEL_CASES = [
    (["doc99"], r"exit 1: .*unlabel.* unknown ids \['doc99'\]"),
    (["doc3"], r"exit 1: .*ids of labelled items.*\['doc3'\] that are in the pool; nothing"),
    (["doc11"], r"exit 1: .*\['doc11'\] that are in the pool \(pending"),
    (["doc5", "doc5"], r"exit 1: .*ids \['doc5'\] more than once"),
    (["doc5", "--output", "{f}/no/out.ckpt"], r"exit 1: .*`--output` .* existing folder"),
    ([], r"exit 2: .*required: ID"),
]


@pytest.mark.parametrize(("args", "match"), UNLABEL_CASES)
def test_unlabel_refuses(tmp_path, args, match):
    checkpoint = _answered(tmp_path)
    args = [arg.format(f=tmp_path) for arg in args]
    refuses(
        "lightning-bal unlabel",
        lambda: lightning_bal("unlabel", checkpoint, *args),
        CliError,
        match,
        Folder(tmp_path),
    )


@pytest.mark.parametrize(
    ("args", "annotations", "changed"),
    [
        (["relabel", "doc5", "0"], {5: 0, 9: 2}, 1),
        (["relabel", "doc5", "cat", "doc9", "bird", "--labels", "cat,dog,bird"], {5: 0, 9: 2}, 1),
        (["relabel", "doc1", "2", "--by", "lead"], {1: 2, 5: 1, 9: 2}, 1),  # an initial label from the dataset
        (["unlabel", "doc5", "doc1"], {9: 2}, 2),
    ],
)
def test_relabel_and_unlabel_accept(tmp_path, args, annotations, changed):
    checkpoint = _answered(tmp_path)
    accepts(lambda: lightning_bal(args[0], checkpoint, *args[1:]))
    state = load_label_state(checkpoint)
    assert state.ledger.annotations == annotations
    assert len(state.history) == changed
    assert torch.load(checkpoint, weights_only=True)["callbacks"]["ActiveLearningCallback"]["annotator"]["corrections"]
