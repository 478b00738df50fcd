"""Contrastive losses: pure functions of embeddings, their math in the docstrings."""
from losses.dist_supcon import dist_supcon, domain_labels_for_views
from losses.nt_xent import image_losses, nt_xent, nt_xent_logits, nt_xent_per_item, view_losses

__all__ = ["dist_supcon", "domain_labels_for_views", "image_losses", "nt_xent", "nt_xent_logits",
           "nt_xent_per_item", "view_losses"]
