r"""ICAL: Information Condensing Active Learning (Jain, Liu and Gifford, 2020), see docs/diversity.md."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import check_batch_inputs
from lightning_bal.functional._validation import check_finite_scores, check_mass, row_mass_error
from lightning_bal.utilities.checks import check_bool, check_int_in_range, check_one_of

__all__ = ["RQ_ALPHAS", "hsic", "ical", "sample_kernels"]

#: Shape parameters of the rational-quadratic kernels mixed with equal weights, as in the ICAL authors' code.
RQ_ALPHAS = (0.2, 0.5, 1.0, 2.0, 5.0)

Samples = Literal["labels", "probs"]


def hsic(kernel_x: Tensor, kernel_y: Tensor, normalized: bool = False) -> Tensor:
    r"""The biased (V-statistic) HSIC estimate of two kernel matrices over the same n paired samples.

    ``kernel_x`` and ``kernel_y`` are ``[..., n, n]``, broadcastable. ``normalized=True`` divides by the geometric mean
    of the two self-dependences: 1 for identical kernels, 0 where a kernel is constant.

    Examples:
        >>> labels = torch.tensor([0, 0, 1, 1])
        >>> same = (labels[:, None] == labels[None, :]).float()
        >>> hsic(same, same), hsic(same, same, normalized=True)
        (tensor(0.2500), tensor(1.))
    """
    for name, kernel in (("kernel_x", kernel_x), ("kernel_y", kernel_y)):
        if not isinstance(kernel, Tensor) or kernel.ndim < 2 or kernel.shape[-1] != kernel.shape[-2]:
            got = tuple(kernel.shape) if isinstance(kernel, Tensor) else type(kernel).__name__
            raise ValueError(f"Expected argument `{name}` to be a tensor [..., n, n], but got {got}.")
        if not kernel.is_floating_point():
            raise TypeError(f"Expected argument `{name}` to be a floating point tensor, but got {kernel.dtype}.")
    if kernel_x.shape[-1] != kernel_y.shape[-1]:
        raise ValueError(
            f"Expected arguments `kernel_x` and `kernel_y` to have the same number of samples, but got"
            f" {kernel_x.shape[-1]} and {kernel_y.shape[-1]}."
        )
    check_bool("normalized", normalized)
    n = kernel_x.shape[-1]
    centred_x, centred_y = _centre(kernel_x), _centre(kernel_y)
    cross = (centred_x * centred_y).sum((-2, -1)) / n**2
    if not normalized:
        return cross
    scale = ((centred_x * centred_x).sum((-2, -1)) * (centred_y * centred_y).sum((-2, -1))).sqrt() / n**2
    return torch.where(scale > 0, cross / scale.clamp_min(torch.finfo(scale.dtype).tiny), torch.zeros_like(cross))


def sample_kernels(
    log_probs: Tensor,
    samples: Samples = "labels",
    generator: torch.Generator | None = None,
    alphas: tuple[float, ...] = RQ_ALPHAS,
) -> Tensor:
    r"""Kernel matrices ``[N, K, K]`` over the K MC samples of each item, the HSIC inputs of :func:`ical`.

    Compares one-hot labels :math:`y_k \sim p_k(y)` (``"labels"``, drawn with ``generator``) or the vectors
    :math:`p_k` (``"probs"``) by :math:`\kappa(d^2) = \frac{1}{|A|}\sum_{\alpha \in A} (1 + d^2 / 2\alpha)^{-\alpha}`,
    ``A = alphas``. Float64 for float64 input, else float32.

    Examples:
        >>> log_probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).clamp_min(1e-12).log()
        >>> sample_kernels(log_probs)  # the two samples always draw different labels
        tensor([[[1.0000, 0.5245],
                 [0.5245, 1.0000]]])
    """
    check_one_of("samples", samples, ("labels", "probs"))
    dtype = log_probs.dtype if log_probs.dtype == torch.float64 else torch.float32
    probs_N_K_C = log_probs.to(dtype).exp()
    if samples == "labels":
        uniforms_N_K_1 = torch.rand(
            (*probs_N_K_C.shape[:2], 1), generator=generator, dtype=dtype, device=log_probs.device
        )
        labels_N_K = (probs_N_K_C.cumsum(2) < uniforms_N_K_1).sum(2).clamp_max_(probs_N_K_C.shape[2] - 1)
        different_N_K_K = labels_N_K[:, :, None] != labels_N_K[:, None, :]
        sq_dist_N_K_K = different_N_K_K.to(dtype) * 2.0  # |e_i - e_j|^2 = 2 for i != j
    else:
        sq_norms_N_K = probs_N_K_C.square().sum(2)
        gram_N_K_K = probs_N_K_C @ probs_N_K_C.transpose(1, 2)
        sq_dist_N_K_K = (sq_norms_N_K[:, :, None] + sq_norms_N_K[:, None, :] - 2.0 * gram_N_K_K).clamp_min_(0.0)
    kernel = torch.zeros_like(sq_dist_N_K_K)
    for alpha in alphas:
        kernel += torch.log1p(sq_dist_N_K_K / (2.0 * alpha)).mul_(-alpha).exp_()
    return kernel.div_(len(alphas))


def ical(
    log_probs: Tensor,
    query_size: int,
    num_targets: int = 200,
    resample_targets: bool = True,
    normalized: bool = True,
    samples: Samples = "labels",
    generator: torch.Generator | None = None,
    validate_args: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""Select ``query_size`` items greedily by ICAL: the batch whose labels depend most on the target set's.

    .. math:: b_{n} = \arg\max_{x \notin b_{1:n-1}} \mathrm{HSIC}\Big(\bar K_{b_{1:n-1} \cup \{x\}},\,
        \bar K_{T_n}\Big), \qquad \bar K_S = \frac{1}{|S|}\sum_{s \in S} K_s

    where :math:`K_s` is item s's ``[K, K]`` kernel over the K >= 2 consistent MC samples of ``log_probs``
    ``[N, K, C]`` (:func:`sample_kernels`) and :math:`T_n` a set of ``num_targets`` items drawn with ``generator``
    from those not yet picked (once, unless ``resample_targets``). Returns ``(indices, scores)``: positions in
    selection order, and ``scores[n]`` the dependence of the first ``n + 1`` picks on that step's target set.

    Examples:
        >>> labels = torch.tensor([[0, 0, 1, 1]] * 3 + [[0, 1, 0, 1]] * 2)
        >>> log_probs = torch.nn.functional.one_hot(labels, 2).float().clamp(1e-6, 1 - 1e-6).log()
        >>> ical(log_probs, 3, generator=torch.Generator().manual_seed(0))  # the second pick splits the other way
        (tensor([0, 3, 1]), tensor([0.8321, 1.0000, 1.0000]))
    """
    if validate_args:
        query_size = check_batch_inputs(log_probs, query_size, generator)
        check_int_in_range("num_targets", num_targets, 1)
        check_bool("resample_targets", resample_targets)
        check_bool("normalized", normalized)
        check_one_of("samples", samples, ("labels", "probs"))
    num_items, num_mc = log_probs.shape[0], log_probs.shape[1]
    if query_size == 0:
        return torch.empty(0, dtype=torch.int64, device=log_probs.device), log_probs.new_empty(0)
    if validate_args:
        check_mass(row_mass_error(log_probs.exp()), log_probs)
        check_finite_scores(log_probs.clamp_min(torch.finfo(log_probs.dtype).min))
    kernels_N_K_K = sample_kernels(log_probs, samples, generator)
    centred_N_KK = _centre(kernels_N_K_K).reshape(num_items, num_mc * num_mc)
    self_N = centred_N_KK.square().sum(1)  # <K_x, K_x>
    cross_N = torch.zeros_like(self_N)  # <sum of the batch's kernels, K_x>
    batch_KK = torch.zeros_like(centred_N_KK[0])  # sum of the batch's centred kernels
    batch_self = centred_N_KK.new_zeros(())  # <batch sum, batch sum>
    taken_N = torch.zeros(num_items, dtype=torch.bool, device=log_probs.device)
    picks: list[int] = []
    scores = centred_N_KK.new_empty(query_size)
    target_KK, target_N, target_self = _targets(centred_N_KK, taken_N, num_targets, generator)
    for step in range(query_size):
        if step > 0 and resample_targets:
            target_KK, target_N, target_self = _targets(centred_N_KK, taken_N, num_targets, generator)
        numerator_N = target_N + batch_KK @ target_KK
        if normalized:
            batch_with_N = (batch_self + 2.0 * cross_N + self_N).clamp_min_(0.0)
            denominator_N = (batch_with_N * target_self).sqrt_()
            gains_N = (numerator_N / denominator_N.clamp_min(1e-30)).masked_fill_(~(denominator_N > 0), 0.0)
        else:
            gains_N = numerator_N / ((step + 1) * num_mc**2)
        gains_N.masked_fill_(taken_N, float("-inf"))
        best = int(gains_N.argmax())
        picks.append(best)
        scores[step] = gains_N[best]
        taken_N[best] = True
        batch_self = batch_self + 2.0 * cross_N[best] + self_N[best]
        cross_N += centred_N_KK @ centred_N_KK[best]
        batch_KK += centred_N_KK[best]
    return torch.tensor(picks, dtype=torch.int64, device=log_probs.device), scores


def _centre(kernel: Tensor) -> Tensor:
    """``H K H`` of ``[..., n, n]`` kernels: rows and columns to mean zero."""
    row_means = kernel.mean(-1, keepdim=True)
    col_means = kernel.mean(-2, keepdim=True)
    return kernel - row_means - col_means + row_means.mean(-2, keepdim=True)


def _targets(
    centred_N_KK: Tensor, taken_N: Tensor, num_targets: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Mean centred kernel of targets drawn from the items not taken, its product with each item's, its norm²."""
    free = torch.nonzero(~taken_N).squeeze(1)  # never empty: a step always has an item left to pick
    order = torch.randperm(free.numel(), generator=generator, device=free.device)
    target_KK = centred_N_KK[free[order[:num_targets]]].mean(0)
    return target_KK, centred_N_KK @ target_KK, target_KK.square().sum()
