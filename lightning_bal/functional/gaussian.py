"""Mutual information of a heteroscedastic regression head: K Gaussian predictions ``(mean, log-variance)``."""

from __future__ import annotations

from torch import Tensor

from lightning_bal.functional._validation import (
    Reduction,
    check_finite_scores,
    check_mask,
    check_reduction,
    reduce_scores,
)

__all__ = ["gaussian_mutual_information"]


def gaussian_mutual_information(
    means: Tensor,
    log_variances: Tensor,
    reduction: Reduction = "mean",
    validate_args: bool = True,
    mask: Tensor | None = None,
) -> Tensor:
    r"""Mutual information of output and parameters for K Gaussian predictions, in closed form; higher is better.

    Each MC sample k predicts :math:`\mathcal N(\mu_k, \sigma^2_k)`. The predictive is their mixture, whose entropy
    has no closed form; moment matching it by one Gaussian of the same total variance gives

    .. math:: I \approx \frac12 \log \frac{\sigma^2_{\mathrm{tot}}}{\overline{\sigma^2}}
        = \frac12 \log\Big(1 + \frac{\mathrm{Var}_k[\mu_k]}{\overline{\sigma^2}}\Big),
        \quad \overline{\sigma^2} = \frac1K \sum_k \sigma^2_k,
        \quad \sigma^2_{\mathrm{tot}} = \overline{\sigma^2} + \mathrm{Var}_k[\mu_k]

    (law of total variance: aleatoric plus epistemic). When every sample has the same noise variance this is the
    information gain of a Gaussian observation of MacKay (1992), ``Information-based objective functions for active
    data selection``, Neural Computation 4(4). It is zero when the K means agree, and it grows with their spread
    measured in units of the noise, so noisy regions are not mistaken for informative ones (unlike the variance).

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
        for name, value in (("means", means), ("log_variances", log_variances)):
            if not isinstance(value, Tensor) or not value.is_floating_point():
                got = value.dtype if isinstance(value, Tensor) else type(value)
                raise TypeError(f"Expected argument `{name}` to be a floating point tensor, but got {got}.")
        if means.ndim < 2 or means.shape[1] < 2:
            raise ValueError(
                "Expected argument `means` to have shape [N, K, ...] with K >= 2 MC samples, but got shape"
                f" {tuple(means.shape)}."
            )
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
