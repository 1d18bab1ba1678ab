"""`python -m lightning_bal.experiments`: a table (and a plot) from a CSV of curves, nothing run."""

import pytest

from lightning_bal.experiments import ExperimentResult
from lightning_bal.experiments.__main__ import main


def _steps(*points):
    return [{"active/num_labelled": n, "active/test_acc": acc} for n, acc in points]


@pytest.fixture
def curves_csv(tmp_path):
    result = ExperimentResult(
        {
            "bald": {0: _steps((20, 0.5), (30, 0.9)), 1: _steps((20, 0.6), (30, 0.8))},
            "random": {0: _steps((20, 0.5), (30, 0.7)), 1: _steps((20, 0.6), (30, 0.6))},
        }
    )
    return result.write_csv(tmp_path / "curves.csv")


def test_the_command_prints_the_summary_and_writes_the_plot(curves_csv, tmp_path, capsys):
    assert main([str(curves_csv), "--thresholds", "0.85", "--plot", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "| bald | 2 | 0.7000 (0.7000-0.7000) | 0.8500 (0.8000-0.9000) | 30 / - |"
    assert out[3] == "| random | 2 | 0.6000 (0.6000-0.6000) | 0.6500 (0.6000-0.7000) | - / - |"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("argv", "match"), [(["--metric", "val_acc"], "no column 'val_acc'"), ([], None)])
def test_the_command_names_a_wrong_metric_or_file(curves_csv, tmp_path, capsys, argv, match):
    path = str(curves_csv) if match else str(tmp_path / "missing.csv")
    with pytest.raises(SystemExit) as exit_info:
        main([path, *argv])
    assert exit_info.value.code == 2
    assert (match or "no such file") in capsys.readouterr().err
