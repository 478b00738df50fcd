"""NT-Xent, the SimCLR loss (Chen et al., 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float):
    """Scaled cosine similarities of all 2N views, self-pairs masked out.

    Rows and columns are ordered [z1; z2], so the positive of row i is (i + N) mod 2N.
    Returns ``(logits, positive_index)`` with logits of shape (2N, 2N), the diagonal set to -inf.
    Computed in float32 whatever the autocast dtype, because exp(s / t) is sensitive at t = 0.2.
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"expected two (N, d) tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
    logits = z @ z.t() / temperature
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    positive_index = torch.arange(2 * n, device=z.device).roll(n)
    return logits, positive_index


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    r"""Normalised temperature-scaled cross-entropy over a batch of N pairs of views.

    With :math:`u_k = z_k / \lVert z_k \rVert` for the 2N views and :math:`p(i)` the other view of view i,

    .. math::
        \mathcal{L} = \frac{1}{2N} \sum_{i=1}^{2N}
            -\log \frac{\exp(u_i^\top u_{p(i)} / \tau)}{\sum_{k \ne i} \exp(u_i^\top u_k / \tau)}

    Every other view in the batch (2N - 2 of them) is a negative. Under DDP pass the embeddings gathered
    from all ranks (``utils.distributed.all_gather_with_grad``) so that the negatives span the global batch.
    """
    logits, positive_index = nt_xent_logits(z1, z2, temperature)
    return F.cross_entropy(logits, positive_index)
