"""Box files: JSON and CSV round trips (empty images included), the CSV layout, atomic writes, the label contract."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lightning_bal.data import check_boxes, read_boxes, write_boxes
from lightning_bal.experiments import DigitCanvases

EMPTY = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}


def _equal(labels, other):
    assert len(labels) == len(other)
    for one, two in zip(labels, other, strict=True):
        assert torch.equal(one["boxes"], two["boxes"])
        assert torch.equal(one["labels"], two["labels"])
        assert two["boxes"].dtype == torch.float32
        assert two["labels"].dtype == torch.int64


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_canvases_round_trip_with_empty_images(tmp_path, suffix):
    data = DigitCanvases(size=12, seed=0)
    labels = [target for _, target in data]
    assert any(len(label["labels"]) == 0 for label in labels)
    ids = [f"canvas{i}.png" for i in range(len(labels))]
    path = write_boxes(tmp_path / f"boxes{suffix}", ids, labels)
    answers = read_boxes(path, num_classes=11, image_sizes=(96, 96))
    assert answers.ids == ids
    _equal(labels, answers.labels)


@given(
    st.lists(
        st.lists(
            st.tuples(
                st.floats(0, 50, width=32),
                st.floats(0, 50, width=32),
                st.floats(0.5, 40, width=32),
                st.floats(0.5, 40, width=32),
                st.integers(1, 10),
            ),
            max_size=4,
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["json", "csv"]),
)
def test_any_float32_boxes_round_trip_exactly(tmp_path_factory, images, format):
    labels = [
        {
            "boxes": torch.tensor([[x, y, x + w, y + h] for x, y, w, h, _ in rows], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([c for *_, c in rows], dtype=torch.long),
        }
        for rows in images
    ]
    labels = [label for label in labels if bool((label["boxes"][:, :2] < label["boxes"][:, 2:]).all())]
    ids = list(range(len(labels)))
    path = write_boxes(tmp_path_factory.mktemp("boxes") / f"b.{format}", ids, labels)
    answers = read_boxes(path)
    assert answers.ids == [str(i) for i in ids]
    _equal(labels, answers.labels)


def test_the_csv_has_a_row_per_box_and_an_empty_row_per_empty_image(tmp_path):
    labels = [{"boxes": [[1, 2, 3.25, 4], [5, 6, 7, 8]], "labels": [1, 10]}, EMPTY]
    path = write_boxes(tmp_path / "b.csv", ["a", 7], labels)
    assert path.read_text().splitlines() == ["id,x1,y1,x2,y2,label", "a,1,2,3.25,4,1", "a,5,6,7,8,10", "7,,,,,"]
    rows = json.loads(write_boxes(tmp_path / "b.json", ["a", 7], labels).read_text())
    assert rows == [
        {"id": "a", "boxes": [[1, 2, 3.25, 4], [5, 6, 7, 8]], "labels": [1, 10]},
        {"id": "7", "boxes": [], "labels": []},
    ]


def test_a_spreadsheet_csv_reads(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes("\ufeffid,x1,y1,x2,y2,label\r\nb,0,0,96,96,3\r\nc, , , , ,\r\n".encode())
    answers = read_boxes(path, num_classes=11, image_sizes={"b": (96, 96)})
    assert answers.ids == ["b", "c"]
    assert answers.labels[0]["boxes"].tolist() == [[0.0, 0.0, 96.0, 96.0]]
    assert answers.labels[1]["boxes"].shape == (0, 4)


def test_a_refused_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_boxes(tmp_path / "b.json", ["a"], [EMPTY])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="x1 < x2"):
        write_boxes(path, ["a"], [{"boxes": [[5, 0, 1, 1]], "labels": [1]}])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]


def test_check_boxes_takes_tensors_and_lists_alike():
    from_lists = check_boxes("x", [[0, 0, 2, 2]], [4], num_classes=5, image_size=(2, 2))
    from_tensors = check_boxes("x", torch.tensor([[0, 0, 2, 2]], dtype=torch.float64), torch.tensor([4]))
    _equal([from_lists], [from_tensors])
