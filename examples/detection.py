"""Active learning for object detection on digits pasted on canvases: detection heuristics against Random.

    python examples/detection.py --heuristics detection_entropy detection_bald localization_stability \
        detection_badge random --seeds 0 --threads 1

Each image is a canvas of ``--canvas`` pixels with 0 to 3 of scikit-learn's handwritten digits pasted at random
sizes and places (``DigitCanvases``: offline, nothing is downloaded); its label is the digits' boxes and classes.
``DigitDetector`` (a small anchor-free detector with ``Dropout2d`` in its head) is trained on the labelled images,
the callback runs K MC-Dropout samples of its head over the pool (the backbone once per batch: ``mc_split``) and the
heuristic picks the images to label. Every step logs, on the test canvases:

- ``active/test_recall_50``: the share of the test boxes that a detection of the right class covers with IoU >= 0.5
  (always: it needs nothing but torch);
- ``active/test_map`` and ``active/test_map_50``: COCO mAP through torchmetrics' ``MeanAveragePrecision``, when it
  can be built (it needs torchvision and the ``detection`` extra; else one line says why and the run goes on);
- ``active/num_labelled`` and ``active/num_boxes_labelled``: the two x-axes, images and boxes labelled.

The figure (``--figure``) draws the test measure against images labelled and against boxes labelled, one line per
heuristic (the mean over the seeds).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn
from torch.utils.data import Subset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import DetectionMAP
from lightning_bal.callbacks.detection_evaluation import num_boxes_labelled
from lightning_bal.callbacks.evaluation import StepContext, StepEvaluation
from lightning_bal.experiments.detection_data import DigitCanvases
from lightning_bal.experiments.detector import DigitDetector
from lightning_bal.functional.detection import box_iou, check_detections
from lightning_bal.heuristics import DetectionBADGE, get_heuristic
from lightning_bal.heuristics.base import Heuristic
from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.sampling import call_module
from lightning_bal.tasks.detection import Detection, detection_collate

HEURISTICS = ("detection_entropy", "detection_bald", "localization_stability", "detection_badge", "random")


class DetectorModule(pl.LightningModule):
    """``DigitDetector`` as a LightningModule: torchvision's contract in ``forward``, its ``mc_split`` for the engine.

    Example:
        >>> module = DetectorModule().eval()
        >>> sorted(module([torch.zeros(1, 48, 48)])[0])
        ['boxes', 'class_probs', 'labels', 'scores']
    """

    def __init__(self, width: int = 16, dropout: float = 0.25, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = DigitDetector(width=width, dropout=dropout)

    def forward(self, images: Any, targets: Sequence[dict[str, Tensor]] | None = None) -> Any:
        return self.model(images, targets)

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        return self.model.mc_split()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        losses = self(batch[0], batch[1])
        loss = sum(losses.values())
        self.log("train_loss", loss, batch_size=len(batch[1]))
        return loss  # type: ignore[return-value]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class DetectionRecall(StepEvaluation):
    """The share of the test boxes that a detection of their class covers with IoU >= ``iou_threshold``.

    Needs torch alone, so it is logged where mAP cannot be (``active/test_recall_50``). Each box counts once, found
    or not; detections that cover nothing are not penalised (mAP weighs those). With ``count_boxes`` it logs
    ``active/num_boxes_labelled`` too (``DetectionMAP`` does, where it runs).
    """

    _split = "test"

    def __init__(self, iou_threshold: float = 0.5, count_boxes: bool = False) -> None:
        super().__init__()
        self.iou_threshold, self.count_boxes = iou_threshold, count_boxes
        self._box_counts: dict[int, int] = {}

    def check_model(self, pl_module: pl.LightningModule, datamodule: ActiveDataModule) -> None:
        """Detections, not class logits: ``DetectionMAP`` checks the format at fit start."""

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"test_recall_50": ...}`` over the test set (one process: the example runs on one)."""
        datamodule, module = context.datamodule, context.pl_module
        dataset = datamodule.eval_dataset("test")
        found = total = 0
        with switch_modes(module, lambda _: False), torch.inference_mode():
            loader = datamodule._loader(Subset(dataset, range(len(dataset))), datamodule.eval_batch_size)  # type: ignore[arg-type]
            for inputs, targets, *_ in loader:
                outputs = check_detections(call_module(module, move_data_to_device(inputs, module.device)))
                for output, target in zip(outputs, targets, strict=True):
                    boxes, labels = target["boxes"].to(module.device), target["labels"].to(module.device)
                    total += len(labels)
                    if len(labels) and len(output["labels"]):
                        same = labels[:, None] == output["labels"][None, :]
                        covered = (box_iou(boxes, output["boxes"]) >= self.iou_threshold) & same
                        found += int(covered.any(1).sum())
        figures = {"test_recall_50": found / max(total, 1)}
        if self.count_boxes:
            figures["num_boxes_labelled"] = float(num_boxes_labelled(datamodule, self._box_counts))
        return figures


def map_or_reason() -> str:
    """``""`` where torchmetrics' ``MeanAveragePrecision`` can be built, else why not (one line)."""
    try:
        Detection().metric()
    except ModuleNotFoundError as err:
        return " ".join(str(err).split())
    return ""


def make_heuristic(name: str) -> Heuristic:
    """The heuristic ``name``: per-box scores aggregated by their max; BADGE on the detector's pooled backbone."""
    if name == "detection_badge":
        return DetectionBADGE(num_classes=DigitCanvases.num_classes, layer="model.backbone")
    if name == "random":
        return get_heuristic(name)
    return get_heuristic(name, reduction="max")


