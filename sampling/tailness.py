"""COLT's per-sample tailness score, read off the contrastive similarity matrix of each training batch."""
from __future__ import annotations

import torch

from utils.moving_average import PerItemAverage


def raw_tailness(logits: torch.Tensor, k: int) -> torch.Tensor:
    r"""Top-k negative probability mass of each image in a batch of B pairs of views.

    ``logits`` is the (2B, 2B) matrix of ``losses.nt_xent_logits`` (rows/columns ordered [view 1; view 2],
    diagonal -inf). Row-wise softmax gives, for anchor view a with positive view b,

    .. math:: p_{aj} = \frac{\exp(s_{aj}/\tau)}{\exp(s_{ab}/\tau) + \sum_{n \ne a, b} \exp(s_{an}/\tau)}.

    The two rows of image m (views m and m + B) are averaged over the negatives (all columns but the
    image's own two views), and the score is the sum of the k largest averaged probabilities. Crowded
    (head-like) images have much probability on negatives and score high; isolated (tail-like) ones low.
    Returns a (B,) tensor. Every column counts as a negative, OOD images included.
    """
    two_b = logits.shape[0]
    b = two_b // 2
    if k > two_b - 2:
        raise ValueError(f"--k_largest_logits {k} exceeds the {two_b - 2} negatives of a batch of {b} pairs")
    p = torch.softmax(logits.float(), dim=1)
    p_image = (p[:b] + p[b:]) / 2
    own = torch.arange(b, device=logits.device)
    p_image[own, own] = float("-inf")
    p_image[own, own + b] = float("-inf")
    return p_image.topk(k, dim=1).values.sum(dim=1)


class TailnessTracker(PerItemAverage):
    """The EMA of each ID sample's raw tailness over the epochs it was seen in (``--beta``, 0.97)."""
