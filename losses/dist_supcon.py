"""COLT's distribution-level supervised contrastive loss: ID views attract ID views, OOD attract OOD."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dist_supcon(z: torch.Tensor, is_ood: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    r"""Supervised contrastive loss over all M views of the global batch, with the domain as the label.

    With :math:`u_i = z_i / \lVert z_i \rVert`, :math:`s_{ik} = u_i^\top u_k / \tau` and
    :math:`P(i) = \{p \ne i : \text{domain}_p = \text{domain}_i\}` (the anchor's own partner view included),

    .. math::
        \mathcal{L} = \frac{1}{|A|} \sum_{i \in A} \frac{-1}{|P(i)|} \sum_{p \in P(i)}
            \log \frac{\exp(s_{ip})}{\sum_{k \ne i} \exp(s_{ik})},

    where A is the set of anchors with at least one positive (Khosla et al.'s SupCon, "L_out" form).
    ``is_ood`` gives each view's domain; for views ordered [view 1; view 2] of B images use
    ``domain_labels_for_views``. Computed in float32.
    """
    if z.dim() != 2 or is_ood.shape != (z.shape[0],):
        raise ValueError(f"expected z of shape (M, d) and is_ood of shape (M,), got {tuple(z.shape)} and "
                         f"{tuple(is_ood.shape)}")
    u = F.normalize(z.float(), dim=1)
    m = u.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=u.device)
    log_prob = torch.log_softmax((u @ u.t() / temperature).masked_fill(eye, float("-inf")), dim=1)
    positives = (is_ood[:, None] == is_ood[None, :]) & ~eye
    counts = positives.sum(dim=1)
    anchors = counts > 0
    if not anchors.any():
        return z.sum() * 0
    # where() rather than a product: the masked diagonal holds -inf, and 0 * -inf is nan
    positive_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -(positive_log_prob[anchors] / counts[anchors]).mean()


def domain_labels_for_views(is_ood_images: torch.Tensor) -> torch.Tensor:
    """Per-view domains (2B,) for views ordered [view 1 of the B images; view 2 of the B images]."""
    return torch.cat([is_ood_images, is_ood_images])
