r"""Pointwise heuristics of K MC samples: entropy, BALD, confidence, spread; the variance and MI of regression outputs.

Each scores ``log_probs`` ``[N, K, C, ...]`` as ``[N]``: trailing dims ``...`` are reduced by ``reduction`` (see
:data:`Reduction`; ``"max"`` and ``"topq"`` keep the most uncertain positions), positions where a bool ``mask``
``[N, ...]`` is False are left out (an item with none left scores 0.0, a margin 1.0), and ``validate_args`` checks
rank, dtype, K >= 2 where needed, finite values and rows of ``exp`` summing to one on average over each
item's K samples. See docs/heuristics.md.

The multi-label pair, :func:`multilabel_entropy` and :func:`multilabel_bald`, score per-class logits ``[N, K, C]``
instead (one independent yes/no per class), reduced over the classes by ``reduction`` (default ``"sum"``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from lightning_bal.functional._mc_pass import mc_moments
from lightning_bal.functional._validation import (
    Reduction,
    check_finite_scores,
    check_log_probs,
    check_mask,
    check_masked_inputs,
    check_reduction,
    finalize_scores,
    reduce_scores,
)

__all__ = [
    "bald",
    "entropy",
    "entropy_over_classes",
    "expected_entropy",
    "gaussian_mutual_information",
    "least_confidence",
    "margin",
    "mean_std",
    "multilabel_bald",
    "multilabel_entropy",
    "variance",
    "variation_ratios",
]


def _check(log_probs: Tensor, reduction: Reduction, mask: Tensor | None, needs_mc_samples: bool) -> None:
    check_log_probs(log_probs, needs_mc_samples=needs_mc_samples)
    check_reduction(reduction)
    check_masked_inputs(log_probs, mask)


def entropy_over_classes(probs_N_C_R: Tensor) -> Tensor:
    r"""Return :math:`-\sum_c p_c \log p_c` over dim 1 as ``[N, R]`` (:math:`0 \log 0 = 0`), shared with BatchBALD."""
    num_items, num_classes, rest = probs_N_C_R.shape
    # Clamping before `log` is half the CPU cost of `xlogy`; a product with -1s sums classes ~2.5x faster than `sum`.
    xlogx_N_C_R = probs_N_C_R.clamp_min(torch.finfo(probs_N_C_R.dtype).tiny).log_().mul_(probs_N_C_R)
    xlogx_NR_C = xlogx_N_C_R.transpose(1, 2).reshape(num_items * rest, num_classes)
    minus_ones_C = torch.full((num_classes,), -1.0, dtype=probs_N_C_R.dtype, device=probs_N_C_R.device)
    return torch.mv(xlogx_NR_C, minus_ones_C).view(num_items, rest)


def entropy(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Entropy in nats of the mean prediction over the MC samples (max-entropy acquisition); higher is more uncertain.

    .. math:: H[\bar p] = -\sum_c \bar p_c \log \bar p_c, \quad \bar p_c = \frac{1}{K}\sum_k p_{kc}

    K may be 1 (a deterministic model).

    Examples:
        >>> entropy(torch.full((1, 3, 4), 0.25).log())
        tensor([1.3863])
    """
    if validate_args:
        _check(log_probs, reduction, mask, needs_mc_samples=False)
    mean_probs_N_C_R = mc_moments(log_probs, validate_args=validate_args).mean_probs
    return finalize_scores(entropy_over_classes(mean_probs_N_C_R), log_probs, reduction, validate_args, mask)


def bald(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""BALD (Houlsby et al., 2011): mutual information :math:`I[y; \omega]` from K MC samples; higher is better.

    .. math:: \mathrm{BALD} = H\Big[\frac{1}{K}\sum_k p_k\Big] - \frac{1}{K}\sum_k H[p_k]

    In nats, between 0 and :func:`entropy` (noise below zero is clipped). Needs K >= 2 MC samples.

    Examples:
        >>> log_probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).clamp_min(1e-12).log()
        >>> bald(log_probs)
        tensor([0.6931])
    """
    if validate_args:
        _check(log_probs, reduction, mask, needs_mc_samples=True)
    moments = mc_moments(log_probs, expected_entropy=True, validate_args=validate_args)
    assert moments.expected_entropy is not None  # requested above; narrows the type for mypy
    scores_N_R = entropy_over_classes(moments.mean_probs).sub_(moments.expected_entropy).clamp_min_(0.0)
    return finalize_scores(scores_N_R, log_probs, reduction, validate_args, mask)


def expected_entropy(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Mean entropy in nats of the K sample predictions, the aleatoric part of :func:`entropy`.

    .. math:: \frac{1}{K}\sum_k H[p_k] = -\frac{1}{K}\sum_k \sum_c p_{kc} \log p_{kc}

    Examples:
        >>> expected_entropy(torch.full((1, 2, 2), 0.5).log())
        tensor([0.6931])
    """
    if validate_args:
        _check(log_probs, reduction, mask, needs_mc_samples=False)
    moments = mc_moments(log_probs, expected_entropy=True, validate_args=validate_args)
    assert moments.expected_entropy is not None  # requested above; narrows the type for mypy
    return finalize_scores(moments.expected_entropy, log_probs, reduction, validate_args, mask)


