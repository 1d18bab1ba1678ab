"""Label Studio for object detection: query tasks with a ``RectangleLabels`` control, and the check of its config.

Label Studio draws a rectangle in percent of the image: ``x``, ``y`` (its top-left corner), ``width`` and ``height``
in ``[0, 100]``, with the image's size in pixels as ``original_width`` and ``original_height`` beside it. A label
here follows torchvision's conventions (docs/detection.md): ``{"boxes": FloatTensor[n, 4], "labels": LongTensor[n]}``,
boxes ``(x1, y1, x2, y2)`` in pixels and labels in ``1..C`` (0 is the background). So a box of label ``k`` is shown
under the name ``label_names[k - 1]``, and ``label_map`` maps each name back to its label (``{"cat": 1, "dog": 2}``).

A project's config needs a control such as::

    <View>
      <Image name="image" value="$image"/>
      <RectangleLabels name="label" toName="image">
        <Label value="cat"/><Label value="dog"/>
      </RectangleLabels>
    </View>

(:func:`check_rectangle_config` checks one). :mod:`lightning_bal.annotation.label_studio_boxes` reads the boxes drawn
back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree import ElementTree

import torch
from torch import Tensor

from lightning_bal.annotation.label_studio import check_data_key
from lightning_bal.data.box_files import check_boxes
from lightning_bal.utilities.checks import check_non_empty_str, check_python_int

__all__ = [
    "check_rectangle_config",
    "to_label_studio_box_tasks",
]

_TYPE = "rectanglelabels"


def _size(where: str, size: Any) -> tuple[int, int]:
    valid = isinstance(size, (tuple, list)) and len(size) == 2
    if not valid or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"Expected {where} to be a (width, height) pair of positive integers, but got {size!r}.")
    return int(size[0]), int(size[1])


def to_label_studio_box_tasks(
    ids: Sequence[int | str],
    step: int,
    image_sizes: Sequence[tuple[int, int]],
    data_key: str = "image",
    data_prefix: str = "",
    scores: Sequence[float | None] | None = None,
    predictions: Sequence[Mapping[str, Tensor]] | None = None,
    label_names: Sequence[str] | None = None,
    from_name: str = "label",
) -> list[dict[str, Any]]:
    """Label Studio tasks for the queried images ``ids``, with the model's boxes as pre-annotations.

    ``image_sizes`` holds each image's ``(width, height)`` in pixels (the percent coordinates are relative to it);
    ``predictions`` holds one detection dict per image (``boxes`` in pixels, ``labels`` in ``1..C``, ``scores``
    optional), shown under ``label_names[label - 1]``. Everything is checked before a task is made.

    Examples:
        >>> detections = {"boxes": torch.tensor([[10.0, 20.0, 30.0, 60.0]]), "labels": torch.tensor([2]),
        ...               "scores": torch.tensor([0.9])}
        >>> tasks = to_label_studio_box_tasks(["a.png"], 1, [(100, 200)], predictions=[detections],
        ...                                   label_names=["cat", "dog"])
        >>> region = tasks[0]["predictions"][0]["result"][0]
        >>> region["value"], region["original_width"], region["original_height"]
        ({'x': 10.0, 'y': 10.0, 'width': 20.0, 'height': 20.0, 'rotation': 0, 'rectanglelabels': ['dog']}, 100, 200)
    """
    check_data_key("data_key", data_key)
    check_non_empty_str("from_name", from_name)
    check_python_int("step", step, 0)
    ids = list(ids)
    sizes = [_size(f"argument `image_sizes` (position {i})", size) for i, size in enumerate(image_sizes)]
    if len(sizes) != len(ids):
        raise ValueError(f"Expected argument `image_sizes` to hold one size per id ({len(ids)}), but got {len(sizes)}.")
    scores = [None] * len(ids) if scores is None else list(scores)
    if len(scores) != len(ids):
        raise ValueError(f"Expected argument `scores` to hold one score per id ({len(ids)}), but got {len(scores)}.")
    results: list[list[dict[str, Any]]] = []
    confidence: list[float | None] = []
    if predictions is not None:
        if label_names is None:
            raise ValueError("Expected argument `label_names` with `predictions` (Label Studio shows class names).")
        label_names = list(label_names)
        if (
            not label_names
            or not all(isinstance(n, str) and n for n in label_names)
            or len(set(label_names)) < len(label_names)
        ):
            raise ValueError(
                "Expected argument `label_names` to be distinct non-empty names, one per class, but got"
                f" {label_names!r}."
            )
        predictions = list(predictions)
        if len(predictions) != len(ids):
            raise ValueError(
                f"Expected argument `predictions` to hold one detection dict per id ({len(ids)}), but got"
                f" {len(predictions)}."
            )
        for item, size, found in zip(ids, sizes, predictions, strict=True):
            regions, mean = _regions(f"the prediction of image {item!r}", found, size, label_names, data_key, from_name)
            results.append(regions)
            confidence.append(mean)
    tasks = []
    for position, (item, score) in enumerate(zip(ids, scores, strict=True)):
        data = {data_key: f"{data_prefix}{item}", "lbal_id": item, "lbal_step": step}
        task: dict[str, Any] = {"data": {**data, "lbal_score": None if score is None else float(score)}}
        if predictions is not None:
            prediction: dict[str, Any] = {"model_version": "lightning_bal", "result": results[position]}
            if confidence[position] is not None:
                prediction["score"] = confidence[position]
            task["predictions"] = [prediction]
        tasks.append(task)
    return tasks


def _regions(
    where: str,
    found: Any,
    size: tuple[int, int],
    label_names: Sequence[str],
    data_key: str,
    from_name: str,
) -> tuple[list[dict[str, Any]], float | None]:
    """A detection dict as Label Studio regions, and the mean of its scores (``None`` without scores or boxes)."""
    if not isinstance(found, Mapping) or not {"boxes", "labels"} <= set(found):
        raise TypeError(f"Expected {where} to be a dict with `boxes` and `labels`, but got {found!r}.")
    label = check_boxes(where, found["boxes"], found["labels"], len(label_names) + 1, size)
    scores = found.get("scores")
    if scores is not None:
        scores = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
        if len(scores) != len(label["boxes"]) or not bool(torch.isfinite(scores).all()):
            raise ValueError(
                f"Expected the scores of {where} to be one finite number per box ({len(label['boxes'])}), but got"
                f" {scores.tolist()}."
            )
    width, height = size
    regions = []
    for number, (box, cls) in enumerate(zip(label["boxes"].tolist(), label["labels"].tolist(), strict=True)):
        x1, y1, x2, y2 = box
        value = {
            "x": 100 * x1 / width,
            "y": 100 * y1 / height,
            "width": 100 * (x2 - x1) / width,
            "height": 100 * (y2 - y1) / height,
            "rotation": 0,
            "rectanglelabels": [label_names[cls - 1]],
        }
        region: dict[str, Any] = {
            "id": f"lbal{number}",
            "from_name": from_name,
            "to_name": data_key,
            "type": _TYPE,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": value,
        }
        if scores is not None:
            region["score"] = float(scores[number])
        regions.append(region)
    mean = float(scores.mean()) if scores is not None and len(scores) else None
    return regions, mean


def check_rectangle_config(config: Any, label_names: Sequence[str], data_key: str, from_name: str = "label") -> None:
    """Refuse a project config without ``<RectangleLabels name=from_name toName=data_key>`` of ``label_names``.

    The labels must be offered in class order: ``label_names[k - 1]`` is class ``k``.

    Examples:
        >>> config = ('<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
        ...           '<Label value="cat"/><Label value="dog"/></RectangleLabels></View>')
        >>> check_rectangle_config(config, ["cat", "dog"], "image")
        >>> check_rectangle_config(config, ["dog", "cat"], "image")
        Traceback (most recent call last):
        ...
        ValueError: Expected the project's <RectangleLabels name="label"> to offer the classes ['dog', 'cat'] (in class order), but it offers ['cat', 'dog']: a project of another run?
    """  # noqa: E501
    check_data_key("data_key", data_key)
    check_non_empty_str("from_name", from_name)
    try:
        root = ElementTree.fromstring(config) if isinstance(config, str) else None
    except ElementTree.ParseError as err:
        raise ValueError(f"Expected the project's `label_config` to be XML, but it does not parse: {err}") from err
    if root is None:
        raise ValueError(f"Expected the project's `label_config` to be XML text, but got {type(config).__name__}.")
    controls = [node for node in root.iter("RectangleLabels") if node.get("name") == from_name]
    if len(controls) != 1:
        others = sorted({node.tag for node in root.iter() if node.get("name") == from_name} - {"RectangleLabels"})
        hint = f': <{others[0]} name="{from_name}"> is not a box control' if others else ": a project for another task?"
        raise ValueError(
            f'Expected the project\'s `label_config` to hold one <RectangleLabels name="{from_name}"> control, but it'
            f" holds {len(controls)}{hint}"
        )
    control = controls[0]
    if control.get("toName") != data_key:
        raise ValueError(
            f'Expected the project\'s <RectangleLabels name="{from_name}"> to label toName="{data_key}", but it labels'
            f" {control.get('toName')!r}."
        )
    names = [label.get("value") for label in control.iter("Label")]
    if names != list(label_names):
        raise ValueError(
            f'Expected the project\'s <RectangleLabels name="{from_name}"> to offer the classes {list(label_names)}'
            f" (in class order), but it offers {names}: a project of another run?"
        )
