"""A per-item exponential moving average over epochs: COLT's tailness and BCL's momentum loss both use it."""
from __future__ import annotations

import torch


class PerItemAverage:
    """Exponential moving average of one value per dataset item, updated from the items of each batch.

    The first sighting sets the value; each later one does v <- beta * v + (1 - beta) * new. Holds two
    vectors: the values (NaN until first seen) and the epoch each item was last seen (-1 never). Updates are
    scatters on the batch, no per-item Python loop. Under DDP each rank updates with the whole global batch,
    so all ranks hold identical values without extra communication.
    """

    def __init__(self, num_items: int, beta: float = 0.97, device: torch.device | str = "cpu"):
        if not 0 <= beta < 1:
            raise ValueError(f"--beta must be in [0, 1), got {beta}")
        self.beta = beta
        self.values = torch.full((num_items,), float("nan"), device=device)
        self.last_seen = torch.full((num_items,), -1, dtype=torch.int64, device=device)

    @property
    def scores(self) -> torch.Tensor:
        """The values (COLT calls them tailness scores)."""
        return self.values

    @torch.no_grad()
    def update(self, indices: torch.Tensor, new: torch.Tensor, epoch: int) -> None:
        """``indices``: dataset positions of the items (unique within a batch); ``new``: their new values."""
        indices = indices.to(self.values.device)
        new = new.to(self.values.device, torch.float32)
        seen_before = self.last_seen[indices] >= 0
        previous = self.values[indices]
        self.values[indices] = torch.where(seen_before, self.beta * previous + (1 - self.beta) * new, new)
        self.last_seen[indices] = epoch

    def state_dict(self) -> dict:
        return {"scores": self.values.cpu(), "last_seen": self.last_seen.cpu(), "beta": self.beta}

    def load_state_dict(self, state: dict) -> None:
        if state["scores"].shape != self.values.shape:
            raise ValueError(f"per-item state is for {state['scores'].numel()} samples, "
                             f"this training set has {self.values.numel()}")
        self.values.copy_(state["scores"])
        self.last_seen.copy_(state["last_seen"])
        self.beta = state["beta"]
