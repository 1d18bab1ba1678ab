"""benchmarks/task_curves.py reads the examples' TensorBoard logs back: means, spreads and paired differences."""

import pytest
from torch.utils.tensorboard import SummaryWriter

from benchmarks.task_curves import main


def _write(folder, curve):
    with SummaryWriter(str(folder)) as writer:
        for labelled, value in curve.items():
            writer.add_scalar("active/val_miou", value, labelled)


def test_means_spreads_and_paired_differences(tmp_path, capsys):
    curves = {
        0: {"bald": {10: 0.1, 20: 0.5}, "random": {10: 0.1, 20: 0.3}},
        1: {"bald": {10: 0.2, 20: 0.4}, "random": {10: 0.2, 20: 0.5}},
        2: {"bald": {10: 0.3, 20: 0.6}, "random": {10: 0.3, 20: 0.4}},
    }
    for seed, runs in curves.items():
        for name, curve in runs.items():
            _write(tmp_path / f"seed{seed}" / name / "version_0", curve)
    plot = tmp_path / "paired.png"
    argv = [str(tmp_path / "seed"), "--seeds", "0", "1", "2", "--metric", "active/val_miou", "--baseline", "random"]
    table = main([*argv, "--paired-plot", str(plot)])
    lines = table.splitlines()
    assert lines[2] == "| labelled | bald | random |"
    assert lines[4] == "| 10 | 0.200 (0.100-0.300) | 0.200 (0.100-0.300) |"
    assert lines[5] == "| 20 | 0.500 (0.400-0.600) | 0.400 (0.300-0.500) |"
    # Differences at 20 labels: +0.2, -0.1, +0.2 -> mean +0.1, t(2) 95% half-width 4.303 * 0.1732 / sqrt(3) = 0.4303.
    assert "Paired differences to random, 95% t interval over 3 seeds." in lines
    assert "| 20 | +0.1000 [-0.3303, +0.5303] (2/3) |" in lines
    # The area is the mean over the two steps: differences +0.1, -0.05, +0.1.
    assert any(line.startswith("| bald | +0.0500 [") and "| 2 of 3 |" in line for line in lines)
    assert plot.stat().st_size > 0
    assert (tmp_path / "seed_curves.csv").read_text().splitlines()[1] == "bald,10,0.1000 0.2000 0.3000"
    with pytest.raises(SystemExit):
        main([str(tmp_path / "seed"), "--seeds", "0", "--metric", "active/val_miou", "--baseline", "bladd"])
    assert "none of the heuristics found" in capsys.readouterr().err
