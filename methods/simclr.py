"""SimCLR (Chen et al., ICML 2020): both views through one network, NT-Xent over the global batch."""
from __future__ import annotations

import torch

from methods.base import Method


class SimCLR(Method):
    """Both views of the local images through the encoder and projection head in one forward, so
    BatchNorm normalises over the 2b views together (as the releases do)."""

    name = "simclr"

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.network(torch.cat([x1, x2]))
        return z[:x1.shape[0]], z[x1.shape[0]:]
