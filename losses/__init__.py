"""Contrastive losses: pure functions of embeddings, their math in the docstrings."""
from losses.dist_supcon import dist_supcon, domain_labels_for_views
from losses.nt_xent import nt_xent, nt_xent_logits

__all__ = ["dist_supcon", "domain_labels_for_views", "nt_xent", "nt_xent_logits"]
