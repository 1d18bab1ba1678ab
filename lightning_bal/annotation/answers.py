"""A Label Studio annotation's ``result`` read as the item's label, per answer type (docs/annotators.md#answer-types).

An :class:`AnswerFormat` says which control the project labels with and how its regions become a label:

========================  ====================================  ===============================================
``kind``                  Label Studio control                  label
========================  ====================================  ===============================================
``"choice"``              ``<Choices>`` (single)                the class index, an ``int``
``"multichoice"``         ``<Choices choice="multiple">``       a multi-hot ``LongTensor[num_classes]``
``"number"``              ``<Number>``                          a finite ``float``
``"brush"``               ``<BrushLabels>`` (RLE)               a class map ``LongTensor[H, W]``
``"polygon"``             ``<PolygonLabels>``                   a class map ``LongTensor[H, W]``
``"spans"``               ``<Labels>`` on ``<Text>``            per-token (or per-character) ``LongTensor[T]``
========================  ====================================  ===============================================

Positions no region covers take ``background`` (a class, ``0`` by default, or the task's ``ignore_index``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_bal.annotation.regions import decode_brush_rle, rasterize_polygon, spans_to_labels, token_bounds
from lightning_bal.utilities.checks import check_one_of

__all__ = [
    "ANSWER_KINDS",
    "AnswerFormat",
    "Label",
    "read_answer",
    "same_label",
    "show_label",
]

#: The answer types, by the Label Studio control they read.
ANSWER_KINDS = ("choice", "multichoice", "number", "brush", "polygon", "spans")
AnswerKind = Literal["choice", "multichoice", "number", "brush", "polygon", "spans"]
#: A label as the ledger's tasks hold it: a class or a number, or a tensor (multi-hot, class map).
Label = int | float | Tensor

# The `type` of a result region each kind reads, and the field of its `value` that holds the names.
_REGION = {
    "choice": ("choices", "choices"),
    "multichoice": ("choices", "choices"),
    "number": ("number", "number"),
    "brush": ("brushlabels", "brushlabels"),
    "polygon": ("polygonlabels", "polygonlabels"),
    "spans": ("labels", "labels"),
}


def _check_size(name: str, size: Any) -> tuple[int, int]:
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size)
    ):
        raise ValueError(f"Expected {name} to be a (height, width) pair of positive integers, but got {size!r}.")
    return int(size[0]), int(size[1])


@dataclass(frozen=True)
class AnswerFormat:
    """How the answers of a project become labels: the control's ``kind`` and what it needs.

    Args:
        kind: one of :data:`ANSWER_KINDS`.
        label_map: each class name's index (not used by ``"number"``).
        from_name: read only the control of that name (``None``: any control of the kind).
        num_classes: length of a multi-hot label (``"multichoice"``); by default one more than the largest index.
        background: the value of positions no region covers (``"brush"``, ``"polygon"``, ``"spans"``): a class,
            or the task's ``ignore_index`` for positions nobody labelled.
        sizes: the ``(height, width)`` of each item's mask by id (masks); a region of another size is refused.
        token_offsets: each item's tokens as ``(start, end)`` character offsets by id (``"spans"``): labels per token.
            Without them a span answer is labelled per character of the task's text, ``data[text_key]``.
        text_key: the task data field holding the text (``"spans"`` without token offsets).

    Examples:
        >>> fmt = AnswerFormat("multichoice", {"cat": 0, "dog": 1, "bird": 2})
        >>> read_answer([{"type": "choices", "value": {"choices": ["cat", "bird"]}}], fmt, "task 'a'")
        tensor([1, 0, 1])
    """

    kind: AnswerKind
    label_map: Mapping[str, int] | None = None
    from_name: str | None = None
    num_classes: int | None = None
    background: int = 0
    sizes: Mapping[str, tuple[int, int]] | None = None
    token_offsets: Mapping[str, Sequence[tuple[int, int]]] | None = None
    text_key: str = "text"

    def __post_init__(self) -> None:
        check_one_of("kind", self.kind, ANSWER_KINDS)
        if self.kind != "number":
            if not isinstance(self.label_map, Mapping) or not self.label_map:
                raise ValueError(
                    f"Expected argument `label_map` (class names to indices) for answers of kind {self.kind!r}, but"
                    f" got {self.label_map!r}."
                )
            bad = {
                name: index
                for name, index in self.label_map.items()
                if not isinstance(name, str) or isinstance(index, bool) or not isinstance(index, int) or index < 0
            }
            if bad:
                raise ValueError(
                    f"Expected argument `label_map` to map names to non-negative class indices, but got {bad!r}."
                )
        if self.num_classes is not None and (
            isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1
        ):
            raise ValueError(f"Expected argument `num_classes` to be a positive integer, but got {self.num_classes!r}.")
        if self.kind == "multichoice" and self.label_map and max(self.label_map.values()) >= self.classes:
            raise ValueError(
                f"Expected argument `label_map` to hold classes in [0, {self.classes}) (`num_classes`), but it holds"
                f" {max(self.label_map.values())}."
            )
        if isinstance(self.background, bool) or not isinstance(self.background, int):
            raise TypeError(f"Expected argument `background` to be an integer, but got {self.background!r}.")
        for item, size in (self.sizes or {}).items():
            _check_size(f"the size of item {item!r} in argument `sizes`", size)
        for item, offsets in (self.token_offsets or {}).items():
            token_bounds(offsets, f"the offsets of item {item!r} in argument `token_offsets`")

    @property
    def classes(self) -> int:
        """The length of a multi-hot label."""
        if self.num_classes is not None:
            return self.num_classes
        return 1 + max(self.label_map.values()) if self.label_map else 0


def read_answer(
    result: Any,
    answer_format: AnswerFormat,
    where: str,
    item: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Label | None:
    """The label an annotation's ``result`` gives the item, or ``None`` when it holds no region of the kind.

    ``where`` names the task and item in messages; ``item`` finds its size or token offsets in the format;
    ``data`` is the task's data (its text, for ``"spans"`` without token offsets). An answer with no region of the
    kind is ``None`` (the item stays pending), except a span or mask answer whose length or size is known: all
    background.

    Examples:
        >>> read_answer([{"type": "number", "value": {"number": 2.5}}], AnswerFormat("number"), "task 'a'")
        2.5
    """
    if result is None:
        return None
    if not isinstance(result, list) or not all(isinstance(region, dict) for region in result):
        raise ValueError(
            f"Expected the `result` of every annotation of {where} to be a list of objects, but got {result!r}."
        )
    kind = answer_format.kind
    region_type, field = _REGION[kind]
    regions = [
        region
        for region in result
        if region.get("type") == region_type
        and (answer_format.from_name is None or region.get("from_name") == answer_format.from_name)
    ]
    if not regions:
        _check_no_other_kind(result, answer_format, where)
    if kind in ("choice", "multichoice"):
        return _choices(regions, answer_format, where, item)
    if kind == "number":
        return _number(regions, where)
    if kind == "spans":
        text = None if data is None else data.get(answer_format.text_key)
        return _spans(regions, answer_format, where, item, text)
    return _mask(regions, answer_format, where, item)


def _check_no_other_kind(result: list[dict[str, Any]], answer_format: AnswerFormat, where: str) -> None:
    # Regions of another answer type from the control read mean a project set up for another task: reading none of
    # them would leave every item pending without a word.
    others = sorted(
        {
            str(region.get("type"))
            for region in result
            if region.get("type") in {region_type for region_type, _ in _REGION.values()}
            and (answer_format.from_name is None or region.get("from_name") == answer_format.from_name)
        }
    )
    if others:
        raise ValueError(
            f"Expected the answers of {where} to be of kind {answer_format.kind!r} ({_REGION[answer_format.kind][0]}"
            f" regions), but it holds {others} regions: a project with another label config, or another task?"
        )


def _names(region: dict[str, Any], field: str, where: str) -> list[str]:
    value = region.get("value")
    names = value.get(field) if isinstance(value, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(
            f"Expected the `value.{field}` of every region of {where} to be a list of names, but got {value!r}."
        )
    return names


def _classes(names: list[str], label_map: Mapping[str, int], where: str) -> list[int]:
    unknown = sorted({name for name in names if name not in label_map})
    if unknown:
        raise ValueError(
            f"Expected every choice to be in the label map {sorted(label_map)}, but {where} has {unknown}."
        )
    return [int(label_map[name]) for name in names]


def _choices(regions: list[dict[str, Any]], answer_format: AnswerFormat, where: str, item: str | None) -> Label | None:
    chosen = [names for names in (_names(region, "choices", where) for region in regions) if names]
    if not chosen:
        return None
    label_map = answer_format.label_map or {}
    # Unknown names are reported as they always were for single choices ("task 'a' has ['fish']").
    named = where if item is None else f"task {item!r}"
    if answer_format.kind == "choice":
        if len(chosen) > 1 or len(chosen[0]) != 1:
            raise ValueError(
                f"Expected one choice per annotation ({where}), but got {chosen!r}: single-label only (a multi-label"
                " project reads its answers as kind 'multichoice')."
            )
        return _classes(chosen[0], label_map, named)[0]
    multi_hot = torch.zeros(answer_format.classes, dtype=torch.long)
    multi_hot[_classes([name for names in chosen for name in names], label_map, named)] = 1
    return multi_hot


def _number(regions: list[dict[str, Any]], where: str) -> float | None:
    if not regions:
        return None
    if len(regions) > 1:
        raise ValueError(f"Expected one number per annotation ({where}), but got {len(regions)}.")
    value = regions[0].get("value")
    number = value.get("number") if isinstance(value, dict) else None
    if isinstance(number, bool) or not isinstance(number, numbers.Real) or not math.isfinite(float(number)):
        raise ValueError(f"Expected the `value.number` of {where} to be a finite number, but got {value!r}.")
    return float(number)


def _class_of(region: dict[str, Any], field: str, label_map: Mapping[str, int], where: str) -> int:
    names = _names(region, field, where)
    if len(names) != 1:
        raise ValueError(f"Expected each region of {where} to carry one label, but one carries {names!r}.")
    return _classes(names, label_map, where)[0]


def _spans(
    regions: list[dict[str, Any]], answer_format: AnswerFormat, where: str, item: str | None, text: str | None
) -> Tensor | None:
    offsets = None if answer_format.token_offsets is None or item is None else answer_format.token_offsets.get(item)
    if offsets is None and answer_format.token_offsets is not None:
        raise ValueError(f"Expected argument `token_offsets` to give the tokens of {where}, but it has none for it.")
    if offsets is None and not isinstance(text, str):
        if not regions:
            return None
        raise ValueError(
            f"Expected the text of {where} in its task data (`data.{answer_format.text_key}`, or `token_offsets`) to"
            f" label its spans, but got {text!r:.80}."
        )
    bounds = (
        token_bounds(offsets, f"the token offsets of {where}")
        if offsets is not None
        else torch.stack([torch.arange(len(str(text))), torch.arange(1, len(str(text)) + 1)], dim=1)
    )
    length = int(bounds[:, 1].max()) if bounds.numel() else 0
    spans = []
    for region in regions:
        value = region.get("value")
        start, end = (value.get("start"), value.get("end")) if isinstance(value, dict) else (None, None)
        if not isinstance(start, int) or not isinstance(end, int) or isinstance(start, bool) or isinstance(end, bool):
            start = end = -1
        if not 0 <= start < end:
            raise ValueError(
                f"Expected each span of {where} to have integer offsets 0 <= start < end, but got {value!r}."
            )
        if end > length:
            raise ValueError(
                f"Expected each span of {where} to lie in its text of {length} characters, but got {value!r}."
            )
        spans.append((start, end, _class_of(region, "labels", answer_format.label_map or {}, where)))
    return spans_to_labels(spans, bounds, answer_format.background, where)


def _mask(regions: list[dict[str, Any]], answer_format: AnswerFormat, where: str, item: str | None) -> Tensor | None:
    expected = None if answer_format.sizes is None or item is None else answer_format.sizes.get(item)
    if expected is None and answer_format.sizes is not None:
        raise ValueError(f"Expected argument `sizes` to give the mask size of {where}, but it has none for it.")
    shapes = {
        _check_size(
            f"the `original_height, original_width` of each region of {where}",
            (region.get("original_height"), region.get("original_width")),
        )
        for region in regions
    }
    if expected is not None:
        shapes.add(tuple(expected))  # type: ignore[arg-type]
    if len(shapes) > 1:
        raise ValueError(
            f"Expected the regions of {where} to match the item's mask size (height, width), but they give"
            f" {sorted(shapes)}: a mask size mismatch."
        )
    if not shapes:
        return None
    height, width = shapes.pop()
    labels = torch.full((height, width), answer_format.background, dtype=torch.long)
    given = torch.zeros(height, width, dtype=torch.bool)
    field = _REGION[answer_format.kind][1]
    for region in regions:
        rotation = region.get("image_rotation", 0)
        if not isinstance(rotation, numbers.Real) or rotation != 0:
            raise ValueError(
                f"Expected the regions of {where} to be drawn on the unrotated image (`image_rotation` 0), but got"
                f" {rotation!r}: the mask would not line up with the item."
            )
        cls = _class_of(region, field, answer_format.label_map or {}, where)
        value = region["value"]
        if answer_format.kind == "brush":
            if value.get("format", "rle") != "rle":
                raise ValueError(
                    f"Expected the brush regions of {where} in format 'rle', but got {value.get('format')!r}."
                )
            painted = decode_brush_rle(value.get("rle"), height, width, where)
        else:
            painted = rasterize_polygon(value.get("points"), height, width, where)
        clash = painted & given & (labels != cls)
        if bool(clash.any()):
            row, column = clash.nonzero()[0].tolist()
            raise ValueError(
                f"Expected the regions of {where} not to overlap with different labels, but pixel ({row}, {column})"
                f" has classes {int(labels[row, column])} and {cls}."
            )
        labels[painted] = cls
        given |= painted
    return labels


def show_label(label: Label, answer_format: AnswerFormat) -> Any:
    """``label`` as messages show it: a class or classes by name, a number as it is, a class map by its shape.

    Examples:
        >>> show_label(torch.tensor([1, 0, 1]), AnswerFormat("multichoice", {"cat": 0, "dog": 1, "bird": 2}))
        ['cat', 'bird']
    """
    names = {index: name for name, index in (answer_format.label_map or {}).items()}
    if answer_format.kind == "choice" and isinstance(label, int):
        return names.get(label, label)
    if answer_format.kind == "multichoice" and isinstance(label, Tensor):
        return [names.get(index, index) for index in label.nonzero().reshape(-1).tolist()]
    if isinstance(label, Tensor):
        return f"a class map of shape {list(label.shape)}"
    return label


def same_label(first: Any, second: Any) -> bool:
    """Whether two labels are equal (tensors by shape and every value, structured labels field by field).

    Examples:
        >>> same_label(torch.tensor([1, 0]), torch.tensor([1, 0])), same_label(1, 2)
        (True, False)
    """
    if isinstance(first, Mapping) or isinstance(second, Mapping):
        return (
            isinstance(first, Mapping)
            and isinstance(second, Mapping)
            and set(first) == set(second)
            and all(same_label(first[key], second[key]) for key in first)
        )
    if isinstance(first, Tensor) or isinstance(second, Tensor):
        return (
            isinstance(first, Tensor)
            and isinstance(second, Tensor)
            and first.shape == second.shape
            and bool((first == second).all())
        )
    return first == second
