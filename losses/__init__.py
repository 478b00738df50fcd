"""Contrastive losses: pure functions of embeddings, their math in the docstrings."""
from losses.nt_xent import nt_xent, nt_xent_logits

__all__ = ["nt_xent", "nt_xent_logits"]