def margin(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Gap in ``[0, 1]`` between the two likeliest classes of the mean prediction; LOWER is more uncertain.

    .. math:: \bar p_{(1)} - \bar p_{(2)}, \quad \bar p = \frac{1}{K}\sum_k p_k \text{ sorted descending}

    Needs C >= 2 classes. ``"max"`` keeps the SMALLEST margin, ``"topq"`` the smallest margins; a callable gets the
    margins as they are.

    Examples:
        >>> margin(torch.tensor([[[0.7, 0.2, 0.1]]]).log())
        tensor([0.5000])
    """
    if validate_args:
        _check(log_probs, reduction, mask, needs_mc_samples=False)
        if log_probs.shape[2] < 2:
            raise ValueError(f"Expected argument `log_probs` to have C >= 2 classes, but got C={log_probs.shape[2]}.")
    top2_N_2_R = mc_moments(log_probs, validate_args=validate_args).mean_probs.topk(2, dim=1).values
    margins_N_R = top2_N_2_R[:, 0] - top2_N_2_R[:, 1]
    return finalize_scores(margins_N_R, log_probs, reduction, validate_args, mask, empty=1.0, higher_is_better=False)


def least_confidence(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""One minus the largest class probability of the mean prediction, in ``[0, 1 - 1/C]``; higher is more uncertain.

    .. math:: 1 - \max_c \bar p_c, \quad \bar p = \frac{1}{K}\sum_k p_k

    Examples:
        >>> least_confidence(torch.tensor([[[0.7, 0.2, 0.1]]]).log())
        tensor([0.3000])
    """
    if validate_args:
        _check(log_probs, reduction, mask, needs_mc_samples=False)
    top_N_R = mc_moments(log_probs, validate_args=validate_args).mean_probs.amax(1)
    return finalize_scores(top_N_R.neg_().add_(1.0), log_probs, reduction, validate_args, mask)


def mean_std(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Class-averaged standard deviation of the K sample probabilities (Kampffmeyer et al., 2016); higher is better.

    .. math:: \frac{1}{C}\sum_c \sqrt{\frac{1}{K}\sum_k (p_{kc} - \bar p_c)^2}

    The population (biased) standard deviation over K, in ``[0, 0.5]``. Needs K >= 2 MC samples.

    Examples:
        >>> mean_std(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).clamp_min(1e-12).log())
        tensor([0.5000])
    """
    if validate_args:
        _check(log_probs, reduction, mask, needs_mc_samples=True)
    moments = mc_moments(log_probs, variance=True, validate_args=validate_args)
    assert moments.variance_probs is not None  # requested above; narrows the type for mypy
    return finalize_scores(moments.variance_probs.sqrt().mean(1), log_probs, reduction, validate_args, mask)


def variation_ratios(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Fraction of MC samples whose predicted class is not the modal one (Freeman, 1965); higher is more uncertain.

    .. math:: 1 - \frac{1}{K}\max_c \big|\{k : \arg\max_{c'} p_{kc'} = c\}\big|

    Ties in a sample's argmax go to the lowest class index; scores are multiples of ``1/K``. Needs K >= 2 MC samples.

    Examples:
        >>> variation_ratios(torch.tensor([[[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]]).log())
        tensor([0.2500])
    """
    if validate_args:
        _check(log_probs, reduction, mask, needs_mc_samples=True)
        mc_moments(log_probs, validate_args=True)
    num_items, num_samples, num_classes = log_probs.shape[:3]
    # The trailing size is spelled out: `reshape(..., -1)` is ambiguous, hence an error, for an empty pool.
    rest = math.prod(log_probs.shape[3:])
    votes_N_K_R = log_probs.reshape(num_items, num_samples, num_classes, rest).argmax(2)
    counts_N_C_R = torch.zeros(
        num_items, num_classes, votes_N_K_R.shape[2], dtype=torch.int64, device=log_probs.device
    ).scatter_add_(1, votes_N_K_R, torch.ones_like(votes_N_K_R))
    dtype = log_probs.dtype if log_probs.dtype in (torch.float32, torch.float64) else torch.float32
    scores_N_R = 1.0 - counts_N_C_R.amax(1).to(dtype) / num_samples
    return finalize_scores(scores_N_R, log_probs, reduction, validate_args, mask)


def _check_float(name: str, values: Tensor) -> None:
    if not isinstance(values, Tensor) or not values.is_floating_point():
        got = values.dtype if isinstance(values, Tensor) else type(values)
        raise TypeError(f"Expected argument `{name}` to be a floating point tensor, but got {got}.")


def _check_samples(name: str, values: Tensor) -> None:
    _check_float(name, values)
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

    The population (biased) variance, as ``numpy.var``, of ``predictions`` ``[N, K, ...]`` (any real values),
    K >= 2 MC samples.

    Examples:
        >>> variance(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
        tensor([1., 0.])
    """
    if validate_args:
        _check_samples("predictions", predictions)
        check_reduction(reduction)
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

    .. math:: I \approx \frac12 \log\Big(1 + \frac{\mathrm{Var}_k[\mu_k]}{\frac1K \sum_k \sigma^2_k}\Big)

    by moment matching the mixture of the samples' :math:`\mathcal N(\mu_k, \sigma^2_k)`, in nats (see
    docs/heuristics.md). ``means`` and natural ``log_variances`` are ``[N, K, ...]`` with K >= 2.

    Examples:
        >>> means = torch.tensor([[0.0, 2.0], [1.0, 1.0]])  # two items, K=2 samples
        >>> gaussian_mutual_information(means, torch.zeros(2, 2))  # 0.5 * log(1 + 1 / 1)
        tensor([0.3466, 0.0000])
    """
    if validate_args:
        _check_samples("means", means)
        _check_float("log_variances", log_variances)
        if log_variances.shape != means.shape:
            raise ValueError(
                f"Expected argument `log_variances` to have the shape of `means` {tuple(means.shape)}, but got"
                f" {tuple(log_variances.shape)}."
            )
        check_reduction(reduction)
        check_mask(mask, tuple(means.shape[:1] + means.shape[2:]))
    spread = means.var(dim=1, correction=0)
    noise = log_variances.exp().mean(1)
    scores = spread.div(noise).log1p_().mul_(0.5)
    if validate_args:
        check_finite_scores(scores, name="log_variances")
    return reduce_scores(scores, reduction, mask)


# Fewer values all in [0, 1] are plausible logits of a small batch (e.g. 6 values, each with odds ~1/2 for an untrained
# model's logits around 0: ~1%); 64 such values (odds ~1e-20) leave sigmoid outputs the only likely cause.
_PROBABILITY_EVIDENCE = 64


def _check_logits(logits: Tensor, reduction: Reduction, needs_mc_samples: bool) -> None:
    """Refuse anything but finite per-class logits ``[N, K, C]``, in particular sigmoid probabilities."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"Expected argument `logits` to be a torch.Tensor, but got {type(logits).__name__}.")
    if not logits.is_floating_point():
        raise TypeError(f"Expected argument `logits` to be a floating point tensor, but got dtype {logits.dtype}.")
    if logits.ndim != 3 or not logits.shape[2]:
        raise ValueError(
            f"Expected argument `logits` to have shape [N, K, C] (items, MC samples, C >= 1 classes), but got shape"
            f" {tuple(logits.shape)}."
        )
    if needs_mc_samples and logits.shape[1] < 2:
        raise ValueError(
            f"Expected argument `logits` to hold K >= 2 MC samples on dim 1 (this heuristic measures disagreement"
            f" between samples), but got K={logits.shape[1]}."
        )
    check_reduction(reduction)
    if not logits.numel():
        return
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(
            f"Expected argument `logits` to hold finite values, but got {int((~torch.isfinite(logits)).sum())} NaN or"
            " inf."
        )
    if (
        logits.numel() >= _PROBABILITY_EVIDENCE
        and bool(((logits >= 0) & (logits <= 1)).all())
        and bool(((logits > 0) & (logits < 1)).any())
    ):
        raise ValueError(
            f"Expected argument `logits` to hold logits, but all its {logits.numel()} values lie in [0, 1]: sigmoid"
            " probabilities? Give the logits before the sigmoid (or `validate_args=False` if these are logits)."
        )


def _log_bernoulli(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(log p, log(1 - p))`` of ``p = sigmoid(logits)`` in float32 at least, exact where ``p`` rounds to 0 or 1."""
    logits = logits if logits.dtype == torch.float64 else logits.float()
    return F.logsigmoid(logits), F.logsigmoid(-logits)


def _binary_entropy(log_p: Tensor, log_q: Tensor) -> Tensor:
    r"""``-(p \log p + q \log q)`` from ``log p`` and ``log q`` (``q = 1 - p``), 0 where a probability is 0."""
    return -(log_p.exp() * log_p + log_q.exp() * log_q)


def _mean_bernoulli_entropy(log_p_N_K_C: Tensor, log_q_N_K_C: Tensor) -> Tensor:
    """Binary entropy ``[N, C]`` of each class's MC-mean probability, the mean taken in log space."""
    log_k = math.log(log_p_N_K_C.shape[1])
    return _binary_entropy(
        torch.logsumexp(log_p_N_K_C, dim=1) - log_k, torch.logsumexp(log_q_N_K_C, dim=1) - log_k
    ).clamp_min_(0.0)


def multilabel_entropy(logits: Tensor, reduction: Reduction = "sum", validate_args: bool = True) -> Tensor:
    r"""Binary entropy in nats of each class's MC-mean probability, reduced over the C classes; higher is better.

    .. math:: \sum_c H_b(\bar p_c), \quad H_b(p) = -p \log p - (1 - p) \log(1 - p), \quad
        \bar p_c = \frac{1}{K}\sum_k \sigma(z_{kc})

    ``logits`` ``[N, K, C]`` are per-class logits :math:`z` (before the sigmoid) of K MC samples; K may be 1. The
    classes are independent, so the sum (the default reduction) is the entropy of the prediction of all C labels
    that multiplies the classes' mean probabilities; ``"mean"`` and ``"max"`` (the most uncertain class) are the other
    usual choices. Computed with ``logsigmoid``: stable for logits of any size.

    Examples:
        >>> multilabel_entropy(torch.zeros(1, 2, 3))  # 3 classes at p = 1/2: 3 ln 2
        tensor([2.0794])
    """
    if validate_args:
        _check_logits(logits, reduction, needs_mc_samples=False)
    scores_N_C = _mean_bernoulli_entropy(*_log_bernoulli(logits))
    return reduce_scores(scores_N_C, reduction)


def multilabel_bald(logits: Tensor, reduction: Reduction = "sum", validate_args: bool = True) -> Tensor:
    r"""BALD of each class's Bernoulli label from K MC samples of per-class logits, reduced over the C classes.

    .. math:: \sum_c \Big( H_b(\bar p_c) - \frac{1}{K}\sum_k H_b\big(\sigma(z_{kc})\big) \Big)

    The mutual information :math:`I[y_c; \omega]` of each class with the parameters, in nats, between 0 and that
    class's entropy (noise below zero is clipped). The labels are independent given the parameters, so the sum (the
    default reduction) bounds the joint :math:`I[y_1, \dots, y_C; \omega]` from above, as BatchBALD's sum of BALD
    scores does; ``"mean"`` and ``"max"`` are the other usual choices. ``logits`` ``[N, K, C]`` are per-class logits
    :math:`z` of K >= 2 MC samples; computed with ``logsigmoid``: stable for logits of any size.

    Examples:
        >>> multilabel_bald(torch.tensor([[[20.0, 0.0], [-20.0, 0.0]]]))  # class 0: samples disagree fully
        tensor([0.6931])
    """
    if validate_args:
        _check_logits(logits, reduction, needs_mc_samples=True)
    log_p_N_K_C, log_q_N_K_C = _log_bernoulli(logits)
    expected_N_C = _binary_entropy(log_p_N_K_C, log_q_N_K_C).mean(1)
    scores_N_C = _mean_bernoulli_entropy(log_p_N_K_C, log_q_N_K_C).sub_(expected_N_C).clamp_min_(0.0)
    return reduce_scores(scores_N_C, reduction)
