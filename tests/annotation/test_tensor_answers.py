"""Tensor answers (multi-hot vectors, masks, token spans) brought into a checkpoint and trained on: each read from a
Label Studio-shaped export by ``bring_in_answers``, read back equal by ``LabelState``, shown by ``lightning-bal status``
and yielded as the target by a resumed ``ActiveDataModule``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from lightning_bal import ActiveDataModule
from lightning_bal.annotation import AnswerFormat, encode_brush_rle, load_label_state
from lightning_bal.annotation.cli import main
from lightning_bal.annotation.sync import bring_in_answers
from lightning_bal.tasks import PerPosition

LABELS = {"cat": 1, "dog": 2}
IDS = list("abcde")
SIZE = (3, 4)


class Images(Dataset):
    """5 one-channel images of ``SIZE`` with an all-zero class map as the dataset's own target."""

    def __init__(self) -> None:
        self.images = torch.randn(len(IDS), 1, *SIZE, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(IDS)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], torch.zeros(SIZE, dtype=torch.long)


class PixelClassifier(pl.LightningModule):
    """A 1x1 convolution: logits ``[B, 3, H, W]``; keeps every training target it was given."""

    def __init__(self, ignore_index: int | None = None) -> None:
        super().__init__()
        self.ignore_index = -100 if ignore_index is None else ignore_index
        self.conv = nn.Conv2d(1, 3, 1)
        self.targets: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        self.targets.append(targets.clone())
        return nn.functional.cross_entropy(self.conv(images), targets, ignore_index=self.ignore_index)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def datamodule(task: Any, dataset: Dataset | None = None, num_classes: int | None = 3) -> ActiveDataModule:
    return ActiveDataModule(
        dataset if dataset is not None else Images(),
        ids=IDS,
        task=task,
        num_classes=num_classes,
        batch_size=8,
        seed=0,
    )


def run_checkpoint(folder: Path, dm: ActiveDataModule) -> Path:
    """The run's checkpoint after its step-1 query asked b and d."""
    dm.query([1, 3], new_step=True)
    path = folder / "run.ckpt"
    # The callback's entry, as a run writes it, keeps the answers and the corrections.
    torch.save({"ActiveDataModule": dm.state_dict(), "callbacks": {"ActiveLearningCallback": {"annotator": {}}}}, path)
    return path


def export(path: Path, answers: dict[str, list[dict[str, Any]]], **data: Any) -> Path:
    tasks = [
        {
            "id": number,
            "data": {"lbal_id": item, "lbal_step": 1, **data},
            "annotations": [{"id": number, "created_at": "2026-01-01T10:00:00Z", "result": result}],
        }
        for number, (item, result) in enumerate(answers.items())
    ]
    path.write_text(json.dumps(tasks))
    return path


def brush(mask: torch.Tensor, name: str) -> dict[str, Any]:
    value = {"format": "rle", "rle": encode_brush_rle(mask), "brushlabels": [name]}
    height, width = mask.shape
    return {"type": "brushlabels", "original_height": height, "original_width": width, "value": value}


def masks() -> dict[str, torch.Tensor]:
    cat = torch.zeros(SIZE, dtype=torch.bool)
    cat[0, :2] = True
    dog = torch.zeros(SIZE, dtype=torch.bool)
    dog[1:, 3] = True
    return {"b": cat, "d": dog}


@pytest.mark.parametrize("ignore_index", [None, 255])
def test_mask_answers_come_into_a_segmentation_checkpoint_and_are_trained_on(tmp_path, ignore_index):
    task = PerPosition(ignore_index=ignore_index)
    ckpt = run_checkpoint(tmp_path, datamodule(task))
    drawn = masks()
    path = export(tmp_path / "e.json", {"b": [brush(drawn["b"], "cat")], "d": [brush(drawn["d"], "dog")]})
    background = 0 if ignore_index is None else ignore_index
    answer = AnswerFormat("brush", LABELS, background=background)
    assert bring_in_answers(ckpt, path, label_map=LABELS, answer=answer).labelled.tolist() == [1, 3]
    expected = {
        1: torch.where(drawn["b"], 1, background),
        3: torch.where(drawn["d"], 2, background),
    }

    state = load_label_state(ckpt)
    assert state.ledger.task_type.options() == task.options()
    assert sorted(state.ledger.annotations) == [1, 3]
    for index, mask in expected.items():
        assert torch.equal(state.ledger.annotations[index], mask)
    assert state.status()["annotated"] == 2
    assert state.pending_ids() == []

    resumed = datamodule(PerPosition(ignore_index=ignore_index))
    resumed.load_state_dict(torch.load(ckpt, weights_only=True)["ActiveDataModule"])
    model = PixelClassifier(ignore_index)
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(model, datamodule=resumed)
    (targets,) = model.targets
    assert sorted(map(tuple, targets.reshape(2, -1).tolist())) == sorted(
        tuple(mask.reshape(-1).tolist()) for mask in expected.values()
    )


