"""benchmarks/task_curves.py reads the examples' TensorBoard logs back: means, spreads and per-seed differences."""

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
    }
    for seed, runs in curves.items():
        for name, curve in runs.items():
            _write(tmp_path / f"seed{seed}" / name / "version_0", curve)
    table = main([str(tmp_path / "seed"), "--seeds", "0", "1", "--metric", "active/val_miou", "--baseline", "random"])
    lines = table.splitlines()
    assert lines[2] == "| labelled | bald | random | bald - random |"
    assert lines[4] == "| 10 | 0.150 (0.100-0.200) | 0.150 (0.100-0.200) | +0.000 (+0.000 to +0.000), 0/2 above |"
    assert lines[5] == "| 20 | 0.450 (0.400-0.500) | 0.400 (0.300-0.500) | +0.050 (-0.100 to +0.200), 1/2 above |"
    assert (tmp_path / "seed_curves.csv").read_text().splitlines()[1] == "bald,10,0.1000 0.2000"
    with pytest.raises(SystemExit):
        main([str(tmp_path / "seed"), "--seeds", "0", "--metric", "active/val_miou", "--baseline", "bladd"])
    assert "none of the heuristics found" in capsys.readouterr().err
