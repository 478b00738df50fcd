r"""NT-Xent, the SimCLR loss (Chen et al., 2020), written once for every user: the training step (the loss,
its per-image values for BCL and the similarity logits COLT's tailness reads) and MAK's ECLE.

With :math:`u_k = z_k / \lVert z_k \rVert` for the 2N views of N images and :math:`p(i)` the other view of
view i, each view's loss is

.. math:: \ell_i = -\log \frac{\exp(u_i^\top u_{p(i)} / \tau)}{\sum_{k \ne i} \exp(u_i^\top u_k / \tau)},

every other view of the batch (2N - 2 of them) being a negative. An image's loss is the mean of its two views'
losses, and the batch loss the mean over the 2N views. Under DDP pass the embeddings gathered from all ranks
(``utils.distributed.all_gather_with_grad``) so that the negatives span the global batch.
"""
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


def view_losses(logits: torch.Tensor, positive_index: torch.Tensor) -> torch.Tensor:
    """The (2N,) per-view losses :math:`\\ell_i` from ``nt_xent_logits``'s output."""
    return F.cross_entropy(logits, positive_index, reduction="none")


def image_losses(per_view: torch.Tensor) -> torch.Tensor:
    """(N,) per-image losses, the mean of each image's two views' losses, from (2N,) per-view ones."""
    return per_view.view(2, -1).mean(dim=0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """The batch loss: the mean of the 2N views' losses."""
    return view_losses(*nt_xent_logits(z1, z2, temperature)).mean()


_SHIFT_MIN_TEMPERATURE = 0.025


def _nt_xent_unit(u1: torch.Tensor, u2: torch.Tensor, temperature: float) -> torch.Tensor:
    """``nt_xent_per_item`` on rows already of unit norm. The (2B, 2B) similarity matrix is symmetric, so its
    three distinct B x B blocks S11, S12, S22 are computed (S21 = S12^T) instead of all four.

    Unit rows bound every s/t by 1/t, so exp(s/t - 1/t) <= 1 cannot overflow, and for t >= 0.025 no term
    falls below exp(-2/t) >= exp(-80), inside float32's range: then one exp of S12 serves both the view-1
    rows (its row sums) and the view-2 rows (its column sums), 3 B^2 exps instead of 4. Smaller t takes
    the general logsumexp path.
    """
    inv_t = 1.0 / temperature
    a1, a2 = u1 * inv_t, u2 * inv_t
    s11 = a1 @ u1.mT
    s12 = a1 @ u2.mT
    s22 = a2 @ u2.mT
    positive = s12.diagonal(dim1=-2, dim2=-1).clone()
    if temperature >= _SHIFT_MIN_TEMPERATURE:
        e11, e12, e22 = s11.sub_(inv_t).exp_(), s12.sub_(inv_t).exp_(), s22.sub_(inv_t).exp_()
        e11.diagonal(dim1=-2, dim2=-1).zero_()  # k != i
        e22.diagonal(dim1=-2, dim2=-1).zero_()
        lse1 = (e11.sum(dim=-1) + e12.sum(dim=-1)).log_() + inv_t  # view-1 rows
        lse2 = (e12.sum(dim=-2) + e22.sum(dim=-1)).log_() + inv_t  # view-2 rows (S21 = S12^T)
    else:
        s11.diagonal(dim1=-2, dim2=-1).fill_(float("-inf"))
        s22.diagonal(dim1=-2, dim2=-1).fill_(float("-inf"))
        lse1 = torch.logaddexp(torch.logsumexp(s11, dim=-1), torch.logsumexp(s12, dim=-1))
        lse2 = torch.logaddexp(torch.logsumexp(s12, dim=-2), torch.logsumexp(s22, dim=-1))
    return (lse1 + lse2) / 2 - positive


def nt_xent_per_item(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-image losses of B pairs of views for any leading batch dims, without gradients' bookkeeping in
    mind: z1, z2 (..., B, d) -> (..., B), the values of ``image_losses`` computed from the blocks of the
    similarity matrix (MAK's ECLE evaluates millions of batches). In float32 or the inputs' wider float type.
    """
    if z1.shape != z2.shape or z1.dim() < 2:
        raise ValueError(f"z1 and z2 must have the same shape (..., B, d), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    dtype = torch.promote_types(z1.dtype, torch.float32)
    return _nt_xent_unit(F.normalize(z1.to(dtype), dim=-1), F.normalize(z2.to(dtype), dim=-1), temperature)


def nt_xent_unit_rows(u1: torch.Tensor, u2: torch.Tensor, temperature: float) -> torch.Tensor:
    """``nt_xent_per_item`` for rows the caller has already L2-normalised (ECLE normalises each pass once)."""
    return _nt_xent_unit(u1, u2, temperature)
