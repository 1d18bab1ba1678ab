"""BADGE's gradient embeddings: the loss gradient of the last layer, in closed form from features and predictions."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gradient_embedding", "gradient_embedding_dense"]


def gradient_embedding(log_probs: Tensor, features: Tensor) -> Tensor:
    r"""BADGE's gradient embedding of the last linear layer, in factored float32 form ``[N, C + D]`` = ``[a, h]``.

    ``a = p - e_argmax(p)`` from ``[N, K, C]`` (or ``[N, C]``) log-probabilities, ``p`` their MC mean; ``h`` are the
    ``[N, D]`` (or ``[N, ...]``) ``features`` entering the last layer (see docs/diversity.md#badge-ash-et-al-iclr-2020).

    Examples:
        >>> log_probs = torch.tensor([[0.75, 0.25]]).log()
        >>> gradient_embedding(log_probs, torch.tensor([[2.0, 0.0, 1.0]]))
        tensor([[-0.2500,  0.2500,  2.0000,  0.0000,  1.0000]])
    """
    if not isinstance(log_probs, Tensor) or log_probs.ndim not in (2, 3):
        got = tuple(log_probs.shape) if isinstance(log_probs, Tensor) else type(log_probs).__name__
        raise ValueError(f"Expected argument `log_probs` to be a tensor [N, K, C] or [N, C], but got {got}.")
    if not isinstance(features, Tensor) or features.ndim < 2 or features.shape[0] != log_probs.shape[0]:
        got = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"Expected argument `features` to be a tensor [{log_probs.shape[0]}, D], but got {got}.")
    if log_probs.ndim == 3:
        probs = (torch.logsumexp(log_probs.float(), dim=1) - torch.log(torch.tensor(float(log_probs.shape[1])))).exp()
    else:
        probs = log_probs.float().exp()
    a = probs - torch.nn.functional.one_hot(probs.argmax(1), probs.shape[1]).float()
    return torch.cat([a, features.flatten(1).float()], dim=1)


def gradient_embedding_dense(embeddings: Tensor, num_classes: int) -> Tensor:
    """The ``[N, C·D]`` gradient embeddings of a factored ``[N, C + D]`` one (for checks on small N).

    Examples:
        >>> gradient_embedding_dense(torch.tensor([[-0.25, 0.25, 2.0, 0.0, 1.0]]), 2)
        tensor([[-0.5000, -0.0000, -0.2500,  0.5000,  0.0000,  0.2500]])
    """
    a, h = embeddings[:, :num_classes], embeddings[:, num_classes:]
    return (a.unsqueeze(2) * h.unsqueeze(1)).flatten(1)