def test_a_segmentation_checkpoint_opens_in_the_command_line(tmp_path, capsys):
    ckpt = run_checkpoint(tmp_path, datamodule("per_position"))
    assert load_label_state(ckpt).ledger.task == "per_position"
    assert main(["status", str(ckpt), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["pending"], shown["step"]) == (2, 1)


def test_multi_hot_answers_come_into_a_multilabel_checkpoint(tmp_path):
    ckpt = run_checkpoint(tmp_path, datamodule("multilabel"))
    choices = [{"type": "choices", "value": {"choices": ["cat", "dog"]}}]
    path = export(tmp_path / "e.json", {"b": choices, "d": [{"type": "choices", "value": {"choices": ["dog"]}}]})
    bring_in_answers(ckpt, path, label_map={"none": 0, **LABELS})
    labels = load_label_state(ckpt).ledger.annotations
    assert {index: label.tolist() for index, label in labels.items()} == {1: [0, 1, 1], 3: [0, 0, 1]}


def test_span_answers_come_into_a_per_position_checkpoint(tmp_path):
    ckpt = run_checkpoint(tmp_path, datamodule("per_position"))
    spans = [{"type": "labels", "value": {"start": 4, "end": 7, "labels": ["dog"]}}]
    offsets = {item: [(0, 3), (4, 7), (8, 11)] for item in ("b", "d")}
    answer = AnswerFormat("spans", LABELS, token_offsets=offsets)
    path = export(tmp_path / "e.json", {"b": spans, "d": []}, text="Tom met Ann")
    bring_in_answers(ckpt, path, answer=answer)
    labels = load_label_state(ckpt).ledger.annotations
    assert {index: label.tolist() for index, label in labels.items()} == {1: [0, 2, 0], 3: [0, 0, 0]}


class Sentences(Dataset):
    """5 items whose target is one class per character of "Tom met Ann" (11 characters)."""

    def __len__(self) -> int:
        return len(IDS)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(11), torch.zeros(11, dtype=torch.long)


def test_span_answers_come_in_through_the_command_line(tmp_path, capsys):
    ckpt = run_checkpoint(tmp_path, datamodule("per_position", Sentences()))
    spans = [{"type": "labels", "value": {"start": 4, "end": 7, "labels": ["dog"]}}]
    path = export(tmp_path / "e.json", {"b": spans, "d": []}, text="Tom met Ann")
    assert main(["import", str(ckpt), str(path), "--labels", "none,cat,dog", "--answer", "spans"]) == 0
    assert "Imported 2 answers" in capsys.readouterr().out
    labels = load_label_state(ckpt).ledger.annotations
    per_character = {index: label.tolist() for index, label in labels.items()}
    assert per_character == {1: [0, 0, 0, 0, 2, 2, 2, 0, 0, 0, 0], 3: [0] * 11}


class Patients(Dataset):
    def __len__(self) -> int:
        return len(IDS)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(2), torch.tensor(0.0)


def test_number_answers_need_no_class_names_on_the_command_line(tmp_path, capsys):
    ckpt = run_checkpoint(tmp_path, datamodule("regression", Patients(), num_classes=None))
    number = [{"type": "number", "value": {"number": 2.5}}]
    path = export(tmp_path / "e.json", {"b": number, "d": [{"type": "number", "value": {"number": -1.0}}]})
    assert main(["import", str(ckpt), str(path)]) == 0
    assert "Imported 2 answers" in capsys.readouterr().out
    assert load_label_state(ckpt).ledger.annotations == {1: 2.5, 3: -1.0}


def test_a_changed_mask_answer_comes_in_as_a_correction_and_a_repeated_one_is_skipped(tmp_path):
    ckpt = run_checkpoint(tmp_path, datamodule("per_position"))
    drawn = masks()
    answer = AnswerFormat("brush", LABELS)
    first = export(tmp_path / "first.json", {"b": [brush(drawn["b"], "cat")], "d": [brush(drawn["d"], "dog")]})
    bring_in_answers(ckpt, first, answer=answer)
    again = bring_in_answers(ckpt, first, answer=answer)
    assert (again.labelled.tolist(), again.unchanged) == ([], 2)
    assert len(load_label_state(ckpt).answers) == 2  # the same masks, imported twice, are recorded once
    changed = export(tmp_path / "changed.json", {"b": [brush(drawn["d"], "cat")], "d": [brush(drawn["d"], "dog")]})
    done = bring_in_answers(ckpt, changed, answer=answer)
    assert list(done.corrected) == ["b"]
    state = load_label_state(ckpt)
    assert torch.equal(state.ledger.annotations[1], drawn["d"].long())
    assert torch.equal(state.history[-1]["label"], drawn["b"].long())


def test_the_last_mask_unlabelled_leaves_no_fields_behind_in_the_checkpoint(tmp_path):
    dm = datamodule("per_position")
    dm.label([0], [torch.ones(SIZE, dtype=torch.long)])
    ckpt = run_checkpoint(tmp_path, dm)
    assert main(["unlabel", str(ckpt), "a"]) == 0
    state = load_label_state(ckpt)
    assert (state.ledger.annotations, state.ledger.pending_query) == ({}, [1, 3])
    assert "annotation_fields" not in torch.load(ckpt, weights_only=True)["ActiveDataModule"]
