"""Pools that are not balanced: long-tailed (class frequencies falling geometrically) and redundant (items repeated).

These are the settings where the literature says active learning helps or hurts most.

Both index a dataset that has ``targets`` (as :func:`load_mnist` and :func:`load_digits` return) without copying its
images, and keep ``targets`` themselves, so that ``ActiveDataModule(balanced_initial=True)`` works on them. Only the
pool changes: the test set stays as it is (balanced), so a test accuracy means the same in every setting.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from lightning_bal.utilities.checks import check_finite_number, check_python_int

__all__ = ["IndexedPool", "check_pool", "duplicated_pool", "long_tailed_pool", "make_pool"]


class IndexedPool(Dataset[Any]):
    """Items ``indices[i]`` of ``dataset`` (an index may repeat), with their ``targets``.

    Args:
        dataset: a dataset with a 1-D ``targets`` tensor.
        indices: which of its items, in order.
        noise: the standard deviation of Gaussian noise added to the first tensor of each repeat after the first (0:
            exact copies). The noise of item ``i`` is drawn from a generator seeded with ``seed`` and ``i``, so it is
            the same on every access.
        seed: the seed of the noise.
    """

    def __init__(self, dataset: Any, indices: Tensor, noise: float = 0.0, seed: int = 0) -> None:
        targets = _targets(dataset)
        valid = isinstance(indices, Tensor) and indices.ndim == 1 and not indices.is_floating_point()
        if not valid or (len(indices) and not 0 <= int(indices.min()) <= int(indices.max()) < len(targets)):
            raise ValueError(
                f"Expected argument `indices` to be a 1-D integer tensor of item indices in [0, {len(targets)}), but"
                f" got {indices!r:.80}."
            )
        self.dataset = dataset
        self.indices = indices.long()
        self.targets = targets[self.indices]
        self.noise = check_finite_number("noise", noise, low=0.0)
        self.seed = check_python_int("seed", seed, 0)
        # The first occurrence of each item stays exact; a repeat gets noise (when asked) so that copies differ.
        _, inverse = torch.unique(self.indices, return_inverse=True)
        positions = torch.arange(len(self.indices))
        earliest = torch.full((len(self.indices),), len(self.indices)).scatter_reduce(0, inverse, positions, "amin")
        self.first = earliest[inverse] == positions

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[int(self.indices[index])]
        if self.noise == 0 or bool(self.first[index]):
            return item
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index))
        inputs = item[0] + self.noise * torch.randn(item[0].shape, generator=generator, dtype=item[0].dtype)
        return (inputs, *item[1:])


def _targets(dataset: Any) -> Tensor:
    targets = getattr(dataset, "targets", None)
    if not isinstance(targets, Tensor) or targets.ndim != 1 or targets.is_floating_point():
        raise TypeError(
            "Expected argument `dataset` to have `targets`, a 1-D tensor of class indices (as load_mnist and"
            f" load_digits give), but got {type(targets).__name__}."
        )
    if len(targets) == 0:
        raise ValueError("Expected argument `dataset` to hold at least one item, but it is empty.")
    return targets


def long_tailed_pool(dataset: Any, ratio: float = 10.0, seed: int = 0) -> IndexedPool:
    """A subset whose class frequencies fall geometrically by ``ratio`` from the first class to the last.

    Class ``c`` of ``C`` keeps ``floor(n * ratio ** (-c / (C - 1)))`` items, ``n`` the size of the smallest class of
    ``dataset``, drawn without replacement by a generator seeded with ``seed``: on MNIST with ``ratio=10``, 5,421
    zeros down to 542 nines.

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.zeros(300, 1), torch.arange(3).repeat(100))
        >>> data.targets = data.tensors[1]
        >>> torch.bincount(long_tailed_pool(data, ratio=4).targets).tolist()
        [100, 50, 25]
    """
    targets = _targets(dataset)
    ratio = check_finite_number("ratio", ratio, low=1.0)
    seed = check_python_int("seed", seed, 0)
    classes = int(targets.max()) + 1
    counts = torch.bincount(targets, minlength=classes)
    if classes < 2 or bool((counts == 0).any()):
        raise ValueError(
            f"Expected argument `dataset` to hold every class from 0 to its largest, at least 2, but it has the class"
            f" counts {counts.tolist()}."
        )
    smallest = int(counts.min())
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for c in range(classes):
        keep = max(1, math.floor(smallest * ratio ** (-c / (classes - 1)) + 1e-9))
        members = torch.nonzero(targets == c).flatten()
        kept.append(members[torch.randperm(len(members), generator=generator)[:keep]].sort().values)
    return IndexedPool(dataset, torch.cat(kept).sort().values)


def duplicated_pool(
    dataset: Any, copies: int = 3, noise: float = 0.0, seed: int = 0, unique: int | None = None
) -> IndexedPool:
    """Every item of ``dataset`` ``copies`` times (item ``i`` at ``i``, ``i + N``, ...): redundancy that hurts top-k.

    With ``noise > 0`` each repeat gets its own Gaussian noise of that standard deviation (Repeated MNIST of Kirsch et
    al. 2019 used 0.1), so that copies are near and not exact duplicates. With ``unique``, only that many distinct items
    (drawn by a generator seeded with ``seed``) are repeated: a pool small enough to score whole, where a batch of
    top-k picks can hold several copies of one item.

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.arange(3.0).unsqueeze(1), torch.tensor([0, 1, 1]))
        >>> data.targets = data.tensors[1]
        >>> pool = duplicated_pool(data, copies=2)
        >>> len(pool), pool.targets.tolist(), pool[4][0].tolist()
        (6, [0, 1, 1, 0, 1, 1], [1.0])
    """
    targets = _targets(dataset)
    copies = check_python_int("copies", copies, 1)
    noise = check_finite_number("noise", noise, low=0.0)
    seed = check_python_int("seed", seed, 0)
    items = torch.arange(len(targets))
    if unique is not None:
        unique = check_python_int("unique", unique, 1, len(targets))
        items = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))[:unique].sort().values
    return IndexedPool(dataset, items.repeat(copies), noise=noise, seed=seed)


_POOLS = {"long_tail": ("kind", "ratio", "seed"), "duplicated": ("kind", "copies", "noise", "seed", "unique")}


def check_pool(spec: Any) -> dict[str, Any]:
    """A study's ``dataset.pool`` entry, checked: a long-tailed or a duplicated pool and its arguments.

    ``{"kind": "long_tail", "ratio": 10}`` or ``{"kind": "duplicated", "copies": 3, "noise": 0.1}``; ``seed`` (0 by
    default) draws the long tail's items and the copies' noise, the same for every seed of the study.

    Examples:
        >>> check_pool({"kind": "long_tail", "ratio": 10})
        {'kind': 'long_tail', 'ratio': 10}
    """
    if not isinstance(spec, dict) or spec.get("kind") not in _POOLS:
        raise ValueError(
            f"Expected study entry `dataset.pool` to be a mapping whose `kind` is one of {list(_POOLS)}, but got"
            f" {spec!r:.80}."
        )
    unknown = sorted(set(map(str, spec)) - set(_POOLS[spec["kind"]]))
    if unknown:
        raise KeyError(
            f"Expected study entry `dataset.pool` of kind {spec['kind']!r} to hold only {list(_POOLS[spec['kind']])},"
            f" but got the unknown keys {unknown}."
        )
    try:
        # `unique` is bounded by the dataset, read only when a run starts: here it need only be a positive integer.
        if "unique" in spec:
            check_python_int("unique", spec["unique"], 1)
        options = {key: value for key, value in spec.items() if key not in ("kind", "unique")}
        (long_tailed_pool if spec["kind"] == "long_tail" else duplicated_pool)(_CHECK, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Expected study entry `dataset.pool` to be valid: {err}") from None
    return dict(spec)


def make_pool(dataset: Any, spec: dict[str, Any]) -> TensorDataset:
    """The pool of a ``dataset.pool`` entry (checked with :func:`check_pool`) over ``dataset``, as a ``TensorDataset``.

    The items are copied out of the :class:`IndexedPool` (noise included) into tensors with ``targets``, as the
    protocol holds validation images out of a ``TensorDataset`` by indexing its tensors.
    """
    spec = check_pool(spec)
    options = {key: value for key, value in spec.items() if key != "kind"}
    pool = long_tailed_pool(dataset, **options) if spec["kind"] == "long_tail" else duplicated_pool(dataset, **options)
    items = [pool[i] for i in range(len(pool))]
    made = TensorDataset(*(torch.stack([torch.as_tensor(item[k]) for item in items]) for k in range(len(items[0]))))
    made.targets = pool.targets  # type: ignore[attr-defined]
    return made


# A two-class stand-in on which check_pool tries a spec's arguments, before any dataset is read.
_CHECK = TensorDataset(torch.zeros(2, 1), torch.tensor([0, 1]))
_CHECK.targets = _CHECK.tensors[1]  # type: ignore[attr-defined]
