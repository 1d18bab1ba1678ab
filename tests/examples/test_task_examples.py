"""The regression and segmentation examples run, tiny."""

import math

from examples.regression import run as run_regression
from examples.segmentation import run as run_segmentation


def test_regression_example_runs_tiny(tmp_path, recwarn):
    figures = run_regression("gaussian_mi", steps=1, epochs_per_step=1, iterations=3, output_dir=tmp_path)
    # With its TensorBoard logger, an epoch shorter than the logging interval would warn on every fit.
    assert not [w for w in recwarn if "log_every_n_steps" in str(w.message)]
    assert figures["active/num_labelled"] == 30
    assert math.isfinite(figures["active/test_rmse"])
    assert math.isfinite(figures["active/test_nll"])


def test_segmentation_example_runs_tiny(tiny_mnist, tmp_path, recwarn):
    figures = run_segmentation(
        "bald",
        "topq",
        mnist=tiny_mnist,
        pool_size=30,
        val_size=10,
        initial=4,
        query_size=4,
        steps=1,
        epochs_per_step=1,
        iterations=3,
        output_dir=tmp_path,
    )
    assert not [w for w in recwarn if "log_every_n_steps" in str(w.message)]
    assert figures["active/num_labelled"] == 8
    assert 0.0 <= figures["active/val_miou"] <= 1.0
