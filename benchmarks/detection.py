"""Speed of the detection pool pass: the callback's step against K eval passes of the head plus one of the backbone.

Workload: ``examples/detection.py``'s detector (``DigitDetector``, dropout in its head) on ``--pool`` canvases,
pool batch 100, K = 20, max-aggregated detection BALD, 1 CPU thread. It prints, in one run, alternating the two
(``--repeats`` times each, CPU time, medians):

- **callback**: the whole step as the callback runs it after an epoch (the MC pass over the pool through the
  shared-prefix engine, box matching, the scores, the selection, the labelling), timed by a callback placed before
  it and one after it;
- **floor**: per pool batch, one pass of the backbone and K deterministic passes of the head with the decoding
  (``model.mc_split()``'s two parts in eval mode), what any MC-Dropout detection pass must compute.

Target: callback / floor within 2x. It also counts the backbone's calls during the step (one per pool batch when the
engine runs ``mc_split``'s features once) and profiles the scoring (``cProfile``) to show that box matching is one
call per image, not per box.

    python -m benchmarks.detection [--pool 400] [--repeats 5] [--canvas 48]     # from the repository root
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from examples.detection import DetectorModule, canvases
from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.heuristics import get_heuristic
from lightning_bal.mc import mc_predict
from lightning_bal.tasks.detection import Detection, detection_collate

K = 20
POOL_BATCH = 100


class Clock(Callback):
    """Records ``time.process_time()`` at each epoch end; two of them around the active learning callback time it."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.times.append(time.process_time())


class CountCalls:
    """Counts the calls of a module's ``forward`` (a forward hook)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        module.register_forward_hook(self._count)

    def _count(self, *_: Any) -> None:
        self.calls += 1


def datamodule(pool: int, canvas: int) -> ActiveDataModule:
    return ActiveDataModule(
        canvases(pool, 0, "train", canvas),
        task="detection",
        num_classes=11,
        collate_fn=detection_collate,
        initial_labels=16,
        batch_size=16,
        train_samples_per_epoch=16,
        pool_batch_size=POOL_BATCH,
        seed=0,
    )


def callback_step(module: DetectorModule, pool: int, canvas: int) -> tuple[float, int, int]:
    """CPU seconds of one callback step after a one-batch epoch; the backbone's calls in it; the pool batches."""
    dm = datamodule(pool, canvas)
    before, after = Clock(), Clock()
    counter = CountCalls(module.model.backbone)
    callback = ActiveLearningCallback(get_heuristic("detection_bald", reduction="max"), 10, K, seed=0)
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[before, callback, after],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    module.train()  # Lightning keeps each submodule's mode: train_detector and floor_pass leave it in eval
    calls_at: list[int] = []
    before.on_train_epoch_end = _also(before.on_train_epoch_end, lambda: calls_at.append(counter.calls))
    trainer.fit(module, datamodule=dm)
    batches = -(-(pool - 16) // POOL_BATCH)
    return after.times[0] - before.times[0], counter.calls - calls_at[0], batches


def _also(hook: Any, then: Any) -> Any:
    def wrapped(*args: Any) -> None:
        hook(*args)
        then()

    return wrapped


def floor_pass(module: DetectorModule, pool: int, canvas: int) -> float:
    """CPU seconds of the backbone once and the head (with decoding) K times per pool batch, all deterministic."""
    dm = datamodule(pool, canvas)
    dm.setup("fit")
    features, head = module.mc_split()
    module.eval()
    start = time.process_time()
    with torch.inference_mode():
        for inputs, *_ in dm.pool_dataloader():
            shared = features(inputs)
            for _ in range(K):
                head(*shared)
    return time.process_time() - start


def profile_scoring(module: DetectorModule, pool: int, canvas: int) -> str:
    """The scoring's top functions by cumulative time, and how often the matching ran, for one MC pass's output."""
    dm = datamodule(pool, canvas)
    dm.setup("fit")
    heuristic = get_heuristic("detection_bald", reduction="max")
    prediction = mc_predict(
        module, dm.pool_dataloader(), K, seed=0, task=Detection(), output_transform=heuristic.transform
    )
    boxes = sum(len(sample["boxes"]) for samples in prediction.log_probs for sample in samples)
    profiler = cProfile.Profile()
    profiler.enable()
    heuristic.score(prediction.log_probs)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(12)
    calls = {name[2]: row[1] for name, row in stats.stats.items()}  # type: ignore[attr-defined]
    return (
        f"scoring {len(prediction.log_probs)} images x K={K}: {boxes} boxes in all;"
        f" match_samples called {calls.get('match_samples', 0)} times, box_iou {calls.get('box_iou', 0)} times\n"
        + "\n".join(stream.getvalue().splitlines()[:40])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--canvas", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=200, help="training first, so that boxes are detected")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pl.seed_everything(0)
    module = DetectorModule()
    # An untrained detector finds nothing or noise: train it on canvases first so the matching has boxes to match.
    from lightning_bal.experiments.detector import train_detector

    train_detector(module.model, canvases(512, 1, "train", args.canvas), steps=args.train_steps, batch_size=16)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    steps, floors, calls = [], [], set()
    for _ in range(args.repeats):
        module.load_state_dict(state)
        seconds, backbone_calls, batches = callback_step(module, args.pool, args.canvas)
        steps.append(seconds)
        calls.add((backbone_calls, batches))
        module.load_state_dict(state)
        floors.append(floor_pass(module, args.pool, args.canvas))
    step, floor = statistics.median(steps), statistics.median(floors)
    print(f"pool {args.pool - 16} canvases of {args.canvas}px, batch {POOL_BATCH}, K={K}, 1 thread, CPU time")
    print(f"callback step (MC pass, matching, scores, selection)  median {step:7.3f} s  {sorted(steps)}")
    print(f"floor: backbone once + K head passes per batch       median {floor:7.3f} s  {sorted(floors)}")
    print(f"ratio callback / floor: {step / floor:.2f}x (target <= 2x)")
    print(f"backbone calls during the step / pool batches: {sorted(calls)}")
    module.load_state_dict(state)
    print(profile_scoring(module, args.pool, args.canvas))


if __name__ == "__main__":
    main()