def canvases(size: int, seed: int, split: str, canvas: int) -> DigitCanvases:
    """Canvases with 0-3 digits of a third to a fifth of the canvas's side (scikit-learn's digits)."""
    return DigitCanvases(
        size=size,
        canvas=canvas,
        max_digits=3,
        min_size=canvas // 5,
        max_size=canvas * 5 // 12,
        seed=seed,
        split=split,
    )


def run(
    heuristic: str = "detection_bald",
    seed: int = 0,
    pool_size: int = 400,
    test_size: int = 150,
    canvas: int = 48,
    initial: int = 20,
    query_size: int = 20,
    steps: int = 5,
    epochs_per_step: int = 4,
    samples_per_epoch: int = 256,
    mc_samples: int = 20,
    with_map: bool = True,
) -> list[dict[str, float]]:
    """One active learning run; the figures of every step (``active/test_recall_50``, ``active/num_labelled``...).

    The datamodule's ``seed`` fixes the initial images and ``seed_everything(seed)`` the initial weights, so every
    heuristic of one seed starts from the same images and the same detector. Each step trains ``epochs_per_step``
    epochs of ``samples_per_epoch`` canvases drawn from the labelled set, then scores the pool and labels
    ``query_size`` more; ``steps`` steps label ``initial + (steps - 1) * query_size`` images by the last figures.
    """
    pl.seed_everything(seed, workers=True)
    datamodule = ActiveDataModule(
        canvases(pool_size, seed, "train", canvas),
        test_dataset=canvases(test_size, 10_000 + seed, "test", canvas),
        task="detection",
        num_classes=DigitCanvases.num_classes,
        collate_fn=detection_collate,
        initial_labels=initial,
        batch_size=16,
        train_samples_per_epoch=samples_per_epoch,
        pool_batch_size=100,
        seed=seed,
    )
    evaluations: list[StepEvaluation] = [DetectionRecall(count_boxes=not with_map)]
    if with_map:
        evaluations.append(DetectionMAP("test"))
    callback = ActiveLearningCallback(
        make_heuristic(heuristic),
        query_size=query_size,
        iterations=mc_samples,
        every_n_epochs=epochs_per_step,
        label_budget=initial + (steps - 1) * query_size,
        evaluations=evaluations,
        seed=seed,
    )
    module = DetectorModule()
    trainer = pl.Trainer(
        max_epochs=-1,
        callbacks=[callback],
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.fit(module, datamodule=datamodule)
    return [{key: float(value) for key, value in figures.items()} for figures in callback.history]


def plot(curves: dict[str, list[list[dict[str, float]]]], measure: str, path: Path) -> None:
    """``measure`` against images and against boxes labelled, one line per heuristic (the mean over its seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for name, runs in curves.items():
        steps = min(len(run) for run in runs)
        for axis, x_key in zip(axes, ("active/num_labelled", "active/num_boxes_labelled"), strict=True):
            x = torch.tensor([[run[s][x_key] for s in range(steps)] for run in runs]).mean(0)
            y = torch.tensor([[run[s][f"active/{measure}"] for s in range(steps)] for run in runs]).mean(0)
            axis.plot(x.tolist(), y.tolist(), marker="o", label=name)
    axes[0].set_xlabel("images labelled")
    axes[1].set_xlabel("boxes labelled")
    axes[0].set_ylabel(f"{measure} (mean of {len(next(iter(curves.values())))} seed(s))")
    axes[1].legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


RUN_SETTINGS = (
    "pool_size",
    "test_size",
    "canvas",
    "initial",
    "query_size",
    "steps",
    "epochs_per_step",
    "samples_per_epoch",
    "mc_samples",
)


def add_run_arguments(parser: argparse.ArgumentParser, pool_size: int = 400, test_size: int = 150) -> None:
    """The flags of :func:`run`'s settings (this example's and the curves benchmark's command lines share them)."""
    parser.add_argument("--pool-size", type=int, default=pool_size)
    parser.add_argument("--test-size", type=int, default=test_size)
    parser.add_argument("--canvas", type=int, default=48)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--query-size", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5, help="figures logged per run (the last after all labels)")
    parser.add_argument("--epochs-per-step", type=int, default=4)
    parser.add_argument("--samples-per-epoch", type=int, default=256)
    parser.add_argument("--mc-samples", type=int, default=20)


def run_settings(args: argparse.Namespace) -> dict[str, int]:
    """:func:`run`'s keyword arguments from flags added by :func:`add_run_arguments`."""
    return {name: getattr(args, name) for name in RUN_SETTINGS}


def main(argv: Sequence[str] | None = None) -> dict[str, list[list[dict[str, float]]]]:
    """Run every heuristic for every seed, print each run's last figures, write the figure; the curves by name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heuristics", nargs="+", default=list(HEURISTICS), choices=HEURISTICS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    add_run_arguments(parser)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--figure", default="outputs/detection/curves.png")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    reason = map_or_reason()
    if reason:
        print(f"mAP is not logged (test recall@0.5 is): {reason}", flush=True)
    curves: dict[str, list[list[dict[str, float]]]] = {}
    for seed in args.seeds:
        for name in args.heuristics:
            start = time.perf_counter()
            history = run(name, seed, **run_settings(args), with_map=not reason)
            curves.setdefault(name, []).append(history)
            shown = {
                k.removeprefix("active/"): round(v, 4) for k, v in history[-1].items() if "test" in k or "num" in k
            }
            print(f"seed {seed} {name} ({time.perf_counter() - start:.0f} s): {shown}", flush=True)
    plot(curves, "test_recall_50" if reason else "test_map", Path(args.figure))
    print(f"figure: {args.figure}", flush=True)
    return curves


if __name__ == "__main__":
    # Lightning's own noise, not this run's (set here, in the script: a library leaves the filters to its user).
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
