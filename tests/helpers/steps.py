"""A scripted active learning step, as a stopping criterion reads it (any object with the attributes of `StepView`)."""

from types import SimpleNamespace


def scripted_step(step=0, val=None, scores=None, predict=None, figures=None) -> SimpleNamespace:
    return SimpleNamespace(
        num_labelled=10 + step,
        step=step,
        val_metrics=val or {},
        figures=figures or {},
        pool_scores=scores,
        pool_mean=None,
        pool_max=None,
        predict=predict,
    )
