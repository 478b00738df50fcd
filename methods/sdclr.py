"""SDCLR (Jiang et al., "Self-Damaging Contrastive Learning", ICML 2021): the network contrasted with a pruned
copy of itself that shares its unpruned weights.

View 1 goes through the dense branch and view 2 through the pruned one, in one forward (one backward, the
gradient of both branches into the shared weights; the release's two forward/backward passes give the same
gradient). At each epoch's start the mask is rebuilt by global magnitude pruning over every convolution, from
the current (on every rank identical) weights, so masks are never saved: they are recomputed.
"""
from __future__ import annotations

import torch

from methods.base import Method


class SDCLR(Method):
    name = "sdclr"

    def __init__(self, network, temperature: float, precision: str, prune_percent: float):
        super().__init__(network, temperature, precision)
        self.prune_percent = prune_percent

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(x1, x_pruned=x2)

    def epoch_start(self, epoch: int) -> dict:
        threshold = self.network.update_masks(self.prune_percent)
        return {"prune_threshold": threshold, "density": self.network.density()}
