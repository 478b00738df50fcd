"""The SimCLR projection head of the original releases."""
from __future__ import annotations

import torch
import torch.nn as nn


class ProjectionHead(nn.Module):
    """Linear(d, d) -> BN -> ReLU -> Linear(d, out, no bias) -> BN.

    Submodule names (fc1, bn1, fc2, bn2) follow the original releases so their checkpoints load.
    """

    def __init__(self, in_dim: int, out_dim: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, in_dim)
        self.bn1 = nn.BatchNorm1d(in_dim)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(in_dim, out_dim, bias=False)
        self.bn2 = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.fc2(self.relu(self.bn1(self.fc1(x)))))
