"""Studies that run for days: a grid of :class:`PaperProtocol` runs named by a YAML or JSON file.

``python -m lightning_bal.experiments run STUDY.yaml --out FOLDER --jobs N --shard I/M`` and :meth:`Study.run` run it;
each run writes its record (:mod:`lightning_bal.experiments.records`), and :func:`load_study` gathers them into the
:class:`~lightning_bal.experiments.ExperimentResult` that ``Experiment.run`` returns. See docs/experiments.md.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import TensorDataset

from lightning_bal.experiments.experiment import Experiment, check_heuristic, check_settings
from lightning_bal.experiments.pools import check_pool
from lightning_bal.experiments.posteriors import posterior_row, split_row_name
from lightning_bal.experiments.protocol import PaperProtocol
from lightning_bal.experiments.records import RunSpec, check_json_settings, grid_specs, settings_hash
from lightning_bal.experiments.result import ExperimentResult
from lightning_bal.experiments.runner import run_grid

__all__ = ["Study"]

_STUDY_KEYS = ("name", "dataset", "model", "protocol", "trainer", "grid")
_GRID_KEYS = ("heuristics", "seeds", "settings")
_DATASETS = {"digits": ("name", "test_size", "pool"), "mnist": ("name", "pool")}
_NETWORKS = {"digits": ("digits",), "mnist": ("gal", "kirsch")}
_MODEL_KEYS = ("network", "lr", "weight_decay", "channels_last")
# Training samples of the 60,000 MNIST images and of scikit-learn's 1,797 digits (less the test split).
_MNIST_TRAIN = 60_000
_DIGITS = 1797


def _load_file(path: Path) -> Any:
    text = path.read_text()
    if path.suffix.lower() == ".json":
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


def _check_keys(where: str, mapping: Any, allowed: Iterable[str]) -> dict[str, Any]:
    if not isinstance(mapping, Mapping) or not all(isinstance(key, str) for key in mapping):
        raise TypeError(f"Expected study entry `{where}` to be a mapping with string keys, but got {mapping!r:.80}.")
    allowed = list(allowed)
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise KeyError(f"Expected study entry `{where}` to hold only {allowed}, but got the unknown keys {unknown}.")
    return dict(mapping)


def _protocol_fields() -> list[str]:
    return list(PaperProtocol.__dataclass_fields__)


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[TensorDataset, TensorDataset]:
    from lightning_bal.experiments.datasets import load_mnist

    return load_mnist()


def _datasets(
    name: str, test_size: int, seed: int, pool: dict[str, Any] | None = None
) -> tuple[TensorDataset, TensorDataset]:
    """The ``(train, test)`` sets of a run: the digits split per seed; MNIST read once per process.

    ``pool`` makes the training set long-tailed or duplicated (:func:`~lightning_bal.experiments.pools.make_pool`);
    the test set stays balanced.
    """
    if name == "digits":
        from lightning_bal.experiments.datasets import load_digits

        train, test = load_digits(seed, test_size)
    else:
        train, test = _mnist()
    if pool is None:
        return train, test
    from lightning_bal.experiments.pools import make_pool

    return make_pool(train, pool), test


def _image_size(dataset: str) -> int:
    return 8 if dataset == "digits" else 28


def _model(settings: Mapping[str, Any], seed: int) -> pl.LightningModule:
    from lightning_bal.experiments.models import DropoutCNN

    return DropoutCNN(**settings)


@dataclass(frozen=True)
class Study:
    """A study: rows x seeds x grid points of :class:`PaperProtocol` runs, from a YAML or JSON file.

    Args:
        dataset: ``{"name": "digits", "test_size": 500}`` or ``{"name": "mnist"}`` (read from ``$LIGHTNING_BAL_MNIST``),
            and ``pool``: a long-tailed or duplicated training pool (:func:`~lightning_bal.experiments.check_pool`).
        model: :class:`DropoutCNN` arguments: ``network`` (``digits`` for the digits, ``gal`` or ``kirsch`` for
            MNIST), ``lr``, ``weight_decay``, ``channels_last``.
        protocol: :class:`PaperProtocol` fields.
        trainer: ``Trainer`` keyword arguments (JSON values) over the protocol's.
        grid: ``heuristics`` (rows: registry names or ``heuristic@posterior``), ``seeds``, and ``settings``:
            ``{protocol field: [values]}``, every combination a grid point.
        name: a free description; it does not take part in the study's hash.

    Examples:
        >>> study = Study.from_mapping({"dataset": {"name": "digits"}, "model": {"network": "digits"},
        ...                             "protocol": {"budget": 30, "initial_labels": 10},
        ...                             "grid": {"heuristics": ["bald", "random"], "seeds": [0, 1]}})
        >>> [(spec.heuristic, spec.seed) for spec in study.runs()]
        [('bald', 0), ('random', 0), ('bald', 1), ('random', 1)]
    """

    dataset: dict[str, Any]
    model: dict[str, Any]
    protocol: dict[str, Any]
    trainer: dict[str, Any]
    grid: dict[str, Any]
    name: str = ""

    def __post_init__(self) -> None:
        for entry in ("dataset", "model", "protocol", "trainer", "grid"):
            if not isinstance(getattr(self, entry), dict):
                raise TypeError(
                    f"Expected study entry `{entry}` to be a dict (build a study with `Study.from_file` or"
                    f" `Study.from_mapping`, which check every entry), but got {getattr(self, entry)!r:.80}."
                )

    @classmethod
    def from_file(cls, path: str | Path) -> Study:
        """The study of a YAML (``.yaml``, ``.yml``) or JSON (``.json``) file."""
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise TypeError(f"Expected argument `path` to be a study file path, but got {path!r}.")
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"Expected argument `path` to be a study file, but {file} is not a file.")
        try:
            content = _load_file(file)
        except ValueError as err:  # yaml.YAMLError is not a ValueError: caught below
            raise ValueError(f"Expected the study file {file} to be valid JSON, but {err}.") from None
        except Exception as err:
            if type(err).__module__.startswith("yaml"):
                raise ValueError(f"Expected the study file {file} to be valid YAML, but {err}.") from None
            raise
        return cls.from_mapping(content)

    @classmethod
    def from_mapping(cls, content: Any) -> Study:
        """The study of a file's content; every key is checked, unknown keys are refused naming them."""
        content = _check_keys("<top level>", content, _STUDY_KEYS)
        for required in ("dataset", "model", "grid"):
            if required not in content:
                raise KeyError(f"Expected the study to hold the entry `{required}`, but it does not.")
        name = content.get("name", "")
        if not isinstance(name, str):
            raise TypeError(f"Expected study entry `name` to be a string, but got {name!r}.")
        dataset = _check_keys("dataset", content["dataset"], ("name", "test_size", "pool"))
        if dataset.get("name") not in _DATASETS:
            raise ValueError(f"Expected study entry `dataset.name` to be one of {list(_DATASETS)}, but got {dataset}.")
        dataset = _check_keys("dataset", dataset, _DATASETS[dataset["name"]])
        if "pool" in dataset:
            dataset["pool"] = check_pool(dataset["pool"])
        if dataset["name"] == "digits":
            test_size = dataset.setdefault("test_size", 500)
            if isinstance(test_size, bool) or not isinstance(test_size, int) or not 0 < test_size < _DIGITS:
                raise ValueError(f"Expected study entry `dataset.test_size` in (0, {_DIGITS}), but got {test_size!r}.")
        model = _check_keys("model", content["model"], _MODEL_KEYS)
        networks = _NETWORKS[dataset["name"]]
        model.setdefault("network", networks[0])
        if model["network"] not in networks:
            raise ValueError(
                f"Expected study entry `model.network` to fit the dataset {dataset['name']!r} (one of"
                f" {list(networks)}), but got {model['network']!r}."
            )
        try:  # here, not in the first run's worker
            _model({"image_size": _image_size(dataset["name"]), **model}, 0)
        except (TypeError, ValueError) as err:
            raise type(err)(f"Expected study entry `model` to be valid: {err}") from None
        protocol = _check_keys("protocol", content.get("protocol") or {}, _protocol_fields())
        trainer = _check_keys("trainer", content.get("trainer") or {}, list(content.get("trainer") or {}))
        check_settings("trainer", trainer, pl.Trainer)
        grid = _check_keys("grid", content["grid"], _GRID_KEYS)
        for required in ("heuristics", "seeds"):
            if required not in grid:
                raise KeyError(f"Expected study entry `grid` to hold `{required}`, but it does not.")
        heuristics, seeds = grid["heuristics"], grid["seeds"]
        if not isinstance(heuristics, list) or not heuristics or len(set(map(str, heuristics))) != len(heuristics):
            raise ValueError(
                f"Expected study entry `grid.heuristics` to be a list of distinct names, got {heuristics!r}."
            )
        for row in heuristics:
            try:
                base, posterior = split_row_name(row)
                check_heuristic("grid.heuristics", base)
                if posterior is not None:
                    posterior_row(row)
            except (TypeError, ValueError) as err:
                raise ValueError(f"Expected study entry `grid.heuristics` to name rows, but {row!r}: {err}") from None
        integers = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        if not integers or not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"Expected study entry `grid.seeds` to be a list of distinct integers, but got {seeds!r}.")
        varied = _check_keys("grid.settings", grid.get("settings") or {}, _protocol_fields())
        for key, values in varied.items():
            if not isinstance(values, list) or not values:
                raise ValueError(
                    f"Expected study entry `grid.settings.{key}` to be a non-empty list, but got {values!r}."
                )
            if key in protocol:
                raise ValueError(f"Expected `{key}` in `protocol` or in `grid.settings`, not both.")
        study = cls(
            dataset=dataset,
            model=model,
            protocol=protocol,
            trainer=trainer,
            grid={"heuristics": list(heuristics), "seeds": list(seeds), "settings": varied},
            name=name,
        )
        check_json_settings("study", study.settings())
        for point in study.points():
            study.check_fits(point)
        return study

    def settings(self) -> dict[str, Any]:
        """What names the study in its records: dataset, model, protocol and trainer (not the grid, not the name)."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "protocol": self.protocol,
            "trainer": self.trainer,
            "metric": "active/test_acc",
        }

    @property
    def hash(self) -> str:
        """The hash of :meth:`settings`: every record of the study holds it."""
        return settings_hash(self.settings())

    def points(self) -> list[dict[str, Any]]:
        """The grid points: every combination of the values of ``grid.settings`` (one empty point without)."""
        varied = self.grid["settings"]
        keys = sorted(varied)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(varied[k] for k in keys))]

    def runs(self) -> list[RunSpec]:
        """Every run, in order: grid points, then seeds, then rows."""
        return grid_specs(self.settings(), self.points(), self.grid["heuristics"], self.grid["seeds"])

    def check_fits(self, point: Mapping[str, Any]) -> PaperProtocol:
        """The protocol of a grid point, refused (naming the entry) when it does not fit the dataset."""
        where = f"grid point {dict(point)}" if point else "protocol"
        try:
            protocol = PaperProtocol(**{**self.protocol, **point})
        except (TypeError, ValueError) as err:
            raise type(err)(f"Expected study entry `protocol` ({where}) to be valid: {err}") from None
        train = _DIGITS - self.dataset["test_size"] if self.dataset["name"] == "digits" else _MNIST_TRAIN
        needed = protocol.val_size + max(protocol.budget, protocol.pool_size or 0)
        if needed > train:
            raise ValueError(
                f"Expected study entry `protocol` ({where}) to fit the {train} training samples of"
                f" {self.dataset['name']!r}, but `val_size` + max(`budget`, `pool_size`) = {needed}."
            )
        return protocol

    def experiment(self, grid: Mapping[str, Any]) -> Experiment:
        """The :class:`Experiment` of a grid point (every row and seed; a worker runs one of them)."""
        key = json.dumps(dict(grid), sort_keys=True)
        cached = _BUILT.get((self, key))
        if cached is not None:
            return cached
        model = functools.partial(_model, {"image_size": _image_size(self.dataset["name"]), **self.model})
        datasets = functools.partial(
            _datasets, self.dataset["name"], self.dataset.get("test_size", 0), pool=self.dataset.get("pool")
        )
        built = self.check_fits(grid).experiment(
            self.grid["heuristics"],
            self.grid["seeds"],
            model=model,
            datasets=datasets,
            trainer=copy.deepcopy(self.trainer),
        )
        _BUILT[(self, key)] = built
        return built

    def run(
        self,
        out: str | Path | None = None,
        *,
        jobs: int = 1,
        shard: str | tuple[int, int] | None = None,
        on_run: Callable[[str, int, ExperimentResult, float], None] | None = None,
        threads: int | None = None,
    ) -> ExperimentResult:
        """Run the runs (of ``shard``) not yet recorded in ``out``, ``jobs`` at a time; see ``Experiment.run``."""
        return run_grid(
            self,
            self.settings(),
            self.points(),
            self.grid["heuristics"],
            self.grid["seeds"],
            "active/test_acc",
            jobs,
            out,
            shard,
            on_run,
            threads,
        )

    def __hash__(self) -> int:
        return hash(self.hash)


# Per process: a worker builds a grid point's experiment once, whatever number of its runs it gets.
_BUILT: dict[tuple[Study, str], Experiment] = {}
