"""The detection example runs tiny: every heuristic, both x-axes, the figure, and mAP or the line saying why not."""

from __future__ import annotations

import doctest
import math

import pytest

from examples import detection
from examples.detection import HEURISTICS, main, map_or_reason, run

TINY = dict(pool_size=24, test_size=8, canvas=32, initial=4, query_size=4, steps=2, samples_per_epoch=16)


def test_doctests():
    failures, _ = doctest.testmod(detection, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_example_runs_every_heuristic_tiny(tmp_path, capsys):
    figure = tmp_path / "curves.png"
    argv = ["--pool-size", "24", "--test-size", "8", "--canvas", "32", "--initial", "4", "--query-size", "4"]
    argv += ["--steps", "2", "--epochs-per-step", "1", "--samples-per-epoch", "16", "--mc-samples", "3"]
    curves = main([*argv, "--figure", str(figure)])
    assert sorted(curves) == sorted(HEURISTICS)
    reason = map_or_reason()
    for history in (runs[0] for runs in curves.values()):
        assert [figures["active/num_labelled"] for figures in history] == [4, 8]
        boxes = [figures["active/num_boxes_labelled"] for figures in history]
        assert boxes == sorted(boxes)
        assert all(0 <= figures["active/test_recall_50"] <= 1 for figures in history)
        assert all(("active/test_map" in figures) == (not reason) for figures in history)
    out = capsys.readouterr().out
    assert ("mAP is not logged" in out) == bool(reason)
    assert figure.stat().st_size > 0


@pytest.mark.parametrize("heuristic", ["detection_bald", "detection_badge"])
def test_each_seed_starts_from_the_same_images_and_weights(heuristic):
    """Step 0's figures come before any pick: a heuristic and Random of one seed see the same model and labels."""
    ours = run(heuristic, seed=1, epochs_per_step=1, mc_samples=3, with_map=False, **TINY)
    random = run("random", seed=1, epochs_per_step=1, mc_samples=3, with_map=False, **TINY)
    same = ("active/num_labelled", "active/num_boxes_labelled", "active/test_recall_50")
    assert [ours[0][key] for key in same] == [random[0][key] for key in same]
    assert math.isfinite(ours[-1]["active/test_recall_50"])


def test_curves_table_gives_the_spread_and_the_per_seed_difference_from_random(tmp_path):
    from benchmarks.detection_curves import append_run, read_records, table

    path = tmp_path / "records.csv"
    for name, seed, values in (("random", 0, 0.1), ("random", 1, 0.3), ("bald", 0, 0.2), ("bald", 1, 0.2)):
        history = [{"active/num_labelled": 4, "active/num_boxes_labelled": 7, "active/test_recall_50": values}]
        append_run(path, name, seed, history, 1.0)
    text = table(read_records(path), "test_recall_50")
    assert "| 0 | 4 | 0.200 (0.200-0.200) (7) | 0.200 (0.100-0.300) (7) |" in text
    assert "| 0 | 4 | +0.000 (-0.100..+0.100) 1/2 |" in text
