"""Heuristics of regression outputs over K MC samples: the variance, and the mutual information of a Gaussian head."""

from __future__ import annotations

from torch import Tensor

from lightning_bal.functional._validation import (
    Reduction,
    check_finite_scores,
    check_mask,
    check_reduction,
    reduce_scores,
)

__all__ = ["gaussian_mutual_information", "variance"]


def _check_samples(name: str, values: Tensor) -> None:
    """Refuse ``values`` unless a floating point tensor ``[N, K, ...]`` with K >= 2."""
    if not isinstance(values, Tensor) or not values.is_floating_point():
        got = values.dtype if isinstance(values, Tensor) else type(values)
        raise TypeError(f"Expected argument `{name}` to be a floating point tensor, but got {got}.")
    if values.ndim < 2 or values.shape[1] < 2:
        raise ValueError(
            f"Expected argument `{name}` to have shape [N, K, ...] with K >= 2 MC samples, but got shape"
            f" {tuple(values.shape)}."
        )


def variance(
    predictions: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Variance ``[N]`` of the K MC predictions, reduced over trailing dims; higher is more uncertain.

    .. math:: \frac{1}{K}\sum_k \big(f_k(x) - \bar f(x)\big)^2

    The population (biased) variance, as ``numpy.var`` and Baal's ``Variance``.

    Args:
        predictions: ``[N, K, ...]`` regression outputs (any real values) with K >= 2 MC samples.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`).
        validate_args: Check the input (rank, dtype, K >= 2, finite values).
        mask: Optional bool ``[N, ...]``: True where an output counts; an item with none scores 0.

    Example:
        >>> import torch
        >>> variance(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
        tensor([1., 0.])
    """
    if validate_args:
        _check_samples("predictions", predictions)
        check_reduction(reduction)
        if mask is not None:
            check_mask(mask, tuple(predictions.shape[:1] + predictions.shape[2:]))
    scores = predictions.var(dim=1, correction=0)
    if validate_args:
        check_finite_scores(scores, name="predictions")
    return reduce_scores(scores, reduction, mask)


def gaussian_mutual_information(
    means: Tensor,
    log_variances: Tensor,
    reduction: Reduction = "mean",
    validate_args: bool = True,
    mask: Tensor | None = None,
) -> Tensor:
    r"""Mutual information of output and parameters for K Gaussian predictions, in closed form; higher is better.

    Each MC sample k predicts :math:`\mathcal N(\mu_k, \sigma^2_k)`; moment matching their mixture gives

    .. math:: I \approx \frac12 \log \frac{\sigma^2_{\mathrm{tot}}}{\overline{\sigma^2}}
        = \frac12 \log\Big(1 + \frac{\mathrm{Var}_k[\mu_k]}{\overline{\sigma^2}}\Big),
        \quad \overline{\sigma^2} = \frac1K \sum_k \sigma^2_k

    (MacKay, 1992, for one noise variance): the spread of the means in units of the noise, unlike the variance.

    Args:
        means: ``[N, K, ...]`` predicted means, K >= 2 MC samples.
        log_variances: ``[N, K, ...]`` predicted log-variances (natural log), same shape as ``means``.
        reduction: How trailing dims ``...`` are reduced (see :data:`~lightning_bal.functional.Reduction`).
        validate_args: Check the inputs (dtype, shapes, K >= 2, finite values).
        mask: Optional bool ``[N, ...]``: True where an output counts.

    Returns:
        ``[N]`` scores in nats, >= 0.

    Example:
        >>> import torch
        >>> means = torch.tensor([[0.0, 2.0], [1.0, 1.0]])  # two items, K=2 samples
        >>> gaussian_mutual_information(means, torch.zeros(2, 2))  # 0.5 * log(1 + 1 / 1)
        tensor([0.3466, 0.0000])
    """
    if validate_args:
        _check_samples("means", means)
        if not isinstance(log_variances, Tensor) or not log_variances.is_floating_point():
            got = log_variances.dtype if isinstance(log_variances, Tensor) else type(log_variances)
            raise TypeError(f"Expected argument `log_variances` to be a floating point tensor, but got {got}.")
        if log_variances.shape != means.shape:
            raise ValueError(
                f"Expected argument `log_variances` to have the shape of `means` {tuple(means.shape)}, but got"
                f" {tuple(log_variances.shape)}."
            )
        check_reduction(reduction)
        if mask is not None:
            check_mask(mask, tuple(means.shape[:1] + means.shape[2:]))
    spread = means.var(dim=1, correction=0)
    noise = log_variances.exp().mean(1)
    scores = spread.div(noise).log1p_().mul_(0.5)
    if validate_args:
        check_finite_scores(scores, name="log_variances")
    return reduce_scores(scores, reduction, mask)
